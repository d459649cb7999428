"""Command line: `python -m finetune train|list|eval|rename|delete|export ...`.

    python -m finetune train --data survey.csv --by SEX,AGE --name my-lora --split question
    python -m finetune train --data ../shared/data/gss2022_subpop/subpop_eval.jsonl --name gss
    python -m finetune list
    python -m finetune eval --adapter my-lora --data survey.csv --by SEX

SimError messages are printed without a traceback (exit 2); Ctrl-C stops cleanly (exit 130)
and saves no adapter. Works unchanged under `accelerate launch -m finetune train ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields, replace
from pathlib import Path

from sim_core.errors import Cancelled, SimError

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _csv(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def load_data(data: str, codebook: str | None = None):
    """A Survey from a file (CSV, GSS JSONL) or a demo name (sim_core.demo)."""
    from sim_core.errors import DataError
    from sim_core.readers import load_survey

    path = Path(data).expanduser()
    if path.exists():
        return load_survey(path, codebook=codebook)
    try:
        from sim_core import demo
    except ImportError:
        demo = None
    loader = getattr(demo, "load_demo", None)
    if loader is not None:
        return loader(data)
    raise DataError(f"No such file or demo survey: '{data}'.")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="survey file (CSV, GSS JSONL) or demo name")
    p.add_argument("--codebook", help="codebook CSV for respondent-level data")
    p.add_argument("--by", help="slice attributes, comma-separated (default: each on its own)")
    p.add_argument("--questions", help="question ids, comma-separated (default: all)")
    p.add_argument("--base", default="default", help="base model: default or a folder/name")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with every subcommand."""
    from finetune.config import TrainConfig
    from sim_core.commands.common import add_device_args
    from sim_core.options import add_arguments

    parser = argparse.ArgumentParser(prog="python -m finetune",
                                     description="Train and manage LoRA adapters on survey data.")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an adapter on a survey and save it")
    _add_data_args(t)
    t.add_argument("--name", help="adapter name in the registry")
    t.add_argument("--split", default="question", choices=("question", "slice", "wave", "random"))
    t.add_argument("--test-fraction", type=float, default=0.2)
    t.add_argument("--val-fraction", type=float, default=0.1)
    t.add_argument("--test-slices", type=int, default=4)
    t.add_argument("--epochs", type=float)
    t.add_argument("--max-steps", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--rank", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--top-layers", type=int,
                   help="adapt only the top N transformer layers (cheaper steps)")
    t.add_argument("--loss", choices=("kl", "kl+ordinal", "kl+ce"))
    t.add_argument("--qlora", action="store_true", help="4-bit NF4 base (CUDA only)")
    add_arguments(t, TrainConfig, names=("device",))
    t.add_argument("--shuffle", action="store_true",
                   help="shuffle the option order per row and epoch (off by default: the "
                        "adapter then learns from, and is read in, the original order)")
    t.add_argument("--reweight", action="store_true", help="equal total weight per group")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--overwrite", action="store_true")
    t.add_argument("--job-dir", help="checkpoints/status folder; resumes from its last checkpoint")
    t.add_argument("--json", action="store_true", help="print one JSON object at the end")
    sub.add_parser("list", help="list adapters").add_argument("--json", action="store_true")
    e = sub.add_parser("eval", help="score an adapter against the base on a survey")
    _add_data_args(e)
    e.add_argument("--adapter", required=True)
    add_device_args(e)
    e.add_argument("--orders", type=int, help="option orders averaged (default: simulator's)")
    e.add_argument("--rows", choices=("held-out", "all"), default="held-out",
                   help="held-out: only the rows the adapter's card says it never saw "
                        "(default); all: every row of --data")
    e.add_argument("--json", action="store_true")
    r = sub.add_parser("rename", help="rename an adapter")
    r.add_argument("old")
    r.add_argument("new")
    sub.add_parser("delete", help="delete an adapter").add_argument("name")
    x = sub.add_parser("export", help="write an adapter as a zip file")
    x.add_argument("name")
    x.add_argument("--out", help="zip file (default: NAME.zip)")
    return parser


def config_from_args(args, base_config=None):
    """TrainConfig with the options given on the command line."""
    from finetune.train import TrainConfig

    config = base_config or TrainConfig()
    given = {"epochs": args.epochs, "max_steps": args.max_steps, "lr": args.lr,
             "rank": args.rank, "batch_size": args.batch_size, "loss": args.loss,
             "seed": args.seed, "top_layers": args.top_layers, "device": args.device}
    changes = {k: v for k, v in given.items() if v is not None}
    if args.rank is not None:
        changes["alpha"] = 2 * args.rank        # keep the alpha / rank scaling of the default
    if args.qlora:
        changes["qlora"] = True
    if args.shuffle:
        changes["shuffle_options"] = True
    if args.reweight:
        changes["reweight"] = True
    return replace(config, **changes)


def rows_from_args(args):
    """(Split, data_info) from --data and the split options."""
    from finetune.rows import split_rows
    from sim_core.errors import DataError
    from sim_core.slices import survey_rows

    if not args.data:
        raise DataError("Give the training data with --data FILE.")
    survey = load_data(args.data, args.codebook)
    by = _csv(args.by)
    rows = survey_rows(survey, by=by, questions=_csv(args.questions))
    split = split_rows(rows, how=args.split, test_fraction=args.test_fraction,
                       val_fraction=args.val_fraction, seed=args.seed,
                       test_slices=args.test_slices)
    if args.loss == "kl+ce":
        from finetune.rows import individual_training_rows

        split.train += individual_training_rows(survey, by, split, seed=args.seed)
    info = {"survey": survey.name, "file": Path(args.data).name, "fingerprint":
            survey.fingerprint, "by": by, "questions": _csv(args.questions)}
    return split, info


def _job_spec(folder: Path):
    """(Split, name, base, TrainConfig, data_info, overwrite) from a job folder's job.json."""
    from finetune.jobs import JOB_FILE
    from finetune.rows import split_from_json
    from finetune.train import TrainConfig

    spec = json.loads((folder / JOB_FILE).read_text())
    known = {f.name for f in fields(TrainConfig)}
    cfg = {k: v for k, v in spec.get("config", {}).items() if k in known}
    if "target_modules" in cfg:
        cfg["target_modules"] = tuple(cfg["target_modules"])
    return (split_from_json(spec["split"]), spec["name"], spec.get("base", "default"),
            TrainConfig(**cfg), spec.get("data_info", {}), bool(spec.get("overwrite")))


def _tqdm_callback(enabled: bool):
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


def cmd_train(args) -> int:
    """Train one adapter (from --data, or from a dashboard job folder's job.json)."""
    from finetune.jobs import JOB_FILE, JobReporter
    from finetune.train import train_adapter

    from finetune import distributed
    from finetune.base import training_device

    folder = Path(args.job_dir) if args.job_dir else None
    # several processes (accelerate launch): only the main one reports, prints and writes
    main = distributed.is_main()
    reporter = JobReporter(folder) if main and folder and (folder / "status.json").exists() \
        else None
    try:
        if folder and (folder / JOB_FILE).exists() and not args.data:
            split, name, base, config, info, overwrite = _job_spec(folder)
        else:
            if not args.name:
                raise SimError("Give the adapter a name with --name NAME.")
            config = config_from_args(args)
            training_device(config.device)      # a bad device fails before the data is read
            split, info = rows_from_args(args)
            name, base, overwrite = args.name, args.base, args.overwrite
        if reporter:
            reporter.running()
        bar = _tqdm_callback(main and not args.json and reporter is None)

        def events(event: dict) -> None:
            bar(event)
            if reporter:
                reporter(event)
        result = train_adapter(split, name=name, base=base, config=config, data_info=info,
                               callback=events, overwrite=overwrite, job_dir=folder,
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
    if not main:
        return 0
    out = {"adapter": result.adapter_path.name, "adapter_path": str(result.adapter_path),
           "before": result.before, "after": result.after, "baselines": result.baselines}
    if reporter:
        reporter.finish("done", result=out)
    if args.json:
        print(json.dumps({**out, "card": result.card}, default=str))
    else:
        _print_scores(result)
    return 0


def _print_scores(result) -> None:
    """Before/after table on stdout."""
    print(f"saved adapter: {result.adapter_path}")
    keys = sorted(set(result.before) | set(result.after))
    if not keys:
        return
    print(f"{'score':<12}{'before':>10}{'after':>10}")
    for k in keys:
        b, a = result.before.get(k), result.after.get(k)
        print(f"{k:<12}{'' if b is None else f'{b:.4f}':>10}{'' if a is None else f'{a:.4f}':>10}")


def cmd_list(args) -> int:
    """Print the adapter registry."""
    from sim_core.adapters import list_adapters

    infos = list_adapters()
    if args.json:
        print(json.dumps([{"name": i.name, "path": str(i.path), "card": i.card} for i in infos],
                         default=str))
        return 0
    if not infos:
        print("no adapters yet")
    for info in infos:
        after = info.card.get("after", {}).get("kl")
        print(f"{info.name}\tbase={info.card.get('base_model')}\tdate={info.card.get('date')}"
              + (f"\theld-out KL={after:.4f}" if after is not None else ""))
    return 0


def cmd_eval(args) -> int:
    """Score base and base + adapter on a survey (the Evaluate page's table)."""
    import dataclasses

    from sim_core.commands.common import device_settings
    from sim_core.devices import resolve_device
    from sim_core.evaluate import evaluate_rows
    from sim_core.models import load_model
    from sim_core.simulate import SimConfig
    from sim_core.slices import survey_rows

    if not args.data:
        raise SimError("Give the survey to score on with --data FILE.")
    config = SimConfig(**device_settings(args))
    resolve_device(config.device)          # a bad device fails before anything is read
    survey = load_data(args.data, args.codebook)
    rows = survey_rows(survey, by=_csv(args.by), questions=_csv(args.questions))
    reference = rows
    if args.rows == "held-out":
        from finetune.rows import held_out_rows
        from sim_core.adapters import read_card, resolve_adapter

        split = read_card(resolve_adapter(args.adapter)).get("split", {})
        rows = held_out_rows(rows, split)
        # A slice split's population baseline may only use the groups the adapter saw.
        if split.get("how") == "slice":
            held = {id(r) for r in rows}
            reference = [r for r in reference if id(r) not in held]
        print(f"scoring the {len(rows)} held-out rows (split by {split.get('how')})",
              file=sys.stderr)
    if args.orders:
        config = dataclasses.replace(config, orders=args.orders)
    models = [load_model(args.base, device=config.device),
              load_model(args.base, adapter=args.adapter, device=config.device)]
    from sim_core.commands.compare import tqdm_progress

    bar, progress = tqdm_progress("eval")
    try:
        evaluation = evaluate_rows(models, rows, config=config, reference_rows=reference,
                                   progress=progress)
    finally:
        bar.close()
    table = evaluation.summary()
    if args.json:
        print(table.to_json(orient="index"))
    else:
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


def cmd_manage(args) -> int:
    """rename / delete / export."""
    from sim_core import adapters

    if args.command == "rename":
        print(adapters.rename_adapter(args.old, args.new))
    elif args.command == "delete":
        adapters.delete_adapter(args.name)
        print(f"deleted {args.name}")
    else:
        out = Path(args.out or f"{args.name}.zip")
        out.write_bytes(adapters.export_adapter_zip(args.name))
        print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    run = {"train": cmd_train, "list": cmd_list, "eval": cmd_eval}.get(args.command, cmd_manage)
    try:
        return int(run(args) or 0)
    except SimError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped; no adapter was saved", file=sys.stderr)
        return 130
