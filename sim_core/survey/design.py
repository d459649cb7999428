"""Design-based intervals: Taylor-linearised standard errors of weighted shares for a
stratified cluster sample, through the `svy` library (polars-based; checked against the
textbook linearisation formula in tests/test_design.py).

Without strata/PSU columns, intervals reflect weighting only (Wilson on the Kish effective
n); a known design-effect factor can widen them (n_eff / deff).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from sim_core.base.errors import DataError
from sim_core.survey.schema import Design

WEIGHTING_ONLY = "weighting only (Wilson interval on the Kish effective n)"


def interval_method(design: Design | None) -> str:
    """How the 95 % intervals were computed, in words (for tables and reports)."""
    if design is not None and design.taylor:
        parts = [p for p in (f"strata '{design.strata}'" if design.strata else None,
                             f"PSU '{design.psu}'" if design.psu else None) if p]
        return ("design-based: Taylor-linearised standard errors (" + ", ".join(parts)
                + "), logit interval with t on #PSU - #strata df")
    if design is not None and design.design_effect:
        return (f"weighting and a given design effect of {design.design_effect:g} (Wilson "
                "interval on Kish effective n / design effect)")
    return WEIGHTING_ONLY


@dataclass
class DomainEstimate:
    """Design-based shares of one domain (slice).

    Attributes:
        shares: weighted share per option.
        low, high: 95 % interval per option.
        n_eff: effective n implied by the design: mean over options with 0 < p < 1 of
            p (1 - p) / se^2 (None when every answer is the same option).
    """

    shares: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_eff: float | None


def taylor_estimates(codes: np.ndarray, k: int, weights: np.ndarray, strata, psu,
                     domains: np.ndarray | None, alpha: float = 0.05
                     ) -> dict[int, DomainEstimate]:
    """Taylor-linearised shares per domain, with the whole sample kept for the variance.

    Args:
        codes: option index per respondent, -1 = no valid answer (left out as a domain).
        k: number of options.
        weights: weight per respondent.
        strata, psu: stratum / PSU per respondent (None = one stratum / each respondent).
        domains: domain id (int >= 0) per respondent; -1 = in no domain; None = one domain 0.
        alpha: 1 - confidence level.
    Returns:
        domain id -> DomainEstimate (domains without valid answers are absent).
    """
    import polars as pl
    import svy

    n = len(codes)
    data = {"_y": [int(c) if c >= 0 else None for c in codes],
            "_w": np.asarray(weights, dtype=float),
            "_d": np.zeros(n, dtype=np.int64) if domains is None else np.asarray(domains)}
    design = {"wgt": "_w"}
    if strata is not None:
        data["_s"], design["stratum"] = [str(v) for v in strata], "_s"
    data["_p"] = [str(v) for v in psu] if psu is not None else np.arange(n)
    design["psu"] = "_p"
    frame = pl.DataFrame(data)
    sample = svy.Sample(frame, svy.Design(**design))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = sample.estimation.prop("_y", by="_d", drop_nulls=True,
                                           alpha=alpha).to_polars()
    except Exception as error:     # svy raises its own types; one clear message instead
        raise DataError(f"design-based intervals failed ({type(error).__name__}: {error}); "
                        "check the strata and PSU columns (each stratum needs 2+ PSUs).") \
            from None
    return _by_domain(table, k)


def _by_domain(table, k: int) -> dict[int, DomainEstimate]:
    """svy's long table (domain, option, est, se, lci, uci) -> DomainEstimate per domain."""
    out: dict[int, DomainEstimate] = {}
    for (domain,), part in table.group_by(["_d"]):
        if int(domain) < 0:
            continue
        shares, low, high, se = (np.zeros(k) for _ in range(4))
        for row in part.iter_rows(named=True):
            j = int(row["_y"])
            shares[j], se[j] = row["est"], row["se"]
            low[j], high[j] = row["lci"], row["uci"]
        inner = (shares > 0) & (shares < 1) & (se > 0)
        n_eff = float(np.mean(shares[inner] * (1 - shares[inner]) / se[inner] ** 2)) \
            if inner.any() else None
        out[int(domain)] = DomainEstimate(shares, low, high, n_eff)
    return out
