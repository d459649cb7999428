"""Calibration of simulated answer distributions: a temperature on the letter probabilities
and a shrinkage weight toward a reference distribution, fitted on validation rows.

    calibrated = (1 - w) * temper(q, T) + w * reference,   temper(q, T) ∝ q ** (1 / T)

T > 1 flattens an over-confident model, T < 1 sharpens it; w pulls the result toward the
uniform guess or toward the training prior by option position (what real answers look like
on average at each letter). Both are chosen to minimise the mean KL(real || calibrated) on
rows never used for testing. A checkpoint no better than a uniform guess gets w near 1, so
its bars say honestly how little it knows.

Two gates, both judged on questions the fit did not see (cross-fitting: the validation
questions in folds, each fold's rows calibrated by the fit on the others) and both needing a
95 % bootstrap interval (questions resampled) wholly below no gain:
1. gain: the fit is kept only when it beats the raw shares; otherwise the calibration is the
   identity and the shares stay as simulated;
2. skill: what was kept (fit or raw shares) must beat the plain uniform guess; otherwise the
   calibration is the uniform guess itself (w = 1).
Why: the fit is chosen on the very rows it would be judged on, where it can only look
better; a handful of validation questions can make a temperature or the option-position
prior look useful by chance, and on unseen questions such a fit was measured worse than
both the raw shares and the uniform guess (docs/fidelity.md).

Prediction intervals are split conformal: the conformity score of one share is
|real - simulated| / scale(simulated) on the validation rows; for a new share q the interval
is q +- s * scale(q), where s is the ceil((n + 1) * level)-th smallest validation score. Raw
and calibrated residuals are both kept, so intervals exist with calibration on or off.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np
from scipy.optimize import minimize

from sim_core.errors import SimError
from sim_core.metrics import compute
from sim_core.options import Choice, registry
from sim_core.verdict import cluster_interval

REFERENCES = registry(
    Choice("uniform", "Uniform guess", "every option equally likely"),
    Choice("prior", "Training prior by option position",
           "the mean real answer shares at each option position of the training rows"),
)
TEMPERATURE_BOUNDS = (0.05, 20.0)   # wide enough for any sane model; keeps the fit finite
SKILL_LEVEL = 0.95                  # the gates' bootstrap interval
CROSS_FIT_FOLDS = 10                # folds of questions for the cross-fitted gain
RESIDUAL_DIGITS = 5                 # conformity scores are stored rounded (JSON size)
SCALE_FLOOR = 0.05                  # share_scale's floor (see there)


def temper(shares, temperature: float) -> np.ndarray:
    """Distribution(s) raised to 1 / temperature and renormalised (rows of (m, k) or (k,))."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise SimError(f"temperature must be a positive number, not {temperature!r}.")
    q = np.asarray(shares, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logits = np.log(np.clip(q, 0.0, None)) / temperature
    logits -= np.max(logits, axis=-1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=-1, keepdims=True)


def position_prior(real: Sequence[np.ndarray]) -> dict[int, list[float]]:
    """Mean real distribution by option position, per number of options k."""
    by_k: dict[int, list[np.ndarray]] = defaultdict(list)
    for dist in real:
        by_k[len(dist)].append(np.asarray(dist, dtype=np.float64))
    return {k: (np.mean(d, axis=0) / np.mean(d, axis=0).sum()).tolist() for k, d in by_k.items()}


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration (identity by default).

    Attributes:
        temperature: T on the letter probabilities (1 = unchanged).
        shrink: weight w of the reference, in [0, 1] (0 = unchanged).
        reference: "uniform" or "prior" (REFERENCES).
        prior: k -> shares by option position (reference "prior"; uniform for other k).
        fitted_on: what it was fitted on (rows, split, orders, mean KL before and after).
        residuals: "raw" / "calibrated" -> sorted conformity scores of every validation
            share (empty: no intervals).
    """

    temperature: float = 1.0
    shrink: float = 0.0
    reference: str = "uniform"
    prior: dict[int, list[float]] | None = None
    fitted_on: dict = field(default_factory=dict)
    residuals: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        low, high = TEMPERATURE_BOUNDS
        if not (low <= self.temperature <= high) or not 0 <= self.shrink <= 1:
            raise SimError(f"calibration out of range: temperature {self.temperature} (must be "
                           f"{low} to {high}), shrink {self.shrink} (must be 0 to 1).")
        if self.reference not in REFERENCES:
            raise SimError(f"unknown calibration reference '{self.reference}': use "
                           + ", ".join(REFERENCES) + ".")

    def reference_for(self, k: int) -> np.ndarray:
        """The reference distribution over k options."""
        if self.reference == "prior" and self.prior and k in self.prior:
            return np.asarray(self.prior[k], dtype=np.float64)
        return np.full(k, 1.0 / k)

    def apply(self, shares) -> np.ndarray:
        """Calibrated distribution(s) in the same shape as `shares`."""
        q = temper(shares, self.temperature)
        return (1 - self.shrink) * q + self.shrink * self.reference_for(q.shape[-1])

    def interval(self, shares, level: float = 0.9, *, calibrated: bool = True
                 ) -> tuple[np.ndarray, np.ndarray] | None:
        """Split-conformal prediction interval of every share, or None without residuals.

        Args:
            shares: simulated shares (k,) or (m, k): calibrated ones when `calibrated`.
            level: nominal coverage in (0, 1).
            calibrated: use the residuals of the calibrated (else the raw) validation shares.
        Returns:
            (low, high), clipped to [0, 1], in the shape of `shares`.
        """
        scores = self.residuals.get("calibrated" if calibrated else "raw") or []
        if not scores:
            return None
        half = conformal_quantile(scores, level)
        q = np.asarray(shares, dtype=np.float64)
        width = half * share_scale(q)
        return np.clip(q - width, 0.0, 1.0), np.clip(q + width, 0.0, 1.0)

    @property
    def is_identity(self) -> bool:
        """True when applying it changes nothing."""
        return self.temperature == 1.0 and self.shrink == 0.0

    def to_dict(self) -> dict:
        """JSON-ready (prior keys become strings)."""
        out = asdict(self)
        if self.prior is not None:
            out["prior"] = {str(k): v for k, v in self.prior.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        """Inverse of to_dict; SimError when malformed."""
        try:
            prior = data.get("prior")
            return cls(temperature=float(data.get("temperature", 1.0)),
                       shrink=float(data.get("shrink", 0.0)),
                       reference=str(data.get("reference", "uniform")),
                       prior=None if prior is None else {int(k): [float(x) for x in v]
                                                         for k, v in prior.items()},
                       fitted_on=dict(data.get("fitted_on") or {}),
                       residuals={str(k): [float(x) for x in v]
                                  for k, v in (data.get("residuals") or {}).items()})
        except (TypeError, ValueError, AttributeError) as error:
            raise SimError(f"malformed calibration record: {error}") from error


def summary(calibration: Calibration) -> dict:
    """The calibration in a few plain values (no residuals), with a sentence for people."""
    facts = calibration.fitted_on
    text = (f"temperature {calibration.temperature:.2f}, shrink {calibration.shrink:.2f} "
            f"toward {REFERENCES[calibration.reference].label.lower()}")
    if facts.get("fallback") == "raw":
        text = ("none: the shares are left as simulated, as the fit "
                f"({facts.get('fit_without_gain', '')}) did not beat them on validation "
                f"questions it was not fitted on ({_numbers(facts.get('gain'))})")
    elif facts.get("fallback"):
        text = ("no skill shown on the validation rows, so its shares are replaced by the "
                f"uniform guess (mean KL of the {facts.get('skill_of', 'best fit')} minus the "
                f"uniform guess's {_numbers(facts.get('skill'))})")
    if "n_rows" in facts:
        text += f", fitted on {facts['n_rows']} validation rows"
    return {"temperature": calibration.temperature, "shrink": calibration.shrink,
            "reference": calibration.reference, "n_rows": facts.get("n_rows"),
            "kl_raw": facts.get("kl_raw"), "kl_calibrated": facts.get("kl_calibrated"),
            "fallback": facts.get("fallback") or "", "text": text}


def _numbers(gate: dict | None) -> str:
    """A gate's difference and interval in words."""
    gate = gate or {}
    return (f"{gate.get('difference', float('nan')):+.3f}, {SKILL_LEVEL * 100:g} % CI "
            f"{gate.get('ci_low', float('nan')):+.3f}..{gate.get('ci_high', float('nan')):+.3f}")


def share_scale(q) -> np.ndarray:
    """How far a share can move, for the conformity score: sqrt(q (1 - q)) plus a floor.

    A share near 0 or 1 moves less than one near 1/2 (a binomial standard deviation); the
    floor keeps intervals around tiny shares from collapsing to nothing.
    """
    q = np.asarray(q, dtype=np.float64)
    return np.sqrt(q * (1 - q)) + SCALE_FLOOR


def conformity_scores(real, simulated) -> np.ndarray:
    """|real - simulated| / share_scale(simulated) of every share of every row (flat)."""
    return np.concatenate([np.abs(np.asarray(p, float) - np.asarray(q, float)) / share_scale(q)
                           for p, q in zip(real, simulated)])


def conformal_quantile(scores: Sequence[float], level: float) -> float:
    """The ceil((n + 1) level)-th smallest score (inf when n is too small for the level)."""
    if not 0 < level < 1:
        raise SimError(f"interval level must be between 0 and 1, not {level!r}.")
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    rank = math.ceil((len(ordered) + 1) * level)
    return float(ordered[rank - 1]) if rank <= len(ordered) else math.inf


def _residuals(real, simulated) -> list[float]:
    """Sorted, rounded conformity scores (as stored in a Calibration)."""
    return np.round(np.sort(conformity_scores(real, simulated)), RESIDUAL_DIGITS).tolist()


def _mean_kl(real: dict[int, np.ndarray], sim: dict[int, np.ndarray], calibration) -> float:
    """Mean KL(real || calibrated) over all rows (grouped by k for vectorised scoring)."""
    total = n = 0.0
    for k in real:
        values = compute("kl", real[k], calibration.apply(sim[k]))
        total += float(np.sum(values))
        n += len(values)
    return total / n


def _row_kl(real, distributions) -> np.ndarray:
    """KL(real || distribution) of every row, in row order."""
    return np.array([float(compute("kl", np.asarray(p, dtype=np.float64)[None],
                                   np.asarray(q, dtype=np.float64)[None])[0])
                     for p, q in zip(real, distributions, strict=True)])


def kl_difference(real, first, second, units: Sequence | None = None) -> dict:
    """How much the distributions `first` beat `second` in KL(real || .), per unit
    (question), with a bootstrap interval over units: the one measure of both gates.

    Args:
        real: the real distribution of each row.
        first, second: two distributions per row (e.g. calibrated shares, the uniform guess).
        units: the cluster of each row (its question id); None: every row its own unit.
    Returns:
        difference (mean KL first - second, row-weighted; negative = first better), ci_low,
        ci_high (SKILL_LEVEL bootstrap over units), units, shown (the whole interval below 0).
    """
    diff = _row_kl(real, first) - _row_kl(real, second)
    keys = list(units) if units is not None else list(range(len(diff)))
    if len(keys) != len(diff):
        raise SimError(f"{len(keys)} units for {len(diff)} calibration rows.")
    by_unit: dict = defaultdict(list)
    for key, value in zip(keys, diff):
        by_unit[key].append(value)
    means = np.array([np.mean(v) for v in by_unit.values()])
    sizes = np.array([len(v) for v in by_unit.values()], dtype=np.float64)
    low, high = cluster_interval(means, sizes, SKILL_LEVEL)
    return {"difference": float(np.average(means, weights=sizes)), "ci_low": low,
            "ci_high": high, "units": len(means), "shown": bool(high < 0)}


def _uniform(real) -> list[np.ndarray]:
    """The uniform guess for every row."""
    return [np.full(len(p), 1.0 / len(p)) for p in real]


def prior_skill(real: Sequence[np.ndarray], units: Sequence) -> dict:
    """Whether the position prior beats the uniform guess on questions it was not computed
    from: each unit (question) in turn is scored against the prior of all the others
    (leave one question out), and the KL differences get a bootstrap interval over units.

    Why: the prior is a property of the training questions; a small validation set can make
    it look useful by chance (measured: 11 validation questions of the GSS question split
    favoured it, the 27 test questions did not, and 95 training questions left out one at a
    time were split half and half).

    Returns:
        kl_difference's dict (prior minus uniform; negative = skill).
    """
    real = [np.asarray(p, dtype=np.float64) for p in real]
    units = list(units)
    if len(units) != len(real):
        raise SimError(f"{len(units)} units for {len(real)} rows.")
    prior_without: dict = {}        # unit -> the prior of every other unit's rows
    for unit in dict.fromkeys(units):
        others = [q for q, other in zip(real, units) if other != unit]
        prior_without[unit] = Calibration(shrink=1.0, reference="prior",
                                          prior=position_prior(others))
    left_out_prior = [prior_without[unit].apply(p) for p, unit in zip(real, units)]
    return kl_difference(real, left_out_prior, _uniform(real), units)


def cross_fitted(real, simulated, units: Sequence | None, *, reference: str, prior,
                 fit_shrink: bool) -> list[np.ndarray]:
    """Every row calibrated by a fit that never saw its unit (question): the units are dealt
    in turn into up to CROSS_FIT_FOLDS folds, and each fold's rows are calibrated by the fit
    on all the other folds (leave one question out when there are fewer questions). With a
    single unit there is nothing to fit on, and the rows stay raw.

    Why: the fit is chosen on the very rows it is then judged on, so on them it is never
    worse than the raw shares or the reference; only rows it did not see can show whether
    it carries over to new questions.
    """
    keys = list(units) if units is not None else list(range(len(real)))
    order = list(dict.fromkeys(keys))
    folds = min(CROSS_FIT_FOLDS, len(order))
    fold_of = {unit: i % folds for i, unit in enumerate(order)}
    out = [np.asarray(q, dtype=np.float64) for q in simulated]
    if folds < 2:
        return out
    for fold in range(folds):
        inside = [i for i, key in enumerate(keys) if fold_of[key] == fold]
        outside = [i for i, key in enumerate(keys) if fold_of[key] != fold]
        p_by_k, q_by_k = _group_by_k([real[i] for i in outside], [simulated[i] for i in outside])
        fit = _fit_one(p_by_k, q_by_k, reference, prior, fit_shrink)
        for i in inside:
            out[i] = fit.apply(simulated[i])
    return out


def _fit_one(p_by_k, q_by_k, reference: str, prior, fit_shrink: bool) -> Calibration:
    """The temperature (and shrinkage) minimising mean KL for one reference."""
    low, high = np.log(TEMPERATURE_BOUNDS)

    def make(x) -> Calibration:
        return Calibration(float(np.clip(np.exp(x[0]), *TEMPERATURE_BOUNDS)),
                           float(np.clip(x[1], 0, 1)) if fit_shrink else 0.0, reference, prior)

    def loss(x) -> float:
        return _mean_kl(p_by_k, q_by_k, make(x))

    starts = [(0.0, 0.0), (np.log(2.0), 0.5), (np.log(0.5), 0.1)]
    bounds = [(low, high), (0.0, 1.0 if fit_shrink else 0.0)]
    best = min((minimize(loss, np.array(s), method="L-BFGS-B", bounds=bounds) for s in starts),
               key=lambda result: result.fun)
    return make(best.x)


def _group_by_k(real, simulated) -> tuple[dict, dict]:
    """Rows grouped by their number of options (vectorised scoring); SimError on a mismatch."""
    if len(real) != len(simulated) or not len(real):
        raise SimError("calibration needs the same number (at least one) of real and "
                       "simulated distributions.")
    grouped_real: dict[int, list] = defaultdict(list)
    grouped_sim: dict[int, list] = defaultdict(list)
    for p, q in zip(real, simulated):
        if len(p) != len(q):
            raise SimError(f"a real distribution has {len(p)} options, its simulated one "
                           f"{len(q)}.")
        grouped_real[len(p)].append(p)
        grouped_sim[len(p)].append(q)
    return ({k: np.asarray(v, dtype=np.float64) for k, v in grouped_real.items()},
            {k: np.asarray(v, dtype=np.float64) for k, v in grouped_sim.items()})


def fit_calibration(real: Sequence[np.ndarray], simulated: Sequence[np.ndarray], *,
                    reference: str = "uniform", prior: dict[int, list[float]] | None = None,
                    fit_shrink: bool = True, fitted_on: dict | None = None,
                    units: Sequence | None = None, require_skill: bool = True
                    ) -> Calibration:
    """Temperature (and shrinkage) minimising the mean KL(real || calibrated), with the
    conformity scores of the raw and calibrated shares for prediction intervals.

    Args:
        real, simulated: one distribution per validation row (never test rows), in the
            question's option order; rows may have different numbers of options.
        reference: "uniform", "prior" (then `prior`, e.g. position_prior(training rows)) or
            "auto": both fitted, the one with the lower validation KL kept.
        fit_shrink: False fits the temperature alone (shrink stays 0).
        fitted_on: facts to keep with the result (split, orders, row count...).
        units: the question id of each row: the cross-fitting folds and the clusters of the
            gates' bootstrap (None: every row its own unit).
        require_skill: the two gates (module docstring): without a gain over the raw shares
            the identity is returned (fitted_on["fallback"] = "raw"), without skill over
            the uniform guess the uniform guess itself (shrink 1, fallback "uniform").
    Returns:
        The Calibration; fitted_on holds n_rows, the mean KL before and after (and per
        reference with "auto"), the gates' numbers ("gain", "skill"), residuals the
        conformity scores. With "auto" the cross-fitting refits the chosen reference only.
    """
    if reference not in (*REFERENCES, "auto"):
        raise SimError(f"unknown calibration reference '{reference}': use "
                       + ", ".join((*REFERENCES, "auto")) + ".")
    p_by_k, q_by_k = _group_by_k(real, simulated)
    candidates = ["uniform", "prior"] if reference == "auto" else [reference]
    if reference == "auto" and not prior:
        candidates = ["uniform"]
    fits = {name: _fit_one(p_by_k, q_by_k, name, prior if name == "prior" else None,
                           fit_shrink) for name in candidates}
    kls = {name: _mean_kl(p_by_k, q_by_k, fit) for name, fit in fits.items()}
    chosen = min(kls, key=kls.get)
    fitted = fits[chosen]
    facts = {**(fitted_on or {}), "n_rows": len(real),
             "kl_raw": _mean_kl(p_by_k, q_by_k, Calibration()), "kl_calibrated": kls[chosen]}
    if len(kls) > 1:
        facts["kl_by_reference"] = kls
    if require_skill:
        fitted = _gated(real, simulated, units, fitted, fit_shrink, facts)
        chosen = fitted.reference
        facts["kl_calibrated"] = _mean_kl(p_by_k, q_by_k, fitted)
    calibrated = [fitted.apply(q) for q in simulated]
    return Calibration(fitted.temperature, fitted.shrink, chosen, fitted.prior, facts,
                       {"raw": _residuals(real, simulated),
                        "calibrated": _residuals(real, calibrated)})


def _gated(real, simulated, units, fitted: Calibration, fit_shrink: bool,
           facts: dict) -> Calibration:
    """The two gates (module docstring), on rows the fit did not see: the fit if it beats the
    raw shares, else the raw shares (identity); that, if it beats the uniform guess, else
    the uniform guess (shrink 1). Their numbers go into `facts` ("gain", "skill")."""
    raw = [np.asarray(q, dtype=np.float64) for q in simulated]
    unseen = cross_fitted(real, simulated, units, reference=fitted.reference,
                          prior=fitted.prior, fit_shrink=fit_shrink)
    facts["gain"] = kl_difference(real, unseen, raw, units)
    kept = unseen
    if not facts["gain"]["shown"]:
        facts.update(fallback="raw", fit_without_gain=summary(fitted)["text"])
        fitted, kept = Calibration(), raw
    facts["skill"] = kl_difference(real, kept, _uniform(real), units)
    facts["skill_of"] = "raw shares" if facts.get("fallback") else "calibrated shares"
    if not facts["skill"]["shown"]:
        facts.update(fallback="uniform", fit_without_skill=(
            "none (raw shares)" if fitted.is_identity else summary(fitted)["text"]))
        fitted = Calibration(shrink=1.0)
    return fitted


def interval_coverage(calibration: Calibration, real: Sequence[np.ndarray],
                      simulated: Sequence[np.ndarray], level: float = 0.9, *,
                      calibrated: bool = True) -> dict[str, float]:
    """How often the prediction intervals hold the real share, on rows the fit never saw.

    Args:
        calibration: a fitted Calibration (with residuals).
        real: the real distributions of the held-out rows.
        simulated: their RAW simulated distributions (calibrated here when `calibrated`).
        level: nominal coverage.
        calibrated: intervals around calibrated (else raw) shares.
    Returns:
        level, coverage (share of real shares inside their interval), mean_width, n_shares.
    """
    inside, widths = [], []
    for p, q in zip(real, simulated):
        shown = calibration.apply(q) if calibrated else np.asarray(q, dtype=np.float64)
        bounds = calibration.interval(shown, level, calibrated=calibrated)
        if bounds is None:
            raise SimError("this calibration stores no residuals: no intervals to measure.")
        low, high = bounds
        inside.append((np.asarray(p) >= low - 1e-12) & (np.asarray(p) <= high + 1e-12))
        widths.append(high - low)
    flat_in, flat_w = np.concatenate(inside), np.concatenate(widths)
    return {"level": float(level), "coverage": float(flat_in.mean()),
            "mean_width": float(flat_w.mean()), "n_shares": int(flat_in.size)}


def calibrate_result(result: Any, calibration: Calibration | None, config: Any) -> Any:
    """A SimResult with the calibration applied (config.calibrate) and its prediction interval.

    Runs after debiasing and after the cache, which holds raw shares only; sampling mode is
    left as it is (its calibration was never measured).
    """
    if calibration is None or config.mode != "first-token":
        return result
    raw = result.shares
    if config.calibrate:
        result = replace(result, shares=calibration.apply(raw), raw_shares=raw,
                         calibrated=True)
    bounds = calibration.interval(result.shares, config.interval_level,
                                  calibrated=config.calibrate)
    if bounds is not None:
        result = replace(result, interval_low=bounds[0], interval_high=bounds[1])
    return result
