"""sim_core.evaluation.individual on the tiny model: held-out respondents simulated from their
profile, the temperature sweep, the baselines on the same people, bad input, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_individual_scores import ordinal_survey

from sim_core.base.errors import DataError
from sim_core.evaluation.demographic_models import fit_demographic
from sim_core.evaluation.individual import (
    IndividualConfig,
    evaluate_individuals,
    sweep_record,
)
from sim_core.evaluation.individual_scores import INDIVIDUAL_SCORES, score_predictions
from sim_core.evaluation.respondent_table import (
    RespondentTable,
    respondent_split,
    split_from_cards,
)
from sim_core.simulation.adapter_card import read_card
from sim_core.simulation.calibration import temper
from sim_core.simulation.config import SimConfig
from sim_core.simulation.models import load_model
from sim_core.simulation.simulate import simulate
from sim_core.survey.marginal_readers import read_marginals_csv
from sim_core.survey.readers import read_respondents_csv

SIM = SimConfig(orders=1, use_cache=False)
TEMPS = (0.5, 1.0, 2.0)


@pytest.fixture(scope="module")
def survey():
    return ordinal_survey(n=300, seed=2)[0]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir), dtype="float32")


@pytest.fixture(scope="module")
def result(tiny, survey):
    config = IndividualConfig(temperatures=TEMPS, test_fraction=0.3, val_fraction=0.25)
    return evaluate_individuals([tiny], survey, ["age", "region"], config=config, sim=SIM,
                                baselines=("population", "classifier", "svr"))


def test_every_test_respondent_is_scored_from_their_own_profile(tiny, survey, result):
    """Recompute the test scores at every temperature from scratch: split, profile,
    simulate(), temper(), score_predictions()."""
    split = respondent_split(survey, test_fraction=0.3, val_fraction=0.25, seed=0)
    frame = survey.respondents[survey.respondents["q"].notna()]     # who answered
    test = frame[frame.index.isin(split.test)]
    question = survey.questions["q"]
    profiles = [{"age": a, "region": r} for a, r in zip(test["age"], test["region"])]
    distinct = {tuple(p.values()): p for p in profiles}
    # prompted as compare/evaluate prompt this survey (its population and labels)
    sim = SimConfig(orders=1, use_cache=False, style=SIM.style.for_survey(survey))
    shares = {key: r.shares for key, r in
              zip(distinct, simulate(tiny, question, list(distinct.values()), sim))}
    raw = np.array([shares[tuple(p.values())] for p in profiles])
    answers = np.array([question.options.index(a) for a in test["q"]])
    table = result.table
    for t in TEMPS:
        expected = score_predictions(question, answers, np.ones(len(answers)),
                                     probs=temper(raw, t))
        row = table[(table["entry"] == tiny.label) & (table["temperature"] == t)
                    & (table["part"] == "test")].iloc[0]
        assert row["n"] == len(test) == len(split.test)
        for key in INDIVIDUAL_SCORES:
            assert row[key] == pytest.approx(expected[key], nan_ok=True)
    # identical profiles share one prompt: 3 ages x 2 regions
    assert result.n_profiles == 6
    assert result.n_scored == {"val": len(split.val), "test": len(split.test)}


def test_temperature_chosen_on_validation_and_recorded(tiny, result):
    sweep = result.sweeps[tiny.label]
    val = sweep.curve[sweep.curve["part"] == "val"]
    assert sweep.chosen == val.loc[val["kl"].idxmin(), "temperature"]
    assert sorted(sweep.curve["temperature"].unique()) == list(TEMPS)
    summary = result.summary()
    chosen_row = summary[(summary["entry"] == tiny.label) & summary["chosen"]].iloc[0]
    assert chosen_row["kl"] == pytest.approx(sweep.at(sweep.chosen)["kl"])
    record = sweep_record(result, tiny.label)
    assert record["chosen"] == sweep.chosen and record["chosen_on"] == "val"
    assert record["split"]["n_test"] == 90 and record["criterion"] == "kl"
    assert len(record["curve"]) == 2 * len(TEMPS)


def test_baselines_are_fitted_on_the_same_people(survey, result):
    table = RespondentTable.build(survey, ["age", "region"])
    fit = fit_demographic("classifier", table, "q", features=["age", "region"], seed=0)
    held = fit.test
    expected = score_predictions(fit.question, fit.answers[held], fit.weights[held],
                                 probs=fit.probs[held])
    row = result.table[(result.table["entry"] == "baseline: classifier")
                       & (result.table["part"] == "test")].iloc[0]
    assert row["log_loss"] == pytest.approx(expected["log_loss"])
    assert row["n"] == int(held.sum())
    svr = result.summary().set_index("entry").loc["baseline: svr"]
    assert np.isnan(svr["log_loss"]) and svr["rmse"] == svr["rmse_expected"]


def test_sampling_mode_runs_one_simulation_per_temperature(tiny_model_dir, survey):
    from factories import biased_head

    lettered = load_model(str(tiny_model_dir), dtype="float32")
    biased_head(lettered, {330: 50.0, 389: 50.0})  # " A", " B": every sampled answer parses
    config = IndividualConfig(temperatures=(0.5, 3.0), max_respondents=10)
    result = evaluate_individuals([lettered], survey, ["age"], config=config,
                                  sim=SimConfig(mode="sample", samples=4, use_cache=False),
                                  baselines=())
    rows = result.table[result.table["part"] == "test"].set_index("temperature")
    assert list(rows.index) == [0.5, 3.0] and result.mode == "sample"
    assert (rows["n"] == 10).all()


def test_bad_input_gets_one_clear_message(tiny, survey):
    table = read_marginals_csv(b"question_id,question_text,option,share\nq,Q?,Yes,1\n", name="m")
    with pytest.raises(DataError, match="temperature sweep\\) needs respondent-level data"):
        evaluate_individuals([tiny], table, ["sex"])
    single = read_respondents_csv(b"sex,country,q\nF,US,1\nM,US,2\nF,US,2\nM,US,1\n",
                                  name="s", demographics=["sex", "country"], questions=["q"])
    with pytest.raises(DataError, match="'country' has a single group"):
        evaluate_individuals([tiny], single, ["country"])
    with pytest.raises(DataError, match="temperatures must be"):
        IndividualConfig(temperatures=(0.01, 1.0))
    with pytest.raises(DataError, match="unknown baseline"):
        evaluate_individuals([tiny], survey, ["age"], baselines=("oracle",))


def test_adapters_must_be_scored_on_the_people_they_never_saw(tiny_model_dir, survey):
    from factories import save_random_adapter

    base = load_model(str(tiny_model_dir))
    card = {"base_model": str(tiny_model_dir), "base_fingerprint": base.fingerprint,
            "split": {"how": "respondent", "test_fraction": 0.2, "seed": 3,
                      "val_fraction": 0.1}}
    save_random_adapter(tiny_model_dir, "held-people", card)
    tuned = load_model(str(tiny_model_dir), adapter="held-people")
    assert split_from_cards([base, tuned]) == (0.2, 3)
    with pytest.raises(DataError, match="held out respondents with test share 0.2"):
        evaluate_individuals([tuned], survey, ["age"], sim=SIM, baselines=())
    same = IndividualConfig(test_fraction=0.2, split_seed=3, temperatures=(1.0,),
                            max_respondents=10)
    result = evaluate_individuals([tuned], survey, ["age"], config=same, sim=SIM, baselines=())
    assert result.split["test_fraction"] == 0.2 and not result.notes
    save_random_adapter(tiny_model_dir, "question-split", {**card, "split": {"how": "question"}})
    other = load_model(str(tiny_model_dir), adapter="question-split")
    result = evaluate_individuals([other], survey, ["age"], config=same, sim=SIM, baselines=())
    assert "trained with a question split" in result.notes[0]


def test_cli_individual_json_save_and_errors(tiny_model_dir, survey, tmp_path, capsys):
    from factories import save_random_adapter

    from sim_core.__main__ import main

    path = tmp_path / "ordinal.csv"
    frame = survey.respondents[["age", "region", "q"]]
    frame.to_csv(path, index=False)
    folder, _ = save_random_adapter(tiny_model_dir, "cli-sweep")
    args = ["individual", "--data", str(path), "--by", "age,region", "--model",
            str(tiny_model_dir), "--adapter", "cli-sweep", "--orders", "1", "--no-cache",
            "--temperatures", "0.5,2", "--baselines", "population", "--max-respondents", "20"]
    assert main(args + ["--json", "--save"]) == 0
    out = json.loads(capsys.readouterr().out)
    entries = [row["entry"] for row in out["summary"]]
    assert entries[-1] == "baseline: population" and len(out["sweeps"]) == 2
    label = next(e for e in out["sweeps"] if e.endswith("cli-sweep"))
    saved = read_card(folder).temperature_sweep
    assert saved["chosen"] == out["sweeps"][label]["chosen"] and saved["curve"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "temperature sweep" in text and "held-out test respondents" in text
    marginals = tmp_path / "m.csv"
    marginals.write_text("question_id,question_text,option,share,attribute,group\n"
                         "q,Q?,Yes,1,sex,F\nq,Q?,Yes,1,sex,M\n")
    assert main(["individual", "--data", str(marginals), "--by", "sex", "--model",
                 str(tiny_model_dir)]) == 2
    assert "needs respondent-level data" in capsys.readouterr().err


def test_a_sampling_sweeps_chosen_temperature_is_used_later(tiny_model_dir):
    """The temperature an adapter's sweep chose in sampling mode is what later sampling
    simulations of that adapter generate with, unless a temperature is given; a first-token
    sweep changes nothing there."""
    from factories import save_random_adapter

    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.models import load_model
    from sim_core.simulation.simulate import simulate, temperature_for
    from sim_core.survey.schema import Question

    question = Question(id="q", text="Agree?", options=("Yes", "No"))
    _, base = save_random_adapter(tiny_model_dir, "sample-sweep", {
        "base_model": str(tiny_model_dir), "temperature_sweep": {"mode": "sample",
                                                                 "chosen": 2.0}})
    save_random_adapter(tiny_model_dir, "letter-sweep", {
        "base_model": str(tiny_model_dir), "temperature_sweep": {"mode": "first-token",
                                                                 "chosen": 0.5}})
    sampled = load_model(str(tiny_model_dir), "sample-sweep", dtype="float32")
    letters = load_model(str(tiny_model_dir), "letter-sweep", dtype="float32")
    config = SimConfig(mode="sample", samples=2, use_cache=False)
    assert temperature_for(sampled, config) == 2.0
    assert temperature_for(sampled, SimConfig(mode="sample", temperature=0.7)) == 0.7
    assert temperature_for(letters, config) == 1.0 and temperature_for(base, config) == 1.0
    seen = []
    generate = sampled.model.generate

    def spy(*args, **kwargs):
        seen.append(kwargs["temperature"])
        return generate(*args, **kwargs)
    sampled.model.generate = spy
    simulate(sampled, question, [{}], config)
    simulate(sampled, question, [{}], SimConfig(mode="sample", samples=2, temperature=0.7,
                                                use_cache=False))
    assert seen == [2.0, 0.7]
