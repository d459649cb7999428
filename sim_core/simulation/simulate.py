"""Simulated answer distributions for (question, slice) pairs, whatever the backend: prompts
in every option order, the result cache, the model calls for what it misses (first-token
letter probabilities, or sampled respondents), debiasing, and the calibration."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sim_core.base.errors import SimError
from sim_core.base.labels import Progress, ShouldStop
from sim_core.simulation.answers import debias
from sim_core.simulation.cache import cache_key, cached_values, open_cache, store_values
from sim_core.simulation.calibration import Calibration, calibrate_result
from sim_core.simulation.config import (
    DEFAULT_ORDERS,
    DEFAULT_TEMPERATURE,
    MAX_NEW_TOKENS,
    SimConfig,
)
from sim_core.simulation.handle import ModelHandle
from sim_core.simulation.prompts import PromptStyle, option_orders
from sim_core.survey.schema import Question


@dataclass
class SimResult:
    """One simulated distribution for a (question, slice)."""

    slice: dict[str, str]
    options: tuple[str, ...]
    shares: np.ndarray
    letter_mass: float
    prompt: str
    n_samples: int = 0
    n_unparsed: int = 0
    cached: bool = False
    raw_shares: np.ndarray | None = None        # before calibration (None: not calibrated)
    interval_low: np.ndarray | None = None      # prediction interval (None: no calibration
    interval_high: np.ndarray | None = None     # with residuals for this checkpoint)
    calibrated: bool = False


@dataclass
class _Task:
    """One (question, slice) to simulate, with its prompts (one per option order)."""

    question: Question
    slice: dict[str, str]
    orders: list[tuple[int, ...]]
    prompts: list[str]
    key: str = ""


def style_warning(lm: ModelHandle, config: SimConfig, attributes=None) -> str | None:
    """A note when an adapter was trained with other prompt wording than this simulation's
    (its card records the style; an adapter reads prompts it never saw less reliably)."""
    trained = lm.prompt_style
    if not trained:
        return None
    # compare what reaches the prompt (population filled in), not the raw fields
    before = PromptStyle.from_dict(trained).signature(attributes)
    now = config.style.signature(attributes)
    if before == now:
        return None
    changed = sorted(k for k in now if before.get(k) != now.get(k))
    return (f"{lm.label} was trained with other prompt wording ({', '.join(changed)} "
            "differ): its simulated shares may be less reliable with this wording.")


def temperature_for(lm: ModelHandle, config: SimConfig) -> float:
    """Sampling temperature for this checkpoint: config.temperature, else the one its
    individual-level sweep chose in sampling mode (sim_core.evaluation.individual, saved in the adapter
    card), else DEFAULT_TEMPERATURE."""
    if config.temperature is not None:
        return float(config.temperature)
    return float(lm.sampling_temperature) if lm.sampling_temperature else DEFAULT_TEMPERATURE


def orders_for(lm: ModelHandle, config: SimConfig) -> int:
    """Option orders averaged for this checkpoint: config.orders, or the checkpoint's own."""
    if config.mode != "first-token":
        return 1
    if config.orders:
        return max(1, int(config.orders))
    return int(lm.inference_orders or DEFAULT_ORDERS)


def _make_tasks(lm: ModelHandle, pairs: list[tuple[Question, dict]], config: SimConfig
                ) -> list[_Task]:
    """Prompts and cache keys for every (question, slice)."""
    tasks = []
    for question, slice_ in pairs:
        k = len(question.options)
        if k < 2:
            raise SimError(f"Question '{question.id}' needs at least two options.")
        orders = option_orders(k, orders_for(lm, config))
        prompts = [lm.prompt(question, slice_, order=o, style=config.style) for o in orders]
        params = {"orders": [list(o) for o in orders]} if config.mode == "first-token" else {
            "samples": config.samples, "temperature": config.temperature,
            "seed": config.seed, "max_new_tokens": MAX_NEW_TOKENS}
        key = cache_key(**lm.cache_identity, prompts=prompts, mode=config.mode,
                        options=list(question.options), **params)
        tasks.append(_Task(question, dict(slice_), orders, prompts, key))
    return tasks


def _result(task: _Task, value: dict, cached: bool) -> SimResult:
    """SimResult from a stored/computed value dict."""
    return SimResult(slice=dict(task.slice), options=tuple(task.question.options),
                     shares=np.asarray(value["shares"], dtype=np.float64),
                     letter_mass=float(value["letter_mass"]), prompt=task.prompts[0],
                     n_samples=int(value.get("n_samples", 0)),
                     n_unparsed=int(value.get("n_unparsed", 0)), cached=cached)


def _run_first_token(lm: ModelHandle, tasks: list[_Task], config: SimConfig, progress: Progress,
                     should_stop: ShouldStop) -> dict[str, dict]:
    """Letter distributions for the tasks, all prompts batched together; key -> value."""
    prompts = [p for task in tasks for p in task.prompts]
    ks = [len(task.question.options) for task in tasks for _ in task.prompts]
    outputs = lm.first_token(prompts, ks, config, progress=progress,
                             should_stop=should_stop) if prompts else []
    values, at = {}, 0
    for task in tasks:
        shares, mass = debias(outputs[at:at + len(task.prompts)], task.orders)
        at += len(task.prompts)
        values[task.key] = {"shares": shares.tolist(), "letter_mass": mass}
    return values


def _run_sampling(lm: ModelHandle, tasks: list[_Task], config: SimConfig, progress: Progress,
                  should_stop: ShouldStop) -> dict[str, dict]:
    """Sampled respondents for each task; letter_mass = share of answers that parsed."""
    outputs = lm.sample([t.prompts[0] for t in tasks], [t.question.options for t in tasks],
                        config, progress=progress, should_stop=should_stop)
    values = {}
    for task, (shares, n, unparsed) in zip(tasks, outputs):
        values[task.key] = {"shares": shares.tolist(), "letter_mass": (n - unparsed) / n,
                            "n_samples": n, "n_unparsed": unparsed}
    return values


def _simulate_pairs(lm: ModelHandle, pairs: list[tuple[Any, dict]], config: SimConfig | None,
                    progress: Progress, should_stop: ShouldStop,
                    calibration: Calibration | None = None) -> list[SimResult]:
    """Cache lookup, model calls for the misses (each distinct prompt set once), cache write,
    then the calibration (raw shares are what the cache holds)."""
    config = config or SimConfig()
    lm.check_device(config.device)
    config = replace(config, temperature=temperature_for(lm, config))
    calibration = calibration if calibration is not None else lm.calibration
    tasks = _make_tasks(lm, pairs, config)
    cache = open_cache() if config.use_cache else None
    stored = cached_values(cache, [t.key for t in tasks])
    missing = list({t.key: t for t in tasks if t.key not in stored}.values())
    run = _run_first_token if config.mode == "first-token" else _run_sampling
    computed = run(lm, missing, config, progress, should_stop) if missing else {}
    store_values(cache, computed)
    if not missing and progress is not None:
        progress(1, 1)
    results = [_result(t, stored[t.key], True) if t.key in stored else
               _result(t, computed[t.key], False) for t in tasks]
    return [calibrate_result(r, calibration, config) for r in results]


def simulate(lm: ModelHandle, question: Question, slices: list[dict[str, str]],
             config: SimConfig | None = None, *, calibration: Calibration | None = None,
             progress: Progress = None, should_stop: ShouldStop = None) -> list[SimResult]:
    """Simulated answer distribution of one question for each slice.

    Args:
        lm: the checkpoint (any backend: sim_core.simulation.handle.ModelHandle).
        question: sim_core.survey.schema.Question.
        slices: attribute -> group dicts ({} = whole population).
        config: SimConfig (default: first-token, each checkpoint's own orders, cache on,
            calibration on).
        calibration: a sim_core.simulation.calibration.Calibration (default: lm.calibration,
            an adapter card's); applied after debiasing when config.calibrate.
        progress: called with (done, total) prompts (or slices in sampling mode).
        should_stop: polled between batches; True raises Cancelled.
    Returns:
        One SimResult per slice, in the given order, shares in original option order
        (calibrated, with raw_shares and the prediction interval, when a calibration applies).
    """
    return _simulate_pairs(lm, [(question, s) for s in slices], config, progress, should_stop,
                           calibration)


def simulate_rows(lm: ModelHandle, rows: list[Any], config: SimConfig | None = None, *,
                  calibration: Calibration | None = None, progress: Progress = None,
                  should_stop: ShouldStop = None) -> list[SimResult]:
    """Simulate many (question, slice) rows at once (SurveyRow-like: .question, .slice).

    Returns:
        One SimResult per row, in row order; all prompts batched together; calibration as
        in simulate().
    """
    return _simulate_pairs(lm, [(row.question, row.slice) for row in rows], config,
                           progress, should_stop, calibration)
