"""Fitting a calibration (sim_core.simulation.calibration: temperature T and shrinkage w
toward a reference) on validation rows, its gates, and the coverage of its intervals.

T and w are chosen to minimise the mean KL(real || calibrated) on rows never used for
testing. A checkpoint no better than a uniform guess gets w near 1, so its bars say honestly
how little it knows.

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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize

from sim_core.base.errors import SimError
from sim_core.base.metrics import compute
from sim_core.evaluation.verdict import cluster_interval
from sim_core.simulation.calibration import (
    REFERENCES,
    TEMPERATURE_BOUNDS,
    Calibration,
    conformity_scores,
)

SKILL_LEVEL = 0.95                  # the gates' bootstrap interval
CROSS_FIT_FOLDS = 10                # folds of questions for the cross-fitted gain
RESIDUAL_DIGITS = 5                 # conformity scores are stored rounded (JSON size)


def position_prior(real: Sequence[np.ndarray]) -> dict[int, list[float]]:
    """Mean real distribution by option position, per number of options k."""
    by_k: dict[int, list[np.ndarray]] = defaultdict(list)
    for dist in real:
        by_k[len(dist)].append(np.asarray(dist, dtype=np.float64))
    return {k: (np.mean(d, axis=0) / np.mean(d, axis=0).sum()).tolist() for k, d in by_k.items()}


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


