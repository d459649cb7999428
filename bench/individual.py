"""Individual-level benchmark on real respondents (the bundled ANES 1996 demo, 944 people).

Namikoshi et al. 2024 simulate every respondent as a virtual participant from their own
demographics and score two levels: individuals (RMSE of each person's answer) and the
population (KL). This bench does the same with the product's own code:

* one seeded respondent split (sim_core.evaluation.respondent_table): 30 % of the people held
  out for the test, 25 % of the rest for validation, the remainder for training;
* adapters trained (finetune.train, group rows of the training people, loss KL) with the
  fairness term off and on at a few weights; the weight is chosen on the VALIDATION
  people's group rows (lowest spread across groups whose mean gap is at most 2 % worse
  than without the term), never on the test;
* every test respondent simulated from their profile on PID, age and education
  (sim_core.evaluation.individual): the embedded model zero-shot, the adapter without and with the
  chosen fairness weight, against logistic regression, gradient boosting and SVR on the
  same attributes and the same people; the temperature swept in first-token mode (all
  checkpoints) and in sampling mode (zero-shot, a subsample), chosen on validation;
* the fairness view of the test people's group rows: mean gap and spread across groups
  before (base) and after fine-tuning, off and on.

    .venv/bin/python bench/individual.py            # full run, ~25 min on 2 idle CPU cores
    .venv/bin/python bench/individual.py --quick    # a few minutes: tiny budgets

Writes bench/results/individual.json, individual.md and two figures (PNG).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from finetune.config import TrainConfig
from finetune.rows import training_split
from finetune.train import train_adapter  # noqa: E402
from sim_core.evaluation.evaluate import evaluate_rows  # noqa: E402
from sim_core.evaluation.fairness import floor_curve, group_gaps  # noqa: E402
from sim_core.evaluation.individual import (  # noqa: E402
    DEFAULT_TEMPERATURES,
    IndividualConfig,
    evaluate_individuals,
    sweep_record,
)
from sim_core.evaluation.individual_scores import INDIVIDUAL_SCORES  # noqa: E402
from sim_core.evaluation.splits import SplitConfig
from sim_core.report.fairness_individual import FairnessPart, PartTable, individual_part  # noqa: E402
from sim_core.report.pdf_fairness_individual import fairness_png, tradeoff_png  # noqa: E402
from sim_core.simulation.config import SimConfig
from sim_core.simulation.models import load_model  # noqa: E402
from sim_core.survey.demo import load_demo  # noqa: E402

RESULTS = ROOT / "bench" / "results"


@dataclass
class BenchSettings:
    """Everything that decides the numbers; written into individual.json."""

    seed: int = 0
    test_fraction: float = 0.3
    val_fraction: float = 0.25
    attributes: tuple = ("PID", "age", "educ")
    temperatures: tuple = DEFAULT_TEMPERATURES
    lambdas: tuple = (0.0, 2.0, 10.0)         # fairness weights tried (variance spread)
    spread: str = "variance"
    gap_tolerance: float = 0.02               # chosen weight: mean val gap at most 2 % worse
    max_respondents: int | None = None        # per part (None: all)
    sampling_question: str = "selfLR"
    sampling_temperatures: tuple = (0.5, 1.0, 2.0)
    sampling_samples: int = 10
    sampling_respondents: int = 40
    # TrainConfig defaults, 60 steps (about two passes over the 230 training group rows),
    # validated every 30 steps keeping the best weights
    train: dict = field(default_factory=lambda: dict(max_steps=60, eval_every=30))


def quick_settings() -> BenchSettings:
    """A small version that runs in a few minutes (not the benchmark)."""
    return BenchSettings(temperatures=(0.5, 1.0, 2.0), lambdas=(0.0, 2.0), max_respondents=15,
                         sampling_temperatures=(0.5, 2.0), sampling_samples=3,
                         sampling_respondents=10,  # IndividualConfig allows 10 at least
                         train=dict(max_steps=4, eval_every=2, warmup_steps=1))


def progress_bar(desc: str):
    """A progress(done, total) callback drawing a tqdm bar on stderr."""
    bar = tqdm(desc=desc, unit="step")

    def progress(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()
    progress.close = bar.close
    return progress


def train(split, name: str, settings: BenchSettings, weight: float, job_dir: Path,
          before: Path | None):
    """One adapter on the training people's group rows, with fairness weight `weight`.

    `before`: the zero-shot scores of the held-out rows from an earlier run (same base,
    rows and scoring), put where train_adapter's resume logic reads them, so the base model
    is scored once for all weights.
    """
    config = TrainConfig(fairness_lambda=weight, fairness_spread=settings.spread,
                         seed=settings.seed, **settings.train)
    job_dir.mkdir(parents=True)
    if before is not None:
        shutil.copy(before, job_dir / "before.json")
    bar = progress_bar(f"train {name}")
    result = train_adapter(split, name=name, config=config, overwrite=True, job_dir=job_dir,
                           data_info={"benchmark": "individual", "survey": "anes96"},
                           callback=lambda e: bar(e["step"], e.get("total_steps") or 1))
    bar.close()
    return result


def val_spread(lm, split) -> dict:
    """Mean gap and spread (KL) across the validation people's groups."""
    evaluation = evaluate_rows([lm], split.val, config=SimConfig(use_cache=False),
                               baselines=())
    return group_gaps(evaluation, lm.label, "kl").spread


def choose_weight(val: dict[float, dict], tolerance: float) -> float:
    """The weight with the lowest validation spread (sd) among those whose mean gap is at
    most `tolerance` worse than without the term; 0 when none qualifies."""
    limit = val[0.0]["mean_gap"] * (1 + tolerance)
    fine = {w: s for w, s in val.items() if s["mean_gap"] <= limit}
    return min(fine, key=lambda w: (fine[w]["sd"], w))


def fairness_table(cards: dict[str, dict]) -> dict[str, dict]:
    """Mean gap and spread of the test people's groups: base, then each adapter."""
    first = next(iter(cards.values()))
    out = {"zero-shot": {**first["spread_before"], "grew": None}}
    for name, record in cards.items():
        out[name] = {**record["spread_after"], "grew": len(record["grew"]),
                     "grew_beyond_noise": len(record["grew_beyond_noise"])}
    return out


def adapter_fairness_png(name: str, record: dict, split) -> bytes:
    """The fairness figure of one adapter (its card record), with the noise-floor curve."""
    columns = ["group", "attribute", "n_eff", "gap", "grew"]
    rows = [[g["group"], g["attribute"], g["n_eff"], g["after"], g["grew"]]
            for g in record["groups"]]
    sizes = np.geomspace(2, max(g["n_eff"] for g in record["groups"]) * 2, 25)
    curve = floor_curve(split.test, "kl", sizes)
    part = FairnessPart(name, "kl", record["spread_after"], PartTable(columns, rows),
                        [[float(n), float(f)] for n, f in zip(curve["n"], curve["floor"])])
    return fairness_png(part)[0]


def fmt(value) -> str:
    """Three decimals; a dash where a score does not apply."""
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) \
        else f"{value:.3f}"


def markdown(result: dict) -> str:
    """The tables for docs/benchmarks.md and docs/fidelity.md."""
    keys = list(INDIVIDUAL_SCORES)
    first = result["first_token"]
    people = result["split"]["respondents"]
    lines = [f"ANES 1996 demo, individual level ({result['label']}): {people['test']} held-out "
             f"respondents ({first['n_scored']['test']} answers to {len(first['questions'])} "
             f"questions; {people['val']} validation, {people['train']} training), profiles on "
             f"{', '.join(result['settings']['attributes'])}. Reproduce: "
             f"`{result['command']}` ({result['wall_time_s'] / 60:.1f} min, "
             f"{result['machine']}).", "",
             "| entry | T | " + " | ".join(INDIVIDUAL_SCORES[k].name for k in keys) + " |",
             "|---|---|" + "---|" * len(keys)]
    for row in first["summary"]:
        t = "" if row["temperature"] is None else f"{row['temperature']:g}" + \
            (" (chosen)" if row["chosen"] else "")
        lines.append(f"| {row['entry']} | {t} | " + " | ".join(fmt(row[k]) for k in keys) + " |")
    lines += ["", "RMSE on the 0-1 value scale (ordinal questions); lower is better except "
              "accuracy. Temperatures chosen on validation respondents by population KL.", ""]
    samp = result["sampling"]
    lines += [f"Sampling mode ({samp['samples']} answers per profile, question "
              f"{samp['question']}, {samp['n_scored']['test']} test respondents, zero-shot):",
              "", "| T | val KL | val RMSE | test KL | test RMSE |", "|---|---|---|---|---|"]
    for point in samp["curve"]:
        if point["part"] == "test":
            val = next(p for p in samp["curve"] if p["part"] == "val"
                       and p["temperature"] == point["temperature"])
            mark = " (chosen)" if point["temperature"] == samp["chosen"] else ""
            lines.append(f"| {point['temperature']:g}{mark} | {fmt(val['kl'])} | "
                         f"{fmt(val['rmse'])} | {fmt(point['kl'])} | {fmt(point['rmse'])} |")
    lines += ["", f"Fairness term (weight chosen on validation: {result['chosen_weight']:g}); "
              "KL gap per group of the held-out people's group rows:", "",
              "| checkpoint | mean gap | sd across groups | range | max - mean | groups whose "
              "gap grew (beyond noise) |", "|---|---|---|---|---|---|"]
    for name, row in result["fairness_test"].items():
        grew = "" if row["grew"] is None else f"{row['grew']} ({row['grew_beyond_noise']})"
        lines.append(f"| {name} | {fmt(row['mean_gap'])} | {fmt(row['sd'])} | "
                     f"{fmt(row['range'])} | {fmt(row['max_minus_mean'])} | {grew} |")
    lines += ["", "Validation (choosing the weight): " + "; ".join(
        f"weight {w}: mean gap {fmt(s['mean_gap'])}, sd {fmt(s['sd'])}"
        for w, s in result["fairness_val"].items())]
    return "\n".join(lines)


def write(result: dict, pngs: dict[str, bytes], out: Path, stem: str) -> str:
    """JSON, markdown and figures, each written atomically; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(result)
    files = {f"{stem}.json": (json.dumps(result, indent=2, default=str) + "\n").encode(),
             f"{stem}.md": (table + "\n").encode(),
             **{f"{stem}_{name}.png": data for name, data in pngs.items()}}
    for name, data in files.items():
        tmp = out / f"{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(out / name)
    return table


def run(settings: BenchSettings, label: str, command: str) -> tuple[dict, dict]:
    """The benchmark; returns (result, figures)."""
    start, timings = time.time(), {}
    survey = load_demo("anes96")
    base = load_model("default")
    split = training_split(survey, None, SplitConfig(
        how="respondent", test_fraction=settings.test_fraction,
        val_fraction=settings.val_fraction), seed=settings.seed)
    cards, val, adapters, before = {}, {}, {}, None
    jobs = Path(os.environ["SIM_WORKSPACE"]) / "bench-jobs"
    for weight in settings.lambdas:
        t0 = time.time()
        name = f"anes-fair-{weight:g}"
        trained = train(split, name, settings, weight, jobs / name, before)
        before = jobs / name / "before.json"
        adapters[weight] = load_model("default", adapter=name)
        cards[weight] = trained.card.fairness
        val[weight] = val_spread(adapters[weight], split)
        timings[f"train + score, weight {weight:g}"] = time.time() - t0
    chosen = choose_weight(val, settings.gap_tolerance)
    models = [base, adapters[0.0]] + ([adapters[chosen]] if chosen else [])
    config = IndividualConfig(test_fraction=settings.test_fraction,
                              val_fraction=settings.val_fraction, split_seed=settings.seed,
                              temperatures=settings.temperatures,
                              max_respondents=settings.max_respondents)
    t0 = time.time()
    bar = progress_bar("individual, first-token")
    first = evaluate_individuals(models, survey, list(settings.attributes), config=config,
                                 sim=SimConfig(), progress=bar)
    bar.close()
    timings["individual, first-token"] = time.time() - t0
    t0 = time.time()
    sampling_config = IndividualConfig(
        test_fraction=settings.test_fraction, val_fraction=settings.val_fraction,
        split_seed=settings.seed, temperatures=settings.sampling_temperatures,
        max_respondents=settings.sampling_respondents)
    bar = progress_bar("individual, sampling")
    sampled = evaluate_individuals([base], survey, list(settings.attributes),
                                   questions=[settings.sampling_question],
                                   config=sampling_config, progress=bar, baselines=(),
                                   sim=SimConfig(mode="sample", samples=settings.sampling_samples))
    bar.close()
    timings["individual, sampling"] = time.time() - t0
    names = {f"fine-tuned, fairness weight {w:g}": cards[w] for w in settings.lambdas}
    summary = first.summary()
    result = {
        "label": label, "command": command, "settings": asdict(settings),
        "model": base.label, "model_fingerprint": base.fingerprint,
        "survey_fingerprint": survey.fingerprint,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "split": split.info.to_dict(), "chosen_weight": chosen,
        "fairness_val": {f"{w:g}": s for w, s in val.items()},
        "fairness_test": fairness_table(names),
        "first_token": {"summary": summary.astype(object).where(summary.notna(), None)
                        .to_dict(orient="records"),
                        "sweeps": {label: sweep_record(first, label) for label in first.sweeps},
                        "n_scored": first.n_scored, "questions": first.questions,
                        "n_profiles": first.n_profiles, "notes": first.notes},
        "sampling": {**sweep_record(sampled, sampled.entries[0]),
                     "samples": settings.sampling_samples,
                     "question": settings.sampling_question},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "wall_time_s": round(time.time() - start, 1)}
    pngs = {"tradeoff": tradeoff_png(individual_part(first), "rmse")[0],
            "fairness": adapter_fairness_png(f"fine-tuned, fairness weight {chosen:g}",
                                             cards[chosen], split)}
    return result, pngs


def main(argv=None) -> dict:
    """Run the benchmark in a fresh workspace; write the results; print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small version (a few minutes)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's; 1 is faster on a crowded machine)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = quick_settings() if args.quick else BenchSettings()
    torch.manual_seed(settings.seed)
    with tempfile.TemporaryDirectory(prefix="individual-") as folder:
        os.environ["SIM_WORKSPACE"] = folder
        result, pngs = run(settings, "QUICK run: tiny budgets; not the benchmark"
                           if args.quick else "full run",
                           "python bench/individual.py" + (" --quick" if args.quick else "")
                           + (f" --threads {args.threads}" if args.threads else ""))
    table = write(result, pngs, args.out, "individual-quick" if args.quick else "individual")
    print(table)
    return result


if __name__ == "__main__":
    main()
