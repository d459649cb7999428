"""The calibration part of the fidelity benchmark (bench/fidelity.py): raw vs calibrated
held-out scores, prediction-interval coverage and width, the verdict and the target check.

Both calibrations come from the validation rows of the split (the adapter's card, written by
finetune.train; the zero-shot one fitted by train_adapter on the same rows before LoRA
touched the model). The held-out rows are only scored here, never fitted on.
"""
from __future__ import annotations

import numpy as np

from sim_core.base.labels import baseline_entry
from sim_core.evaluation.calibration_fit import interval_coverage, summary
from sim_core.evaluation.calibration_runs import heldout_measurement, heldout_unit
from sim_core.evaluation.evaluate import mean_scores
from sim_core.evaluation.verdict import (
    CHECKPOINT_CAL,
    UNIFORM,
    ZERO_SHOT,
    ZERO_SHOT_CAL,
    margin,
    verdict,
)

LEVELS = (0.5, 0.8, 0.9, 0.95)
MAIN_LEVEL = 0.9
TOLERANCE = 0.05          # target: observed coverage within 5 points of nominal


def _coverage(calibration, rows, raw) -> dict:
    """Coverage and mean width of the calibrated intervals at every level."""
    real = [r.dist for r in rows]
    return {str(level): interval_coverage(calibration, real, raw, level) for level in LEVELS}


def _target(heldout) -> dict:
    """Calibrated fine-tuned vs the better of uniform and zero-shot (raw or calibrated)."""
    candidates = [k for k in (UNIFORM, ZERO_SHOT, ZERO_SHOT_CAL) if k in heldout.entries]
    better = min(candidates, key=heldout.mean)
    m = margin(heldout, CHECKPOINT_CAL, better, better)
    out = {"reference": better, "fine_tuned_calibrated": m.checkpoint,
           "reference_value": m.value, "difference": m.difference, "ci_low": m.ci_low,
           "ci_high": m.ci_high, "outcome": m.outcome}
    return {**out, "met": target_met(out)}


def target_met(target: dict) -> bool:
    """"Never worse": the calibrated fine-tuned mean is not above the reference's at the
    table's precision (3 decimals). A confidence interval that merely includes 0 is not
    enough: that was a worse point estimate the data could not rule out."""
    return round(target["difference"], 3) <= 0


def calibration_part(split, ev_fixed, ev_debias, names: dict, trained, tuned,
                     survey_name: str) -> dict:
    """Everything the calibration section of the results table needs, for one split.

    Args:
        split: the finetune Split (its test rows are the held-out rows).
        ev_fixed, ev_debias: raw evaluations with 1 and 2 option orders.
        names: "zero-shot" / "fine-tuned" -> entry label.
        trained: the TrainResult (zero-shot calibration); tuned: the loaded adapter (its
            card's calibration).
    """
    zs_cal, ft_cal = trained.zero_shot_calibration, tuned.calibration
    if zs_cal is None or ft_cal is None:
        return {}
    rows = split.test
    # each checkpoint as the simulator reads it: the base with 2 orders, the adapter with its
    # own (1); each calibration was fitted with the same orders on the validation rows
    zs_raw = ev_debias.dists[names["zero-shot"]]
    ft_raw = ev_fixed.dists[names["fine-tuned"]]
    baselines = {b: ev_fixed.dists[baseline_entry(b)] for b in ("uniform", "population")}
    heldout = heldout_measurement(rows, ft_raw, ft_cal, baselines, kind="adapter",
                                  unit=heldout_unit(split.info), survey=survey_name,
                                  level=MAIN_LEVEL, zero_shot=zs_raw,
                                  zero_shot_calibration=zs_cal)
    return {
        "scores": {
            "zero-shot, 2 orders": {"raw": mean_scores(rows, zs_raw),
                                    "calibrated": mean_scores(rows, [zs_cal.apply(q)
                                                                     for q in zs_raw])},
            "fine-tuned, own order": {"raw": mean_scores(rows, ft_raw),
                                      "calibrated": mean_scores(rows, [ft_cal.apply(q)
                                                                       for q in ft_raw])}},
        "calibrations": {"zero-shot, 2 orders": summary(zs_cal),
                         "fine-tuned, own order": summary(ft_cal)},
        "coverage": {"zero-shot, 2 orders": _coverage(zs_cal, rows, zs_raw),
                     "fine-tuned, own order": _coverage(ft_cal, rows, ft_raw)},
        "verdict": verdict(heldout, subject="the fine-tuned adapter").text,
        "target": _target(heldout),
        "heldout": heldout.to_dict(),
    }


def _fmt(value) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"


def markdown(part: dict, how: str) -> list[str]:
    """Results-table lines for one split: raw vs calibrated, coverage and width, verdict, target."""
    if not part:
        return []
    lines = [f"Calibration on the {how} split (fitted on the validation rows only): mean "
             "Wasserstein / KL on the held-out rows, raw and calibrated", "",
             "| checkpoint | WD raw | WD calibrated | KL raw | KL calibrated | calibration |",
             "|---|---|---|---|---|---|"]
    for name, scores in part["scores"].items():
        raw, cal = scores["raw"], scores["calibrated"]
        lines.append(f"| {name} | {_fmt(raw.get('wasserstein'))} | "
                     f"{_fmt(cal.get('wasserstein'))} | {_fmt(raw.get('kl'))} | "
                     f"{_fmt(cal.get('kl'))} | {part['calibrations'][name]['text']} |")
    lines += ["", "| prediction intervals (calibrated) | " + " | ".join(
        f"coverage at {level * 100:g} %" for level in LEVELS) + f" | mean width at "
        f"{MAIN_LEVEL * 100:g} % |", "|---|" + "---|" * (len(LEVELS) + 1)]
    for name, by_level in part["coverage"].items():
        cells = [f"{by_level[str(level)]['coverage'] * 100:.1f} %" for level in LEVELS]
        width = by_level[str(MAIN_LEVEL)]["mean_width"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {width:.3f} |")
    ok = coverage_ok(part)
    lines += ["", f"Coverage target ({MAIN_LEVEL * 100:g} % intervals within "
              f"{TOLERANCE * 100:g} points of nominal): " + "; ".join(
                  f"{name} {'met' if met else 'missed'}" for name, met in ok.items()) + "."]
    target = part["target"]
    lines += ["", f"Verdict: {part['verdict']}", "",
              f"Target (calibrated fine-tuned no worse than the better of uniform and "
              f"zero-shot, here {target['reference']}): WD {target['fine_tuned_calibrated']:.3f}"
              f" vs {target['reference_value']:.3f}, difference {target['difference']:+.3f} "
              f"(95 % CI {target['ci_low']:+.3f}..{target['ci_high']:+.3f}): "
              + ("met." if target_met(target) else "missed."), ""]
    return lines


def coverage_ok(part: dict) -> dict[str, bool]:
    """Whether each checkpoint's 90 % coverage is within 5 points of nominal."""
    return {name: abs(levels[str(MAIN_LEVEL)]["coverage"] - MAIN_LEVEL) <= TOLERANCE
            for name, levels in part.get("coverage", {}).items()}
