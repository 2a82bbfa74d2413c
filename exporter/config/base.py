"""What every config file of ours shares: the strict model base, the YAML loader, bounded file
reading and the one error format (`path.to.field: what is wrong`).

Both the exporter config (`--config.file`) and the web config (`--web.config.file`) load through
here, so a duplicated key, an unhashable key, a FIFO or a huge file is refused the same way, and
every refusal is a `ConfigError` (exit 2 at start, `last_reload_successful 0` on a reload).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "ConfigError",
    "Strict",
    "UnreadableFile",
    "describe_errors",
    "load_yaml",
    "read_bounded",
    "read_config_text",
    "validate",
]


class ConfigError(Exception):
    """The configuration is unusable; `problems` lists every reason, each naming its path."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class Strict(BaseModel):
    """Unknown keys are errors (a typo must not silently fall back to a default); frozen, so
    a loaded config can be shared between the loop and worker threads."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- files -------------------------------------------------------------------------------


class UnreadableFile(ValueError):
    """A file we refuse or fail to read; `reason` says why without the path."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"cannot read {path}: {reason}")


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; UnreadableFile otherwise.

    A FIFO, a device (/dev/zero) or a socket is refused before it is opened, so reading never
    blocks and never runs away; the open is non-blocking and the file is checked again once
    open, in case it was swapped in between.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise UnreadableFile(path, "not a regular file")
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise UnreadableFile(path, error.strerror or type(error).__name__) from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise UnreadableFile(path, "not a regular file")
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            data = file.read(limit + 1)  # /proc files say size 0: count what comes
    except OSError as error:
        raise UnreadableFile(path, error.strerror or type(error).__name__) from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise UnreadableFile(path, f"larger than {limit} bytes")
    return data


def read_config_text(path: Path, limit: int, what: str) -> str:
    """The UTF-8 text of a configuration file of at most `limit` bytes; otherwise a
    ConfigError "PATH: cannot read WHAT: why"."""
    try:
        return read_bounded(path, limit).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: cannot read {what}: not UTF-8 text"]) from None
    except UnreadableFile as error:
        raise ConfigError([f"{path}: cannot read {what}: {error.reason}"]) from None


# --- YAML --------------------------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictMappings(yaml.constructor.SafeConstructor):
    """safe_load's constructor, except that a key given twice in one mapping is an error, not
    "last wins".

    Merge keys (`<<: *defaults`) work as in YAML 1.1: explicit keys override merged ones, which
    is the point of a merge, not a duplicate. A key that cannot be a dictionary key (a list or a
    mapping used as a key) is a YAML error with its position, not a crash.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a list or mapping cannot be a key", key_node.start_mark
                ) from None
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _StrictLoader(_StrictMappings, yaml.SafeLoader):
    """Pure Python: slow, but its error messages are the ones we show."""


# libyaml's parser, where PyYAML has it: 10,000 nodes parse in about 1.5 s instead of 6.5 s.
_FastLoader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = _StrictLoader
if yaml.__with_libyaml__:

    class _StrictCLoader(_StrictMappings, yaml.CSafeLoader):
        pass

    _FastLoader = _StrictCLoader


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document; ConfigError (with line and column) if it is not valid, or
    naming the field where it is nested more than MAX_NESTING deep."""
    try:
        try:
            _refuse_deep_nesting(yaml.parse(text, Loader=_FastLoader), source)
            return yaml.load(text, Loader=_FastLoader)  # safe loaders: no arbitrary objects
        except yaml.YAMLError:
            # Parse again in Python for its messages (libyaml words some differently); the
            # check again too, in case the two parsers disagree on where the document fails.
            _refuse_deep_nesting(yaml.parse(text, Loader=_StrictLoader), source)
            return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError([f"{source}: invalid YAML{where}: {problem}"]) from None


# The example config nests six deep. The pure-Python composer recurses per level (a
# RecursionError past about 450), libyaml 0.2.6 (PyYAML 6.0.4's wheels) refuses past 1,000 and
# libyaml 0.2.5 (older wheels) not at all: a 20,000-deep list then reached the models, which
# worded it their own way. Below all of them, a deep document gets the same error, naming its
# field, whichever parser PyYAML has.
MAX_NESTING = 100
_PATH_SHOWN = 4  # levels of the path a nesting error names: which setting, not all 100


def _refuse_deep_nesting(events: Iterable[yaml.Event], source: str) -> None:
    """ConfigError naming the field if the lists and mappings in `events` (the parser's, so
    before anything recurses on them) nest more than MAX_NESTING deep. The parser itself keeps
    a stack, not a recursion, in both libyaml and Python."""
    # Per open list or mapping: how many nodes it has had, and the label of the current one.
    counts: list[int] = []
    labels: list[object] = []
    mappings: list[bool] = []
    for event in events:
        if isinstance(event, yaml.CollectionEndEvent):
            counts.pop()
            labels.pop()
            mappings.pop()
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue  # stream and document boundaries
        if counts:
            if not mappings[-1]:
                labels[-1] = counts[-1]  # a list item
            elif counts[-1] % 2 == 0:  # a mapping's key; a list or mapping there is "(key)"
                labels[-1] = event.value if isinstance(event, yaml.ScalarEvent) else "[key]"
            counts[-1] += 1
        if isinstance(event, yaml.CollectionStartEvent):
            if len(counts) == MAX_NESTING:
                more = "…" if len(labels) > _PATH_SHOWN else ""
                path = _format_path(labels[:_PATH_SHOWN]) + more
                raise ConfigError(
                    [f"{source}: {path}: nested too deeply (more than {MAX_NESTING} levels)"]
                )
            counts.append(0)
            labels.append(None)
            mappings.append(isinstance(event, yaml.MappingStartEvent))


# --- validation and its one error format -------------------------------------------------


M = TypeVar("M", bound=BaseModel)


def validate(
    model: type[M],
    data: object,
    *,
    source: str = "",
    context: dict[str, Any] | None = None,
    unknown: str = "unknown field",
) -> M:
    """`model` from parsed YAML; ConfigError listing every problem, each naming its field
    (prefixed with `source: ` when given; a key the model lacks is `unknown`)."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        raise ConfigError(describe_errors(error, source=source, unknown=unknown)) from None
    except RecursionError:
        raise ConfigError([f"{source or '(top level)'}: nested too deeply"]) from None


def describe_errors(
    error: ValidationError, *, source: str = "", unknown: str = "unknown field"
) -> list[str]:
    errors = error.errors(include_url=False)
    prefix = f"{source}: " if source else ""
    return [prefix + _describe(e, unknown) for e in errors if not _is_echo(e, errors)]


def _is_echo(error: Any, errors: Sequence[Any]) -> bool:
    """pydantic adds "too short" for a list whose items failed; the item errors say it all."""
    loc = tuple(error["loc"])
    return error["type"] == "too_short" and any(
        len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc for other in errors
    )


def _describe(error: Any, unknown: str) -> str:
    path = _format_path(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        message = unknown
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = str(error["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
    return f"{path or '(top level)'}: {message}"


def _format_path(loc: Sequence[object]) -> str:
    path = ""
    for part in loc:
        if not isinstance(part, int | str):
            part = repr(part)  # a YAML key that is not text (null, a date): shown as read
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            path += " (key)"  # the mapping key itself is wrong, not its value
        elif part.startswith(("function-", "constrained-")):
            continue  # pydantic's names for validator steps, not config keys
        else:
            path += f".{part}" if path else part
    return path
