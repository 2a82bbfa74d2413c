"""Command-line options as every benchmark takes them: one parser shape, list-valued options.

A benchmark's options are the `argparse.Namespace` itself (`Options`): its JSON report records
`vars(options)`, so nothing restates them in a dataclass.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

Options = argparse.Namespace
T = TypeVar("T")


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """`python -m <prog>`, described by the first line of its module docstring."""
    return argparse.ArgumentParser(prog=f"python -m {prog}", description=(doc or "").split("\n")[0])


def driver_parser(doc: str | None, profile: str) -> argparse.ArgumentParser:
    """A driver's options: where its server is (`--address`, `--port`), and `--profile FILE`
    (cProfile on the CPU clock; `profile` says what of it)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--profile", type=Path, metavar="FILE", help=profile)
    return parser


def listed(kind: Callable[[str], T]) -> Callable[[str], tuple[T, ...]]:
    """An argparse type for `1,4`-style lists of `kind`."""

    def parse(text: str) -> tuple[T, ...]:
        try:
            return tuple(kind(item) for item in text.split(",") if item)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {error}") from error

    return parse
