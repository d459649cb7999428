"""AppTest of the Data page: upload, mapping, validation messages, saved surveys, marginals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sim_core.survey import workspace_surveys

APP = str(Path(__file__).resolve().parents[1] / "app.py")

# 10 women (6 agree, weights 1) and 10 men (2 agree): hand-countable shares.
CSV = "gender,agegroup,wt,trust\n" + "".join(
    f"{g},{a},1,{'Agree' if i < k else 'Disagree'}\n"
    for g, k in (("Woman", 6), ("Man", 2)) for i, a in enumerate(["young", "old"] * 5))


@pytest.fixture
def app():
    """The dashboard on its first page (Data)."""
    return AppTest.from_file(APP, default_timeout=60).run()


def test_pages_render_without_loading_a_model(monkeypatch):
    """All five pages and the sidebar render; none loads a model until the user runs something."""
    import sim_core.simulation.models

    calls = []
    monkeypatch.setattr(sim_core.simulation.models, "load_model", lambda *a, **k: calls.append(a))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert at.header[0].value == "Survey data"
    assert at.sidebar.selectbox(key="side_adapter").options[0] == "(none)"
    assert "Workspace" in at.sidebar.caption[0].value
    for page, title in (("pages/simulate.py", "Simulate & compare"), ("pages/evaluate.py",
                        "Evaluate a checkpoint on a whole survey"), ("pages/fine_tune.py",
                        "Fine-tune an adapter"), ("pages/reports.py", "Reports")):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.header[0].value == title
    assert calls == []


def test_upload_map_save_and_preview(app):
    """Upload a CSV, keep the guessed mapping, save it, and read its real marginals."""
    at = app
    at.file_uploader(key="data_upload").upload("trust-2024.csv", CSV.encode(), "text/csv")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "trust" in at.multiselect(key="data_questions_0").value
    at.multiselect(key="data_demographics_0").set_value(["gender", "agegroup"])
    at.selectbox(key="data_weight_0").set_value("wt")
    at.text_input(key="data_name_0").input("trust survey")
    at.run()
    # a name that would need rewriting is refused with the storable suggestion, not saved
    assert any("for example 'trust-survey'" in e.value for e in at.error)
    assert "trust-survey" not in workspace_surveys.saved_surveys()
    at.text_input(key="data_name_0").input("trust-survey")
    at.run()
    assert any("Stored as `trust-survey`." in c.value for c in at.caption)
    at.button(key="data_save_0").click().run()
    assert any("Saved as 'trust-survey'" in s.value for s in at.success)
    info = workspace_surveys.read_info("trust-survey")
    assert info["mapping"]["weight"] == "wt"
    folder = workspace_surveys.surveys_dir() / "trust-survey"
    assert (folder / info["file"]).read_bytes() == CSV.encode()
    assert json.loads((folder / "mapping.json").read_text())
    at.selectbox(key="data_survey").set_value("trust-survey").run()
    at.multiselect(key="data_preview_by").set_value(["gender"]).run()
    table = _table_with(at, "too small").set_index("slice")
    assert table.loc["gender=Woman", "n"] == 10
    assert table.loc["gender=Woman", "Agree"].startswith("0.600")
    assert table.loc["gender=Man", "Agree"].startswith("0.200")
    assert bool(table.loc["gender=Man", "too small"])  # n_eff 10 < 30
    assert any("Too few respondents" in w.value for w in at.warning)


def test_saving_over_a_saved_survey_asks_first(app):
    """A name that is taken shows so; Save stays off until the user ticks Replace."""
    workspace_surveys.save_survey("asked-first", "old.csv", b"sex,q\nF,Old\nM,Old\n")
    at = app
    at.file_uploader(key="data_upload").upload("new.csv", CSV.encode(), "text/csv")
    at.run()
    at.text_input(key="data_name_0").input("asked-first").run()
    assert any("a saved survey of this name exists" in c.value for c in at.caption)
    assert at.button(key="data_save_0").disabled     # a browser cannot click it
    assert workspace_surveys.load_saved("asked-first").questions["q"].options == ("Old",)
    at.checkbox(key="data_replace_0").check().run()
    assert not at.button(key="data_save_0").disabled
    at.button(key="data_save_0").click().run()
    assert any("Saved as 'asked-first'" in s.value for s in at.success)
    assert "trust" in workspace_surveys.load_saved("asked-first").questions


def test_csv_whose_header_starts_with_a_brace_reads_as_csv(app, tmp_path, capsys):
    """The upload and the CLI share one rule (the extension decides): this CSV was refused
    as invalid JSON on the page while the CLI read it."""
    from sim_core.__main__ import main

    text = "{id},sex,q\n1,F,Yes\n2,M,No\n3,F,Yes\n"
    path = tmp_path / "brace.csv"
    path.write_text(text)
    assert main(["marginals", "--data", str(path), "--question", "q", "--by", "sex"]) == 0
    assert "sex=F" in capsys.readouterr().out
    at = app
    at.file_uploader(key="data_upload").upload("brace.csv", text.encode(), "text/csv")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "q" in at.multiselect(key="data_questions_0").value


def test_unusable_workspace_is_one_message(tmp_path, monkeypatch):
    (tmp_path / "ws").write_text("a file, not a folder")
    monkeypatch.setenv("SIM_WORKSPACE", str(tmp_path / "ws"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("SIM_WORKSPACE" in e.value and "in the way" in e.value for e in at.error)


def test_malformed_csv_gives_a_message(app):
    """A CSV the readers refuse shows st.error with their message, nothing is saved."""
    at = app
    before = workspace_surveys.saved_surveys()
    at.file_uploader(key="data_upload").upload("broken.csv", b"\x00\x01garbage", "text/csv")
    at.run()
    assert not at.exception
    assert at.error and "broken.csv" in at.error[0].value
    assert workspace_surveys.saved_surveys() == before


def test_demo_data_one_click(app):
    """Each demo data set loads into the workspace with one click."""
    at = app
    for label in at.selectbox(key="data_demo").options:
        at.selectbox(key="data_demo").set_value(label).run()
        at.button(key="data_demo_load").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert at.success
    assert {"anes96", "gss2022_subpop_eval"} <= set(workspace_surveys.saved_surveys())
    # ANES comes with its codebook: question wording and option order from it
    at.selectbox(key="data_survey").set_value("anes96").run()
    questions = _table_with(at, "ordinal").set_index("id")
    assert questions.loc["TVnews", "text"] == "How many times per week do you watch the news on TV?"
    assert questions.loc["TVnews", "options"] == "0 | 1 | 2 | 3 | 4 | 5 | 6 | 7"
    at.selectbox(key="data_survey").set_value("gss2022_subpop_eval").run()
    assert at.multiselect(key="data_preview_by").value  # marginal table: one attribute
    assert not at.error
    marginals = _table_with(at, "slice")          # shares only: no column of "None"
    assert "n" not in marginals.columns and "None" not in marginals.to_string()
    # deleting asks first: the button waits for the box to be ticked
    assert at.button(key="data_delete").disabled
    at.checkbox(key="data_delete_sure_gss2022_subpop_eval").check().run()
    at.button(key="data_delete").click().run()
    assert not at.exception and not at.error
    saved = workspace_surveys.saved_surveys()
    assert "gss2022_subpop_eval" not in saved and "anes96" in saved
    # the next survey shown is not pre-ticked
    assert at.button(key="data_delete").disabled


def _table_with(at, column: str):
    """The first st.dataframe on the page that has `column` (AppTest keeps no dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_spss_upload_roles_weight_population_and_nonresponse(app, tmp_path):
    """A .sav upload: guessed roles shown, the user names demographics, weight and population;
    the saved survey's preview shows n asked and the nonresponse shares."""
    from tests.test_survey_files import write_survey

    at = app
    data = write_survey(tmp_path).read_bytes()
    at.file_uploader(key="data_upload").upload("phone2004.sav", data, "application/octet-stream")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.multiselect(key="data_questions_0").value == ["q1", "q2", "q3", "c2"]
    weight = at.selectbox(key="data_weight_0")
    assert "wt" in weight.help and weight.value == "wt"      # proposed, visibly
    assert any("Kish design effect 1.204" in c.value for c in at.caption)
    at.selectbox(key="data_weight_0").set_value("(none)").run()     # says unweighted
    assert any(c.value.startswith("unweighted: 12 respondents") for c in at.caption)
    assert not any("look like weights" in w.value for w in at.warning)
    at.multiselect(key="data_demographics_0").set_value(["sex"])
    at.selectbox(key="data_weight_0").set_value("wt")
    at.text_input(key="data_population_0").input("adults in Ohio (2004)")
    at.run()
    assert not at.error
    assert at.get("download_button")          # the generated codebook
    at.button(key="data_save_0").click().run()
    info = workspace_surveys.read_info("phone2004")
    assert info["mapping"]["population"] == "adults in Ohio (2004)"
    assert info["mapping"]["demographics"] == ["sex"] and info["file"] == "data/phone2004.sav"
    at.selectbox(key="data_survey").set_value("phone2004").run()
    at.selectbox(key="data_preview_q").set_value("q1").run()
    at.multiselect(key="data_preview_by").set_value(["sex"]).run()
    table = _table_with(at, "nonresponse").set_index("slice")
    assert table.loc["sex=Male", "nonresponse"] == "DK 12.5 %, refused 12.5 %"
    assert table.loc["sex=Female", "n asked"] == 5
    assert table.loc["sex=Female", "Neutral"].startswith("0.500")


def test_question_editor_applies_as_the_saved_codebook(app, tmp_path):
    """The Data page's question editor: applying it reads the upload through the edited
    codebook (wording, option order, ordinal) and the saved survey keeps that codebook."""
    from sim_core.survey.codebook import edited_codebook
    from sim_core.survey.readers import load_survey
    from tests.test_survey_files import write_survey

    at = app
    path = write_survey(tmp_path)
    at.file_uploader(key="data_upload").upload("phone2004.sav", path.read_bytes(),
                                               "application/octet-stream")
    at.run()
    assert any(e.label.startswith("Edit questions") for e in at.expander)
    at.button(key="data_apply_0").click().run()          # the editor as shown: same survey
    assert not at.exception and not at.error, [e.value for e in at.error]
    filename, book = at.session_state["data_book_0"]
    assert filename == "phone2004.sav"
    # what the editor's "Apply" stores for a reordering (the table -> edited_codebook)
    survey = load_survey(path, codebook=book)
    assert survey.questions["q1"].options == ("Agree", "Neutral", "Disagree")
    edits = {"q1": {"question_text": "Agree?", "options": ["Disagree", "Neutral", "Agree"],
                    "ordinal": True}}
    at.session_state["data_book_0"] = (filename, edited_codebook(survey, edits).encode())
    at.run()
    assert not at.error
    at.text_input(key="data_name_0").input("edited-phone").run()
    at.button(key="data_save_0").click().run()
    saved = workspace_surveys.load_saved("edited-phone")
    assert saved.questions["q1"].options == ("Disagree", "Neutral", "Agree")
    assert saved.questions["q1"].text == "Agree?"
    codebook = workspace_surveys.read_info("edited-phone")["codebook"]
    assert codebook == "codebook/phone2004-codebook.csv"


def test_192_column_spss_file_is_a_short_page(app, tmp_path):
    """A 192-column telephone survey: no warning box on the upload (the mapping names weight
    and demographics), the 191 notes about single columns in one collapsed table; saved
    without a mapping, its two survey-wide warnings are the only boxes."""
    from tests.test_survey_variables import write_wide

    at = app
    data = write_wide(tmp_path).read_bytes()
    at.file_uploader(key="data_upload").upload("wide.sav", data, "application/octet-stream")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="data_weight_0").value == "wt"
    upload = next(e for e in at.expander if e.label == "wide.sav")
    assert not upload.warning and not upload.info and not upload.error
    # counted by hand in tests/test_survey_variables.py: 184 questions with "Don't know" +
    # polaf's "Don't know/Refused" (nonresponse), form, intid, psu (design), q10's and
    # polaf's "(VOL)" (instructions), age read as a number
    label = ("191 reading note(s) about single columns (nonresponse 185, design 3, "
             "instructions 2, numeric 1)")
    notes = next(e for e in upload.expander if e.label == label)
    assert not notes.proto.expanded
    table = _table_with(at, "kind")
    assert list(table.columns) == ["column", "kind", "note"] and len(table) == 191
    assert set(table[table.kind == "design"].column) == {"form", "intid", "psu"}
    assert set(table[table.kind == "instructions"].column) == {"q10", "polaf"}
    workspace_surveys.save_survey("wide-unmapped", "wide.sav", data, {}, overwrite=True)
    at.run()
    at.selectbox(key="data_survey").set_value("wide-unmapped").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    boxes = [w.value for w in at.warning]
    assert len(boxes) == 2, boxes
    assert boxes[0].startswith("demographics guessed from column names: sex, age;")
    assert boxes[1].startswith("column(s) wt look like weights but no weight was chosen")
    assert sum(e.label.startswith("191 reading note(s)") for e in at.expander) == 2


def _instructions(at):
    return at.data_editor(key="data_instructions_0").value.set_index("column")


def _edit(at, rows: dict) -> None:
    """What a person's edits in the instructions table send (Streamlit's editor state)."""
    at.session_state["data_instructions_0"] = {"edited_rows": rows, "added_rows": [],
                                               "deleted_rows": []}


def test_interviewer_instructions_applied_only_when_accepted(app, tmp_path):
    """A phone survey with "(VOL)", "(INSERT & ROTATE: FORM A: ...)" and "[READ LIST]" in
    its labels: the proposals are shown beside the wording as read and change nothing; a
    rename that is not one-to-one is one message; accepting the ticked rows (one edited)
    reads and saves the survey with that wording, every answer with its option."""
    from sim_core.survey.slices import real_marginals
    from tests.test_survey_wording import C1, C1_CLEAN, write_phone

    at = app
    at.file_uploader(key="data_upload").upload("phone.sav", write_phone(tmp_path).read_bytes(),
                                               "application/octet-stream")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(e.label == "Interviewer instructions in 2 label(s): accept or edit the "
               "proposed wording" for e in at.expander)
    table = _instructions(at)
    assert list(table.index) == ["c1", "trust"] and table["accept"].all()
    assert table.loc["c1", "wording"] == C1
    assert table.loc["c1", "proposed wording"] == C1_CLEAN
    assert table.loc["c1", "options"] == "Bush | Kerry | (VOL) Other candidate"
    assert table.loc["c1", "proposed options"] == "Bush|Kerry|Other candidate"
    assert table.loc["trust", "proposed wording"] == "Do you trust the government?"
    assert "data_book_0" not in at.session_state                  # nothing applied yet
    questions = at.data_editor(key="data_editor_0").value.set_index("column")
    assert questions.loc["c1", "question_text"] == C1
    assert f"c1: {C1[:60]}" in at.multiselect(key="data_questions_0").options
    # a rename that would merge two options: one message, nothing applied
    _edit(at, {0: {"proposed options": "Bush|Bush|Other candidate"}})
    at.button(key="data_accept_0").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "renamed one by one" in at.error[0].value
    assert "data_book_0" not in at.session_state
    # c1 accepted with an edited option; trust unticked: it keeps its wording and proposal
    _edit(at, {0: {"proposed options": "Bush|Kerry|Another candidate"},
               1: {"accept": False}})
    at.button(key="data_accept_0").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Accepted the wording of c1" in s.value for s in at.success)
    assert list(_instructions(at).index) == ["trust"]
    questions = at.data_editor(key="data_editor_0").value.set_index("column")
    assert questions.loc["c1", "question_text"] == C1_CLEAN
    assert questions.loc["c1", "options"] == "Bush|Kerry|Another candidate"
    # the question picker names it by the accepted wording too
    assert f"c1: {C1_CLEAN[:60]}" in at.multiselect(key="data_questions_0").options
    assert questions.loc["trust", "question_text"] == "Do you trust the government? [READ LIST]"
    at.selectbox(key="data_weight_0").set_value("weight")
    at.text_input(key="data_name_0").input("phone-clean").run()
    at.button(key="data_save_0").click().run()
    saved = workspace_surveys.load_saved("phone-clean")
    c1 = saved.questions["c1"]
    assert (c1.text, c1.options) == (C1_CLEAN, ("Bush", "Kerry", "Another candidate"))
    # by hand (tests/test_survey_wording.py: VOTE, WT): Bush rows 0, 5, 8 (weight 3), Kerry
    # 1, 3, 6, 9 (5), other 2, 7 (4); row 4 (weight 2) is "(DO NOT READ) Don't know"
    (total,) = real_marginals(saved, "c1", min_n_eff=0)
    assert total.shares.tolist() == pytest.approx([3 / 12, 5 / 12, 4 / 12])
    assert total.nonresponse == pytest.approx({"dk": 2 / 14})


@pytest.mark.parametrize("address, shown", [("0.0.0.0", "every network interface"),
                                            ("10.1.2.3", "address 10.1.2.3"),
                                            ("localhost", None), ("127.0.0.1", None)])
def test_exposure_notice_on_the_first_page(address, shown):
    """Served to other machines (no sign-in), the first page says so at the top, and so does
    any page a first visit opens; on localhost (the repository's config) it does not."""
    from streamlit import config

    before = config.get_option("server.address")
    config.set_option("server.address", address)
    try:
        at = AppTest.from_file(APP, default_timeout=60).run()
        notices = [w.value for w in at.warning if "reachable from other machines" in w.value]
        assert at.header[0].value == "Survey data"
        if shown is None:
            assert notices == []
            return
        assert len(notices) == 1 and f"it listens on {shown}" in notices[0]
        assert "anyone on the network can open, download and delete" in notices[0]
        at = AppTest.from_file(APP, default_timeout=60)
        at.switch_page("pages/fine_tune.py").run()
        assert any("reachable from other machines" in w.value for w in at.warning)
    finally:
        config.set_option("server.address", before)
