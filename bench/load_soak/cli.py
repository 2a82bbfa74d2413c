"""The commands: `load` (50 scrapers for a minute), `soak` (an hour of flapping) and `attacks`
(the three front-door attacks of issue 14)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bench.load_soak import attacks, load, soak


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_soak", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands_by_name = {"load": load, "soak": soak, "attacks": attacks}
    for name, module in commands_by_name.items():
        doc = module.__doc__ or ""
        command = commands.add_parser(
            name,
            help=doc.splitlines()[0].replace("%", "%%") if doc else None,  # argparse formats it
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
    args = parser.parse_args(argv)
    status: int = commands_by_name[args.command].main(args)
    return status
