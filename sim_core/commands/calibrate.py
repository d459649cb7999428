"""`python -m sim_core calibrate`: fit a base model's calibration on a survey and measure it
on questions held out of the fit; the record goes to the workspace, and every later
simulation of that model on that survey is calibrated and carries prediction intervals.

Example:
    python -m sim_core calibrate --data gss2022 --model default
    python -m sim_core calibrate --data survey.csv --codebook book.csv --by sex,age \\
        --fit-fraction 0.6 --interval-level 0.8 --json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from sim_core.base import options
from sim_core.commands import common
from sim_core.evaluation.calibration_fit import summary
from sim_core.evaluation.calibration_records import checkpoint_verdict, record_path
from sim_core.evaluation.calibration_runs import CalibrateConfig, calibrate_base
from sim_core.simulation.config import SimConfig
from sim_core.survey.slices import survey_rows

# calibration reads first-token shares: no mode, sampling or calibration flags here
SIMULATION_FLAGS = ("orders", "batch_size", "interval_level", "max_requests")


def register(subparsers) -> None:
    """Add the `calibrate` subcommand."""
    parser = subparsers.add_parser(
        "calibrate", help="calibrate a base model on a survey (held-out verdict, intervals)",
        description="Split the survey's questions (seeded) into a part to fit on and a part "
                    "held out; fit the temperature and shrinkage on the first, measure the "
                    "verdict and the prediction intervals' coverage on the second, and save "
                    "the record in the workspace (workspace/calibrations).")
    common.add_data_args(parser, questions="all")
    common.add_model_args(parser, adapters="none")
    options.add_arguments(parser, CalibrateConfig)
    options.add_arguments(parser, SimConfig, names=SIMULATION_FLAGS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate, save the record, print the verdict (or JSON)."""
    settings = options.from_arguments(CalibrateConfig, args)
    config = options.from_arguments(SimConfig, args)
    survey, by, bins, ids = common.slicing_from_args(args, common.survey_from_args(args))
    by = by or None
    lm = common.model_from_args(args)
    common.announce_plan([lm], survey_rows(survey, by, wave=args.wave, questions=ids, bins=bins),
                         replace(config, calibrate=False))
    bar, progress = common.tqdm_progress("calibrating")
    try:
        record = calibrate_base(lm, survey, by=by, wave=args.wave, questions=ids,
                                settings=settings, config=config,
                                bins=bins, progress=progress)
    finally:
        bar.close()
    path = record_path(record.model_fingerprint, record.survey)
    text = checkpoint_verdict(record, lm.label)
    if args.json:
        print(json.dumps({"record": str(path), "calibration": summary(record.calibration),
                          "split": record.split, "verdict": text,
                          "coverage": record.heldout.coverage if record.heldout else {}},
                         indent=1, default=str))
        return 0
    split = record.split
    print(f"{lm.label} on {survey.name}: fitted on {len(split['fit_questions'])} questions "
          f"({split['n_fit']} rows), held out {len(split['test_questions'])} "
          f"({split['n_test']} rows); seed {split['seed']}")
    print(f"calibration: {summary(record.calibration)['text']}")
    print(text)
    print(f"saved: {path}")
    return 0
