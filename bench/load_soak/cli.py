"""The two commands: `load` (50 scrapers for a minute) and `soak` (an hour of flapping)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bench.load_soak import load, soak


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_soak", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module in (("load", load), ("soak", soak)):
        doc = module.__doc__ or ""
        command = commands.add_parser(
            name,
            help=doc.splitlines()[0].replace("%", "%%") if doc else None,  # argparse formats it
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
    args = parser.parse_args(argv)
    if args.command == "load":
        return load.main(args)
    return soak.main(args)
