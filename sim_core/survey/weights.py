"""Survey weights: candidates proposed by name and label, strict validation, and the
summary a survey researcher looks at first (sum, CV, Kish design effect)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.reading import rows_at

# Names that survey files give their weights: weight, wt*, *wgt*, *wght* (ESS pspwght,
# dweight), *_xw (UKHLS cross-sectional), w / w1 / w_2, pweight, GSS wtssall / wtssnr.
_WEIGHT_NAME = re.compile(r"^(.*weight.*|wt.*|.*_wt|.*wgt.*|.*wght.*|.*_xw|w|w_?\d+|pw)$")
_WEIGHT_LABEL = re.compile(r"\bweight(s|ing)?\b|\bgewicht", re.IGNORECASE)


def weight_candidates(columns: list[str], labels: dict[str, str] | None = None) -> list[str]:
    """Columns that look like weights by name or variable label, in file order."""
    labels = labels or {}

    def by_label(label: str) -> bool:    # a short label about weighting, not a question text
        return bool(_WEIGHT_LABEL.search(label)) and len(label.split()) <= 5
    return [c for c in columns if _WEIGHT_NAME.match(str(c).strip().lower())
            or by_label(labels.get(c) or "")]


def check_weights(numbers: pd.Series, raw: pd.Series, file: str, column: str,
                  rows=None) -> pd.Series:
    """Weights as floats: every one a finite non-negative number, with a finite positive total.

    Args:
        numbers: the weights as numbers (NaN where not a number or blank).
        raw: the cells as read (for the message).
        file, column, rows: for the message (rows: see fileio.rows_at).
    Returns:
        The weights as float64.
    """
    values = pd.to_numeric(numbers, errors="coerce").astype(float)
    bad = values.isna() | (values < 0) | ~np.isfinite(values.fillna(0))
    if bad.any():
        positions = np.flatnonzero(bad.to_numpy())
        first = raw.iloc[positions[0]]
        what = "blank" if first is None or str(first).strip() in ("", "nan") else f"'{first}'"
        raise DataError(f"weight is {what}; weights must be finite non-negative numbers "
                        f"({len(positions)} bad).", file=file, column=column,
                        rows=rows_at(positions, rows))
    with np.errstate(over="ignore"):
        total = float(values.sum())
    if not np.isfinite(total):
        raise DataError("the weights are too large: their sum overflows; rescale them "
                        "(divide by their mean).", file=file, column=column)
    if total <= 0:
        raise DataError("all weights are zero.", file=file, column=column)
    return values


@dataclass(frozen=True)
class WeightSummary:
    """How uneven the weights are.

    Attributes:
        column: weight column (None = unweighted).
        n: respondents.
        total: sum of the weights.
        cv: coefficient of variation (population standard deviation / mean).
        deff: Kish design effect from weighting, n * sum(w^2) / sum(w)^2 = 1 + cv^2.
        n_eff: Kish effective n = n / deff.
        zero: respondents with weight 0.
        minimum, maximum: smallest and largest weight.
    """

    column: str | None
    n: int
    total: float
    cv: float
    deff: float
    n_eff: float
    zero: int
    minimum: float
    maximum: float

    def text(self) -> str:
        """One line for the CLI and the dashboard."""
        if self.column is None:
            return f"unweighted: {self.n} respondents, each weight 1"
        return (f"weight '{self.column}': sum {self.total:,.6g}, CV {self.cv:.3f}, Kish "
                f"design effect {self.deff:.3f} (effective n {self.n_eff:,.1f} of {self.n}), "
                f"range {self.minimum:.4g}-{self.maximum:.4g}"
                + (f", {self.zero} zero" if self.zero else ""))


def weight_summary(weights: np.ndarray | pd.Series | None, n: int | None = None,
                   column: str | None = None) -> WeightSummary:
    """Sum, CV and Kish design effect of a weight vector (None = unweighted, n ones)."""
    if weights is None:
        count = int(n or 0)
        return WeightSummary(None, count, float(count), 0.0, 1.0, float(count), 0, 1.0, 1.0)
    w = np.asarray(weights, dtype=float)
    scaled = w / w.max() if w.size and w.max() > 0 else w     # no overflow in squares
    total = float(w.sum())
    deff = float(w.size * np.sum(scaled**2) / np.sum(scaled) ** 2) if total > 0 else np.nan
    mean = float(scaled.mean()) if w.size else np.nan
    cv = float(scaled.std() / mean) if w.size and mean > 0 else np.nan
    return WeightSummary(column, int(w.size), total, cv, deff, float(w.size / deff),
                         int(np.sum(w == 0)), float(w.min()), float(w.max()))


def kish_n_eff(weights: np.ndarray) -> float:
    """(sum w)^2 / sum w^2, computed on rescaled weights so huge weights cannot overflow."""
    w = np.asarray(weights, dtype=float)
    if w.size == 0 or not w.max() > 0:
        return 0.0
    scaled = w / w.max()
    return float(np.sum(scaled) ** 2 / np.sum(scaled**2))
