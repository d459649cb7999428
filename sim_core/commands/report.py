"""`python -m sim_core report`: compare checkpoints with real data and write a PDF report
(optionally CSV and JSON), with the same builder the Reports page uses.

Example:
    python -m sim_core report --data survey.csv --question Q1,Q2 --by sex \\
        --adapter my-adapter --pdf report.pdf --csv report.csv --page-size Letter
"""

from __future__ import annotations

import argparse

from sim_core.base.errors import SimError
from sim_core.base.writing import atomic_write
from sim_core.commands import common
from sim_core.commands.compare import comparisons_from_args
from sim_core.commands.population_flags import add_population_args
from sim_core.report.document import report_from_comparisons
from sim_core.report.exports import report_csv, report_json
from sim_core.report.pdf import render_pdf
from sim_core.report.pdf_kit import PAGE_SIZES


def register(subparsers) -> None:
    """Add the `report` subcommand."""
    parser = subparsers.add_parser(
        "report", help="PDF/CSV/JSON report of simulated vs real answers",
        description="Simulate each question for every slice, score it against the real "
                    "data and write a PDF report (and optionally CSV and JSON).")
    common.add_data_args(parser)   # --data --codebook --weight --wave --question --by --bins
    common.add_model_args(parser, adapters="many")
    common.add_simulation_args(parser)
    common.add_baselines_arg(parser)
    add_population_args(parser)           # a population section per question
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--pdf", required=True, type=common.output_file,
                        help="PDF file to write (missing folders are made)")
    parser.add_argument("--csv", type=common.output_file, default=None,
                        help="also write the shares and scores as CSV")
    # replaces the shared --json flag (add_data_args sets conflict_handler="resolve")
    parser.add_argument("--json", type=common.output_file, default=None,
                        help="also write the report as JSON")
    common.add_overwrite_arg(parser, "output file")
    parser.add_argument("--page-size", default="A4", choices=PAGE_SIZES)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the comparisons, then the report, then write the requested files."""
    outputs = [args.pdf, args.csv, args.json]
    common.check_outputs(args, *outputs)               # before any model loads
    if len({p.resolve() for p in outputs if p is not None}) < sum(p is not None for p in outputs):
        raise SimError("--pdf, --csv and --json must name different files.")
    _, comparisons = comparisons_from_args(args)
    report = report_from_comparisons(comparisons, title=args.title)
    pdf = render_pdf(report, page_size=args.page_size)
    # Output paths are the user's own arguments; nothing here is built from data text.
    atomic_write(args.pdf, pdf, overwrite=args.overwrite)
    if args.csv is not None:
        atomic_write(args.csv, report_csv(report), overwrite=args.overwrite)
    if args.json is not None:
        atomic_write(args.json, report_json(report), overwrite=args.overwrite)
    print(f"wrote {args.pdf} ({len(pdf) // 1024} KiB, {len(comparisons)} question(s), "
          f"{sum(len(q.slices) for q in report.questions)} slice rows)")
    return 0
