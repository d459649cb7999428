"""Divergence scores between a real (p) and a simulated (q) answer distribution.

One registry, METRICS, holds every score with its metadata so that the UI, the report,
the CLI and the tests read the same table (formulas as in DESIGN.md). Every score is
vectorised over rows: p and q of shape (k,) give a float, (m, k) give an array (m,).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.stats import chi2 as chi2_dist

KL_SMOOTHING = 1e-8   # added to q before renormalising, so that KL stays finite


@dataclass(frozen=True)
class Metric:
    """Metadata of one score (what the UI and report print next to it)."""

    key: str
    name: str
    formula: str
    direction: str      # "lower" | "higher": which is better
    range: str
    fn: Callable[..., np.ndarray] = field(compare=False, repr=False)
    ordinal_only: bool = False
    needs_n: bool = False


# ---------------------------------------------------------------- helpers

def _rows(x) -> np.ndarray:
    """As float64 of shape (m, k)."""
    return np.atleast_2d(np.asarray(x, dtype=np.float64))


def _xlogy_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row sums of a * ln(a / b) with 0 ln 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0) / b), 0.0)
    return terms.sum(axis=1)


def _smooth(q: np.ndarray) -> np.ndarray:
    q = q + KL_SMOOTHING
    return q / q.sum(axis=1, keepdims=True)


def is_ordinal(ordinal_values) -> bool:
    """True when at least two distinct finite ordinal values exist."""
    if ordinal_values is None:
        return False
    values = np.asarray(ordinal_values, dtype=np.float64)
    return np.unique(values[np.isfinite(values)]).size >= 2


# ---------------------------------------------------------------- scores

def _kl(p, q, **_):
    return _xlogy_ratio(p, _smooth(q))


def _js(p, q, **_):
    m = (p + q) / 2
    return (0.5 * _xlogy_ratio(p, m) + 0.5 * _xlogy_ratio(q, m)) / math.log(2)


def _tv(p, q, **_):
    return 0.5 * np.abs(p - q).sum(axis=1)


def _cosine(p, q, **_):
    norm = np.linalg.norm(p, axis=1) * np.linalg.norm(q, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (p * q).sum(axis=1) / norm


def _jaccard(p, q, **_):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.minimum(p, q).sum(axis=1) / np.maximum(p, q).sum(axis=1)


def _rmse(p, q, **_):
    return np.sqrt(((p - q) ** 2).mean(axis=1))


def _wasserstein(p, q, *, ordinal_values=None, **_):
    """Ordinal Wasserstein-1 normalised by the value range; NaN for nominal questions."""
    if not is_ordinal(ordinal_values):
        return np.full(p.shape[0], np.nan)
    values = np.asarray(ordinal_values, dtype=np.float64)
    keep = np.flatnonzero(np.isfinite(values))
    keep = keep[np.argsort(values[keep], kind="stable")]   # by value, not by position
    v, ps, qs = values[keep], p[:, keep], q[:, keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        # non-substantive options left out: renormalise over the substantive ones
        ps = ps / ps.sum(axis=1, keepdims=True)
        qs = qs / qs.sum(axis=1, keepdims=True)
    gaps = np.diff(v) / (v[-1] - v[0])
    cdf_gap = np.abs(np.cumsum(ps, axis=1) - np.cumsum(qs, axis=1))[:, :-1]
    return (cdf_gap * gaps).sum(axis=1)


def _chi2(p, q, *, n=None, **_):
    counts = np.asarray(n, dtype=np.float64).reshape(-1, 1) * p
    expected = np.asarray(n, dtype=np.float64).reshape(-1, 1) * _smooth(q)
    return ((counts - expected) ** 2 / expected).sum(axis=1)


def _chi2_p(p, q, *, n=None, **_):
    return chi2_dist.sf(_chi2(p, q, n=n), p.shape[1] - 1)


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("wasserstein", "Wasserstein (ordinal)",
           "sum over adjacent options of |CDF_p - CDF_q| x gap in ordinal values, "
           "divided by (v_max - v_min); ordinal questions only", "lower", "[0, 1]",
           _wasserstein, ordinal_only=True),
    Metric("js", "JS divergence", "1/2 KL(p||m) + 1/2 KL(q||m), m = (p+q)/2, base 2",
           "lower", "[0, 1]", _js),
    Metric("kl", "KL divergence",
           "sum p_i ln(p_i / q_i), nats; q smoothed with 1e-8 and renormalised",
           "lower", "[0, inf)", _kl),
    Metric("tv", "Total variation", "1/2 sum |p_i - q_i|", "lower", "[0, 1]", _tv),
    Metric("chi2", "Chi-square", "Pearson X^2 = sum (n p_i - n q_i)^2 / (n q_i) of the real "
           "counts n p against the simulated shares q", "lower", "[0, inf)", _chi2,
           needs_n=True),
    Metric("chi2_p", "Chi-square p-value", "P(X^2 >= observed) on k-1 degrees of freedom",
           "higher", "[0, 1]", _chi2_p, needs_n=True),
    Metric("cosine", "Cosine similarity", "p.q / (|p| |q|)", "higher", "[0, 1]", _cosine),
    Metric("jaccard", "Jaccard (weighted)", "sum min(p_i, q_i) / sum max(p_i, q_i)",
           "higher", "[0, 1]", _jaccard),
    Metric("rmse", "RMSE", "sqrt(mean (p_i - q_i)^2) over options", "lower", "[0, 1]", _rmse),
)}
"""Every score in display order: the one table the UI, report, CLI and tests read."""


def compute(key: str, p, q, *, ordinal_values=None, n=None) -> float | np.ndarray:
    """One score between real p and simulated q.

    Args:
        key: a key of METRICS.
        p: real distribution(s), shape (k,) or (m, k).
        q: simulated distribution(s), same shape (or (k,), broadcast over rows).
        ordinal_values: one value per option (NaN = non-substantive); needed for Wasserstein.
        n: real sample size (scalar or one per row); needed for chi2 / chi2_p.

    Returns:
        A float for 1-D input, else an array (m,). Wasserstein on a nominal question is NaN.

    Raises:
        KeyError: unknown score key. ValueError: shapes differ, or n missing for chi2.
    """
    if key not in METRICS:
        raise KeyError(f"unknown score {key!r}; known: {', '.join(METRICS)}")
    single = np.ndim(p) == 1 and np.ndim(q) == 1
    p2, q2 = _rows(p), _rows(q)
    if p2.shape[1] != q2.shape[1] or (p2.shape[0] != q2.shape[0] and 1 not in
                                      (p2.shape[0], q2.shape[0])):
        raise ValueError(f"p and q do not match: shapes {np.shape(p)} and {np.shape(q)}")
    p2, q2 = np.broadcast_arrays(p2, q2)
    if ordinal_values is not None and len(ordinal_values) != p2.shape[1]:
        raise ValueError(f"{len(ordinal_values)} ordinal values for {p2.shape[1]} options")
    if METRICS[key].needs_n and n is None:
        raise ValueError(f"score {key!r} needs the real sample size n")
    out = METRICS[key].fn(p2, q2, ordinal_values=ordinal_values, n=n)
    return float(out[0]) if single else out


def score_all(p, q, *, ordinal_values=None, n=None) -> dict[str, float]:
    """Every applicable score of one (p, q) pair, in METRICS order.

    Wasserstein is absent (not 0) for nominal questions; chi2 / chi2_p are absent when n
    is None.
    """
    out: dict[str, float] = {}
    for key, metric in METRICS.items():
        if metric.ordinal_only and not is_ordinal(ordinal_values):
            continue
        if metric.needs_n and (n is None or not n > 0):
            continue
        out[key] = float(compute(key, p, q, ordinal_values=ordinal_values, n=n))
    return out


def score_rows(p, q, *, ordinal_values=None) -> dict[str, np.ndarray]:
    """Every score that needs no n, for rows of one question: key -> array (m,)."""
    return {key: np.asarray(compute(key, p, q, ordinal_values=ordinal_values))
            for key, m in METRICS.items()
            if not m.needs_n and (not m.ordinal_only or is_ordinal(ordinal_values))}


# ---------------------------------------------------------------- noise floor

def noise_floor(p, n_eff, *, ordinal_values=None, n_sims: int = 500,
                seed: int = 0) -> dict[str, float]:
    """Expected score between two independent samples of size round(n_eff) from p.

    This is what a perfect simulator would score against a real sample of this size, the
    floor below which no difference means anything. Seeded Monte Carlo, vectorised and
    cached. The chi-square scores are left out: their p-value already accounts for
    sampling noise.

    Args:
        p: the real distribution (k,).
        n_eff: effective sample size; None or < 1 gives {}.
        ordinal_values: as in compute().
        n_sims: Monte Carlo draws.
        seed: random seed.

    Returns:
        score key -> mean score over the draws.
    """
    if n_eff is None or not np.isfinite(n_eff) or round(float(n_eff)) < 1:
        return {}
    p = np.asarray(p, dtype=np.float64)
    values = None if ordinal_values is None else tuple(float(v) for v in ordinal_values)
    return dict(_noise_floor(tuple(p / p.sum()), int(round(float(n_eff))), values,
                             int(n_sims), int(seed)))


@lru_cache(maxsize=4096)
def _noise_floor(p: tuple, n: int, ordinal_values, n_sims: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    a = rng.multinomial(n, p, size=n_sims) / n
    b = rng.multinomial(n, p, size=n_sims) / n
    scores = score_rows(a, b, ordinal_values=ordinal_values)
    # nanmean: a draw can fall wholly on non-substantive options (no Wasserstein there)
    with np.errstate(invalid="ignore"):
        return tuple((key, float(np.nanmean(v)) if np.isfinite(v).any() else math.nan)
                     for key, v in scores.items())


def best_entry(scores: dict[str, float], key: str, *, direction: str | None = None
               ) -> str | None:
    """The entry with the best finite value of score `key` (None when there is none).

    Args:
        scores: entry -> value of that score.
        key: a METRICS key; its direction decides lower or higher.
        direction: "lower" | "higher", overriding METRICS (a saved report carries its own).
    """
    finite = {e: float(v) for e, v in scores.items()
              if isinstance(v, (int, float)) and np.isfinite(v)}
    if not finite:
        return None
    pick = min if (direction or METRICS[key].direction) == "lower" else max
    return pick(finite, key=finite.get)
