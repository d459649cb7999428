"""`python -m sim_core compare`: real vs simulated answers per slice, with every score, the
baselines and the sampling-noise floor.

Example:
    python -m sim_core compare --data gss2022 --question natspac --by SEX
    python -m sim_core compare --data survey.csv --codebook book.csv --question q1 \\
        --by sex,age --adapter my-adapter --orders 2 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

import numpy as np

from sim_core.commands import common

SCORE_WIDTH = 12


def register(subparsers) -> None:
    """Add the `compare` subcommand."""
    parser = subparsers.add_parser(
        "compare", help="real vs simulated answers per slice, with scores and baselines",
        description="Simulate a survey question for every slice and score the simulated "
                    "shares against the real ones, next to the baselines and the noise floor.")
    common.add_data_args(parser)
    parser.add_argument("--model", default="default", help="default | model folder | hub id")
    parser.add_argument("--adapter", action="append", default=[],
                        help="LoRA adapter (name or folder); repeatable; the base model is "
                             "always compared too")
    common.add_simulation_args(parser)
    parser.add_argument("--baselines", default="uniform,population,classifier",
                        help="comma-separated baselines (default all three)")
    parser.set_defaults(func=run)


# ---------------------------------------------------------------- shared formatting

def floats(values) -> list[float] | None:
    """Rounded floats for JSON (None stays None, NaN becomes None)."""
    if values is None:
        return None
    return [None if not np.isfinite(v) else round(float(v), 6) for v in values]


def score_legend(keys) -> str:
    """One line naming each score shown and which direction is better."""
    from sim_core.metrics import METRICS
    text = "scores: " + "; ".join(f"{k} = {METRICS[k].name} ({METRICS[k].direction} is better)"
                                  for k in keys)
    return textwrap.fill(text, width=100, subsequent_indent="  ")


def format_rows(options, rows: list[tuple[str, np.ndarray | None, dict]], keys,
                best: dict[str, str | None]) -> str:
    """Aligned table: entry, share per option, then scores; '*' marks the best entry."""
    width = max([len("entry")] + [len(name) for name, _, _ in rows]) + 2
    head = "entry".ljust(width) + "".join(f"{o[:11]:>{SCORE_WIDTH}}" for o in options)
    lines = [head + "".join(f"{k:>{SCORE_WIDTH}}" for k in keys)]
    for name, shares, scores in rows:
        cells = "".join(f"{'':>{SCORE_WIDTH}}" if shares is None else f"{s:>{SCORE_WIDTH}.3f}"
                        for s in (shares if shares is not None else options))
        for k in keys:
            value = scores.get(k)
            text = "-" if value is None or not np.isfinite(value) else f"{value:.4g}"
            text += "*" if best.get(k) == name else " "
            cells += f"{text:>{SCORE_WIDTH}}"
        lines.append(name.ljust(width) + cells)
    return "\n".join(line.rstrip() for line in lines)


def slice_heading(label: str, real) -> str:
    """'sex=Female (n 60, n_eff 58.2)', with a warning when the slice is small."""
    if real is None:
        return f"{label} (no real data)"
    n = "-" if real.n is None else str(real.n)
    n_eff = "-" if real.n_eff is None else f"{real.n_eff:.1f}"
    return f"{label} (n {n}, n_eff {n_eff}){'  SMALL: read with care' if real.too_small else ''}"


def tqdm_progress(desc: str):
    """A tqdm bar on stderr and the progress(done, total) callback that drives it."""
    from tqdm import tqdm
    bar = tqdm(total=1, desc=desc, file=sys.stderr, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
    return bar, progress


# ---------------------------------------------------------------- compare

def comparison_json(comp) -> dict:
    """JSON-ready comparison of one question."""
    return {"question": comp.question.id, "text": comp.question.text,
            "options": list(comp.question.options), "survey": comp.survey_name,
            "by": comp.by, "mode": comp.config.mode,
            "orders": {c["label"]: c["orders"] for c in comp.checkpoints},
            "checkpoints": [{k: v for k, v in c.items()} for c in comp.checkpoints],
            "notes": comp.notes,
            "slices": [{"slice": sc.slice, "label": sc.label,
                        "n": None if sc.real is None else sc.real.n,
                        "n_eff": None if sc.real is None or sc.real.n_eff is None
                        else round(sc.real.n_eff, 3),
                        "real": None if sc.real is None else floats(sc.real.shares),
                        "ci_low": None if sc.real is None else floats(sc.real.ci_low),
                        "ci_high": None if sc.real is None else floats(sc.real.ci_high),
                        "entries": {e: floats(d) for e, d in sc.entries().items()},
                        "letter_mass": {e: round(r.letter_mass, 6)
                                        for e, r in sc.simulated.items()},
                        "scores": {e: {k: None if not np.isfinite(v) else round(v, 6)
                                       for k, v in s.items()} for e, s in sc.scores.items()},
                        "noise_floor": {k: round(v, 6) for k, v in sc.noise_floor.items()}}
                       for sc in comp.slices]}


def format_comparison(comp) -> str:
    """Plain-text comparison: one table per slice."""
    from sim_core.labels import NOISE_FLOOR, REAL
    from sim_core.metrics import METRICS, best_entry
    keys = [k for k in METRICS if any(k in s for sc in comp.slices for s in sc.scores.values())]
    out = [f"{comp.question.id}: {comp.question.text}",
           "checkpoints: " + ", ".join(c["label"] for c in comp.checkpoints)
           + f"; mode {comp.config.mode}"
           + ("; option orders averaged: " + ", ".join(f"{c['label']} {c['orders']}"
                                                       for c in comp.checkpoints)
              if comp.config.mode == "first-token" else ""),
           score_legend(keys) + "; * = best entry; noise floor = score of a second real "
           "sample of the same size"]
    out += [f"note: {note}" for note in comp.notes]
    for sc in comp.slices:
        rows = [(REAL, sc.real.shares, {})] if sc.real is not None else []
        rows += [(e, d, sc.scores.get(e, {})) for e, d in sc.entries().items()]
        if sc.noise_floor:
            rows.append((NOISE_FLOOR, None, sc.noise_floor))
        best = {k: best_entry({e: s.get(k, np.nan) for e, s in sc.scores.items()}, k)
                for k in keys}
        out += ["", slice_heading(sc.label, sc.real),
                format_rows(comp.question.options, rows, keys, best)]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    """Load survey and models, compare each question, print tables or JSON."""
    from sim_core.compare import compare
    from sim_core.models import load_model

    survey = common.survey_from_args(args)
    by = common.by_from_args(args, survey)
    bins = common.bins_from_args(args)
    ids = common.question_ids(args, survey)
    which = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    config = common.sim_config_from_args(args)
    models = [load_model(args.model, dtype=args.dtype, device=config.device)] + [
        load_model(args.model, adapter=a, dtype=args.dtype, device=config.device)
        for a in args.adapter]
    comparisons = []
    for qid in ids:
        bar, progress = tqdm_progress(qid)
        try:
            comparisons.append(compare(models, survey.questions[qid], survey=survey, by=by,
                                       wave=args.wave, bins=bins, config=config,
                                       baselines=which, progress=progress))
        finally:
            bar.close()
    if args.json:
        print(json.dumps([comparison_json(c) for c in comparisons], indent=1,
                         ensure_ascii=False, default=str))
    else:
        for warning in survey.warnings:
            print(f"warning: {warning}")
        print("\n\n".join(format_comparison(c) for c in comparisons))
    return 0
