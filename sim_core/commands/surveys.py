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

from sim_core.base.errors import SimError
from sim_core.base.reading import load_bytes
from sim_core.commands import common
from sim_core.survey import workspace_surveys


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
    common.add_name_arg(save, "--name", "survey name", required=True,
                        help="name to save it under, used exactly as typed (letters, digits, "
                             "'.', '_', '-')")
    common.add_overwrite_arg(save, "saved survey of that name")
    weight = save.add_mutually_exclusive_group()
    weight.add_argument("--weight", default=None, help="weight column (respondent data)")
    weight.add_argument("--unweighted", action="store_true",
                        help="use no weight although the file has weight-like columns")
    save.add_argument("--wave-column", default=None, help="wave/year column")
    common.add_reader_args(save)
    actions.add_parser("delete", help="delete a saved survey").add_argument("name")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Carry out one action on the saved surveys."""
    if args.action == "list":
        names = workspace_surveys.saved_surveys()
        if args.json:
            print(json.dumps([workspace_surveys.read_info(n) for n in names], ensure_ascii=False))
        else:
            print("\n".join(names) if names else "no saved surveys yet")
    elif args.action == "save":
        save(args)
    else:
        workspace_surveys.delete_saved(args.name)
        print(f"deleted {args.name}")
    return 0


def save(args: argparse.Namespace) -> None:
    """Check the file (and codebook) like any command would, then store their bytes."""
    if not args.overwrite and workspace_surveys.survey_exists(args.name):
        raise SimError(f"A saved survey named '{args.name}' exists already; choose another "
                       "name or replace it with --overwrite.")
    data, _ = load_bytes(args.data)                  # a file, not a demo, pipe or folder
    book = load_bytes(args.codebook, "codebook")[0] if args.codebook else None
    survey = common.survey_from_args(args)          # refuse a bad file before saving it
    common.print_warnings(survey, args)
    mapping = common.reader_kwargs(args)      # weight, wave, roles, population, design
    codebook = (args.codebook.name, book) if args.codebook else None
    name = workspace_surveys.save_survey(args.name, args.data.name, data, mapping,
                                         codebook=codebook, overwrite=args.overwrite)
    print(f"saved '{name}': {len(survey.questions)} questions")
