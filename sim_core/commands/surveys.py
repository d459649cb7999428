"""`python -m sim_core surveys list|save|delete`: surveys saved in the workspace, usable by
name in every command (`--data NAME`) and on every dashboard page.

Example:
    python -m sim_core surveys save --data survey.csv --codebook book.csv --name trust
    python -m sim_core marginals --data trust --question q1 --by sex
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sim_core import store
from sim_core.commands import common


def register(subparsers) -> None:
    """Add the `surveys` subcommand."""
    parser = subparsers.add_parser("surveys", help="list, save or delete saved surveys",
                                   description="Surveys kept in the workspace.")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list saved surveys")
    listing.add_argument("--json", action="store_true", help="print JSON")
    save = actions.add_parser("save", help="check a survey file and save it under a name")
    save.add_argument("--data", required=True, type=Path, help="the survey file")
    save.add_argument("--codebook", type=Path, default=None, help="its codebook CSV")
    save.add_argument("--name", required=True, help="name to save it under")
    save.add_argument("--weight", default=None, help="weight column (respondent data)")
    save.add_argument("--wave-column", default=None, help="wave/year column")
    actions.add_parser("delete", help="delete a saved survey").add_argument("name")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Carry out one action on the saved surveys."""
    if args.action == "list":
        names = store.saved_surveys()
        if args.json:
            print(json.dumps([store.read_info(n) for n in names], ensure_ascii=False))
        else:
            print("\n".join(names) if names else "no saved surveys yet")
    elif args.action == "save":
        survey = common.survey_from_args(args)       # refuse a bad file before saving it
        mapping = {"weight": args.weight, "wave": args.wave_column}
        codebook = (args.codebook.name, args.codebook.read_bytes()) if args.codebook else None
        name = store.save_survey(args.name, args.data.name, args.data.read_bytes(), mapping,
                                 codebook=codebook)
        print(f"saved '{name}': {len(survey.questions)} questions")
    else:
        store.delete_saved(args.name)
        print(f"deleted {args.name}")
    return 0
