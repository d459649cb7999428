"""`python -m finetune eval`: score an adapter against its base model (and the baselines) on
a survey, by default on the rows its card says it never saw.

Example:
    python -m finetune eval --adapter gss-lora --data gss2022
    python -m finetune eval --adapter gss-lora --data other.csv --rows all --json
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from sim_core.base.errors import AdapterError
from sim_core.base.labels import is_baseline
from sim_core.commands import common
from sim_core.evaluation.calibration_records import calibration_for
from sim_core.evaluation.evaluate import evaluate_rows
from sim_core.evaluation.fairness import gap_changes, group_gaps
from sim_core.evaluation.respondent_table import respondent_parts, respondent_split
from sim_core.evaluation.splits import SplitInfo, held_out_with_reference
from sim_core.simulation.adapter_card import read_card
from sim_core.survey.slices import survey_rows


def register(subparsers) -> None:
    """Add the `eval` subcommand."""
    parser = subparsers.add_parser("eval", help="score an adapter against its base model",
                                   description="Simulate every (question, group) row with the "
                                               "base model and the adapter and score both.")
    common.add_data_args(parser, questions="all")
    common.add_model_args(parser, adapters="required")
    common.add_simulation_args(parser)
    parser.add_argument("--rows", choices=("held-out", "all"), default="held-out",
                        help="held-out: only the rows the adapter's card says it never saw "
                             "(default); all: every row of --data")
    parser.add_argument("--fairness", action="store_true",
                        help="also print the gap per group against group size, the spread "
                             "across groups and the groups whose gap grew with the adapter")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score base and base + adapter; print the mean score table (or JSON)."""
    config = common.sim_config_from_args(args)
    survey, by, bins, ids = common.slicing_from_args(args, common.survey_from_args(args))
    by = by or None
    rows = survey_rows(survey, by=by, wave=args.wave, questions=ids, bins=bins)
    reference = rows
    models = common.models_from_args(args)
    if args.rows == "held-out":
        split = SplitInfo.from_dict(read_card(_card_folder(models[-1], args.adapter)).split)
        if split.how == "respondent":    # the groups of the held-out people
            people = respondent_split(survey, test_fraction=split.test_fraction,
                                      val_fraction=split.val_fraction or 0.0, seed=split.seed)
            parts = respondent_parts(survey, people, by, bins=bins, wave=args.wave,
                                     questions=ids)
            rows, reference = parts["test"], parts["train"] + parts["val"]
        else:
            rows, reference = held_out_with_reference(rows, split)
        print(f"scoring the {len(rows)} held-out rows (split by {split.how})",
              file=sys.stderr)
    common.announce_plan(models, rows, config)
    bar, progress = common.tqdm_progress("eval")
    try:
        evaluation = evaluate_rows(models, rows, config=config, reference_rows=reference,
                                   survey_name=survey.name, progress=progress,
                                   records=[calibration_for(lm, survey) for lm in models])
    finally:
        bar.close()
    for note in evaluation.notes:
        print(f"note: {note}", file=sys.stderr)
    table = evaluation.summary()
    here = {e: evaluation.verdict_here(e) for e in evaluation.entry_orders}
    gaps = fairness_tables(evaluation) if args.fairness else None
    if args.json:
        out = {"summary": json.loads(table.to_json(orient="index")),
               "calibrated": evaluation.calibrated,
               "verdicts": evaluation.verdicts(), "verdicts_here": here}
        print(json.dumps(out if gaps is None else {**out, "fairness": gaps}))
    else:
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))
        print("\nOn the rows scored here:")
        print("\n".join(textwrap.fill(text, 100, subsequent_indent="  ")
                        for text in here.values()))
        print("\nFrom each checkpoint's own held-out measurement:")
        print("\n".join(textwrap.fill(text, 100, subsequent_indent="  ")
                        for text in evaluation.verdicts().values()))
        if gaps is not None:
            print(format_fairness(gaps))
    return 0


def _card_folder(lm, adapter: str) -> Path:
    """Where the adapter's card is: beside the loaded adapter, or (served by name on an
    endpoint) wherever the endpoint model found it; AdapterError when nowhere here."""
    if lm.adapter_path is not None:
        return lm.adapter_path
    raise AdapterError(f"The served adapter '{adapter}' has no card on this machine (neither "
                       "at its path on the server nor in the registry), so its held-out rows "
                       "are unknown: give --rows all, or copy the adapter into the registry.")


def fairness_tables(evaluation) -> dict:
    """Per checkpoint: KL gap per group with n_eff and noise floor, the spread; for each
    adapter, the groups whose gap grew against the base model (the first checkpoint)."""
    labels = [e for e in evaluation.entries if not is_baseline(e)]
    gaps = {label: group_gaps(evaluation, label, "kl") for label in labels}
    return {"score": "kl", "gaps": {label: g.to_dict() for label, g in gaps.items()},
            "changes": {label: gap_changes(gaps[labels[0]], gaps[label]).to_dict(
                orient="records") for label in labels[1:]}}


def format_fairness(tables: dict) -> str:
    """The fairness tables as text."""
    out = ["", "gap per group (KL; floor = noise floor at the group's n_eff)"]
    for label, data in tables["gaps"].items():
        spread = data["spread"]
        out.append(f"{label}: mean gap {spread['mean_gap']:.4f}, sd {spread['sd']:.4f}, "
                   f"range {spread['range']:.4f} over {spread['groups']} groups")
    for label, rows in tables["changes"].items():
        grew = [r for r in rows if r["grew"]]
        out.append(f"{label}: gap grew for {len(grew)} of {len(rows)} groups"
                   + "".join(f"\n  {r['group']} (n_eff {r['n_eff']:.0f}): {r['before']:.4f} "
                             f"-> {r['after']:.4f}{' beyond noise' if r['beyond_noise'] else ''}"
                             for r in grew))
    return "\n".join(out)
