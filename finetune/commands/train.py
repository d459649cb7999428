"""`python -m finetune train`: train a LoRA adapter on a survey and save it with its card.

Example:
    python -m finetune train --data gss2022 --name gss-lora --split question
    python -m finetune train --data survey.csv --codebook book.csv --weight wt --by sex,age \\
        --name my-lora --split slice --loss kl+ce

Every TrainConfig and SplitConfig setting is a flag (help, default and bounds from the
fields). Ctrl-C stops cleanly and saves no adapter; `--job-dir` makes a run resumable (the
dashboard's background jobs run `train --job-dir DIR` with the job's own job.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from finetune import distributed, jobs
from finetune.base import training_device
from finetune.config import TrainConfig
from finetune.rows import training_split
from finetune.train import train_adapter
from sim_core.base import options
from sim_core.base.errors import Cancelled, SimError
from sim_core.commands import common
from sim_core.evaluation.calibration_records import card_calibration, checkpoint_verdict
from sim_core.evaluation.splits import SplitConfig
from sim_core.simulation.adapters import check_new_adapter
from sim_core.simulation.prompts import PromptStyle


def register(subparsers) -> None:
    """Add the `train` subcommand."""
    parser = subparsers.add_parser("train", help="train an adapter on a survey and save it",
                                   description="Train a LoRA adapter on a survey's (question, "
                                               "group) rows and save it with its card.")
    common.add_data_args(parser, questions="all", data_required=False)  # or a job folder
    parser.add_argument("--model", default="default",
                        help="base model: 'default', a model folder or name, or a hub id")
    common.add_name_arg(parser, "--name", "adapter name",
                        help="adapter name in the registry, used exactly as typed (letters, "
                             "digits, '.', '_', '-')")
    options.add_arguments(parser, SplitConfig)
    options.add_arguments(parser, TrainConfig)
    common.add_overwrite_arg(parser, "adapter of the same name")
    parser.add_argument("--job-dir", help="checkpoints/status folder; resumes from its last "
                                          "checkpoint")
    parser.set_defaults(func=run)


def rows_from_args(args: argparse.Namespace, config: TrainConfig):
    """(Split, data_info, prompt style) from --data, the data options and the split
    settings; the style names the survey's population and display names."""
    survey, by, bins, ids = common.slicing_from_args(args, common.survey_from_args(args))
    by = by or None
    split = training_split(survey, by, options.from_arguments(SplitConfig, args),
                           seed=config.seed, loss=config.loss, bins=bins, wave=args.wave,
                           questions=ids)
    info = {"survey": survey.name, "file": Path(args.data).name,
            "fingerprint": survey.fingerprint, "by": by, "questions": args.question and ids,
            "weight": survey.weight, "wave": args.wave}
    return split, info, PromptStyle().for_survey(survey)


def tqdm_callback(enabled: bool):
    """Progress events drawn as a tqdm bar on stderr (step, loss, validation KL)."""
    from tqdm import tqdm

    bar = tqdm(unit="step", desc="training", disable=not enabled, file=sys.stderr)

    def callback(event: dict) -> None:
        if "phase" in event:           # loading / scoring: named on the bar, steps unchanged
            bar.set_description(event["phase"] if event["done"] < event["total"] else
                                "training")
            return
        bar.total = event.get("total_steps") or bar.total
        bar.n = int(event.get("step") or 0)
        post = {"loss": event.get("loss")}
        if event.get("val"):
            post["val_kl"] = event["val"].get("kl")
        bar.set_postfix({k: round(v, 4) for k, v in post.items() if v is not None})
        bar.refresh()
    callback.close = bar.close
    return callback


def _spec(args: argparse.Namespace, folder: Path | None) -> dict:
    """What to train: a job folder's job.json, or the command line."""
    if folder and (folder / jobs.JOB_FILE).exists() and not args.data:
        return jobs.read_job_spec(folder)
    if not args.data:
        raise SimError("Give the training data with --data FILE (or a demo or saved survey).")
    if not args.name:
        raise SimError("Give the adapter a name with --name NAME.")
    check_new_adapter(args.name, args.overwrite)      # before the data and the model load
    config = options.from_arguments(TrainConfig, args)
    training_device(config.device)          # a bad device fails before the data is read
    split, info, style = rows_from_args(args, config)
    return {"split": split, "name": args.name, "base": args.model, "config": config,
            "data_info": info, "overwrite": args.overwrite, "style": style}


def run(args: argparse.Namespace) -> int:
    """Train one adapter (from the command line, or from a dashboard job folder)."""
    folder = Path(args.job_dir) if args.job_dir else None
    if folder is not None and folder.exists() and not folder.is_dir():
        raise SimError(f"--job-dir {folder} is a file, not a folder.")
    # several processes (accelerate launch): only the main one reports, prints and writes
    main = distributed.is_main()
    reporter = jobs.JobReporter(folder) \
        if main and folder and (folder / jobs.STATUS_FILE).exists() else None
    try:
        spec = _spec(args, folder)
        if reporter:
            reporter.running()
        result = _train(spec, folder, reporter,
                        bar=main and not args.json and reporter is None)
    except Cancelled as error:
        if reporter:
            reporter.finish("cancelled", error=str(error))
        raise
    except (SimError, KeyboardInterrupt) as error:
        if reporter:
            reporter.finish("failed", error=str(error) or "stopped")
        raise
    except Exception as error:   # the job page must show why, not hang at "running"
        if reporter:
            reporter.finish("failed", error=f"{type(error).__name__}: {error}")
        raise
    if not main:
        return 0
    card = result.card
    out = {"adapter": result.adapter_path.name, "adapter_path": str(result.adapter_path),
           "before": result.before, "after": result.after, "baselines": result.baselines,
           "before_calibrated": card.before_calibrated,
           "after_calibrated": card.after_calibrated,
           "verdict": checkpoint_verdict(card_calibration(card), card.name)}
    if reporter:
        reporter.finish("done", result=out)
    if args.json:
        print(json.dumps({**out, "card": result.card.to_dict()}, default=str))
    else:
        print_scores(result, out["verdict"])
    return 0


def _train(spec: dict, folder: Path | None, reporter, *, bar: bool):
    """train_adapter with progress on a tqdm bar (closed however training ends) and in the
    job's status file."""
    draw = tqdm_callback(bar)

    def events(event: dict) -> None:
        draw(event)
        if reporter:
            reporter(event)
    try:
        return train_adapter(spec["split"], name=spec["name"], base=spec["base"],
                             config=spec["config"], data_info=spec["data_info"],
                             callback=events, overwrite=spec["overwrite"], job_dir=folder,
                             should_stop=reporter.should_stop if reporter else None,
                             style=spec.get("style"), on_phase=events)
    finally:
        draw.close()


def print_scores(result, verdict_text: str) -> None:
    """Before/after table on stdout: raw and calibrated, then the verdict."""
    print(f"saved adapter: {result.adapter_path}")
    card = result.card
    columns = {"before": card.before, "before cal.": card.before_calibrated,
               "after": card.after, "after cal.": card.after_calibrated}
    columns = {name: values for name, values in columns.items() if values}
    keys = sorted({k for values in columns.values() for k in values})
    if keys:
        print(f"{'score':<12}" + "".join(f"{name:>13}" for name in columns))
        for k in keys:
            cells = [values.get(k) for values in columns.values()]
            print(f"{k:<12}" + "".join(f"{'' if v is None else f'{v:.4f}':>13}" for v in cells))
    print(verdict_text)
