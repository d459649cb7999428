"""Calibration of simulated answer distributions: a temperature on the letter probabilities
and a shrinkage weight toward a reference distribution, fitted on validation rows.

    calibrated = (1 - w) * temper(q, T) + w * reference,   temper(q, T) ∝ q ** (1 / T)

T > 1 flattens an over-confident model, T < 1 sharpens it; w pulls the result toward the
uniform guess or toward the training prior by option position (what real answers look like
on average at each letter). Both are chosen to minimise the mean KL(real || calibrated) on
rows never used for testing. A checkpoint no better than a uniform guess gets w near 1, so
its bars say honestly how little it knows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import minimize

from sim_core.errors import SimError
from sim_core.metrics import compute
from sim_core.options import Choice, registry

REFERENCES = registry(
    Choice("uniform", "Uniform guess", "every option equally likely"),
    Choice("prior", "Training prior by option position",
           "the mean real answer shares at each option position of the training rows"),
)
TEMPERATURE_BOUNDS = (0.05, 20.0)   # wide enough for any sane model; keeps the fit finite


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
    """

    temperature: float = 1.0
    shrink: float = 0.0
    reference: str = "uniform"
    prior: dict[int, list[float]] | None = None
    fitted_on: dict = field(default_factory=dict)

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
                       fitted_on=dict(data.get("fitted_on") or {}))
        except (TypeError, ValueError, AttributeError) as error:
            raise SimError(f"malformed calibration record: {error}") from error


def _mean_kl(real: dict[int, np.ndarray], sim: dict[int, np.ndarray], calibration) -> float:
    """Mean KL(real || calibrated) over all rows (grouped by k for vectorised scoring)."""
    total = n = 0.0
    for k in real:
        values = compute("kl", real[k], calibration.apply(sim[k]))
        total += float(np.sum(values))
        n += len(values)
    return total / n


def fit_calibration(real: Sequence[np.ndarray], simulated: Sequence[np.ndarray], *,
                    reference: str = "uniform", prior: dict[int, list[float]] | None = None,
                    fit_shrink: bool = True, fitted_on: dict | None = None) -> Calibration:
    """Temperature (and shrinkage) minimising the mean KL(real || calibrated).

    Args:
        real, simulated: one distribution per validation row (never test rows), in the
            question's option order; rows may have different numbers of options.
        reference: "uniform" or "prior" (then `prior`, e.g. position_prior(training rows)).
        fit_shrink: False fits the temperature alone (shrink stays 0).
        fitted_on: facts to keep with the result (split, orders, row count...).
    Returns:
        The Calibration, with fitted_on holding n_rows and the mean KL before and after.
    """
    if len(real) != len(simulated) or not real:
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
    p_by_k = {k: np.asarray(v, dtype=np.float64) for k, v in grouped_real.items()}
    q_by_k = {k: np.asarray(v, dtype=np.float64) for k, v in grouped_sim.items()}
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
    fitted = make(best.x)
    identity = Calibration(reference=reference, prior=prior)
    facts = {**(fitted_on or {}), "n_rows": len(real),
             "kl_raw": _mean_kl(p_by_k, q_by_k, identity), "kl_calibrated": float(best.fun)}
    return Calibration(fitted.temperature, fitted.shrink, reference, prior, facts)
