"""sim_core.evaluation.compare with the tiny local model on a small respondent survey."""

from __future__ import annotations

import numpy as np
import pytest

from sim_core.base import metrics
from sim_core.base.errors import DataError
from sim_core.base.labels import BASELINE_PREFIX, NOISE_FLOOR, REAL
from sim_core.evaluation.baselines import BASELINES, baselines_for
from sim_core.evaluation.compare import compare
from sim_core.simulation.config import SimConfig
from sim_core.simulation.simulate import simulate
from sim_core.survey.readers import read_respondents_csv
from sim_core.survey.schema import Question
from sim_core.survey.slices import real_marginals

CONFIG = SimConfig(orders=1, use_cache=False)


def small_survey(n: int = 120, seed: int = 0):
    """Respondents with sex, an ordinal 3-option question and a nominal 2-option one."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["Female", "Male"], size=n)
    spend = rng.choice(["Too little", "About right", "Too much"], size=n, p=[0.5, 0.3, 0.2])
    vote = np.where(rng.random(n) < np.where(sex == "Female", 0.7, 0.3), "Yes", "No")
    codebook = (b"column,question_text,options,ordinal\n"
                b"spend,Are we spending too much?,Too little|About right|Too much,true\n"
                b"vote,Did you vote?,Yes|No,false\n")
    lines = ["sex,spend,vote"] + [f"{a},{b},{c}" for a, b, c in zip(sex, spend, vote)]
    return read_respondents_csv("\n".join(lines).encode(), name="small", codebook=codebook,
                                demographics=["sex"], questions=["spend", "vote"],
                                population="adults in the United States")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from sim_core.simulation.models import load_model
    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="module")
def survey():
    return small_survey()


def test_compare_scores_match_independent_recomputation(tiny, survey):
    question = survey.questions["spend"]
    steps = []
    comp = compare([tiny], question, survey=survey, by=["sex"], config=CONFIG,
                   progress=lambda done, total: steps.append((done, total)))
    assert steps and steps[-1] == (2, 2)               # counted in slices, not prompts
    assert all(total == 2 for _, total in steps)
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)
    reals = real_marginals(survey, "spend", ["sex"])
    labels = [sc.label for sc in comp.slices]
    assert labels == [m.label for m in reals] == ["sex=Female", "sex=Male"]
    sims = simulate(tiny, question, [m.slice for m in reals], CONFIG)
    base = baselines_for(survey, "spend", ["sex"], which=tuple(BASELINES))
    assert list(base) == list(BASELINES)        # compare() offers every baseline
    for sc, real, sim in zip(comp.slices, reals, sims):
        np.testing.assert_allclose(sc.real.shares, real.shares)
        np.testing.assert_allclose(sc.simulated[tiny.label].shares, sim.shares, atol=1e-6)
        for name in BASELINES:
            np.testing.assert_allclose(sc.baselines[name], base[name][real.label])
        assert set(sc.scores) == {tiny.label} | {BASELINE_PREFIX + b for b in base}
        for entry, dist in sc.entries().items():
            expected = metrics.score_all(real.shares, dist, ordinal_values=question.ordinal_values,
                                         n=real.n_eff)
            assert sc.scores[entry] == pytest.approx(expected)
        assert "wasserstein" in sc.scores[tiny.label] and "chi2" in sc.scores[tiny.label]
        assert sc.noise_floor == pytest.approx(
            metrics.noise_floor(real.shares, real.n_eff, ordinal_values=question.ordinal_values))
    assert comp.checkpoints[0]["label"] == tiny.label
    assert comp.checkpoints[0]["fingerprint"] == tiny.fingerprint


def test_tables(tiny, survey):
    question = survey.questions["spend"]
    comp = compare([tiny], question, survey=survey, by=["sex"], config=CONFIG)
    shares = comp.shares_table()
    # real + 1 checkpoint + every baseline, per slice and option
    assert len(shares) == 2 * (2 + len(BASELINES)) * 3
    real_rows = shares[(shares["entry"] == REAL) & (shares["slice"] == "sex=Male")]
    np.testing.assert_allclose(real_rows["share"], comp.slices[1].real.shares)
    np.testing.assert_allclose(real_rows["ci_low"], comp.slices[1].real.ci_low)
    assert shares[shares["entry"] != REAL]["ci_low"].isna().all()
    scores = comp.score_table()
    assert set(scores["entry"]) == {tiny.label, NOISE_FLOOR} | {
        BASELINE_PREFIX + b for b in BASELINES}
    for sc in comp.slices:
        part = scores[scores["slice"] == sc.label].set_index("entry")
        in_slice = shares["slice"] == sc.label
        for entry in sc.entries():
            expected = metrics.score_all(
                shares[in_slice & (shares["entry"] == REAL)]["share"].to_numpy(),
                shares[in_slice & (shares["entry"] == entry)]["share"].to_numpy(),
                ordinal_values=question.ordinal_values, n=sc.real.n_eff)
            for key, value in expected.items():
                assert part.loc[entry, key] == pytest.approx(value)
        for key in ("wasserstein", "kl", "cosine"):
            contenders = part.drop(index=NOISE_FLOOR)[key]
            best = contenders.idxmin() if metrics.METRICS[key].direction == "lower" \
                else contenders.idxmax()
            assert part.loc[best, f"best_{key}"] and part[f"best_{key}"].sum() == 1


def test_nominal_question_has_no_wasserstein(tiny, survey):
    comp = compare([tiny], survey.questions["vote"], survey=survey, by=["sex"], config=CONFIG,
                   baselines=("uniform",))
    assert all("wasserstein" not in s for sc in comp.slices for s in sc.scores.values())
    assert "wasserstein" not in comp.score_table().columns
    assert set(comp.slices[0].baselines) == {"uniform"}


def test_drafted_question_simulates_without_real_data(tiny, survey):
    draft = Question("draft1", "Should the city build more bike lanes?",
                     ("Yes", "No", "Not sure"))
    comp = compare([tiny, tiny], draft, slices=[{"sex": "Female"}, {"sex": "Male"}],
                   config=CONFIG)
    assert comp.survey_name is None
    assert [sc.label for sc in comp.slices] == ["sex=Female", "sex=Male"]
    for sc in comp.slices:
        assert sc.real is None and sc.scores == {} and sc.noise_floor == {}
        assert list(sc.simulated) == [tiny.label, f"{tiny.label} (2)"]   # labels kept apart
        assert sc.simulated[tiny.label].shares.sum() == pytest.approx(1.0)
    assert comp.score_table().empty
    assert REAL not in set(comp.shares_table()["entry"])
    # with the survey given, a drafted question takes the survey's slices
    comp = compare([tiny], draft, survey=survey, by=["sex"], config=CONFIG)
    assert [sc.label for sc in comp.slices] == ["sex=Female", "sex=Male"]
    assert all(sc.real is None for sc in comp.slices)


def test_bad_slices(tiny, survey):
    with pytest.raises(DataError):
        compare([tiny], survey.questions["spend"], survey=survey, by=["sex"], config=CONFIG,
                slices=[{"sex": "Other"}])
    with pytest.raises(DataError):
        compare([tiny], survey.questions["spend"], survey=survey, by=["nope"], config=CONFIG)


def test_cli_compare(tiny_model_dir, tmp_path, capsys):
    import json

    from sim_core.__main__ import main

    survey = small_survey()
    path = tmp_path / "small.csv"
    survey.respondents[["sex", "spend", "vote"]].to_csv(path, index=False)
    args = ["compare", "--data", str(path), "--question", "vote", "--by", "sex",
            "--model", str(tiny_model_dir), "--orders", "1", "--baselines", "uniform,population"]
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    loaded = read_respondents_csv(path.read_bytes(), name="small", demographics=["sex"],
                                  questions=["spend", "vote"])
    reals = {m.label: m for m in real_marginals(loaded, "vote", ["sex"])}
    (item,) = out
    assert item["question"] == "vote" and item["orders"] == {"tiny-model0": 1}
    for sl in item["slices"]:
        real = reals[sl["label"]]
        order = [item["options"].index(o) for o in real.options]
        np.testing.assert_allclose(np.array(sl["real"])[order], real.shares, atol=1e-6)
        for entry, shares in sl["entries"].items():
            expected = metrics.score_all(sl["real"], shares, n=sl["n_eff"])
            for key, value in expected.items():
                assert sl["scores"][entry][key] == pytest.approx(value, abs=1e-4)
        assert set(sl["entries"]) == {out[0]["checkpoints"][0]["label"], "baseline: uniform",
                                      "baseline: population"}
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "noise floor" in text and "sex=Female" in text and "baseline: population" in text


def test_cli_compare_prints_intervals_and_verdicts(tiny_model_dir, tmp_path, capsys):
    """With a calibration record for (model, survey): calibrated shares, a prediction
    interval per option in the JSON and the table, and the verdict sentence."""
    import json

    from sim_core.__main__ import main
    from sim_core.base.reading import folder_fingerprint
    from sim_core.evaluation.calibration_records import CheckpointCalibration, save_record
    from sim_core.simulation.calibration import Calibration

    path = tmp_path / "smallcal.csv"
    small_survey().respondents[["sex", "spend", "vote"]].to_csv(path, index=False)
    calibration = Calibration(1.5, 0.25, residuals={"calibrated": [0.3] * 9, "raw": [0.5] * 9})
    saved = save_record(CheckpointCalibration(calibration, None, "record", "tiny",
                                              folder_fingerprint(tiny_model_dir), "smallcal"))
    try:
        args = ["compare", "--data", str(path), "--question", "vote", "--by", "sex",
                "--model", str(tiny_model_dir), "--orders", "1", "--baselines", "uniform",
                "--interval-level", "0.8"]
        assert main(args + ["--json"]) == 0
        (item,) = json.loads(capsys.readouterr().out)
        label = item["checkpoints"][0]["label"]
        assert item["checkpoints"][0]["calibrated"] and item["interval_level"] == 0.8
        assert "not scored, so there is no verdict" in item["verdicts"][label]
        for sl in item["slices"]:
            shares = np.array(sl["entries"][label])
            low, high = calibration.interval(shares, 0.8)
            np.testing.assert_allclose(sl["intervals"][label]["low"], low, atol=1e-6)
            np.testing.assert_allclose(sl["intervals"][label]["high"], high, atol=1e-6)
            assert "baseline: uniform" not in sl["intervals"]
        assert main(args) == 0
        text = capsys.readouterr().out
        assert text.count("80 % PI") == 2 and "no verdict" in text
        assert main(args + ["--no-calibrate", "--json"]) == 0
        (raw,) = json.loads(capsys.readouterr().out)
        assert not raw["checkpoints"][0]["calibrated"]
        assert raw["slices"][0]["entries"][label] != item["slices"][0]["entries"][label]
    finally:
        saved.unlink()
