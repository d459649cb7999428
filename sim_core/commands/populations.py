"""`python -m sim_core populations list|save|show|delete`: population margins (attribute,
group, share: census figures, say) saved in the workspace, usable by name wherever
`--margins` is (simulate, compare, report with --population-estimate).

Example:
    python -m sim_core populations save --margins us_adults.csv --name us-adults
    python -m sim_core compare --data anes96 --question vote --by PID \\
        --population-estimate --margins us-adults
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sim_core.base.errors import SimError
from sim_core.base.reading import load_bytes
from sim_core.commands import common
from sim_core.survey import margins as margins_lib


def register(subparsers) -> None:
    """Add the `populations` subcommand."""
    parser = subparsers.add_parser(
        "populations", help="list, save, show or delete saved population margins",
        description="Population margins (a CSV with the columns attribute, group, share; "
                    "every attribute's shares sum to 1) kept in the workspace.")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list saved populations")
    listing.add_argument("--json", action="store_true", help="print JSON")
    save = actions.add_parser("save", help="check a margins CSV and save it under a name")
    save.add_argument("--margins", required=True, type=Path,
                      help="the CSV: attribute, group, share")
    common.add_name_arg(save, "--name", "population name", required=True,
                        help="name to save it under, used exactly as typed (letters, digits, "
                             "'.', '_', '-')")
    common.add_overwrite_arg(save, "saved population of that name")
    show = actions.add_parser("show", help="print a saved population's margins")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print JSON")
    actions.add_parser("delete", help="delete a saved population").add_argument("name")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Carry out one action on the saved populations."""
    if args.action == "list":
        names = margins_lib.saved_margins()
        if args.json:
            print(json.dumps(names))
        else:
            print("\n".join(names) if names else "no saved populations yet")
    elif args.action == "save":
        if not args.overwrite and args.name in margins_lib.saved_margins():
            raise SimError(f"A saved population named '{args.name}' exists already; choose "
                           "another name or replace it with --overwrite.")
        data, _ = load_bytes(args.margins, "margins file")
        saved = margins_lib.save_margins(args.name, data, overwrite=args.overwrite)
        for warning in saved.warnings:
            print(f"warning: {warning}")
        print(f"saved '{args.name}': " + ", ".join(
            f"{a} ({len(groups)} groups)" for a, groups in saved.shares.items()))
    elif args.action == "show":
        shown = margins_lib.load_saved_margins(args.name)
        if args.json:
            print(json.dumps({"name": shown.name, "shares": shown.shares,
                              "warnings": shown.warnings}, ensure_ascii=False))
        else:
            print(shown.to_csv(), end="")
    else:
        margins_lib.delete_margins(args.name)
        print(f"deleted {args.name}")
    return 0
