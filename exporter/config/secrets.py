"""Secrets in the config file: inline (with `${ENV_VAR}` references) or read from `*_file`,
and paths relative to the config file. Secret values are pydantic `SecretStr`: they never print.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, SecretStr, ValidationInfo

from exporter.config.base import read_bounded

__all__ = ["SECRET_FILE_LIMIT", "ExistingFile", "InlineSecret", "SecretFile", "resolve_path"]

# A password, community or key id is short; anything bigger is a wrong path (a log, a device).
SECRET_FILE_LIMIT = 64 * 1024

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: object) -> object:
    """Replace `${VAR}` in an inline secret; an unset variable is an error, never ''."""
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match[1]
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]

    expanded = _ENV_REFERENCE.sub(substitute, value)
    if "${" in value and "${" in expanded:
        raise ValueError("only ${NAME} references are supported (no defaults, no nesting)")
    if not expanded:
        raise ValueError(
            "must not be empty" if expanded == value else f"{value} expands to nothing"
        )
    return expanded


def resolve_path(value: object, info: ValidationInfo) -> object:
    """Relative paths are relative to the directory of the config file."""
    if not isinstance(value, str | Path):
        return value
    base = (info.context or {}).get("base_dir", Path.cwd())
    return Path(base) / Path(value).expanduser()


def _read_secret_file(value: object, info: ValidationInfo) -> object:
    path = resolve_path(value, info)
    if not isinstance(path, Path):
        return path
    try:
        text = read_bounded(path, SECRET_FILE_LIMIT).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise ValueError(f"{path} is empty")
    return secret


InlineSecret = Annotated[SecretStr, BeforeValidator(_expand_env)]
SecretFile = Annotated[SecretStr, BeforeValidator(_read_secret_file)]


def _is_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    return path


# A file named in the config (a CA bundle): relative to the config file, and there.
ExistingFile = Annotated[Path, BeforeValidator(resolve_path), AfterValidator(_is_file)]
