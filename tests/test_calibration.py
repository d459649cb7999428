"""sim_core.calibration: temperature and shrinkage, checked against hand computation and
against data generated with known parameters."""

from __future__ import annotations

import numpy as np
import pytest

from sim_core.calibration import Calibration, fit_calibration, position_prior, temper
from sim_core.errors import SimError
from sim_core.metrics import compute


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
