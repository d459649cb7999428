"""`python -m sim_core report`: compare checkpoints with real data and write a PDF report
(optionally CSV and JSON), with the same builder the Reports page uses.

Example:
    python -m sim_core report --data survey.csv --question Q1,Q2 --by sex \\
        --adapter my-adapter --pdf report.pdf --csv report.csv --page-size Letter
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sim_core.commands import common
from sim_core.commands.compare import comparisons_from_args
from sim_core.errors import SimError
from sim_core.report import report_csv, report_from_comparisons, report_json
from sim_core.report_pdf import PAGE_SIZES, render_pdf


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
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--pdf", required=True, type=Path, help="PDF file to write")
    parser.add_argument("--csv", type=Path, default=None,
                        help="also write the shares and scores as CSV")
    # replaces the shared --json flag (add_data_args sets conflict_handler="resolve")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    parser.add_argument("--page-size", default="A4", choices=PAGE_SIZES)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the comparisons, then the report, then write the requested files."""
    _, comparisons = comparisons_from_args(args)
    report = report_from_comparisons(comparisons, title=args.title)
    pdf = render_pdf(report, page_size=args.page_size)
    # Output paths are the user's own arguments; nothing here is built from data text.
    _write(args.pdf, pdf)
    if args.csv is not None:
        _write(args.csv, report_csv(report).encode("utf-8"))
    if args.json is not None:
        _write(args.json, report_json(report).encode("utf-8"))
    print(f"wrote {args.pdf} ({len(pdf) // 1024} KiB, {len(comparisons)} question(s), "
          f"{sum(len(q.slices) for q in report.questions)} slice rows)")
    return 0


def _write(path: Path, data: bytes) -> None:
    """Write a file whole (temporary name, then rename), so a failure leaves no half file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".part")
        temporary.write_bytes(data)
        temporary.replace(path)
    except OSError as error:
        raise SimError(f"Cannot write {path}: {error.strerror or error}") from error
