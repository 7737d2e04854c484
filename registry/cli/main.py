"""Entry point of the ``chipreg`` console script."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from registry.cli import (
    admin,
    agent,
    audit,
    demo,
    operator,
    query,
    scenarios,
    serve,
    vendor,
    verify,
    witness,
)
from registry.settings import Settings

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chipreg",
        description="chipreg: a compute-and-chip verification registry. Settings come from "
        "CHIPREG_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        demo,
        serve,
        agent,
        verify,
        scenarios,
        admin,
        vendor,
        operator,
        witness,
        audit,
        query,
    ):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A command may read its settings with a subclass (``admin init`` creates the log key
    # that production settings otherwise require).
    settings_class: type[Settings] = getattr(args, "settings_class", Settings)
    try:
        settings = settings_class()
    except ValidationError as exc:
        print(f"chipreg: invalid CHIPREG_* settings:\n{exc}", file=sys.stderr)
        return 2
    code: int = args.func(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
