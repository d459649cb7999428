"""Population estimates through the CLI (simulate / compare / report --population-estimate,
`populations`) and evaluate_population, with the tiny local model."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from sim_core.__main__ import main
from sim_core.base import metrics
from sim_core.base.labels import baseline_entry
from sim_core.evaluation.compare import with_survey_style
from sim_core.evaluation.population import post_stratify
from sim_core.evaluation.population_evaluate import GROUPS, POPULATION, evaluate_population
from sim_core.report.exports import report_from_json
from sim_core.simulation.config import SimConfig
from sim_core.simulation.models import load_model
from sim_core.simulation.simulate import simulate
from sim_core.survey.composition import survey_composition
from sim_core.survey.readers import read_respondents_csv
from sim_core.survey.slices import real_marginals

FAST = ["--orders", "1", "--no-cache"]


def respondents(n: int = 160, seed: int = 1) -> str:
    """sex x region respondents with weights, an ordinal and a nominal question."""
    rng = np.random.default_rng(seed)
    lines = ["sex,region,w,spend,vote"]
    for _ in range(n):
        sex, region = rng.choice(["F", "M"]), rng.choice(["North", "South", "East"])
        spend = rng.choice(["Too little", "About right", "Too much"])
        vote = "Yes" if rng.random() < (0.7 if sex == "F" else 0.4) else "No"
        lines.append(f"{sex},{region},{rng.uniform(0.5, 2):.3f},{spend},{vote}")
    return "\n".join(lines) + "\n"


CODEBOOK = ("column,question_text,options,ordinal\n"
            "spend,Are we spending too much?,Too little|About right|Too much,true\n"
            "vote,Did you vote?,Yes|No,false\n")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("population")
    (folder / "people.csv").write_text(respondents())
    (folder / "book.csv").write_text(CODEBOOK)
    (folder / "margins.csv").write_text("attribute,group,share\nsex,F,0.6\nsex,M,0.4\n"
                                        "region,North,0.2\nregion,South,0.5\nregion,East,0.3\n")
    return folder


@pytest.fixture(scope="module")
def survey(files):
    return read_respondents_csv(files / "people.csv", codebook=files / "book.csv",
                                demographics=["sex", "region"], questions=["spend", "vote"],
                                weight="w")


def data_args(files) -> list[str]:
    return ["--data", str(files / "people.csv"), "--codebook", str(files / "book.csv"),
            "--weight", "w", "--demographics", "sex,region", "--questions", "spend,vote"]


def test_compare_population_estimate_json(files, survey, tiny_model_dir, capsys):
    assert main(["compare", *data_args(files), "--question", "spend", "--by", "sex,region",
                 "--model", str(tiny_model_dir), *FAST, "--baselines", "uniform",
                 "--population-estimate", "--json"]) == 0
    (out,) = json.loads(capsys.readouterr().out)
    population = out["population"]
    composition = survey_composition(survey, ["sex", "region"], question_id="spend")
    cells = population["composition"]["cells"]
    assert [c["label"] for c in cells] == composition.labels
    np.testing.assert_allclose([c["share"] for c in cells], composition.shares, atol=1e-12)
    # the estimate is the composition-weighted sum of the slices compare printed
    label = out["checkpoints"][0]["label"]
    by_slice = {s["label"]: s["entries"][label] for s in out["slices"]}
    expected = post_stratify([by_slice[c["label"]] for c in cells], composition.shares)
    np.testing.assert_allclose(population["estimates"][label], expected, atol=1e-5)
    topline = real_marginals(survey, "spend")[0]
    np.testing.assert_allclose(population["real"]["shares"], topline.shares, atol=1e-6)
    np.testing.assert_allclose(population["real"]["ci_low"], topline.ci_low, atol=1e-6)
    np.testing.assert_allclose(population["real_composed"], topline.shares, atol=1e-6)
    ordinal = survey.questions["spend"].ordinal_values
    score = metrics.compute("wasserstein", topline.shares, expected, ordinal_values=ordinal)
    assert population["score"] == "wasserstein"
    assert population["scores"][label]["wasserstein"] == pytest.approx(score, abs=1e-5)
    assert population["noise_floor"]["wasserstein"] > 0


def test_compare_with_margins_and_a_subgroup(files, tiny_model_dir, capsys):
    assert main(["compare", *data_args(files), "--question", "vote", "--by", "sex,region",
                 "--model", str(tiny_model_dir), *FAST, "--baselines", "uniform,population",
                 "--population-estimate", "--margins", str(files / "margins.csv"),
                 "--subgroup", "sex=F", "--json"]) == 0
    population = json.loads(capsys.readouterr().out)[0]["population"]
    assert population["label"] == "sex=F"
    shares = {c["label"]: c["share"] for c in population["composition"]["cells"]}
    assert list(shares) == ["sex=F, region=East", "sex=F, region=North", "sex=F, region=South"]
    assert sum(shares.values()) == pytest.approx(1)
    assert "raked (IPF) from the survey's weighted composition" in \
        population["composition"]["source"]
    assert population["reference_label"] == "the survey's weighted answer of sex=F"
    assert "population" in population["baselines"]      # a subgroup: a real contender
    assert "wasserstein" not in population["scores"]["baseline: uniform"]   # nominal: TV
    assert population["score"] == "tv"


def test_population_flags_give_one_clear_message(files, tiny_model_dir, capsys):
    base = ["compare", *data_args(files), "--question", "spend", "--model",
            str(tiny_model_dir), *FAST]
    assert main(base + ["--margins", str(files / "margins.csv")]) == 2
    assert "add --population-estimate" in capsys.readouterr().err
    assert main(base + ["--population-estimate"]) == 2
    assert "choose the attributes whose cells make up the population" in \
        capsys.readouterr().err
    bad = files / "bad.csv"
    bad.write_text("attribute,group,share\nsex,F,0.6\nsex,M,0.3\n")
    assert main(base + ["--by", "sex", "--population-estimate", "--margins", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "sum to 0.9, not 1" in err and "Traceback" not in err
    assert main(base + ["--by", "sex", "--population-estimate", "--margins",
                        str(files / "margins.csv"), "--subgroup", "sex=X"]) == 2
    assert "no cell is in the subgroup sex=X" in capsys.readouterr().err


def test_simulate_a_drafted_question_for_a_population(files, tiny_model_dir, capsys):
    argv = ["simulate", "--question", "Build more bike lanes?", "--options", "Yes|No",
            "--model", str(tiny_model_dir), *FAST, "--population-estimate", "--margins",
            str(files / "margins.csv"), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    population = out["population"]
    margins = {"sex": {"F": 0.6, "M": 0.4}, "region": {"North": 0.2, "South": 0.5, "East": 0.3}}
    cells = list(itertools.product(margins["sex"], margins["region"]))
    assert [c["slice"] for c in out["cells"]] == [{"sex": s, "region": r} for s, r in cells]
    weights = [margins["sex"][s] * margins["region"][r] for s, r in cells]
    np.testing.assert_allclose([c["share"] for c in population["composition"]["cells"]],
                               weights, atol=1e-9)
    label = out["cells"][0]["model"]
    expected = post_stratify([c["shares"] for c in out["cells"]], weights)
    np.testing.assert_allclose(population["estimates"][label], expected, atol=1e-5)
    assert population["real"] is None and population["scores"] == {}
    assert main(argv[:-1] + ["--slice", "sex=F"]) == 2
    assert "leave out --slice" in capsys.readouterr().err


def test_report_carries_the_population_section(files, tiny_model_dir, tmp_path, capsys):
    pdf, csv_path, json_path = (tmp_path / f"r.{x}" for x in ("pdf", "csv", "json"))
    assert main(["report", *data_args(files), "--question", "spend", "--by", "sex",
                 "--model", str(tiny_model_dir), *FAST, "--baselines", "uniform",
                 "--population-estimate", "--pdf", str(pdf), "--csv", str(csv_path),
                 "--json", str(json_path)]) == 0
    report = report_from_json(json_path.read_text())
    (part,) = report.population_estimates
    assert part.question_id == "spend" and part.label == "All"
    assert [c for c, _ in part.composition] == ["sex=F", "sex=M"]
    import pandas as pd
    table = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    rows = table[table["table"] == "population"]
    assert set(rows["entry"]) == {"real", report.checkpoints[0]["label"], "baseline: uniform"}
    real = rows[rows["entry"] == "real"]
    np.testing.assert_allclose(real["share"], part.real)
    assert real["ci_low"].notna().all()
    composition = table[table["table"] == "composition"]
    np.testing.assert_allclose(composition["share"], [s for _, s in part.composition])
    assert (table["table"] == "population_scores").any()
    assert pdf.read_bytes()[:4] == b"%PDF"
    from pypdf import PdfReader
    assert "Population estimate: spend (All)" in "".join(
        page.extract_text() for page in PdfReader(pdf).pages)


def test_populations_command(files, capsys):
    assert main(["populations", "save", "--margins", str(files / "margins.csv"),
                 "--name", "three-regions"]) == 0
    assert "saved 'three-regions'" in capsys.readouterr().out
    assert main(["populations", "save", "--margins", str(files / "margins.csv"),
                 "--name", "three-regions"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["populations", "list", "--json"]) == 0
    assert "three-regions" in json.loads(capsys.readouterr().out)
    assert main(["populations", "show", "three-regions", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["shares"]["region"] == {"North": 0.2, "South": 0.5, "East": 0.3}
    assert main(["populations", "delete", "three-regions"]) == 0
    capsys.readouterr()
    assert main(["populations", "show", "three-regions"]) == 2
    assert "no saved population named 'three-regions'" in capsys.readouterr().err


def test_evaluate_population_scores_both_levels(survey, tiny_model_dir):
    lm = load_model(str(tiny_model_dir))
    config = SimConfig(orders=1, use_cache=False)
    evaluation = evaluate_population([lm], survey, ["sex"], config=config)
    rows = evaluation.rows.set_index(["question_id", "entry", "level"])
    for qid in ("spend", "vote"):
        question = survey.questions[qid]
        composition = survey_composition(survey, ["sex"], question_id=qid)
        styled = with_survey_style(config, survey)      # the survey's names in the prompt
        sims = [r.shares for r in simulate(lm, question, composition.cells, styled)]
        estimate = post_stratify(sims, composition.shares)
        topline = real_marginals(survey, qid)[0].shares
        tv = metrics.compute("tv", topline, estimate)
        # evaluate_population batches both questions' prompts: padding moves the low
        # precision weights' outputs a little
        assert rows.loc[(qid, lm.label, POPULATION), "tv"] == pytest.approx(tv, abs=1e-4)
        reals = [real_marginals(survey, qid, ["sex"])[i].shares for i in range(2)]
        group_tv = np.mean([metrics.compute("tv", p, q) for p, q in zip(reals, sims)])
        assert rows.loc[(qid, lm.label, GROUPS), "tv"] == pytest.approx(group_tv, abs=1e-4)
        uniform_tv = metrics.compute("tv", topline, np.full(question.k, 1 / question.k))
        assert rows.loc[(qid, baseline_entry("uniform"), POPULATION), "tv"] == \
            pytest.approx(uniform_tv)
    summary = evaluation.summary("tv")
    assert list(summary.columns[:3]) == [POPULATION, GROUPS, "questions"]
    assert summary.loc[lm.label, "questions"] == 2
    assert summary.loc[lm.label, POPULATION] == pytest.approx(
        evaluation.rows.query("entry == @lm.label and level == 'population'")["tv"].mean())
    chart = evaluation.chart_data("tv")
    assert set(chart.columns) == {"question_id", "entry", POPULATION, GROUPS}
