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

from finetune import jobs
from finetune.config import SplitConfig, TrainConfig
from finetune.splits import training_split
from finetune.train import train_adapter
from sim_core import options
from sim_core.commands import common
from sim_core.errors import Cancelled, SimError


def register(subparsers) -> None:
    """Add the `train` subcommand."""
    parser = subparsers.add_parser("train", help="train an adapter on a survey and save it",
                                   description="Train a LoRA adapter on a survey's (question, "
                                               "group) rows and save it with its card.")
    common.add_data_args(parser, questions="all", data_required=False)  # or a job folder
    parser.add_argument("--model", default="default",
                        help="base model: 'default', a model folder or name, or a hub id")
    parser.add_argument("--name", help="adapter name in the registry")
    options.add_arguments(parser, SplitConfig)
    options.add_arguments(parser, TrainConfig)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing adapter of the same name")
    parser.add_argument("--job-dir", help="checkpoints/status folder; resumes from its last "
                                          "checkpoint")
    parser.set_defaults(func=run)


def rows_from_args(args: argparse.Namespace, config: TrainConfig):
    """(Split, data_info) from --data, the data options and the split settings."""
    survey = common.survey_from_args(args)
    by = common.by_from_args(args, survey) or None
    bins = common.bins_from_args(args)
    ids = common.question_ids(args, survey)
    split = training_split(survey, by, options.from_arguments(SplitConfig, args),
                           seed=config.seed, loss=config.loss, bins=bins, wave=args.wave,
                           questions=ids)
    info = {"survey": survey.name, "file": Path(args.data).name,
            "fingerprint": survey.fingerprint, "by": by, "questions": args.question and ids,
            "weight": survey.weight, "wave": args.wave}
    return split, info


def tqdm_callback(enabled: bool):
    """Progress events drawn as a tqdm bar on stderr (step, loss, validation KL)."""
    from tqdm import tqdm

    bar = tqdm(unit="step", desc="training", disable=not enabled, file=sys.stderr)

    def callback(event: dict) -> None:
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
    config = options.from_arguments(TrainConfig, args)
    split, info = rows_from_args(args, config)
    return {"split": split, "name": args.name, "base": args.model, "config": config,
            "data_info": info, "overwrite": args.overwrite}


def run(args: argparse.Namespace) -> int:
    """Train one adapter (from the command line, or from a dashboard job folder)."""
    folder = Path(args.job_dir) if args.job_dir else None
    reporter = jobs.JobReporter(folder) if folder and (folder / jobs.STATUS_FILE).exists() \
        else None
    try:
        spec = _spec(args, folder)
        if reporter:
            reporter.running()
        bar = tqdm_callback(not args.json and reporter is None)

        def events(event: dict) -> None:
            bar(event)
            if reporter:
                reporter(event)
        result = train_adapter(spec["split"], name=spec["name"], base=spec["base"],
                               config=spec["config"], data_info=spec["data_info"],
                               callback=events, overwrite=spec["overwrite"], job_dir=folder,
                               should_stop=reporter.should_stop if reporter else None)
        bar.close()
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
    out = {"adapter": result.adapter_path.name, "adapter_path": str(result.adapter_path),
           "before": result.before, "after": result.after, "baselines": result.baselines}
    if reporter:
        reporter.finish("done", result=out)
    if args.json:
        print(json.dumps({**out, "card": result.card.to_dict()}, default=str))
    else:
        print_scores(result)
    return 0


def print_scores(result) -> None:
    """Before/after table on stdout."""
    print(f"saved adapter: {result.adapter_path}")
    keys = sorted(set(result.before) | set(result.after))
    if not keys:
        return
    print(f"{'score':<12}{'before':>10}{'after':>10}")
    for k in keys:
        b, a = result.before.get(k), result.after.get(k)
        print(f"{k:<12}{'' if b is None else f'{b:.4f}':>10}{'' if a is None else f'{a:.4f}':>10}")
