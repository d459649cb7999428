"""Calibration records, the one lookup (calibration_for), the simulator applying them, and
calibrate_base / `python -m sim_core calibrate` on the tiny model with real GSS rows."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from sim_core import __main__ as cli
from sim_core.base.errors import SimError
from sim_core.evaluation.calibration_records import (
    CheckpointCalibration,
    calibration_for,
    checkpoint_verdict,
    model_records,
    read_record,
    record_path,
    save_record,
)
from sim_core.evaluation.calibration_runs import CalibrateConfig, calibrate_base
from sim_core.evaluation.compare import compare
from sim_core.evaluation.verdict import CHECKPOINT, CHECKPOINT_CAL, UNIFORM, HeldOut
from sim_core.simulation.calibration import Calibration
from sim_core.simulation.config import SimConfig
from sim_core.simulation.models import load_model
from sim_core.simulation.simulate import simulate
from sim_core.survey.marginal_readers import read_subpop_jsonl

QUESTIONS = ["natspac", "natenvir", "natheal", "natcity", "natdrug", "nateduc"]
RESIDUALS = {"calibrated": [0.05 * i for i in range(1, 20)], "raw": [0.1] * 19}


def record(model_fp="m" * 16, survey="demo", survey_fp="s1", created="2025-01-01T00:00:00",
           temperature=1.5):
    return CheckpointCalibration(calibration=Calibration(temperature, 0.2, residuals=RESIDUALS),
                                 source="record", model="tiny", model_fingerprint=model_fp,
                                 survey=survey, survey_fingerprint=survey_fp,
                                 split={"how": "question"}, created=created)


def fake_lm(fingerprint="m" * 16):
    return SimpleNamespace(fingerprint=fingerprint, label="tiny", adapter_path=None)


def test_records_round_trip_and_lookup():
    first = record(created="2025-01-01T00:00:00")
    second = record(survey="other survey/..", survey_fp="s2", created="2025-02-01T00:00:00",
                    temperature=2.0)
    path = save_record(first)
    save_record(second)
    assert path == record_path("m" * 16, "demo") and path.parent.name == "m" * 16
    assert record_path("m" * 16, "other survey/..").name == "other-survey.json"  # sanitised
    assert read_record("m" * 16, "demo") == first
    assert [r.survey_fingerprint for r in model_records("m" * 16)] == ["s2", "s1"]   # newest
    # the same data under another name is found by its fingerprint
    renamed = SimpleNamespace(name="my copy", fingerprint="s1")
    assert calibration_for(fake_lm(), renamed).calibration.temperature == 1.5
    # the same name with other data: used, and the note says so
    changed = calibration_for(fake_lm(), SimpleNamespace(name="demo", fingerprint="s9"))
    assert changed.calibration.temperature == 1.5 and "another version" in changed.note
    assert calibration_for(fake_lm(), "unknown survey") is None
    drafted = calibration_for(fake_lm(), None)        # a drafted question: the newest record
    assert drafted.calibration.temperature == 2.0
    assert "record for survey 'other survey/..'" in drafted.note
    assert calibration_for(fake_lm("n" * 16), None) is None
    with pytest.raises(SimError):
        save_record(record(model_fp=""))


def test_unreadable_record_names_the_file():
    path = record_path("u" * 16, "broken")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    with pytest.raises(SimError, match="broken.json"):
        read_record("u" * 16, "broken")
    assert model_records("u" * 16) == []


def test_verdict_sentence_without_a_measurement():
    assert "no held-out measurement" in checkpoint_verdict(None, "tiny")
    assert "not scored" in checkpoint_verdict(record(), "tiny")
    measured = record()
    measured.heldout = HeldOut("wasserstein", "3 questions of demo (9 rows)", "base",
                               ["a", "b", "c"], [3, 3, 3],
                               {UNIFORM: [0.2, 0.2, 0.2], CHECKPOINT: [0.3, 0.3, 0.3],
                                CHECKPOINT_CAL: [0.2, 0.2, 0.2]})
    text = checkpoint_verdict(measured, "tiny")
    assert text.startswith("tiny: On 3 questions of demo (9 rows) this model, calibrated, is")
    assert "the uncalibrated model" in text
    assert "no skill" not in text
    # a calibration that fell back to the uniform guess says so when it is applied
    measured.calibration = Calibration(shrink=1.0, fitted_on={"fallback": "uniform"})
    assert "found no skill on the validation rows" in checkpoint_verdict(measured, "tiny")
    assert "no skill" not in checkpoint_verdict(measured, "tiny", calibrated=False)
    # one that kept the raw shares says that instead
    measured.calibration = Calibration(fitted_on={"fallback": "raw"})
    text = checkpoint_verdict(measured, "tiny")
    assert "did not improve on the raw shares" in text and "no skill" not in text
    assert "raw shares" not in checkpoint_verdict(measured, "tiny", calibrated=False)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir), dtype="float32")


@pytest.fixture(scope="module")
def gss(gss_path):
    return read_subpop_jsonl(gss_path, name="gss-test")


def test_simulator_applies_the_calibration_after_the_cache(tiny, gss):
    question = gss.questions["natspac"]
    calibration = Calibration(3.0, 0.4, residuals=RESIDUALS)
    config = SimConfig(orders=2, interval_level=0.8)
    calibrated = simulate(tiny, question, [{"SEX": "Female"}], config,
                          calibration=calibration)[0]
    raw = simulate(tiny, question, [{"SEX": "Female"}], config)[0]    # from the cache
    assert raw.cached and not raw.calibrated and raw.interval_low is None
    np.testing.assert_allclose(calibrated.raw_shares, raw.shares)
    np.testing.assert_allclose(calibrated.shares, calibration.apply(raw.shares))
    low, high = calibration.interval(calibrated.shares, 0.8)
    np.testing.assert_allclose(calibrated.interval_low, low)
    np.testing.assert_allclose(calibrated.interval_high, high)
    off = simulate(tiny, question, [{"SEX": "Female"}], SimConfig(orders=2, calibrate=False),
                   calibration=calibration)[0]
    np.testing.assert_allclose(off.shares, raw.shares)
    assert off.interval_low is not None            # raw residuals still give intervals


def test_calibrate_base_split_record_and_compare(tiny, gss):
    settings = CalibrateConfig(fit_fraction=0.5, seed=3, reference="uniform")
    saved = calibrate_base(tiny, gss, questions=QUESTIONS, settings=settings,
                           config=SimConfig(orders=1, use_cache=False))
    split = saved.split
    assert len(split["fit_questions"]) == 3 and len(split["test_questions"]) == 3
    assert not set(split["fit_questions"]) & set(split["test_questions"])
    assert split["n_fit"] == split["n_test"] == 3 * 22
    assert saved.calibration.fitted_on["n_rows"] == 66
    assert sorted(saved.heldout.questions) == split["test_questions"]   # never the fit ones
    assert saved.heldout.kind == "base" and saved.heldout.rows == [22, 22, 22]
    assert set(saved.heldout.entries) >= {UNIFORM, CHECKPOINT, CHECKPOINT_CAL}
    cover = saved.heldout.coverage["calibrated"]
    assert cover["level"] == 0.9 and cover["n_shares"] == sum(
        22 * len(gss.questions[q].options) for q in split["test_questions"])
    assert read_record(tiny.fingerprint, "gss-test") == saved
    # the same seed gives the same split
    again = calibrate_base(tiny, gss, questions=QUESTIONS, settings=settings,
                           config=SimConfig(orders=1))
    assert again.split == split
    # compare() picks the record up: calibrated shares, intervals and a verdict
    comparison = compare([tiny], gss.questions["natspac"], survey=gss, by=["SEX"],
                         config=SimConfig(orders=1), baselines=("uniform",))
    info = comparison.checkpoints[0]
    assert info["calibrated"] and info["interval_level"] == 0.9
    assert info["verdict"].startswith(f"{tiny.label}: On 3 questions of gss-test held out of "
                                      "its calibration (66 rows) this model")
    table = comparison.shares_table()
    mine = table[table["entry"] == tiny.label]
    assert mine["pi_low"].notna().all() and (mine["pi_low"] <= mine["share"]).all()
    assert table[table["entry"] == "real"]["pi_low"].isna().all()
    result = comparison.slices[0].simulated[tiny.label]
    np.testing.assert_allclose(result.shares, saved.calibration.apply(result.raw_shares))


def test_an_adapter_is_calibrated_at_training_not_here(tiny, gss):
    with pytest.raises(SimError, match="calibrated when it is trained"):
        calibrate_base(SimpleNamespace(adapter="x"), gss)
    with pytest.raises(SimError, match="at least two questions"):
        calibrate_base(tiny, gss, questions=["natspac"])


def test_cli_calibrate(tiny_model_dir, gss_path, capsys):
    status = cli.main(["calibrate", "--data", str(gss_path), "--model", str(tiny_model_dir),
                       "--question", ",".join(QUESTIONS[:4]), "--orders", "1",
                       "--fit-fraction", "0.5", "--interval-level", "0.8", "--json"])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    assert out["record"].endswith("subpop_eval.json")
    assert out["coverage"]["calibrated"]["level"] == 0.8
    assert len(out["split"]["test_questions"]) == 2
    assert out["verdict"].startswith("tiny-model")
    status = cli.main(["calibrate", "--data", str(gss_path), "--model", str(tiny_model_dir),
                       "--fit-fraction", "0.95"])
    assert status == 2
    assert "fit_fraction" in capsys.readouterr().err
