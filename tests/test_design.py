"""Intervals: weighting only (Wilson on Kish n_eff), a given design effect, and design-based
Taylor-linearised intervals (svy) checked against the textbook formula."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim_core.base.errors import DataError
from sim_core.survey.marginal import wilson_interval
from sim_core.survey.readers import read_respondents_csv
from sim_core.survey.slices import real_marginals


def design_csv(tmp_path, n: int = 160, seed: int = 3):
    """Respondents in 4 strata x 5 PSUs with an answer that differs by PSU (clustering)."""
    rng = np.random.default_rng(seed)
    stratum = rng.integers(0, 4, n)
    psu = stratum * 10 + rng.integers(0, 5, n)
    p_yes = 0.2 + 0.6 * (psu % 5) / 4                        # strong cluster effect
    answer = np.where(rng.random(n) < p_yes, "Yes", "No")
    answer[rng.random(n) < 0.1] = ""                          # some item nonresponse
    sex = rng.choice(["F", "M"], n)
    weight = rng.uniform(0.5, 2.0, n).round(3)
    frame = pd.DataFrame({"st": stratum, "psu": psu, "sex": sex, "q": answer, "w": weight})
    path = tmp_path / "design.csv"
    frame.to_csv(path, index=False)
    return path, frame


def linearised(frame: pd.DataFrame, domain: np.ndarray, option: str) -> tuple[float, float]:
    """Share and Taylor standard error of a domain proportion (ultimate-cluster formula):
    z_i = w_i d_i (y_i - p) / sum(w d); var = sum_h n_h/(n_h-1) sum_j (z_hj - mean_h)^2,
    over every PSU of the sample (also those without domain members)."""
    w = frame["w"].to_numpy(float)
    d = (domain & (frame["q"].fillna("") != "")).astype(float)
    y = (frame["q"] == option).to_numpy(float)
    p = np.sum(w * d * y) / np.sum(w * d)
    z = w * d * (y - p) / np.sum(w * d)
    var = 0.0
    for _, part in frame.assign(z=z).groupby("st"):
        totals = part.groupby("psu")["z"].sum().to_numpy()
        var += len(totals) / (len(totals) - 1) * np.sum((totals - totals.mean()) ** 2)
    return p, float(np.sqrt(var))


def logit_interval(p: float, se: float, df: int) -> tuple[float, float]:
    """Logit interval with a t quantile on df (as R survey's svyciprop 'logit')."""
    half = stats.t.ppf(0.975, df) * se / (p * (1 - p))
    centre = np.log(p / (1 - p))
    return 1 / (1 + np.exp(-(centre - half))), 1 / (1 + np.exp(-(centre + half)))


def test_taylor_intervals_match_the_textbook_formula(tmp_path):
    path, frame = design_csv(tmp_path)
    survey = read_respondents_csv(path, weight="w", questions=["q"], demographics=["sex"],
                                  strata="st", psu="psu")
    results = real_marginals(survey, "q", ["sex"], min_n_eff=0, include_total=True)
    for m in results:
        domain = np.ones(len(frame), bool) if not m.slice else \
            (frame["sex"] == m.slice["sex"]).to_numpy()
        # degrees of freedom as R's survey computes them for a domain: PSUs minus strata
        # among the respondents of the domain with a valid answer
        members = frame[domain & (frame["q"].fillna("") != "").to_numpy()]
        df = members["psu"].nunique() - members["st"].nunique()
        for j, option in enumerate(m.options):
            p, se = linearised(frame, domain, option)
            assert m.shares[j] == pytest.approx(p, abs=1e-12)
            low, high = logit_interval(p, se, df)
            assert (m.ci_low[j], m.ci_high[j]) == pytest.approx((low, high), abs=1e-9)
        p, se = linearised(frame, domain, m.options[0])
        assert m.n_eff == pytest.approx(p * (1 - p) / se ** 2)        # same for both options
        assert m.interval.startswith("design-based")


def test_clustering_widens_the_interval_beyond_weighting(tmp_path):
    path, _ = design_csv(tmp_path)
    weighted = real_marginals(read_respondents_csv(path, weight="w", questions=["q"],
                                                   demographics=["sex"]), "q", min_n_eff=0)[0]
    design = real_marginals(read_respondents_csv(path, weight="w", questions=["q"],
                                                 demographics=["sex"], strata="st", psu="psu"),
                            "q", min_n_eff=0)[0]
    assert weighted.interval.startswith("weighting only")
    assert design.n_eff < weighted.n_eff
    assert design.ci_high[0] - design.ci_low[0] > weighted.ci_high[0] - weighted.ci_low[0]


def test_design_effect_factor_divides_the_effective_n(tmp_path):
    path, _ = design_csv(tmp_path)
    plain = real_marginals(read_respondents_csv(path, weight="w", questions=["q"]), "q",
                           min_n_eff=0)[0]
    survey = read_respondents_csv(path, weight="w", questions=["q"], design_effect=2.0)
    widened = real_marginals(survey, "q", min_n_eff=0)[0]
    assert widened.n_eff == pytest.approx(plain.n_eff / 2)
    low, high = wilson_interval(plain.shares, plain.n_eff / 2)
    assert widened.ci_low.tolist() == pytest.approx(low.tolist())
    assert "design effect of 2" in widened.interval
    with pytest.raises(DataError, match=">= 1"):
        read_respondents_csv(path, weight="w", questions=["q"], design_effect=0.5)


def test_blank_psu_is_refused(tmp_path):
    path, frame = design_csv(tmp_path)
    frame.loc[[3, 7], "psu"] = None
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="strata/PSU cell is blank") as info:
        read_respondents_csv(path, weight="w", questions=["q"], psu="psu")
    assert info.value.rows == [5, 9]
