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
from dataclasses import asdict

from sim_core.base import options
from sim_core.commands import common
from sim_core.survey.design import interval_method
from sim_core.survey.nonresponse import nonresponse_text
from sim_core.survey.slices import real_marginals


def register(subparsers) -> None:
    """Add the `marginals` subcommand."""
    parser = subparsers.add_parser(
        "marginals", help="real answer shares per slice (with n, n_eff, 95 %% CI)",
        description="Print the real marginals of a question for every slice.")
    common.add_data_args(parser)
    options.add_flag(parser, "--min-n-eff", 30.0, min=0, max=1e9,
                     help="flag slices whose effective n is below this")
    parser.add_argument("--total", action="store_true", help="also show the whole population")
    parser.set_defaults(func=run)


def marginals_json(question_id: str, marginals) -> list[dict]:
    """JSON-ready records, one per slice (nonresponse shares are of all the slice's
    respondents, weighted)."""
    def floats(values):
        return None if values is None else [round(float(v), 6) for v in values]
    return [{"question": question_id, "slice": m.slice, "label": m.label,
             "options": list(m.options), "shares": floats(m.shares), "n": m.n,
             "n_eff": None if m.n_eff is None else round(m.n_eff, 3),
             "ci_low": floats(m.ci_low), "ci_high": floats(m.ci_high),
             "too_small": m.too_small, "n_total": m.n_total, "n_asked": m.n_asked,
             "nonresponse": {k: round(v, 6) for k, v in m.nonresponse.items()},
             "note": m.note} for m in marginals]


def survey_json(survey, warnings: list[str]) -> dict:
    """The survey-level facts that go with marginals: population, weighting, intervals,
    warnings (common.warnings_for: about the columns in use)."""
    summary = survey.weight_summary()
    return {"survey": survey.name, "population": survey.population or None,
            "weighting": None if summary is None else asdict(summary),
            "weight_candidates": survey.weight_candidates,
            "intervals": interval_method(survey.design) if survey.kind == "respondents"
            else "from the table's n (Wilson)", "warnings": list(warnings)}


def format_table(question, marginals) -> str:
    """A plain-text table: one line per slice, share [95 % CI] per option, nonresponse."""
    respondents = any(m.n_total is not None for m in marginals)
    header = ["slice", "n", *(["asked"] if respondents else []), "n_eff", *question.options,
              *(["nonresponse"] if respondents else [])]
    lines = [header]
    for m in marginals:
        flag = " (small)" if m.too_small else ""
        cells = [m.label + flag, "-" if m.n is None else str(m.n)]
        if respondents:
            cells.append(str(m.n_asked))
        cells.append("-" if m.n_eff is None else f"{m.n_eff:.1f}")
        for j, share in enumerate(m.shares):
            ci = "" if m.ci_low is None else f" [{m.ci_low[j]:.2f}, {m.ci_high[j]:.2f}]"
            cells.append(f"{share:.3f}{ci}")
        if respondents:
            cells.append(nonresponse_text(m.nonresponse) + (f"; {m.note}" if m.note else ""))
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in lines]
    return "\n".join([f"{question.id}: {question.text}", *text])


def survey_lines(survey) -> list[str]:
    """Weighting and interval method, one line each (table output)."""
    summary = survey.weight_summary()
    if summary is None:
        return []
    return [summary.text(), f"95 % intervals: {interval_method(survey.design)}",
            "n = valid answers, asked = respondents minus not asked / system-missing; "
            "nonresponse = weighted shares of the slice's respondents"]


def run(args: argparse.Namespace) -> int:
    """Load the survey, compute the marginals, print them."""

    survey, by, bins, ids = common.slicing_from_args(args, common.survey_from_args(args))
    records, tables = [], []
    for qid in ids:
        marginals = real_marginals(survey, qid, by, wave=args.wave, bins=bins,
                                   min_n_eff=args.min_n_eff, include_total=args.total)
        records.extend(marginals_json(qid, marginals))
        tables.append(format_table(survey.questions[qid], marginals))
    common.print_warnings(survey, args, ids + by)
    if args.json:
        warnings = common.warnings_for(survey, args, ids + by)
        print(json.dumps({**survey_json(survey, warnings), "marginals": records}, indent=1,
                         ensure_ascii=False))
    else:
        print("\n".join(survey_lines(survey) + [""] + ["\n\n".join(tables)]).lstrip("\n"))
    return 0
