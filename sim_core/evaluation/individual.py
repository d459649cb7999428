"""Individual-level simulation: every held-out respondent of a respondent-level survey is a
virtual participant, simulated from their own profile on the chosen attributes, and scored
against their own answer (sim_core.evaluation.individual_scores), with the population KL beside it.

A temperature sweep maps the trade-off between the two levels (Namikoshi et al. 2024): at
a low temperature each virtual respondent gives their most likely answer (individuals
matched best), at a higher one answers spread like a population's. In first-token mode the
letter distribution is tempered (sim_core.evaluation.calibration_fit.temper: one simulation,
any number of temperatures); in sampling mode every temperature is a new simulation
(SimConfig.temperature). The temperature is chosen on validation respondents, then every
entry is scored on held-out test respondents that nothing was fitted or chosen on. The
model baselines (sim_core.evaluation.demographic_models) use the same held-out people and
attributes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.labels import Progress, ShouldStop, baseline_entry, unique_labels
from sim_core.base.options import Choice, check, registry, setting
from sim_core.evaluation.compare import model_progress, with_survey_style
from sim_core.evaluation.demographic_models import MODEL_BASELINES, fit_demographic
from sim_core.evaluation.individual_scores import INDIVIDUAL_SCORES, score_predictions
from sim_core.evaluation.respondent_table import (
    RespondentTable,
    check_adapter_splits,
    require_respondents,
    respondent_split,
)
from sim_core.evaluation.splits import RESPONDENT_TEST_SHARE
from sim_core.simulation.calibration import TEMPERATURE_BOUNDS, temper
from sim_core.simulation.config import SimConfig
from sim_core.simulation.handle import ModelHandle
from sim_core.simulation.simulate import RunPlan, check_budget, plan_rows, simulate_rows
from sim_core.survey.schema import Question, Survey

CRITERIA = registry(
    Choice("kl", "Population KL",
           "the temperature whose predictions match the answer shares of the validation "
           "respondents best (the simulator's job: group distributions)"),
    Choice("rmse", "Individual RMSE",
           "the temperature whose drawn answers are closest to each validation respondent's "
           "own answer (ordinal questions)"),
    Choice("log_loss", "Individual log-loss",
           "the temperature that makes each respondent's own answer most probable (a proper "
           "scoring rule: classic temperature scaling)"),
)
DEFAULT_TEMPERATURES = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
INDIVIDUAL_BASELINES = ("uniform", "population", *MODEL_BASELINES)
VAL, TEST = "val", "test"


@dataclass
class IndividualConfig:
    """Which respondents are scored and how the temperature is chosen (settings with
    bounds; temperatures get their own comma-separated flag)."""

    test_fraction: float = setting(RESPONDENT_TEST_SHARE, above=0, max=0.9,
                                   label="Held-out share",
                                   help="share of all respondents held out for the test (the "
                                        "model baselines are fitted on the rest)")
    val_fraction: float = setting(0.25, above=0, max=0.9, label="Validation share",
                                  help="share of the other respondents on which the "
                                       "temperature is chosen")
    split_seed: int = setting(0, min=0, label="Split seed",
                              help="seeds which respondents are held out")
    criterion: str = setting("kl", choices=CRITERIA, label="Choose the temperature by",
                             help="what the chosen temperature minimises on the validation "
                                  "respondents")
    max_respondents: int | None = setting(None, min=10, label="Respondents per part",
                                          none="all",
                                          help="score at most this many validation and this "
                                               "many test respondents (seeded sample; faster)")
    temperatures: tuple[float, ...] = setting(DEFAULT_TEMPERATURES, cli=False,
                                              label="Temperatures",
                                              help="the temperatures swept")

    def __post_init__(self) -> None:
        check(self)
        self.temperatures = tuple(sorted({float(t) for t in self.temperatures}))
        low, high = TEMPERATURE_BOUNDS
        if not self.temperatures or not all(low <= t <= high for t in self.temperatures):
            raise DataError(f"temperatures must be {low:g} to {high:g}; got "
                            f"{', '.join(map(str, self.temperatures)) or 'none'}.")


@dataclass
class _Respondents:
    """The scored respondents of one question: answers, weights, part and profile."""

    question: Question
    index: pd.Index
    answers: np.ndarray
    weights: np.ndarray
    part: np.ndarray
    profile: list[tuple]           # each respondent's group per attribute


@dataclass(frozen=True)
class _Pair:
    """One (question, profile) to simulate (the shape simulate_rows reads)."""

    question: Question
    slice: dict


@dataclass
class Sweep:
    """One checkpoint's temperature sweep: mean scores per temperature and part."""

    label: str
    mode: str
    criterion: str
    curve: pd.DataFrame            # temperature, part, one column per score
    chosen: float

    def at(self, temperature: float, part: str = TEST) -> dict[str, float]:
        """Mean scores at one temperature on one part."""
        rows = self.curve[(self.curve["part"] == part) &
                          np.isclose(self.curve["temperature"], temperature)]
        return {k: float(rows[k].iloc[0]) for k in INDIVIDUAL_SCORES} if len(rows) else {}


@dataclass
class IndividualResult:
    """Scores of every checkpoint (per temperature) and baseline on held-out respondents.

    Attributes:
        survey_name, fingerprint: the survey.
        attributes: the profile attributes; questions: the question ids scored.
        split: the respondent split's info; n_scored: part -> respondents scored.
        mode: simulation mode; entries: checkpoint labels; baselines: names.
        table: one row per (entry, temperature, part, question): scores and n.
        sweeps: checkpoint label -> Sweep.
        notes: what the reader should know (baselines left out, respondents dropped).
    """

    survey_name: str
    fingerprint: str
    attributes: list[str]
    questions: list[str]
    split: dict
    n_scored: dict[str, int]
    mode: str
    config: IndividualConfig
    entries: list[str]
    baselines: list[str]
    table: pd.DataFrame
    sweeps: dict[str, Sweep]
    n_profiles: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self, part: str = TEST) -> pd.DataFrame:
        """Mean scores over questions: each checkpoint at T = 1 and at its chosen T, then the
        baselines. Columns: entry, temperature, chosen, then INDIVIDUAL_SCORES keys."""
        records = []
        for label, sweep in self.sweeps.items():
            for t in dict.fromkeys([1.0, sweep.chosen]):
                if sweep.at(t, part):
                    records.append({"entry": label, "temperature": t,
                                    "chosen": t == sweep.chosen, **sweep.at(t, part)})
        rows = self.table[(self.table["part"] == part) & self.table["temperature"].isna()]
        for entry, group in rows.groupby("entry", sort=False):
            records.append({"entry": entry, "temperature": math.nan, "chosen": False,
                            **_means(group)})
        return pd.DataFrame.from_records(
            records, columns=["entry", "temperature", "chosen", *INDIVIDUAL_SCORES])


def _means(rows: pd.DataFrame) -> dict[str, float]:
    """Mean of each score over questions (NaN-aware: RMSEs over ordinal questions only)."""
    return {k: float(rows[k].mean()) if rows[k].notna().any() else math.nan
            for k in INDIVIDUAL_SCORES}


def _sample(index: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """At most `limit` respondents (seeded), in their original order."""
    if limit is None or len(index) <= limit:
        return index
    keep = np.random.default_rng(seed).choice(len(index), size=limit, replace=False)
    return index[np.sort(keep)]


def _respondents(table: RespondentTable, question: Question, attributes: list[str],
                 config: IndividualConfig) -> _Respondents:
    """Validation and test respondents of one question with a complete profile."""
    groups = table.groups[attributes]
    usable = table.answered(question) & groups.notna().all(axis=1).to_numpy()
    index = table.frame.index
    chosen = {part: _sample(index[table.in_part(part) & usable], config.max_respondents,
                            config.split_seed) for part in (VAL, TEST)}
    order = pd.Index(np.concatenate([chosen[VAL], chosen[TEST]]))
    at = index.get_indexer(order)                        # their positions in the table
    return _Respondents(question, order, table.answer_codes(question, at), table.weights[at],
                        np.array([VAL] * len(chosen[VAL]) + [TEST] * len(chosen[TEST])),
                        list(groups.loc[order].itertuples(index=False, name=None)))


def _profile_pairs(items: list[_Respondents], attributes) -> dict[tuple, _Pair]:
    """Each distinct (question, profile) once: identical profiles share one prompt."""
    return {(item.question.id, profile): _Pair(item.question, dict(zip(attributes, profile)))
            for item in items for profile in dict.fromkeys(item.profile)}


def _score_rows(entry: str, temperature: float, item: _Respondents, **prediction) -> list[dict]:
    """One table row per part: the entry's scores on one question. A respondent whose
    prediction is missing (no answer of the model could be read: all NaN) is left out of
    the scores, and counted in n_unread."""
    rows = []
    probs = prediction.get("probs")
    read = ~np.isnan(probs).any(axis=1) if probs is not None else np.ones(len(item.part), bool)
    for part in (VAL, TEST):
        mask = (item.part == part) & read
        unread = int(((item.part == part) & ~read).sum())
        if not mask.any():
            if unread:
                rows.append({"entry": entry, "temperature": temperature, "part": part,
                             "question_id": item.question.id, "n": 0, "n_unread": unread})
            continue
        chosen = {k: (v[mask] if v is not None else None) for k, v in prediction.items()}
        scores = score_predictions(item.question, item.answers[mask], item.weights[mask],
                                   **chosen)
        rows.append({"entry": entry, "temperature": temperature, "part": part,
                     "question_id": item.question.id, "n": int(mask.sum()),
                     "n_unread": unread, **scores})
    return rows


def _runs(sim: SimConfig, temperatures) -> dict[float | None, SimConfig]:
    """The simulation runs of one checkpoint: first-token runs once (its letters are
    tempered afterwards, key None); sampling runs once per temperature."""
    if sim.mode == "first-token":
        return {None: sim}
    return {t: dataclasses.replace(sim, temperature=t) for t in temperatures}


def _simulated(lm, pairs, sim: SimConfig, temperatures, progress, should_stop):
    """temperature (None: first-token, tempered later) -> (question, profile) -> shares."""
    runs = _runs(sim, temperatures)
    out = {}
    for i, (t, config) in enumerate(runs.items()):
        results = simulate_rows(lm, list(pairs.values()), config, should_stop=should_stop,
                                progress=model_progress(progress, i, len(runs)))
        out[t] = {key: r.shares for key, r in zip(pairs, results)}
    return out


def _plan(models, pairs, sim: SimConfig, temperatures) -> RunPlan:
    """Requests and tokens of every checkpoint's runs over these profiles."""
    rows = list(pairs.values())
    return sum((plan_rows(lm, rows, config) for lm in models
                for config in _runs(sim, temperatures).values()), RunPlan())


def _checkpoint_rows(label, shares, items, sim: SimConfig, temperatures) -> list[dict]:
    """Scores of one checkpoint at every temperature on every question."""
    rows = []
    for t in temperatures:
        by_pair = shares[None] if sim.mode == "first-token" else shares[t]
        for item in items:
            probs = np.array([by_pair[(item.question.id, p)] for p in item.profile])
            if sim.mode == "first-token":
                probs = temper(probs, t)
            rows += _score_rows(label, t, item, probs=probs)
    return rows


def _baseline_rows(name: str, table: RespondentTable, items: list[_Respondents],
                   attributes: list[str], notes: list[str]) -> list[dict]:
    """Scores of one baseline on every question (fitted on the non-test respondents)."""
    rows = []
    for item in items:
        q = item.question
        try:
            if name in ("uniform", "population"):
                prediction = {"probs": _row_guess(name, table, q, len(item.index))}
            else:
                fit = fit_demographic(name, table, q.id, features=attributes)
                at = fit.index.get_indexer(item.index)
                prediction = ({"probs": fit.probs[at]} if fit.probs is not None
                              else {"values": fit.values[at]})
        except DataError as error:
            notes.append(f"{name} left out for {q.id}: {error}")
            continue
        rows += _score_rows(baseline_entry(name), math.nan, item, **prediction)
    return rows


def _row_guess(name: str, table: RespondentTable, question: Question, n: int) -> np.ndarray:
    """The same distribution for everyone: uniform, or the non-test respondents' shares."""
    if name == "uniform":
        return np.full((n, question.k), 1.0 / question.k)
    seen = table.answered(question) & ~table.in_part(TEST)
    shares = np.bincount(table.answer_codes(question, seen), weights=table.weights[seen],
                         minlength=question.k)
    return np.tile(shares / shares.sum(), (n, 1))


def _unread_notes(table: pd.DataFrame, labels: list[str]) -> list[str]:
    """A note per checkpoint some of whose answers could not be read (left out, not guessed)."""
    if "n_unread" not in table:
        return []
    out = []
    for label in labels:
        unread = int(table.loc[table["entry"] == label, "n_unread"].fillna(0).sum())
        if unread:
            out.append(f"{label}: {unread} respondent predictions (over temperatures, parts "
                       "and questions) had no readable answer and are left out of its "
                       "scores, never replaced by a guess.")
    return out


def _sweep(label: str, rows: pd.DataFrame, mode: str, criterion: str) -> Sweep:
    """Mean scores per temperature and part; the temperature chosen on validation."""
    curve = pd.DataFrame.from_records(
        [{"temperature": t, "part": part, **_means(group)}
         for (t, part), group in rows.groupby(["temperature", "part"], sort=True)])
    val = curve[curve["part"] == VAL].dropna(subset=[criterion])
    if val.empty:
        raise DataError(f"{label}: no validation scores for '{criterion}': it needs ordinal "
                        "questions for rmse, and answers that can be read (none of this "
                        "checkpoint's could be, in this mode); choose another criterion or "
                        "mode.")
    best = val[criterion].idxmin()
    return Sweep(label, mode, criterion, curve, float(val.loc[best, "temperature"]))


def _prepare(survey: Survey, attributes, questions, config: IndividualConfig, wave, bins):
    """The respondent split, the respondent table, the checked attributes and each
    question's validation and test respondents (those with a complete profile)."""
    require_respondents(survey, "individual-level simulation (and its temperature sweep)")
    split = respondent_split(survey, test_fraction=config.test_fraction,
                             val_fraction=config.val_fraction, seed=config.split_seed)
    table = RespondentTable.build(survey, attributes, wave=wave, bins=bins, split=split)
    attributes = table.check_attributes(attributes)
    ids = list(questions or survey.questions)
    items = [_respondents(table, survey.question(q), attributes, config) for q in ids]
    items = [item for item in items if len(item.index)]
    if not items:
        raise DataError("no validation or test respondent has a complete profile on "
                        f"{', '.join(attributes)}.")
    if config.criterion == "rmse" and not any(i.question.is_ordinal for i in items):
        raise DataError("choosing the temperature by RMSE needs an ordinal question.")
    return split, table, attributes, items


def plan_individuals(models: list[ModelHandle], survey: Survey, attributes: Sequence[str], *,
                     questions: Sequence[str] | None = None,
                     config: IndividualConfig | None = None, sim: SimConfig | None = None,
                     wave: str | None = None, bins=None) -> RunPlan:
    """What evaluate_individuals() with these arguments would send, before anything is
    sent: every checkpoint's requests and tokens over the distinct profiles, once for
    first-token and once per temperature when sampling (answers already in the cache left
    out).

    Returns:
        The RunPlan summed over checkpoints and runs (RunPlan.text() says it in one line).
    """
    config, sim = config or IndividualConfig(), with_survey_style(sim or SimConfig(), survey)
    _, _, attributes, items = _prepare(survey, attributes, questions, config, wave, bins)
    return _plan(models, _profile_pairs(items, attributes), sim, config.temperatures)


def evaluate_individuals(models: list[ModelHandle], survey: Survey, attributes: Sequence[str], *,
                         questions: Sequence[str] | None = None,
                         config: IndividualConfig | None = None, sim: SimConfig | None = None,
                         baselines: Sequence[str] = INDIVIDUAL_BASELINES,
                         wave: str | None = None, bins=None, progress: Progress = None,
                         should_stop: ShouldStop = None) -> IndividualResult:
    """Simulate every validation and test respondent from their profile, sweep the
    temperature, and score checkpoints and baselines on the held-out respondents.

    Args:
        models: LoadedModel list (base models and/or adapters).
        survey: a respondent-level Survey (DataError for marginal tables).
        attributes: the demographics that make up a profile (each needs two groups or more);
            the model baselines use the same attributes as features.
        questions: question ids (default: every question).
        config: split, temperatures and criterion (IndividualConfig).
        sim: SimConfig (mode first-token: letters tempered; sample: one run per temperature).
        baselines: among INDIVIDUAL_BASELINES (svr is left out, with a note, on nominal
            questions).
        wave, bins: as in sim_core.survey.slices.real_marginals.
        progress: (done, total) callback; should_stop: polled, raises Cancelled.
    Returns:
        IndividualResult (summary(): the held-out scores; sweeps: the curves).
    """
    # the survey's population and variable labels in the persona, as in compare/evaluate
    # and as an adapter trained on this survey was prompted
    config, sim = config or IndividualConfig(), with_survey_style(sim or SimConfig(), survey)
    unknown = [b for b in baselines if b not in INDIVIDUAL_BASELINES]
    if unknown:
        raise DataError(f"unknown baseline(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(INDIVIDUAL_BASELINES)}.")
    split, table, attributes, items = _prepare(survey, attributes, questions, config, wave,
                                               bins)
    pairs = _profile_pairs(items, attributes)
    # the whole run against Most requests (each checkpoint's or temperature's part alone
    # could fit); nothing is sent when it is over
    if sim.max_requests is not None:
        check_budget(_plan(models, pairs, sim, config.temperatures), sim.max_requests)
    labels, rows, notes = unique_labels(models), [], []
    check_adapter_splits(models, config.test_fraction, config.split_seed, notes)
    for i, (lm, label) in enumerate(zip(models, labels)):
        shares = _simulated(lm, pairs, sim, config.temperatures, should_stop=should_stop,
                            progress=model_progress(progress, i, len(models)))
        rows += _checkpoint_rows(label, shares, items, sim, config.temperatures)
    for name in baselines:
        rows += _baseline_rows(name, table, items, attributes, notes)
    table = pd.DataFrame.from_records(rows)
    notes += _unread_notes(table, labels)
    sweeps = {label: _sweep(label, table[table["entry"] == label], sim.mode,
                            config.criterion) for label in labels}
    n_scored = {part: int(sum((i.part == part).sum() for i in items)) for part in (VAL, TEST)}
    return IndividualResult(survey.name, survey.fingerprint, attributes,
                            [i.question.id for i in items], split.info.to_dict(), n_scored,
                            sim.mode,
                            config, labels, [b for b in baselines], table, sweeps,
                            len(pairs), notes)


def sweep_record(result: IndividualResult, label: str) -> dict:
    """The temperature sweep of one checkpoint as stored in its adapter card
    (AdapterCard.temperature_sweep): the curve, the chosen temperature and where it was
    chosen."""
    sweep = result.sweeps[label]
    curve = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
              for k, v in row.items()} for row in sweep.curve.to_dict(orient="records")]
    return {"mode": sweep.mode, "criterion": sweep.criterion, "chosen": sweep.chosen,
            "chosen_on": VAL, "temperatures": list(result.config.temperatures),
            "curve": curve, "survey": result.survey_name, "fingerprint": result.fingerprint,
            "attributes": result.attributes, "questions": result.questions,
            "split": result.split, "n_scored": result.n_scored,
            "date": datetime.now(UTC).isoformat(timespec="seconds")}

