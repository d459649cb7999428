"""Real survey files, round 2: numbers with a few value labels stay numbers, options that
cannot apply are refused, warnings concern the columns in use, design variables are no
questions, any question can be a slice attribute. Files are written here with pyreadstat;
shares per band are checked by hand."""

from __future__ import annotations

import json

import pandas as pd
import pyreadstat
import pytest

from sim_core.__main__ import main as cli
from sim_core.base.errors import DataError
from sim_core.survey.attributes import check_bins, slice_attribute_choices, with_slice_attributes
from sim_core.survey.notes import notes_table
from sim_core.survey.readers import load_survey
from sim_core.survey.slices import real_marginals

# ---------------------------------------------------------------- age: labelled top code

#        0   1   2   3   4   5   6   7   8   9  10  11  12  13  14  15  16  17  18  19
AGE = [18, 22, 25, 29, 30, 35, 44, 45, 50, 64, 65, 70, 80, 97, 97, 98, 99, 17, 40, 60]
Q = [1, 2, 1, 1, 2, 2, 1, 1, 2, 1, 2, 2, 1, 1, 2, 1, 2, 1, 1, 2]      # 1 Yes, 2 No
W = [1, 2, 1, 1, 1, 2, 1, 3, 1, 1, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2]
AGE_LABELS = {97: "97 or older", 98: "Don't know", 99: "Refused"}


def write_ages(folder, suffix=".sav", **extra):
    """20 respondents: age labelled only at its top code (97) and its missing codes (98 DK,
    99 refused, not declared missing), a yes/no question, a weight; other columns in extra
    as (values, value labels)."""
    columns = {"age": AGE, "q": Q, "wt": W, **{k: v for k, (v, _) in extra.items()}}
    labels = {"age": AGE_LABELS, "q": {1: "Yes", 2: "No"},
              **{k: lab for k, (_, lab) in extra.items() if lab}}
    path = folder / f"ages{suffix}"
    frame = pd.DataFrame({k: [float(x) for x in v] for k, v in columns.items()})
    writer = pyreadstat.write_sav if suffix == ".sav" else pyreadstat.write_dta
    writer(frame, path, variable_value_labels=labels,
           column_labels={"q": "Do you agree?", "age": "Age of respondent"})
    return path


def yes_shares(survey, bins=None):
    """slice label -> (weighted share of Yes, respondents in the band)."""
    return {m.label: (round(m.shares[0], 12), m.n_total) for m in
            real_marginals(survey, "q", ["age"], bins=bins, min_n_eff=0)}


@pytest.mark.parametrize("suffix", [".sav", ".dta"])
def test_age_with_a_labelled_top_code_gets_bands(tmp_path, suffix):
    survey = load_survey(write_ages(tmp_path, suffix), weight="wt", demographics=["age"])
    assert survey.respondents["age"].dtype == float        # a number, not 17 categories
    shares = yes_shares(survey)
    # default bands 18-29 / 30-44 / 45-64 / 65+; 98 (DK), 99 (refused) and 17 in none.
    # 18-29: rows 0-3, w 1+2+1+1 = 5, yes rows 0, 2, 3 (w 3)
    # 30-44: rows 4, 5, 6, 18, w 5, yes rows 6, 18 (w 2)
    # 45-64: rows 7, 8, 9, 19, w 7, yes rows 7, 9 (w 4)
    # 65+:   rows 10-14 (97 "97 or older" counts as 97), w 7, yes rows 12, 13 (w 3)
    assert shares == {"age=18-29": (round(3 / 5, 12), 4), "age=30-44": (round(2 / 5, 12), 4),
                      "age=45-64": (round(4 / 7, 12), 4), "age=65+": (round(3 / 7, 12), 5)}
    # --bins applies: 18-49 rows 0-7, 18 (w 13, yes w 8); 50+ rows 8-14, 19 (w 11, yes w 4)
    assert yes_shares(survey, bins={"age": [18, 50, 200]}) == {
        "age=18-49": (round(8 / 13, 12), 9), "age=50+": (round(4 / 11, 12), 8)}
    note = next(n for n in survey.column_notes if n.column == "age")
    assert note.kind == "numeric" and "97 means '97 or older'" in note.text
    assert "98 = Don't know, 99 = Refused are missing" in note.text


def test_cli_bands_and_bins_of_a_labelled_number(tmp_path, capsys):
    path = write_ages(tmp_path)
    base = ["marginals", "--data", str(path), "--weight", "wt", "--demographics", "age",
            "--question", "q", "--json"]
    assert cli(base + ["--by", "age"]) == 0
    out = json.loads(capsys.readouterr().out)["marginals"]
    assert [m["label"] for m in out] == ["age=18-29", "age=30-44", "age=45-64", "age=65+"]
    assert out[3]["shares"] == pytest.approx([3 / 7, 4 / 7], abs=1e-6)
    assert cli(base + ["--by", "age", "--bins", "age=18,50,200"]) == 0
    out = json.loads(capsys.readouterr().out)["marginals"]
    assert [(m["label"], m["n"]) for m in out] == [("age=18-49", 9), ("age=50+", 8)]
    assert out[0]["shares"] == pytest.approx([8 / 13, 5 / 13], abs=1e-6)


SCALE = [i % 11 for i in range(20)]            # 0-10, labelled at its ends only
KIDS = [i % 9 for i in range(20)]              # 0-8, 8 = "8 or more"
SCORE = list(range(20))                        # 20 values, one labelled in the middle
ZONE = [i % 4 + 1 for i in range(20)]          # every value labelled
HALF = [1 + i % 2 for i in range(20)]          # 1 "Yes" labelled, 2 not


def test_the_rule_both_sides(tmp_path):
    extra = {"scale": (SCALE, {0: "Not at all satisfied", 10: "Completely satisfied"}),
             "kids": (KIDS, {8: "8 or more"}),
             "score": (SCORE, {5: "Middle"}),
             "zone": (ZONE, {1: "North", 2: "East", 3: "South", 4: "West"}),
             "half": (HALF, {1: "Yes"})}
    survey = load_survey(write_ages(tmp_path, **extra), weight="wt", demographics=["age", "kids"])
    # categorical: every value labelled; half the values labelled; an end-labelled 0-10
    # scale (11 values, end labels that are no bounds) keeps one option per value
    assert survey.questions["zone"].options == ("North", "East", "South", "West")
    assert survey.questions["half"].options == ("Yes", "2")
    assert survey.questions["scale"].options == ("Not at all satisfied", *map(str, range(1, 10)),
                                                 "Completely satisfied")
    # numbers: a bound label on the top value ("8 or more"); one label, 20 values, no bound
    # -> stays categorical (20 <= 26 options); see the next test for more than 26 values
    assert survey.respondents["kids"].dtype == float and "kids" not in survey.questions
    assert survey.questions["score"].options[4:7] == ("4", "Middle", "6")
    kinds = {n.column: n.kind for n in survey.column_notes if n.kind == "numeric"}
    assert kinds == {"age": "numeric", "kids": "numeric"}


def test_more_values_than_letters_is_a_number(tmp_path):
    path = tmp_path / "many.sav"
    frame = pd.DataFrame({"income": [float(i) for i in range(30)], "q": [1.0, 2.0, 1.0] * 10})
    pyreadstat.write_sav(frame, path, variable_value_labels={"income": {15: "Median"},
                                                             "q": {1: "Yes", 2: "No"}})
    survey = load_survey(path, demographics=["income"])
    assert survey.respondents["income"].dtype == float
    # 30 distinct values, one labelled in the middle: the bands a CSV file of the same
    # numbers gets (quartiles), with the same shares
    csv = tmp_path / "many.csv"
    frame.assign(q=frame.q.map({1.0: "Yes", 2.0: "No"})).to_csv(csv, index=False)
    plain = load_survey(csv, demographics=["income"])
    got = real_marginals(survey, "q", ["income"], min_n_eff=0)
    want = real_marginals(plain, "q", ["income"], min_n_eff=0)
    assert len(got) == 4 and [m.label for m in got] == [m.label for m in want]
    order = [want[0].options.index(o) for o in got[0].options]
    for a, b in zip(got, want):
        assert a.shares.tolist() == pytest.approx(b.shares[order].tolist())


def test_codebook_overrides_the_rule(tmp_path):
    path = write_ages(tmp_path)
    book = tmp_path / "book.csv"
    book.write_text("column,question_text,options,codes,missing,role\n"
                    "age,Age,Young|Old,18|97,98|99,demographic\n"
                    "q,Do you agree?,Yes|No,1|2,,question\n", encoding="utf-8")
    survey = load_survey(path, codebook=book, weight="wt")
    assert isinstance(survey.respondents["age"].dtype, pd.CategoricalDtype)   # as told
    assert survey.groups("age")[:2] == ["17", "Young"] and "Old" in survey.groups("age")


# ---------------------------------------------------------------- options that cannot apply

@pytest.mark.parametrize("bins", ["age=nan,30,60", "age=30,20", "age=a,b", "age=18",
                                  "=18,30", "age=18,inf"])
def test_bad_bin_edges_are_one_message(tmp_path, capsys, bins):
    path = write_ages(tmp_path)
    status = cli(["marginals", "--data", str(path), "--weight", "wt", "--demographics", "age",
                  "--question", "q", "--by", "age", "--bins", bins])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and "monotonically" not in err
    assert f"--bins: '{bins}' needs an attribute name and at least two increasing finite " \
           "numbers" in err


@pytest.mark.parametrize("extra, why", [
    (["--bins", "q2=1,2"], "--bins: bins for 'q2' cannot apply: it is categorical (its groups "
                           "are Yes, No)"),
    (["--bins", "region=1,3"], "--bins: bins for 'region' cannot apply: it is categorical"),
    (["--bins", "height=1,3"], "--bins: bins for 'height' cannot apply: the survey has no such"),
    (["--by", "region", "--bins", "age=18,50,200"],
     "--bins: bins for 'age' cannot apply: the run is not sliced by it (by: region)"),
])
def test_bins_that_cannot_apply_are_refused(tmp_path, capsys, extra, why):
    path = write_ages(tmp_path, q2=(HALF, {1: "Yes", 2: "No"}),
                      region=(ZONE, {1: "North", 2: "East", 3: "South", 4: "West"}))
    args = ["marginals", "--data", str(path), "--weight", "wt", "--demographics",
            "age,region", "--question", "q"] + (["--by", "age"] if "--by" not in extra else [])
    assert cli(args + extra) == 2
    assert why in capsys.readouterr().err


def test_check_bins_core(tmp_path):
    survey = load_survey(write_ages(tmp_path), weight="wt", demographics=["age"])
    check_bins(survey, {"AGE": [18, 50, 200]}, ["age"])          # names match any case
    with pytest.raises(DataError, match="not sliced by it"):
        check_bins(survey, {"age": [18, 50]}, [])
    with pytest.raises(DataError, match="categorical"):
        real_marginals(survey, "q", [], bins={"q": [1, 2]})       # never silently ignored


# ---------------------------------------------------------------- 192 columns, one question

N_Q = 184              # q1..q184, plus id, form, intid, psu, wt, sex, age, polaf: 192
N_ROWS = 60


def write_wide(folder):
    """A 192-column telephone survey: every question has an undeclared "Don't know" label
    (a note each), q10 a "(VOL)" option, polaf asks party affiliation, age is labelled only
    at its top and missing codes, and design variables (form, intid, psu)."""
    rows = range(N_ROWS)
    data = {"id": [1000.0 + r for r in rows], "form": [1.0 + r % 2 for r in rows],
            "intid": [float(100 + r % 7) for r in rows], "psu": [float(r % 5) for r in rows],
            "wt": [1.0 + (r % 3) / 2 for r in rows], "sex": [1.0 + r % 2 for r in rows],
            "age": [float(18 + (r * 7) % 80) if r % 13 else 98.0 for r in rows],
            "polaf": [float([1, 2, 3, 8, 9][r % 5]) for r in rows]}
    codes = [1.0, 2.0, 3.0, 9.0]
    for i in range(1, N_Q + 1):
        data[f"q{i}"] = [codes[(r + i) % 4] for r in rows]
    labels = {"form": {1: "Form 1", 2: "Form 2"}, "sex": {1: "Male", 2: "Female"},
              "age": {97: "97 or older", 98: "Don't know", 99: "Refused"},
              "polaf": {1: "Republican", 2: "Democrat", 3: "Independent",
                        8: "(VOL) Other party", 9: "Don't know/Refused"}}
    for i in range(1, N_Q + 1):
        labels[f"q{i}"] = {1: "Agree", 2: "Disagree", 3: "(VOL) Neither" if i == 10 else
                           "Neither", 9: "Don't know"}
    column_labels = {"polaf": "In politics TODAY, do you consider yourself a Republican, "
                              "Democrat, or independent?", "form": "Form", "wt": "Weight",
                     **{f"q{i}": f"Question {i}?" for i in range(1, N_Q + 1)}}
    path = folder / "wide.sav"
    pyreadstat.write_sav(pd.DataFrame(data), path, variable_value_labels=labels,
                         column_labels=column_labels)
    assert len(data) == 192
    return path


def test_one_question_command_warns_about_its_columns_only(tmp_path, capsys):
    path = write_wide(tmp_path)
    assert cli(["marginals", "--data", str(path), "--question", "q5", "--by", "sex"]) == 0
    lines = capsys.readouterr().err.splitlines()
    # notes: 184 questions with "Don't know" + q10's (VOL) + polaf's "Don't know/Refused"
    # and (VOL) + age read as a number + form, intid, psu design variables = 191; q5's is
    # shown, 190 are counted
    assert len(lines) == 4, lines
    assert lines[0].startswith("warning: demographics guessed from column names: sex, age;")
    assert lines[1].startswith("warning: column(s) wt look like weights but no weight was "
                               "chosen")
    assert lines[2].startswith("warning: q5: 'Don't know' (15) counted as nonresponse")
    assert lines[3] == ("warning: 190 notes about other columns: see the codebook (`python -m "
                        f"sim_core codebook --data {path}`, its notes column)")
    survey = load_survey(path)
    table = notes_table(survey)
    assert list(table.columns) == ["column", "kind", "note"] and len(table) == 191
    assert table.groupby("kind").size().to_dict() == {
        "design": 3, "instructions": 2, "nonresponse": 185, "numeric": 1}
    assert set(table[table.kind == "design"].column) == {"form", "intid", "psu"}


def test_design_variables_are_no_questions_unless_named(tmp_path, capsys):
    path = write_wide(tmp_path)
    survey = load_survey(path)
    assert "form" not in survey.questions and list(survey.questions)[0] == "polaf"
    named = load_survey(path, questions=["form", "q1"])
    assert named.questions["form"].options == ("Form 1", "Form 2")
    book = tmp_path / "book.csv"
    book.write_text("column,question_text,options,codes,role\nform,Form,Form 1|Form 2,1|2,"
                    "question\nq1,Q1,Agree|Disagree|Neither,1|2|3,question\n", encoding="utf-8")
    assert list(load_survey(path, codebook=book).questions) == ["form", "q1"]
    # a ballot told by its value labels alone
    other = tmp_path / "ballot.sav"
    pyreadstat.write_sav(pd.DataFrame({"x7": [1.0, 2.0] * 3, "q": [1.0, 2.0, 1.0] * 2}), other,
                         variable_value_labels={"x7": {1: "Version A", 2: "Version B"},
                                                "q": {1: "Yes", 2: "No"}})
    assert list(load_survey(other).questions) == ["q"]


# ---------------------------------------------------------------- a question as slice attribute

def test_a_question_as_slice_attribute(tmp_path, capsys):
    path = write_wide(tmp_path)
    survey = load_survey(path, weight="wt", demographics=["sex"])
    assert slice_attribute_choices(survey, "q1")[:3] == ["sex", "polaf", "q2"]
    run, by = with_slice_attributes(survey, ["POLAF"], ["q1"])
    assert by == ["polaf"] and "polaf" not in run.questions and "polaf" in survey.questions
    marginals = real_marginals(run, "q1", by, min_n_eff=0)
    assert [m.label for m in marginals] == ["polaf=Republican", "polaf=Democrat",
                                            "polaf=Independent", "polaf=(VOL) Other party"]
    # by hand: Republicans are rows r % 5 == 0; q1 = codes[(r + 1) % 4]
    frame = pd.DataFrame({"r": range(N_ROWS)})
    frame["w"] = 1 + (frame.r % 3) / 2
    frame["q1"] = [[1, 2, 3, 9][(r + 1) % 4] for r in frame.r]
    rep = frame[(frame.r % 5 == 0) & (frame.q1 != 9)]
    expected = [rep.w[rep.q1 == c].sum() / rep.w.sum() for c in (1, 2, 3)]
    assert marginals[0].shares.tolist() == pytest.approx(expected)
    with pytest.raises(DataError, match="is the question asked"):
        with_slice_attributes(survey, ["polaf"], ["polaf"])
    with pytest.raises(DataError, match="unknown attribute 'nope'"):
        with_slice_attributes(survey, ["nope"])
    with pytest.raises(DataError, match="'form' is not read as a question or demographic"):
        with_slice_attributes(survey, ["form"])             # a design variable: say how
    by_form, _ = with_slice_attributes(load_survey(path, weight="wt",
                                                   demographics=["sex", "form"]), ["form"])
    assert [m.label for m in real_marginals(by_form, "q1", ["form"], min_n_eff=0)] == \
        ["form=Form 1", "form=Form 2"]


def test_tables_slice_by_their_own_attributes_only(gss_path):
    gss = load_survey(gss_path)
    qid = next(iter(gss.questions))
    assert with_slice_attributes(gss, ["SEX"], [qid])[0] is gss
    with pytest.raises(DataError, match="is a question of a marginal table"):
        with_slice_attributes(gss, [list(gss.questions)[1]], [qid])
    with pytest.raises(DataError, match="bins cannot apply to a marginal table"):
        check_bins(gss, {"SEX": [1, 2]})
    assert slice_attribute_choices(gss) == gss.demographics


def test_persona_and_baselines_of_a_question_attribute(tmp_path, tiny_model_dir):
    from sim_core.evaluation.baselines import classifier_fit
    from sim_core.evaluation.compare import compare
    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.models import load_model
    from sim_core.simulation.prompts import PromptStyle, persona_text

    survey = load_survey(write_wide(tmp_path), weight="wt", demographics=["sex", "age"])
    run, by = with_slice_attributes(survey, ["polaf"], ["q1"])
    style = PromptStyle().for_survey(run)
    assert persona_text({"polaf": "Republican"}, style) == \
        "In politics today, you consider yourself Republican."
    fit = classifier_fit(run, "q1", by, test_fraction=0.3)
    assert fit.features == ["sex", "age", "polaf"]          # never q1, the one predicted
    result = compare([load_model(str(tiny_model_dir), dtype="float32")], run.questions["q1"],
                     survey=run, by=by, config=SimConfig(orders=1, use_cache=False),
                     baselines=("uniform", "classifier"))
    first = result.slices[0]
    assert first.label == "polaf=Republican"
    prompt = next(iter(first.simulated.values())).prompt
    assert "In politics today, you consider yourself Republican." in prompt
    assert "polaf" not in prompt.replace("polaf=", "")
    assert "classifier baseline features: sex, age, polaf." in result.notes
    assert set(first.baselines) == {"uniform", "classifier"}


def test_cli_by_a_question(tmp_path, capsys, tiny_model_dir):
    path = write_wide(tmp_path)
    base = ["--data", str(path), "--weight", "wt", "--demographics", "sex"]
    assert cli(["marginals", *base, "--question", "q1", "--by", "polaf", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [m["label"] for m in out["marginals"]][0] == "polaf=Republican"
    # the slice attribute's notes are shown (it is in use), q1's too
    assert [w.split(":")[0] for w in out["warnings"][:-1]] == ["polaf", "polaf", "q1"]
    assert cli(["marginals", *base, "--question", "polaf", "--by", "polaf"]) == 2
    assert "--by: 'polaf' is the question asked" in capsys.readouterr().err
    assert cli(["compare", *base, "--question", "q1", "--by", "polaf", "--model",
                str(tiny_model_dir), "--orders", "1", "--baselines", "uniform,classifier",
                "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert "classifier baseline features: sex, polaf." in item["notes"]
    assert item["slices"][0]["label"] == "polaf=Republican"
    assert item["by"] == ["polaf"]
