"""Calibration applied to simulated answer distributions: a temperature on the letter
probabilities, a shrinkage weight toward a reference distribution, and a prediction interval
around every share.

    calibrated = (1 - w) * temper(q, T) + w * reference,   temper(q, T) ∝ q ** (1 / T)

T > 1 flattens an over-confident model, T < 1 sharpens it; w pulls the result toward the
uniform guess or toward the training prior by option position. How T and w are chosen (on
validation rows, behind two gates) lives with the evaluation:
sim_core.evaluation.calibration_fit.

Prediction intervals are split conformal: the conformity score of one share is
|real - simulated| / scale(simulated) on the validation rows; for a new share q the interval
is q +- s * scale(q), where s is the ceil((n + 1) * level)-th smallest validation score. Raw
and calibrated residuals are both kept, so intervals exist with calibration on or off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from sim_core.base.errors import SimError
from sim_core.base.options import Choice, registry

REFERENCES = registry(
    Choice("uniform", "Uniform guess", "every option equally likely"),
    Choice("prior", "Training prior by option position",
           "the mean real answer shares at each option position of the training rows"),
)


TEMPERATURE_BOUNDS = (0.05, 20.0)   # wide enough for any sane model; keeps the fit finite


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
    def from_dict(cls, data: dict) -> Calibration:
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
