"""sim_core.evaluation.calibration_fit: temperature and shrinkage, checked against hand
computation and against data generated with known parameters."""

from __future__ import annotations

import numpy as np
import pytest

from sim_core.base.errors import SimError
from sim_core.base.metrics import compute
from sim_core.evaluation.calibration_fit import fit_calibration, position_prior
from sim_core.simulation.calibration import Calibration, temper


def test_temper_by_hand():
    q = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(temper(q, 1.0), q)
    squared = q ** 2 / np.sum(q ** 2)          # T = 0.5: q^(1/0.5)
    np.testing.assert_allclose(temper(q, 0.5), squared)
    np.testing.assert_allclose(temper(q, 1e6), [1 / 3] * 3, atol=1e-6)
    np.testing.assert_allclose(temper(np.array([[1.0, 0.0], [0.25, 0.75]]), 2.0),
                               [[1.0, 0.0], [1 / (1 + 3 ** 0.5), 3 ** 0.5 / (1 + 3 ** 0.5)]])
    with pytest.raises(SimError):
        temper(q, 0.0)


def test_apply_shrinks_toward_the_reference():
    q = np.array([0.7, 0.2, 0.1])
    np.testing.assert_allclose(Calibration(shrink=1.0).apply(q), [1 / 3] * 3)
    np.testing.assert_allclose(Calibration(shrink=0.25).apply(q), 0.75 * q + 0.25 / 3)
    prior = position_prior([np.array([0.2, 0.8]), np.array([0.4, 0.6]),
                            np.array([0.1, 0.2, 0.7])])
    assert prior == {2: pytest.approx([0.3, 0.7]), 3: pytest.approx([0.1, 0.2, 0.7])}
    towards_prior = Calibration(shrink=0.5, reference="prior", prior=prior)
    np.testing.assert_allclose(towards_prior.apply(np.array([1.0, 0.0])), [0.65, 0.35])
    np.testing.assert_allclose(towards_prior.apply(np.full(4, 0.25)), [0.25] * 4)  # no prior
    with pytest.raises(SimError):
        Calibration(shrink=1.5)


def _random_rows(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return [rng.dirichlet(np.ones(k)) for k in rng.integers(2, 6, size=n)]


@pytest.mark.parametrize("temperature, shrink", [(2.0, 0.0), (0.5, 0.4), (1.0, 0.0)])
def test_fit_recovers_known_parameters(temperature, shrink):
    simulated = _random_rows(200, seed=1)
    truth = Calibration(temperature, shrink)
    real = [truth.apply(q) for q in simulated]
    fitted = fit_calibration(real, simulated)
    assert fitted.temperature == pytest.approx(temperature, rel=0.02)
    assert fitted.shrink == pytest.approx(shrink, abs=0.02)
    assert fitted.fitted_on["kl_calibrated"] < 1e-4
    assert fitted.fitted_on["n_rows"] == 200


def test_a_model_that_knows_nothing_is_pulled_to_the_reference():
    """Simulated shares unrelated to the real ones: the fit moves toward uniform and the
    calibrated KL is no worse than the uniform guess's (which w = 1 can always reach)."""
    real = _random_rows(300, seed=2)
    rng = np.random.default_rng(3)
    simulated = [rng.dirichlet(np.ones(len(p))) for p in real]
    fitted = fit_calibration(real, simulated)
    uniform_kl = np.mean([compute("kl", p, np.full(len(p), 1 / len(p))) for p in real])
    assert fitted.fitted_on["kl_calibrated"] <= uniform_kl + 1e-6
    assert fitted.fitted_on["kl_calibrated"] < fitted.fitted_on["kl_raw"]
    assert fitted.shrink > 0.5 or fitted.temperature > 3


def test_round_trip_and_bad_input():
    calibration = Calibration(1.7, 0.3, "prior", {2: [0.4, 0.6]}, {"n_rows": 5})
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    with pytest.raises(SimError):
        fit_calibration([], [])
    with pytest.raises(SimError, match="3 options, its simulated one 2"):
        fit_calibration([np.full(3, 1 / 3)], [np.full(2, 0.5)])
    with pytest.raises(SimError):
        Calibration.from_dict({"temperature": "hot"})


def test_conformal_quantile_and_interval_by_hand():
    from sim_core.simulation.calibration import conformal_quantile, share_scale

    scores = [0.1 * i for i in range(1, 11)]              # 0.1 .. 1.0, n = 10
    assert conformal_quantile(scores, 0.9) == pytest.approx(1.0)   # ceil(11 * 0.9) = 10th
    assert conformal_quantile(scores, 0.8) == pytest.approx(0.9)   # ceil(8.8) = 9th
    assert conformal_quantile(scores, 0.95) == float("inf")        # ceil(10.45) = 11 > n
    assert share_scale(np.array([0.5, 0.0]))[0] == pytest.approx(0.5 + 0.05)
    calibration = Calibration(residuals={"calibrated": scores, "raw": [0.2] * 10})
    low, high = calibration.interval(np.array([0.5, 0.3, 0.2]), 0.8)
    half = 0.9 * (np.sqrt(np.array([0.25, 0.21, 0.16])) + 0.05)
    np.testing.assert_allclose(low, np.clip([0.5, 0.3, 0.2] - half, 0, 1))
    np.testing.assert_allclose(high, np.clip([0.5, 0.3, 0.2] + half, 0, 1))
    raw_low, _ = calibration.interval(np.array([0.5, 0.5]), 0.8, calibrated=False)
    np.testing.assert_allclose(raw_low, 0.5 - 0.2 * 0.55)
    wide = calibration.interval(np.array([0.5, 0.5]), 0.95)
    np.testing.assert_allclose(wide[0], [0, 0]) and np.testing.assert_allclose(wide[1], [1, 1])
    assert Calibration().interval(np.array([0.5, 0.5])) is None
    with pytest.raises(SimError):
        calibration.interval(np.array([0.5, 0.5]), 1.0)


def _noisy(simulated, seed: int, concentration: float = 40.0):
    """Real distributions scattered around the simulated ones (exchangeable rows)."""
    rng = np.random.default_rng(seed)
    return [rng.dirichlet(concentration * q + 0.05) for q in simulated]


def test_split_conformal_coverage_on_fresh_rows():
    """Fit on 300 rows, measure on 2000 fresh ones from the same process: the observed
    coverage is close to the nominal level (split conformal's guarantee, pooled shares)."""
    from sim_core.evaluation.calibration_fit import interval_coverage

    fit_sim = _random_rows(300, seed=4)
    calibration = fit_calibration(_noisy(fit_sim, 5), fit_sim)
    assert len(calibration.residuals["raw"]) == sum(len(q) for q in fit_sim)
    assert calibration.residuals["raw"] == sorted(calibration.residuals["raw"])
    test_sim = _random_rows(2000, seed=6)
    test_real = _noisy(test_sim, 7)
    for level in (0.8, 0.9):
        for calibrated in (True, False):
            got = interval_coverage(calibration, test_real, test_sim, level,
                                    calibrated=calibrated)
            assert got["coverage"] == pytest.approx(level, abs=0.025)
            assert 0 < got["mean_width"] < 1 and got["n_shares"] == sum(map(len, test_sim))


def test_interval_coverage_by_hand():
    from sim_core.evaluation.calibration_fit import interval_coverage

    calibration = Calibration(residuals={"calibrated": [0.2] * 19, "raw": [0.2] * 19})
    real = [np.array([0.5, 0.5]), np.array([0.9, 0.1])]
    simulated = [np.array([0.5, 0.5]), np.array([0.5, 0.5])]
    got = interval_coverage(calibration, real, simulated, 0.9)
    # half width 0.2 * 0.55 = 0.11 around 0.5: holds 0.5, 0.5 and misses 0.9, 0.1
    assert got == {"level": 0.9, "coverage": 0.5, "mean_width": pytest.approx(0.22),
                   "n_shares": 4}


def test_auto_reference_picks_the_prior_when_it_fits_better():
    simulated = _random_rows(300, seed=8)
    prior = {k: list(np.arange(1, k + 1) / np.arange(1, k + 1).sum()) for k in range(2, 6)}
    truth = Calibration(1.0, 0.6, "prior", prior)
    real = [truth.apply(q) for q in simulated]
    fitted = fit_calibration(real, simulated, reference="auto", prior=prior)
    assert fitted.reference == "prior" and fitted.shrink == pytest.approx(0.6, abs=0.02)
    kls = fitted.fitted_on["kl_by_reference"]
    assert kls["prior"] < kls["uniform"]
    assert fit_calibration(real, simulated, reference="auto").reference == "uniform"  # no prior
    with pytest.raises(SimError):
        fit_calibration(real, simulated, reference="median")


def test_calibrate_result_applies_after_debiasing_and_keeps_raw():
    from sim_core.simulation.calibration import calibrate_result
    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.simulate import SimResult

    raw = np.array([0.7, 0.2, 0.1])
    result = SimResult({}, ("a", "b", "c"), raw, 1.0, "prompt")
    calibration = Calibration(2.0, 0.5, residuals={"calibrated": [0.1] * 9, "raw": [0.3] * 9})
    on = calibrate_result(result, calibration, SimConfig())
    np.testing.assert_allclose(on.shares, calibration.apply(raw))
    np.testing.assert_allclose(on.raw_shares, raw)
    assert on.calibrated
    np.testing.assert_allclose(on.interval_low, calibration.interval(on.shares, 0.9)[0])
    off = calibrate_result(result, calibration, SimConfig(calibrate=False, interval_level=0.8))
    np.testing.assert_allclose(off.shares, raw)
    assert not off.calibrated and off.raw_shares is None
    np.testing.assert_allclose(off.interval_high,
                               calibration.interval(raw, 0.8, calibrated=False)[1])
    sampled = calibrate_result(result, calibration, SimConfig(mode="sample"))
    assert sampled is result
    assert calibrate_result(result, None, SimConfig()) is result


def test_round_trip_with_residuals_and_summary():
    from sim_core.evaluation.calibration_fit import summary

    simulated = _random_rows(50, 9)
    fitted = fit_calibration(_noisy([temper(q, 0.5) for q in simulated], 10), simulated,
                             fitted_on={"split": "validation"})
    again = Calibration.from_dict(fitted.to_dict())
    assert again == fitted
    facts = summary(fitted)
    assert facts["n_rows"] == 50 and "residuals" not in facts
    assert facts["text"].startswith(f"temperature {fitted.temperature:.2f}, shrink ")


def test_skill_gate_falls_back_to_the_uniform_guess_without_skill():
    """Shares unrelated to the real ones: the fitted temperature/shrinkage is not kept; the
    calibration is the uniform guess itself and says why."""
    from sim_core.evaluation.calibration_fit import summary

    real = _random_rows(300, seed=2)
    rng = np.random.default_rng(3)
    simulated = [rng.dirichlet(np.ones(len(p))) for p in real]
    fitted = fit_calibration(real, simulated)
    assert fitted.fitted_on["fallback"] == "uniform"
    assert (fitted.temperature, fitted.shrink, fitted.reference) == (1.0, 1.0, "uniform")
    np.testing.assert_allclose(fitted.apply(np.array([0.9, 0.05, 0.05])), [1 / 3] * 3)
    assert not fitted.fitted_on["skill"]["shown"]
    assert fitted.fitted_on["fit_without_skill"].startswith("temperature ")
    assert summary(fitted)["fallback"] and "no skill shown" in summary(fitted)["text"]
    # the gate switched off keeps the fit (what the module did before the gate)
    assert "fallback" not in fit_calibration(real, simulated, require_skill=False).fitted_on


def test_skill_gate_numbers_by_hand_and_clusters():
    """kl_difference is the row-weighted mean of per-question mean KL differences (scipy's
    entropy); the same rows as one question cannot show skill (a bootstrap over one question
    has no interval, and there is nothing to cross-fit on), as 200 single-row units they do."""
    from scipy.stats import entropy

    from sim_core.evaluation.calibration_fit import kl_difference

    simulated = _random_rows(200, seed=11)
    real = [Calibration(0.7, 0.2).apply(q) for q in simulated]
    fitted = fit_calibration(real, simulated)
    assert "fallback" not in fitted.fitted_on and fitted.fitted_on["skill"]["shown"]
    assert fitted.fitted_on["gain"]["shown"] and fitted.temperature == pytest.approx(0.7, 0.02)
    units = ["q1"] * 50 + ["q2"] * 150
    calibrated = [fitted.apply(q) for q in simulated]
    uniform = [np.full(len(p), 1 / len(p)) for p in real]
    got = kl_difference(real, calibrated, uniform, units)
    rows = [entropy(p, c) - entropy(p, u) for p, c, u in zip(real, calibrated, uniform)]
    expected = 0.25 * np.mean(rows[:50]) + 0.75 * np.mean(rows[50:])
    assert got["difference"] == pytest.approx(expected, rel=1e-9)
    assert got["units"] == 2 and got["ci_low"] <= got["difference"] <= got["ci_high"] < 0
    one_question = fit_calibration(real, simulated, units=["q1"] * 200)
    assert one_question.fitted_on["fallback"] == "uniform"
    assert not one_question.fitted_on["gain"]["shown"]
    assert not one_question.fitted_on["skill"]["shown"]
    with pytest.raises(SimError, match="units"):
        kl_difference(real, calibrated, uniform, units[:10])


def test_cross_fitting_by_hand():
    """Each fold's rows are calibrated by the fit on the other folds' rows alone: rebuilt
    here from fit_calibration without gates on those rows (units dealt in turn into folds,
    leave one question out below CROSS_FIT_FOLDS questions)."""
    from sim_core.evaluation.calibration_fit import CROSS_FIT_FOLDS, cross_fitted

    simulated = _random_rows(60, seed=13)
    real = _noisy(simulated, 14)
    units = [f"q{i % 4}" for i in range(60)]               # 4 questions < CROSS_FIT_FOLDS
    assert CROSS_FIT_FOLDS > 4
    got = cross_fitted(real, simulated, units, reference="uniform", prior=None,
                       fit_shrink=True)
    for question in ("q0", "q3"):
        others = [i for i, u in enumerate(units) if u != question]
        fit = fit_calibration([real[i] for i in others], [simulated[i] for i in others],
                              require_skill=False)
        for i in (i for i, u in enumerate(units) if u == question):
            np.testing.assert_allclose(got[i], fit.apply(simulated[i]), atol=1e-6)
    alone = cross_fitted(real, simulated, ["q"] * 60, reference="uniform", prior=None,
                         fit_shrink=True)
    np.testing.assert_allclose(np.concatenate(alone), np.concatenate(simulated))


def test_a_fit_that_does_not_carry_over_leaves_the_shares_raw():
    """Half the questions want a sharper, half a flatter model: fitted on all of them the
    temperature looks useful (in-sample KL below raw), but fitted without a question it is
    wrong for that question, so the gain gate keeps the raw shares (identity) and says so;
    the raw shares beat the uniform guess, so the skill gate keeps them."""
    from sim_core.evaluation.calibration_fit import summary

    rng = np.random.default_rng(15)
    real, simulated, units = [], [], []
    for question in range(12):
        truth = Calibration(0.4 if question % 2 else 2.5)
        for _ in range(20):
            q = rng.dirichlet(np.ones(4) * 2)
            simulated.append(q)
            real.append(truth.apply(q))
            units.append(question)
    in_sample = fit_calibration(real, simulated, units=units, require_skill=False)
    assert in_sample.fitted_on["kl_calibrated"] < in_sample.fitted_on["kl_raw"]
    gated = fit_calibration(real, simulated, units=units)
    facts = gated.fitted_on
    assert gated.is_identity and facts["fallback"] == "raw"
    assert not facts["gain"]["shown"] and facts["gain"]["difference"] > 0
    assert facts["skill"]["shown"] and facts["skill_of"] == "raw shares"
    assert facts["kl_calibrated"] == pytest.approx(facts["kl_raw"])
    assert summary(gated)["text"].startswith("none: the shares are left as simulated, as the "
                                             "fit (temperature ")
    np.testing.assert_allclose(gated.apply(simulated[0]), simulated[0])


def test_prior_skill_leaves_one_question_out():
    """By hand on three questions; then a skew every question shares is shown as skill, a
    skew that flips from question to question is not (though the pooled prior of either
    set, scored on its own rows, beats uniform)."""
    from scipy.stats import entropy

    from sim_core.evaluation.calibration_fit import prior_skill

    real = [np.array([0.6, 0.4]), np.array([0.8, 0.2]), np.array([0.3, 0.7])]
    got = prior_skill(real, ["a", "b", "c"])
    uniform = np.array([0.5, 0.5])
    by_hand = [entropy(real[0], (real[1] + real[2]) / 2) - entropy(real[0], uniform),
               entropy(real[1], (real[0] + real[2]) / 2) - entropy(real[1], uniform),
               entropy(real[2], (real[0] + real[1]) / 2) - entropy(real[2], uniform)]
    assert got["difference"] == pytest.approx(np.mean(by_hand), rel=1e-6)  # q smoothed by 1e-8
    assert got["units"] == 3

    rng = np.random.default_rng(12)
    shared = [rng.dirichlet([30, 15, 5]) for _ in range(40)]
    assert prior_skill(shared, [i // 2 for i in range(40)])["shown"]
    flips = [rng.dirichlet([30, 15, 5] if (i // 2) % 2 else [5, 15, 30]) for i in range(40)]
    flips[0], flips[1] = rng.dirichlet([40, 15, 5]), rng.dirichlet([40, 15, 5])  # pooled mean
    assert not prior_skill(flips, [i // 2 for i in range(40)])["shown"]           # is skewed
