"""Simulated answer distributions for (question, slice) pairs, whatever the backend: prompts
in every option order, the result cache, the model calls for what it misses (first-token
letter probabilities, or sampled respondents), debiasing, and the calibration."""

from __future__ import annotations

from dataclasses import astuple, dataclass, replace
from typing import Any

import numpy as np

from sim_core.base.errors import SimError
from sim_core.base.labels import Progress, ShouldStop
from sim_core.simulation.answers import debias, no_answer
from sim_core.simulation.cache import cache_key, cached_values, open_cache, store_values
from sim_core.simulation.calibration import Calibration, calibrate_result
from sim_core.simulation.config import (
    DEFAULT_ORDERS,
    DEFAULT_TEMPERATURE,
    MAX_NEW_TOKENS,
    SimConfig,
    verbalized_tokens,
)
from sim_core.simulation.handle import ModelHandle
from sim_core.simulation.prompts import Prompt, PromptStyle, option_orders, prompt_text
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


# Results are written to the cache as each chunk of (question, slice) tasks finishes, so a run
# that dies half-way resumes without computing (or paying for) the same answers twice. Remote
# answers cost money: small chunks; local ones: chunks large enough to keep batches full.
REMOTE_CHUNK, LOCAL_CHUNK = 32, 256


@dataclass
class _Task:
    """One (question, slice) to simulate, with its prompts (one per option order)."""

    question: Question
    slice: dict[str, str]
    orders: list[tuple[int, ...]]
    prompts: list[Prompt]
    key: str = ""


@dataclass
class RunPlan:
    """What a simulation will cost before it runs: only what the cache does not hold.

    Attributes:
        distributions: (question, slice) distributions asked for; cached: of them in the cache.
        prompts: prompts to send (one per option order of each missing distribution).
        requests: requests to the server (0: the model runs here).
        prompt_tokens, completion_tokens: estimated tokens of those requests (prompt tokens
            counted by the tokenizer where the model has one here, else ~4 characters each;
            completion tokens are the most each request may take).
        exact: whether the prompt tokens were counted exactly.
    """

    distributions: int = 0
    cached: int = 0
    prompts: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    exact: bool = True

    def __add__(self, other: RunPlan) -> RunPlan:
        return RunPlan(*(a + b for a, b in zip(astuple(self)[:-1], astuple(other)[:-1])),
                       exact=self.exact and other.exact)

    def text(self) -> str:
        """The plan in one line, for the CLI and the dashboard."""
        if not self.prompts:
            return (f"{self.distributions} distributions ({self.cached} cached): nothing to "
                    "send or run")
        if not self.requests:
            return (f"{self.distributions} distributions ({self.cached} cached); "
                    f"{self.prompts} prompts run on this machine")
        about = "" if self.exact else "about "
        return (f"{self.distributions} distributions ({self.cached} cached): {self.requests} "
                f"requests, {about}{self.prompt_tokens:,} prompt tokens and at most "
                f"{self.completion_tokens:,} completion tokens")


def check_budget(plan: RunPlan, max_requests: int | None) -> None:
    """Refuse a run that would send more requests than allowed (nothing is sent)."""
    if max_requests is not None and plan.requests > max_requests:
        raise SimError(f"This run would send {plan.requests} requests ({plan.text()}), more "
                       f"than the limit allows (Most requests, --max-requests {max_requests}); "
                       "nothing was sent. Raise the limit, or ask for fewer questions, slices "
                       "or option orders.")


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
    individual-level sweep chose in sampling mode (sim_core.evaluation.individual, saved in
    the adapter card), else DEFAULT_TEMPERATURE."""
    if config.temperature is not None:
        return float(config.temperature)
    return float(lm.sampling_temperature) if lm.sampling_temperature else DEFAULT_TEMPERATURE


def orders_for(lm: ModelHandle, config: SimConfig) -> int:
    """Option orders averaged for this checkpoint: config.orders, or the checkpoint's own
    (first-token mode); verbalized mode asks in one order unless told more; sampling in one."""
    if config.mode == "sample":
        return 1
    if config.orders:
        return max(1, int(config.orders))
    if config.mode == "verbalized":
        return 1
    return int(lm.inference_orders or DEFAULT_ORDERS)


def _params(config: SimConfig, orders: list[tuple[int, ...]]) -> dict:
    """The settings that change a distribution, for its cache key."""
    if config.mode == "first-token":
        return {"orders": [list(o) for o in orders]}
    if config.mode == "verbalized":
        return {"orders": [list(o) for o in orders], "seed": config.seed, "retry": 1}
    return {"samples": config.samples, "temperature": config.temperature,
            "seed": config.seed, "max_new_tokens": MAX_NEW_TOKENS}


def _make_tasks(lm: ModelHandle, pairs: list[tuple[Question, dict]], config: SimConfig
                ) -> list[_Task]:
    """Prompts and cache keys for every (question, slice)."""
    tasks = []
    for question, slice_ in pairs:
        k = len(question.options)
        if k < 2:
            raise SimError(f"Question '{question.id}' needs at least two options.")
        orders = option_orders(k, orders_for(lm, config))
        prompts = [lm.prompt(question, slice_, order=o, style=config.style, mode=config.mode)
                   for o in orders]
        key = cache_key(**lm.cache_identity, prompts=prompts, mode=config.mode,
                        options=list(question.options), **_params(config, orders))
        tasks.append(_Task(question, dict(slice_), orders, prompts, key))
    return tasks


def _completion_tokens(config: SimConfig, k: int) -> int:
    """The most tokens one request may generate in this mode."""
    if config.mode == "first-token":
        return 1
    if config.mode == "sample":
        return MAX_NEW_TOKENS * config.samples
    return 2 * verbalized_tokens(k)         # the reply and, at worst, its one retry


def _plan(lm: ModelHandle, tasks: list[_Task], cached: int, config: SimConfig) -> RunPlan:
    """RunPlan of the tasks not in the cache."""
    plan = RunPlan(distributions=len(tasks) + cached, cached=cached)
    for task in tasks:
        for prompt in task.prompts:
            tokens, exact = lm.prompt_tokens(prompt)
            requests = lm.requests_for(config.mode, 1, config.samples)
            plan.prompts += 1
            plan.requests += requests
            plan.prompt_tokens += tokens * max(requests, 1)
            plan.completion_tokens += _completion_tokens(config, task.question.k)
            plan.exact = plan.exact and exact
    return plan


def _result(task: _Task, value: dict, cached: bool) -> SimResult:
    """SimResult from a stored/computed value dict."""
    shares = np.array([np.nan if v is None else v for v in value["shares"]], dtype=np.float64)
    return SimResult(slice=dict(task.slice), options=tuple(task.question.options),
                     shares=shares, letter_mass=float(value["letter_mass"]),
                     prompt=prompt_text(task.prompts[0]),
                     n_samples=int(value.get("n_samples", 0)),
                     n_unparsed=int(value.get("n_unparsed", 0)), cached=cached)


def _stored(shares: np.ndarray) -> list:
    """Shares as JSON (NaN, a distribution with no readable answer, as null)."""
    return [None if np.isnan(v) else float(v) for v in shares]


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
        values[task.key] = {"shares": _stored(shares), "letter_mass": mass}
    return values


def _run_verbalized(lm: ModelHandle, tasks: list[_Task], config: SimConfig,
                    progress: Progress, should_stop: ShouldStop) -> dict[str, dict]:
    """Verbalized percentages for the tasks; letter_mass = share of replies that parsed."""
    prompts = [p for task in tasks for p in task.prompts]
    ks = [len(task.question.options) for task in tasks for _ in task.prompts]
    outputs = lm.verbalized(prompts, ks, config, progress=progress, should_stop=should_stop)
    values, at = {}, 0
    for task in tasks:
        replies = outputs[at:at + len(task.prompts)]
        at += len(task.prompts)
        per_order = [(no_answer(task.question.k) if r is None else r, float(r is not None))
                     for r in replies]
        shares, mass = debias(per_order, task.orders)
        unparsed = sum(r is None for r in replies)
        values[task.key] = {"shares": _stored(shares), "letter_mass": mass,
                            "n_samples": len(replies), "n_unparsed": unparsed}
    return values


def _run_sampling(lm: ModelHandle, tasks: list[_Task], config: SimConfig, progress: Progress,
                  should_stop: ShouldStop) -> dict[str, dict]:
    """Sampled respondents for each task; letter_mass = share of answers that parsed."""
    outputs = lm.sample([t.prompts[0] for t in tasks], [t.question.options for t in tasks],
                        config, progress=progress, should_stop=should_stop)
    values = {}
    for task, (shares, n, unparsed) in zip(tasks, outputs):
        values[task.key] = {"shares": _stored(shares), "letter_mass": (n - unparsed) / n,
                            "n_samples": n, "n_unparsed": unparsed}
    return values


RUNS = {"first-token": _run_first_token, "sample": _run_sampling, "verbalized": _run_verbalized}


def _run_in_chunks(lm: ModelHandle, missing: list[_Task], config: SimConfig, cache: Any,
                   progress: Progress, should_stop: ShouldStop) -> dict[str, dict]:
    """The missing tasks, chunk by chunk, each chunk written to the cache as it finishes."""
    size = REMOTE_CHUNK if lm.remote else LOCAL_CHUNK
    units = [len(t.prompts) if config.mode != "sample" else 1 for t in missing]
    total, done, computed = sum(units), 0, {}
    for start in range(0, len(missing), size):
        chunk = missing[start:start + size]
        offset = done
        shifted = None if progress is None else \
            (lambda d, _t, offset=offset: progress(offset + d, total))
        values = RUNS[config.mode](lm, chunk, config, shifted, should_stop)
        store_values(cache, values)
        computed.update(values)
        done += sum(units[start:start + size])
    return computed


def _simulate_pairs(lm: ModelHandle, pairs: list[tuple[Any, dict]], config: SimConfig | None,
                    progress: Progress, should_stop: ShouldStop,
                    calibration: Calibration | None = None) -> list[SimResult]:
    """Cache lookup, model calls for the misses (each distinct prompt set once, written to the
    cache chunk by chunk), then the calibration (raw shares are what the cache holds)."""
    config = config or SimConfig()
    lm.check_device(config.device)
    config = replace(config, temperature=temperature_for(lm, config))
    calibration = calibration if calibration is not None else lm.calibration
    tasks = _make_tasks(lm, pairs, config)
    cache = open_cache() if config.use_cache else None
    stored = cached_values(cache, [t.key for t in tasks])
    missing = list({t.key: t for t in tasks if t.key not in stored}.values())
    check_budget(_plan(lm, missing, len(tasks) - len(missing), config), config.max_requests)
    computed = _run_in_chunks(lm, missing, config, cache, progress, should_stop)
    if not missing and progress is not None:
        progress(1, 1)
    results = [_result(t, stored[t.key], True) if t.key in stored else
               _result(t, computed[t.key], False) for t in tasks]
    return [calibrate_result(r, calibration, config) for r in results]


def plan_rows(lm: ModelHandle, rows: list[Any], config: SimConfig | None = None) -> RunPlan:
    """What simulating these (question, slice) rows would send, before anything is sent:
    requests and tokens of the distributions the cache does not hold.

    Args:
        lm: the checkpoint; rows: SurveyRow-like (.question, .slice); config: SimConfig.
    Returns:
        RunPlan (RunPlan.text() says it in one line); add plans with +.
    """
    config = config or SimConfig()
    config = replace(config, temperature=temperature_for(lm, config))
    tasks = _make_tasks(lm, [(row.question, row.slice) for row in rows], config)
    cache = open_cache() if config.use_cache else None
    stored = cached_values(cache, [t.key for t in tasks])
    missing = list({t.key: t for t in tasks if t.key not in stored}.values())
    return _plan(lm, missing, len(tasks) - len(missing), config)


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
