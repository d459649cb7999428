"""`python -m sim_core marginals`: real answer shares per slice, with n, Kish n_eff and
Wilson 95 % intervals.

Example:
    python -m sim_core marginals --data anes96 --question vote --by PID
    python -m sim_core marginals --data survey.csv --codebook book.csv --weight wt \\
        --question q1 --by sex,age --bins "age=18,35,55,200" --json
"""

from __future__ import annotations

import argparse
import json

from sim_core.commands import common
from sim_core.slices import real_marginals


def register(subparsers) -> None:
    """Add the `marginals` subcommand."""
    parser = subparsers.add_parser(
        "marginals", help="real answer shares per slice (with n, n_eff, 95 %% CI)",
        description="Print the real marginals of a question for every slice.")
    common.add_data_args(parser)
    parser.add_argument("--min-n-eff", type=float, default=30.0,
                        help="flag slices whose effective n is below this (default 30)")
    parser.add_argument("--total", action="store_true", help="also show the whole population")
    parser.set_defaults(func=run)


def marginals_json(question_id: str, marginals) -> list[dict]:
    """JSON-ready records, one per slice."""
    def floats(values):
        return None if values is None else [round(float(v), 6) for v in values]
    return [{"question": question_id, "slice": m.slice, "label": m.label,
             "options": list(m.options), "shares": floats(m.shares), "n": m.n,
             "n_eff": None if m.n_eff is None else round(m.n_eff, 3),
             "ci_low": floats(m.ci_low), "ci_high": floats(m.ci_high),
             "too_small": m.too_small} for m in marginals]


def format_table(question, marginals) -> str:
    """A plain-text table: one line per slice, share [95 % CI] per option."""
    header = ["slice", "n", "n_eff", *question.options]
    lines = [header]
    for m in marginals:
        cells = [m.label + (" (small)" if m.too_small else ""),
                 "-" if m.n is None else str(m.n),
                 "-" if m.n_eff is None else f"{m.n_eff:.1f}"]
        for j, share in enumerate(m.shares):
            ci = "" if m.ci_low is None else f" [{m.ci_low[j]:.2f}, {m.ci_high[j]:.2f}]"
            cells.append(f"{share:.3f}{ci}")
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in lines]
    return "\n".join([f"{question.id}: {question.text}", *text])


def run(args: argparse.Namespace) -> int:
    """Load the survey, compute the marginals, print them."""

    survey = common.survey_from_args(args)
    by = common.by_from_args(args, survey)
    bins = common.bins_from_args(args)
    records, tables = [], []
    for qid in common.question_ids(args, survey):
        marginals = real_marginals(survey, qid, by, wave=args.wave, bins=bins,
                                   min_n_eff=args.min_n_eff, include_total=args.total)
        records.extend(marginals_json(qid, marginals))
        tables.append(format_table(survey.questions[qid], marginals))
    if args.json:
        print(json.dumps(records, indent=1, ensure_ascii=False))
    else:
        for warning in survey.warnings:
            print(f"warning: {warning}")
        print("\n\n".join(tables))
    return 0
