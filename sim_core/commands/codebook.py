"""`python -m sim_core codebook`: the codebook of a respondent file as CSV, to edit (wording,
options, ordinal, missing codes, roles) and pass back with --codebook.

Its notes column says what reading found about each column; where labels hold interviewer
instructions ("(VOL)", "INSERT & ROTATE", "[READ LIST]"...), proposed_question_text and
proposed_options carry a cleaned wording to copy over or edit (sim_core.survey.instructions);
--accept-cleaned-wording writes the proposals into question_text and options at once and
lists the columns it changed.

Example:
    python -m sim_core codebook --data wave3.sav --out wave3-codebook.csv
    python -m sim_core marginals --data wave3.sav --codebook wave3-codebook.csv --question q1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim_core.base.errors import DataError, SimError
from sim_core.commands import common
from sim_core.survey.codebook import cleaned_codebook, codebook_csv


def register(subparsers) -> None:
    """Add the `codebook` subcommand."""
    parser = subparsers.add_parser(
        "codebook", help="write the codebook of a respondent file (CSV) to edit and re-import",
        description="Generate the codebook CSV of a respondent file (SPSS/Stata labels and "
                    "missing codes, or CSV columns) with the roles read.")
    common.add_data_args(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="write the CSV here (default: print it); an existing file is "
                             "never replaced")
    parser.add_argument("--accept-cleaned-wording", action="store_true",
                        help="write the proposed wording and option labels cleaned of "
                             "interviewer instructions ((VOL), INSERT & ROTATE, [READ LIST]...) "
                             "into question_text and options (without it they are only "
                             "proposed, in proposed_question_text and proposed_options)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read the survey and print or write its codebook."""
    survey = common.survey_from_args(args)
    common.print_warnings(survey, args, where="see the notes column of the codebook")
    if survey.kind != "respondents":
        raise DataError("a marginal table has no codebook (it has no respondent columns).")
    text = codebook_csv(survey)
    if args.accept_cleaned_wording:
        text, changed = cleaned_codebook(survey)
        print(f"accepted the cleaned wording of {len(changed)} column(s)"
              + (f": {', '.join(changed)}" if changed else "") + " (written into question_text "
              "and options, each option keeping its code; check them before use)",
              file=sys.stderr)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    if args.out.exists():
        raise SimError(f"{args.out} exists; choose another --out (nothing was written).")
    try:
        temporary = args.out.with_name(args.out.name + ".part")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(args.out)
    except OSError as error:
        raise SimError(f"Cannot write {args.out}: {error.strerror or error}") from error
    print(f"wrote {args.out} ({len(survey.codebook)} columns)", file=sys.stderr)
    return 0
