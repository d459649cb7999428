"""`python -m sim_core report`: compare checkpoints with real data and write a PDF report
(optionally CSV and JSON), with the same builder the Reports page uses.

Example:
    python -m sim_core report --data survey.csv --question Q1,Q2 --by sex \\
        --adapter my-adapter --pdf report.pdf --csv report.csv --page-size Letter
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sim_core.errors import SimError


def register(subparsers) -> None:
    """Add the `report` subcommand."""
    from sim_core.commands import common
    parser = subparsers.add_parser(
        "report", help="PDF/CSV/JSON report of simulated vs real answers",
        description="Simulate each question for every slice, score it against the real "
                    "data and write a PDF report (and optionally CSV and JSON).")
    common.add_data_args(parser)   # --data --codebook --weight --wave --question --by --bins
    parser.add_argument("--model", default="default",
                        help="base model: 'default', a local folder or a hub id")
    parser.add_argument("--adapter", action="append", default=[],
                        help="LoRA adapter (name or folder); repeat to compare several; the "
                             "base model is always included as the zero-shot reference")
    parser.add_argument("--orders", type=int, default=None,
                        help="option orders averaged against order bias (default: each "
                             "checkpoint's own: 2 for a base model, 1 for an adapter trained "
                             "on the original option order)")
    common.add_device_args(parser)
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--pdf", required=True, type=Path, help="PDF file to write")
    parser.add_argument("--csv", type=Path, default=None,
                        help="also write the shares and scores as CSV")
    # replaces the shared --json flag (add_data_args sets conflict_handler="resolve")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    parser.add_argument("--page-size", default="A4", choices=("A4", "Letter"))
    parser.set_defaults(func=run)


def _progress_bar():
    """A tqdm bar (one per question) and the progress callback compare() drives."""
    from tqdm import tqdm
    bar = tqdm(total=0, unit="prompt", disable=None)

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.n = done
        bar.refresh()
    return bar, progress


def run(args: argparse.Namespace) -> int:
    """Build the comparisons, then the report, then write the requested files."""
    from sim_core.commands import common
    from sim_core.compare import compare
    from sim_core.models import load_model
    from sim_core.report import report_csv, report_from_comparisons, report_json
    from sim_core.report_pdf import render_pdf
    from sim_core.simulate import SimConfig

    survey = common.survey_from_args(args)
    by = common.by_from_args(args, survey)
    ids = common.question_ids(args, survey)
    bins = common.bins_from_args(args)
    config = SimConfig(orders=args.orders, **common.device_settings(args))
    models = [load_model(args.model, device=config.device)] + [
        load_model(args.model, adapter=a, device=config.device) for a in args.adapter]
    comparisons = []
    for qid in ids:
        bar, progress = _progress_bar()
        bar.set_description(qid)
        try:
            comparisons.append(compare(models, survey.questions[qid], survey=survey, by=by,
                                       wave=args.wave, bins=bins, config=config,
                                       progress=progress))
        finally:
            bar.close()
    report = report_from_comparisons(comparisons, title=args.title)
    pdf = render_pdf(report, page_size=args.page_size)
    # Output paths are the user's own arguments; nothing here is built from data text.
    _write(args.pdf, pdf)
    if args.csv is not None:
        _write(args.csv, report_csv(report).encode("utf-8"))
    if args.json is not None:
        _write(args.json, report_json(report).encode("utf-8"))
    print(f"wrote {args.pdf} ({len(pdf) // 1024} KiB, {len(ids)} question(s), "
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
