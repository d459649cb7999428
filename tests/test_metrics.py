"""sim_core.base.metrics against hand-computed cases, scipy, and the real GSS reference figures."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy.spatial.distance import cosine as cosine_distance
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare, entropy, multinomial, wasserstein_distance

from sim_core.base import metrics as M

P = np.array([0.5, 0.3, 0.2, 0.0])
Q = np.array([0.1, 0.2, 0.3, 0.4])
VALUES = [1.0, 2.0, 3.0, 4.0]


def test_registry_metadata():
    assert list(M.METRICS) == ["wasserstein", "js", "kl", "tv", "chi2", "chi2_p", "cosine",
                               "jaccard", "rmse"]
    for key, m in M.METRICS.items():
        assert m.key == key and m.name and m.formula and m.range
        assert m.direction in ("lower", "higher")
    assert M.METRICS["wasserstein"].ordinal_only
    assert {k for k, m in M.METRICS.items() if m.needs_n} == {"chi2", "chi2_p"}
    assert {k for k, m in M.METRICS.items() if m.direction == "higher"} == {
        "chi2_p", "cosine", "jaccard"}


def test_hand_computed_values():
    # TV = 1/2 (0.4 + 0.1 + 0.1 + 0.4) = 0.5
    assert M.compute("tv", P, Q) == pytest.approx(0.5)
    # Jaccard = (0.1+0.2+0.2+0) / (0.5+0.3+0.3+0.4)
    assert M.compute("jaccard", P, Q) == pytest.approx(0.5 / 1.5)
    assert M.compute("rmse", P, Q) == pytest.approx(math.sqrt((0.16 + 0.01 + 0.01 + 0.16) / 4))
    # CDFs 0.5,0.8,1.0 vs 0.1,0.3,0.6: gaps 0.4+0.5+0.4 = 1.3 over range 3
    assert M.compute("wasserstein", P, Q, ordinal_values=VALUES) == pytest.approx(1.3 / 3)
    assert M.compute("kl", [0.5, 0.5], [0.25, 0.75]) == pytest.approx(
        0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert M.compute("js", [1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert M.compute("cosine", [1.0, 0.0], [0.0, 1.0]) == pytest.approx(0.0)


def test_against_scipy():
    rng = np.random.default_rng(1)
    for k in (2, 3, 5, 7):
        p, q = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k))
        values = rng.permutation(np.arange(1.0, k + 1)) * 1.5   # unsorted on purpose
        assert M.compute("kl", p, q) == pytest.approx(entropy(p, q), rel=1e-6)
        assert M.compute("js", p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2)
        assert M.compute("cosine", p, q) == pytest.approx(1 - cosine_distance(p, q))
        expected_wd = wasserstein_distance(values, values, p, q) / (values.max() - values.min())
        assert M.compute("wasserstein", p, q, ordinal_values=values) == pytest.approx(expected_wd)
        n = 250
        stat, pvalue = chisquare(n * p, n * q)
        assert M.compute("chi2", p, q, n=n) == pytest.approx(stat, rel=1e-6)
        assert M.compute("chi2_p", p, q, n=n) == pytest.approx(pvalue, rel=1e-6)


def test_kl_smoothing_with_zero_in_q():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([1.0, 0.0, 0.0])
    smoothed = (q + 1e-8) / (q + 1e-8).sum()
    assert M.compute("kl", p, q) == pytest.approx(entropy(p, smoothed))
    assert np.isfinite(M.compute("kl", p, q))
    # zeros in p contribute nothing
    assert M.compute("kl", [1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2))


def test_symmetry_and_identity():
    rng = np.random.default_rng(2)
    p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    values = [3, 1, 2, 5, 4]
    for key in ("js", "tv", "wasserstein", "cosine", "jaccard", "rmse"):
        assert M.compute(key, p, q, ordinal_values=values) == pytest.approx(
            M.compute(key, q, p, ordinal_values=values)), key
    assert M.compute("kl", p, q) != pytest.approx(M.compute("kl", q, p))
    same = M.score_all(p, p, ordinal_values=values, n=100)
    for key in ("wasserstein", "js", "kl", "tv", "chi2", "rmse"):
        assert same[key] == pytest.approx(0.0, abs=1e-6), key
    for key in ("cosine", "jaccard", "chi2_p"):
        assert same[key] == pytest.approx(1.0), key


def test_wasserstein_sorts_by_value_and_skips_nan_options():
    # nataid-like order [2, 3, 1]: sorted values are options 2, 0, 1
    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.1, 0.3])
    expected = wasserstein_distance([2, 3, 1], [2, 3, 1], p, q) / 2
    assert M.compute("wasserstein", p, q, ordinal_values=[2, 3, 1]) == pytest.approx(expected)
    # a non-substantive option (NaN) is dropped and the rest renormalised
    p4, q4 = np.array([0.2, 0.3, 0.3, 0.2]), np.array([0.1, 0.1, 0.4, 0.4])
    wd = M.compute("wasserstein", p4, q4, ordinal_values=[1, 2, 3, math.nan])
    expected = wasserstein_distance([1, 2, 3], [1, 2, 3], p4[:3] / 0.8, q4[:3] / 0.6) / 2
    assert wd == pytest.approx(expected)
    # but the NaN option counts in the other scores
    assert M.compute("tv", p4, q4, ordinal_values=[1, 2, 3, math.nan]) == pytest.approx(0.3)


def test_nominal_and_missing_n_leave_scores_absent():
    scores = M.score_all([0.5, 0.5], [0.2, 0.8])
    assert "wasserstein" not in scores and "chi2" not in scores and "chi2_p" not in scores
    assert M.score_all([0.5, 0.5], [0.2, 0.8], ordinal_values=[1, 1])["js"] > 0
    assert "wasserstein" not in M.score_all([0.5, 0.5], [0.2, 0.8], ordinal_values=[1, 1])
    assert "wasserstein" not in M.score_all([.3, .3, .4], [.2, .2, .6],
                                            ordinal_values=[1, math.nan, math.nan])
    assert math.isnan(M.compute("wasserstein", [0.5, 0.5], [0.2, 0.8]))
    # k = 2 ordinal: WD = |p0 - q0|
    assert M.score_all([0.5, 0.5], [0.2, 0.8], ordinal_values=[0, 1])["wasserstein"] == \
        pytest.approx(0.3)
    with pytest.raises(ValueError):
        M.compute("chi2", [0.5, 0.5], [0.2, 0.8])
    with pytest.raises(KeyError):
        M.compute("nope", [0.5, 0.5], [0.2, 0.8])
    with pytest.raises(ValueError):
        M.compute("tv", [0.5, 0.5], [0.2, 0.3, 0.5])


def test_vectorised_matches_rowwise():
    rng = np.random.default_rng(3)
    p, q = rng.dirichlet(np.ones(4), size=6), rng.dirichlet(np.ones(4), size=6)
    n = np.arange(10, 70, 10)
    for key in M.METRICS:
        out = M.compute(key, p, q, ordinal_values=VALUES, n=n)
        assert out.shape == (6,)
        single = [M.compute(key, p[i], q[i], ordinal_values=VALUES, n=n[i]) for i in range(6)]
        np.testing.assert_allclose(out, single, rtol=1e-10)
    # one q broadcast over rows
    np.testing.assert_allclose(M.compute("tv", p, q[0]), [M.compute("tv", r, q[0]) for r in p])


def test_best_entry():
    assert M.best_entry({"a": 0.3, "b": 0.1, "c": float("nan")}, "tv") == "b"
    assert M.best_entry({"a": 0.3, "b": 0.1}, "cosine") == "a"
    assert M.best_entry({"a": float("nan")}, "tv") is None


def _exact_expected_tv(p: np.ndarray, n: int) -> float:
    """E[TV] between two independent multinomial(n, p) samples, by enumeration."""
    counts = [c for c in itertools.product(range(n + 1), repeat=len(p)) if sum(c) == n]
    probs = np.array([multinomial.pmf(c, n, p) for c in counts])
    shares = np.array(counts) / n
    tv = 0.5 * np.abs(shares[:, None, :] - shares[None, :, :]).sum(axis=2)
    return float(probs @ tv @ probs)


def test_noise_floor_against_exact_enumeration():
    p, n = np.array([0.2, 0.3, 0.5]), 6
    floor = M.noise_floor(p, n, n_sims=20000, seed=1)
    assert floor["tv"] == pytest.approx(_exact_expected_tv(p, n), abs=0.005)
    assert "chi2" not in floor and "wasserstein" not in floor
    assert "wasserstein" in M.noise_floor(p, n, ordinal_values=[1, 2, 3])
    assert M.noise_floor(p, None) == {} and M.noise_floor(p, 0.2) == {}


def test_noise_floor_kl_asymptotics_and_seeding():
    # KL(a||b) ~ 1/2 sum (a-b)^2/p; a-b has covariance 2 (diag p - pp')/n, so E[KL] ~ (k-1)/n
    p, n = np.array([0.25, 0.25, 0.3, 0.2]), 4000
    floor = M.noise_floor(p, n, n_sims=2000, seed=0)
    assert floor["kl"] == pytest.approx(3 / n, rel=0.1)
    assert M.noise_floor(p, n, seed=5) == M.noise_floor(p, n, seed=5)
    assert M.noise_floor(p, 50)["tv"] > M.noise_floor(p, 5000)["tv"]


# ---------------------------------------------------------------- real GSS file

def _gss_rows(gss_path):
    from sim_core.survey.marginal_readers import read_subpop_jsonl
    from sim_core.survey.slices import survey_rows
    return survey_rows(read_subpop_jsonl(gss_path))


def test_gss_reference_figures(gss_path):
    rows = _gss_rows(gss_path)
    assert len(rows) == 2926
    by_question: dict[str, list] = {}
    for row in rows:
        by_question.setdefault(row.question.id, []).append(row)
    uniform = {"wasserstein": [], "js": [], "tv": []}
    to_mean = []
    for qrows in by_question.values():
        question = qrows[0].question
        p = np.array([r.dist for r in qrows])
        scores = M.score_rows(p, np.full(question.k, 1 / question.k),
                              ordinal_values=question.ordinal_values)
        for key, values in uniform.items():
            values.extend(scores.get(key, []))
        if question.is_ordinal:
            to_mean.extend(M.compute("wasserstein", p, p.mean(axis=0),
                                     ordinal_values=question.ordinal_values))
    assert round(np.mean(uniform["js"]), 3) == 0.102
    assert round(np.mean(uniform["tv"]), 3) == 0.285
    assert round(np.mean(uniform["wasserstein"]), 3) == 0.208
    # the reader treats pres16/if16who (candidate choice) as nominal: 2 x 22 rows without WD
    assert len(to_mean) == 2926 - 44
    assert round(np.mean(to_mean), 3) == 0.073
    # the README figure 0.074 also scores those two on their raw codes (Clinton 1, Trump 2)
    raw = [json.loads(line) for line in open(gss_path, encoding="utf-8")]
    for qid in ("pres16", "if16who"):
        items = [r for r in raw if r["qkey"] == qid]
        values = [math.nan if v == -1 else v for v in items[0]["ordinal"]]
        p = np.array([r["responses"] for r in items])
        to_mean.extend(M.compute("wasserstein", p, p.mean(axis=0), ordinal_values=values))
    assert round(np.mean(to_mean), 3) == 0.074
