"""Interviewer instructions in labels: found, shown, proposed cleaned, applied only when the
researcher accepts (codebook columns or --accept-cleaned-wording); the weight's codebook
role round-trips."""

from __future__ import annotations

import io
import json

import pandas as pd
import pyreadstat
import pytest

from sim_core.__main__ import main as cli
from sim_core.base.errors import DataError
from sim_core.survey.codebook import codebook_csv, reworded_codebook
from sim_core.survey.instructions import clean_text, find_markers, survey_proposals
from sim_core.survey.readers import load_survey
from sim_core.survey.slices import real_marginals

C1 = ("**C1 Suppose the 2004 presidential election were being held TODAY. Would you vote for "
      "(INSERT & ROTATE: FORM A: Bush/Cheney FORM B: Kerry/Edwards")
C1_CLEAN = ("Suppose the 2004 presidential election were being held TODAY. Would you vote "
            "for")
VOTE = [1, 2, 3, 2, 9, 1, 2, 3, 1, 2]          # 3 "(VOL) Other candidate", 9 DK (DO NOT READ)
TRUST = [1, 2, 2, 1, 1, 2, 8, 1, 2, 2]
WT = [1.0, 2.0, 1.0, 1.0, 2.0, 1.0, 1.0, 3.0, 1.0, 1.0]


def write_phone(folder):
    path = folder / "phone.sav"
    frame = pd.DataFrame({"sex": [1.0, 2.0] * 5, "c1": [float(v) for v in VOTE],
                          "trust": [float(v) for v in TRUST], "weight": WT})
    pyreadstat.write_sav(frame, path, column_labels={
        "c1": C1, "trust": "Do you trust the government? [READ LIST]", "sex": "Sex"},
        variable_value_labels={"sex": {1: "Male", 2: "Female"},
                               "c1": {1: "Bush", 2: "Kerry", 3: "(VOL) Other candidate",
                                      9: "(DO NOT READ) Don't know"},
                               "trust": {1: "A lot", 2: "Not much (VOL.)", 8: "Refused"}})
    return path


def test_markers_and_cleaned_text_by_hand():
    assert find_markers(C1) == ["**C1", "INSERT", "ROTATE", "FORM A:", "FORM B:"]
    assert clean_text(C1) == C1_CLEAN
    assert clean_text("(VOL) Other candidate") == "Other candidate"
    assert clean_text("Approve [READ LIST]") == "Approve"
    assert clean_text("How much? (PROBE FOR INTENSITY)") == "How much?"
    assert clean_text("INTERVIEWER: READ SLOWLY. Do you favor the plan?") == \
        "Do you favor the plan?"
    assert clean_text("FORM A: Do you favor X? FORM B: Do you favor Y?") is None   # ask
    assert find_markers("Do you agree with NATO's policy in the USA?") == []


def test_instructions_are_shown_not_applied(tmp_path):
    survey = load_survey(write_phone(tmp_path), weight="weight", demographics=["sex"])
    c1 = survey.questions["c1"]
    assert c1.text == C1 and c1.options == ("Bush", "Kerry", "(VOL) Other candidate")
    notes = {n.column: n.text for n in survey.column_notes if n.kind == "instructions"}
    assert set(notes) == {"c1", "trust"}
    assert "(**C1, INSERT, ROTATE, FORM A:, FORM B:, (VOL))" in notes["c1"]
    assert f"proposed wording: '{C1_CLEAN}'" in notes["c1"]
    assert "proposed options: Bush | Kerry | Other candidate" in notes["c1"]
    # "(DO NOT READ) Don't know" is nonresponse already: missing, not an option to clean
    assert real_marginals(survey, "c1", min_n_eff=0)[0].nonresponse == {"dk": 2 / 14}
    (first, second) = survey_proposals(survey)
    assert (first.column, second.column) == ("c1", "trust")
    assert second.cleaned_text == "Do you trust the government?"
    assert second.cleaned_options == ("A lot", "Not much")


def _book(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False).set_index("column")


def test_codebook_carries_the_proposal_and_copying_it_applies_it(tmp_path):
    path = write_phone(tmp_path)
    survey = load_survey(path, weight="weight", demographics=["sex"])
    text = codebook_csv(survey)
    book = _book(text)
    assert book.loc["c1", "question_text"] == C1                        # as read
    assert book.loc["c1", "proposed_question_text"] == C1_CLEAN
    assert book.loc["c1", "proposed_options"] == "Bush|Kerry|Other candidate"
    assert "interviewer instructions" in book.loc["c1", "notes"]
    assert book.loc["sex", "proposed_question_text"] == ""
    same = tmp_path / "same.csv"
    same.write_text(text, encoding="utf-8")                 # information columns: ignored
    assert load_survey(path, codebook=same).questions == survey.questions
    # the researcher copies the proposal over (and edits one option)
    book.loc["c1", "question_text"] = book.loc["c1", "proposed_question_text"]
    book.loc["c1", "options"] = "Bush|Kerry|Another candidate"
    edited = tmp_path / "edited.csv"
    book.reset_index().to_csv(edited, index=False)
    again = load_survey(path, codebook=edited)
    assert again.questions["c1"].text == C1_CLEAN
    assert again.questions["c1"].options == ("Bush", "Kerry", "Another candidate")
    before, after = (real_marginals(s, "c1", ["sex"], min_n_eff=0) for s in (survey, again))
    for a, b in zip(before, after):                 # every answer kept its option
        assert a.shares.tolist() == b.shares.tolist() and a.nonresponse == b.nonresponse


def test_accept_flag_writes_the_proposals_and_says_so(tmp_path, capsys):
    path = write_phone(tmp_path)
    out = tmp_path / "clean.csv"
    assert cli(["codebook", "--data", str(path), "--weight", "weight", "--demographics", "sex",
                "--accept-cleaned-wording", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "accepted the cleaned wording of 2 column(s): c1, trust" in err
    book = _book(out.read_text(encoding="utf-8"))
    assert book.loc["trust", "question_text"] == "Do you trust the government?"
    assert book.loc["trust", "options"] == "A lot|Not much"
    assert book.loc["trust", "proposed_options"] == ""
    survey = load_survey(path, codebook=out)
    assert survey.questions["trust"].options == ("A lot", "Not much")
    assert survey.weight == "weight"                        # the role round-trips
    assert cli(["codebook", "--data", str(path), "--codebook", str(out)]) == 0
    assert "instructions" not in capsys.readouterr().out.split("\n", 1)[1]


def test_reworded_codebook_checks_the_renames(tmp_path):
    survey = load_survey(write_phone(tmp_path), weight="weight", demographics=["sex"])
    with pytest.raises(DataError, match="renamed one by one"):
        reworded_codebook(survey, {"c1": {"options": ["Bush", "Kerry"]}})
    with pytest.raises(DataError, match="renamed one by one"):
        reworded_codebook(survey, {"c1": {"options": ["Bush", "Bush", "Other"]}})
    with pytest.raises(DataError, match="not a column"):
        reworded_codebook(survey, {"nope": {"question_text": "x"}})


def test_csv_labels_renamed_keep_their_answers(tmp_path):
    """Without codes (a CSV stores the labels), a rename writes the old labels as codes."""
    data = tmp_path / "d.csv"
    data.write_text("sex,q\nF,Yes (VOL)\nM,No\nF,No\nM,Yes (VOL)\nF,Yes (VOL)\n")
    survey = load_survey(data, demographics=["sex"])
    book = tmp_path / "b.csv"
    book.write_text(reworded_codebook(survey, {"q": {"options": ["No", "Yes"]}}),
                    encoding="utf-8")
    again = load_survey(data, codebook=book)
    assert again.questions["q"].options == ("No", "Yes")
    assert real_marginals(again, "q", min_n_eff=0)[0].shares.tolist() == [0.4, 0.6]


# ---------------------------------------------------------------- the weight's role

@pytest.mark.parametrize("chosen", [{"weight": "weight"}, {}])
def test_weight_role_round_trips(tmp_path, chosen):
    path = write_phone(tmp_path)
    survey = load_survey(path, demographics=["sex"], **chosen)
    book = _book(codebook_csv(survey))
    assert book.loc["weight", "role"] == "weight"           # chosen, or proposed
    file = tmp_path / "book.csv"
    file.write_text(codebook_csv(survey), encoding="utf-8")
    again = load_survey(path, codebook=file)
    assert again.weight == "weight" and again.weight_summary().total == sum(WT)
    assert load_survey(path, codebook=file, unweighted=True).weight is None   # said here
    said = load_survey(path, demographics=["sex"], unweighted=True)
    assert _book(codebook_csv(said)).loc["weight", "role"] == "ignore"


def test_two_weights_in_a_codebook_are_refused(tmp_path):
    path = write_phone(tmp_path)
    book = tmp_path / "book.csv"
    book.write_text("column,question_text,options,role\nweight,Weight,,weight\n"
                    "sex,Sex,,weight\nc1,Vote,,question\n", encoding="utf-8")
    with pytest.raises(DataError, match="role weight to weight, sex"):
        load_survey(path, codebook=book)


def test_cli_json_names_the_codebook_weight(tmp_path, capsys):
    path = write_phone(tmp_path)
    survey = load_survey(path, weight="weight", demographics=["sex"])
    file = tmp_path / "book.csv"
    file.write_text(codebook_csv(survey), encoding="utf-8")
    assert cli(["marginals", "--data", str(path), "--codebook", str(file), "--question",
                "trust", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["weighting"]["column"] == "weight" and out["weighting"]["total"] == sum(WT)
