"""Data: upload survey files (or pick demo data), map columns, validate, preview marginals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.display import show_error
from dashboard.navigation import run_page
from dashboard.widgets import survey_picker
from sim_core.base.errors import DataError, SimError
from sim_core.base.workspace import MAX_NAME, check_name
from sim_core.survey import demo, workspace_surveys
from sim_core.survey.codebook import codebook_csv, codebook_rows, edited_codebook, reworded_codebook
from sim_core.survey.design import interval_method
from sim_core.survey.instructions import survey_proposals
from sim_core.survey.nonresponse import nonresponse_text
from sim_core.survey.notes import notes_table
from sim_core.survey.readers import columns_of, load_survey
from sim_core.survey.slices import real_marginals

UPLOAD_TYPES = ["csv", "tsv", "txt", "xlsx", "xlsm", "jsonl", "sav", "zsav", "por", "dta"]
NONE = "(none)"


@st.cache_resource(max_entries=8, show_spinner="Reading file…")
def parse_upload(filename: str, data: bytes, codebook: bytes | None = None,
                 mapping: tuple = ()):
    """Read uploaded bytes through sim_core.survey.readers.load_survey (mapping as sorted items)."""
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in mapping if v}
    try:
        return load_survey(data, name=Path(filename).stem, codebook=codebook,
                           filename=filename, **kwargs)
    except DataError as error:  # bytes carry no file name: say which upload it was
        raise DataError(f"{filename}: {error}") from None


@st.cache_data(max_entries=8, show_spinner=False)
def upload_columns(filename: str, data: bytes) -> tuple[list[str], dict[str, str]]:
    """Columns and variable labels of an uploaded file (sim_core.survey.readers.columns_of)."""
    return columns_of(data, filename)


def _index(columns: list[str], value: str | None) -> int:
    """Selectbox index of a guessed column (0 = none)."""
    return 1 + columns.index(value) if value in columns else 0


def mapping_widgets(i: int, filename: str, data: bytes, guess) -> dict:
    """Column mapping for a respondent file, defaulting to what the reader proposed.

    The guess is the Survey read without a mapping: the codebook's roles when there is one,
    else sim_core.survey.roles guesses (IDs, dates and many-valued columns are not questions).
    """
    columns, labels = upload_columns(filename, data)
    # a question's wording as the survey reads it (accepted or edited wording included),
    # else the file's variable label
    labels = labels | {c: q.text for c, q in guess.questions.items() if q.text}
    label = lambda c: f"{c}: {labels[c][:60]}" if labels.get(c) else c   # noqa: E731
    cols = st.columns(2)
    demographics = cols[0].multiselect("Demographics (slice attributes, classifier features)",
                                       columns, format_func=label,
                                       default=[c for c in guess.demographics if c in columns],
                                       key=f"data_demographics_{i}")
    questions = cols[1].multiselect("Questions (answer columns)", columns, format_func=label,
                                    default=[c for c in guess.questions if c in columns],
                                    key=f"data_questions_{i}")
    proposed = guess.weight_candidates[0] if guess.weight_candidates else None
    weight = cols[0].selectbox(
        "Weight column", [NONE, *columns], key=f"data_weight_{i}", format_func=label,
        index=_index(columns, proposed),
        help="Proposed by name and label: " + (", ".join(guess.weight_candidates) or "none")
        + ". '(none)' = unweighted.")
    wave = cols[1].selectbox("Wave / year column", [NONE, *columns], key=f"data_wave_{i}",
                             index=_index(columns, guess.wave))
    keep = st.checkbox("Keep Don't know / Refused / ... as answer options",
                       key=f"data_keep_nonresponse_{i}")
    with st.expander("Survey design (optional): intervals beyond weighting"):
        design = st.columns(3)
        strata = design[0].selectbox("Strata column", [NONE, *columns], key=f"data_strata_{i}")
        psu = design[1].selectbox("PSU / cluster column", [NONE, *columns], key=f"data_psu_{i}")
        deff = design[2].number_input("Known design effect", min_value=1.0, value=1.0,
                                      step=0.1, key=f"data_deff_{i}")
    picked = {"demographics": demographics, "questions": questions, "weight": weight,
              "wave": wave, "strata": strata, "psu": psu}
    mapping = {k: (None if v == NONE else v) for k, v in picked.items()}
    mapping.update(keep_nonresponse=keep,
                   unweighted=weight == NONE and bool(guess.weight_candidates),
                   design_effect=deff if deff > 1 else None)
    return mapping


def upload_one(i: int, upload, codebook) -> None:
    """Validate one uploaded file with its mapping, and save it to the workspace."""
    data, book = upload.getvalue(), codebook.getvalue() if codebook else None
    book_name = codebook.name if codebook else None
    edited = st.session_state.get(f"data_book_{i}")
    if edited is not None and edited[0] == upload.name:   # the question editor's codebook
        book, book_name = edited[1], f"{Path(upload.name).stem}-codebook.csv"
    try:
        survey = parse_upload(upload.name, data, book)
        mapping = mapping_widgets(i, upload.name, data, survey) \
            if survey.kind == "respondents" else {}
        mapping["population"] = st.text_input(
            "Population (who was asked, where, when): named in the prompt",
            value=survey.population, key=f"data_population_{i}",
            placeholder="adults in Germany, 2018").strip()
        items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                             for k, v in mapping.items()))
        survey = parse_upload(upload.name, data, book, items)
    except SimError as error:
        show_error(error)
        return
    describe(survey, f"data_notes_{i}")
    if survey.codebook:
        instructions_editor(i, survey, upload.name)
        question_editor(i, survey, upload.name)
        st.download_button("Download the codebook (edit wording, options, ordinal, roles; "
                           "upload it above)", codebook_csv(survey).encode("utf-8"),
                           file_name=f"{Path(upload.name).stem}-codebook.csv",
                           mime="text/csv", key=f"data_codebook_download_{i}")
    save_form(i, upload.name, data, mapping, (book_name, book) if book else None)


def question_editor(i: int, survey, filename: str) -> None:
    """Wording, option order and ordinal flag of every question, edited in place and applied
    as a codebook (the one the download gives), so the saved survey keeps the edits."""
    rows = [row for row in codebook_rows(survey) if row["column"] in survey.questions]
    if not rows:
        return
    with st.expander("Edit questions: wording, option order, ordinal"):
        st.caption("Options in order, separated by |: reorder them by editing the text (the "
                   "same options, no new ones). Demographics and questions are chosen above.")
        frame = pd.DataFrame({"column": [r["column"] for r in rows],
                              "question_text": [r["question_text"] for r in rows],
                              "options": [r["options"] for r in rows],
                              "ordinal": [r["ordinal"] == "true" for r in rows]})
        edited = st.data_editor(
            frame, key=f"data_editor_{i}", hide_index=True, disabled=["column"],
            column_config={"question_text": st.column_config.TextColumn("wording"),
                           "options": st.column_config.TextColumn("options in order (|)"),
                           "ordinal": st.column_config.CheckboxColumn("ordinal")})
        if st.button("Apply the edits", key=f"data_apply_{i}"):
            edits = {r["column"]: {"question_text": r["question_text"],
                                   "options": str(r["options"]).split("|"),
                                   "ordinal": bool(r["ordinal"])}
                     for r in edited.to_dict("records")}
            try:
                book = edited_codebook(survey, edits).encode("utf-8")
            except SimError as error:
                show_error(error)
                return
            st.session_state[f"data_book_{i}"] = (filename, book)
            st.rerun()


def proposals_frame(survey) -> pd.DataFrame:
    """The proposed cleaned wording of every label with interviewer instructions, beside the
    wording as read (sim_core.survey.instructions.survey_proposals), all ticked."""
    return pd.DataFrame([{"accept": True, "column": p.column, "wording": p.text,
                          "proposed wording": p.cleaned_text, "options": " | ".join(p.options),
                          "proposed options": "|".join(p.cleaned_options)}
                         for p in survey_proposals(survey)])


def instructions_editor(i: int, survey, filename: str) -> None:
    """Labels holding interviewer instructions ("(VOL)", "(DO NOT READ)", "INSERT & ROTATE",
    "FORM A:" ...): the proposed wording, editable, applied only when the researcher accepts
    it, as a codebook (sim_core.survey.codebook.reworded_codebook) like the question editor."""
    accepted = st.session_state.pop(f"data_accepted_{i}", None)
    if accepted:
        st.success(f"Accepted the wording of {', '.join(accepted)}: the survey is read (and "
                   "saved) with it.")
    frame = proposals_frame(survey)
    if frame.empty:
        return
    with st.expander(f"Interviewer instructions in {len(frame)} label(s): accept or edit the "
                     "proposed wording"):
        st.caption("No respondent heard these notes, so the model should not read them. "
                   "Nothing changes until you accept. Options are renamed one by one, in order "
                   "(separated by |), so every answer keeps its option. Where several forms' "
                   "wordings are in one label, write the wording the respondents heard.")
        text = st.column_config.TextColumn
        edited = st.data_editor(
            frame, key=f"data_instructions_{i}", hide_index=True,
            disabled=["column", "wording", "options"],
            column_config={"accept": st.column_config.CheckboxColumn("accept", width=72),
                           "column": text(width=72),
                           "wording": text("wording as read", width=170),
                           "proposed wording": text(width=170),
                           "options": text("options as read", width=120),
                           "proposed options": text("proposed options", width=120)})
        if st.button("Accept the ticked wording", key=f"data_accept_{i}"):
            # a cleared cell comes back as None: an empty wording keeps the one as read
            edits = {r["column"]: {"question_text": r["proposed wording"] or "",
                                   "options": str(r["proposed options"] or "").split("|")}
                     for r in edited.to_dict("records") if r["accept"]}
            try:
                book = reworded_codebook(survey, edits).encode("utf-8")
            except SimError as error:
                show_error(error)
                return
            st.session_state[f"data_book_{i}"] = (filename, book)
            st.session_state[f"data_accepted_{i}"] = list(edits)
            st.rerun()


def save_form(i: int, filename: str, data: bytes, mapping: dict, book) -> None:
    """The name to store under (shown exactly as stored), a confirmation before replacing a
    saved survey, and the Save button."""
    name = st.text_input("Save as", value=workspace_surveys.suggest_name(filename),
                         key=f"data_name_{i}", max_chars=MAX_NAME,
                         help="Stored exactly under this name: letters, digits, '.', '_', '-'")
    try:
        name = check_name(name.strip(), "survey name")
    except SimError as error:
        show_error(error)
        return
    exists = workspace_surveys.survey_exists(name)
    st.caption(f"Stored as `{name}`" + (": a saved survey of this name exists." if exists
                                         else "."))
    replace = exists and st.checkbox(f"Replace the saved survey '{name}'",
                                     key=f"data_replace_{i}")
    if st.button("Save to workspace", key=f"data_save_{i}", type="primary",
                 disabled=exists and not replace):
        try:
            workspace_surveys.save_survey(name, filename, data, mapping, codebook=book,
                                          overwrite=replace)
        except SimError as error:
            show_error(error)
            return
        st.success(f"Saved as '{name}': it is now available on every page.")


def describe(survey, key: str) -> None:
    """A line about a survey, its weighting and intervals, its survey-wide warnings, and the
    notes about single columns as one collapsed table (`key`: the table's)."""
    size = (f"{len(survey.respondents)} respondents" if survey.respondents is not None
            else f"{len(survey.marginals)} marginal rows")
    waves = survey.waves()
    st.caption(f"{survey.kind}: {len(survey.questions)} questions, {size}, "
               f"demographics: {', '.join(survey.demographics) or 'none'}"
               + (f", waves: {', '.join(waves)}" if waves else "")
               + f"; population: {survey.population or 'not set'}")
    summary = survey.weight_summary()
    if summary is not None:
        st.caption(f"{summary.text()}. 95 % intervals: {interval_method(survey.design)}.")
    for warning in survey.warnings:
        st.warning(warning)
    notes = notes_table(survey)
    if not notes.empty:
        kinds = notes["kind"].value_counts()
        with st.expander(f"{len(notes)} reading note(s) about single columns ("
                         + ", ".join(f"{kind} {n}" for kind, n in kinds.items()) + ")"):
            st.dataframe(notes, hide_index=True, key=key,
                         column_config={"note": st.column_config.TextColumn(width="large")})


def upload_section() -> None:
    """File uploaders and one mapping form per file."""
    uploads = st.file_uploader("Survey files: respondent CSV or Excel (.xlsx), SPSS (.sav, .zsav, "
                               ".por), Stata (.dta), marginals CSV or GSS/SubPOP JSONL (one file "
                               "per wave)",
                               type=UPLOAD_TYPES,
                               accept_multiple_files=True, key="data_upload")
    codebook = st.file_uploader("Codebook CSV (optional; column, question_text, options, "
                                "ordinal, missing, codes, role; download a generated one "
                                "below an upload)", type=["csv"], key="data_codebook")
    for i, upload in enumerate(uploads or []):
        with st.expander(upload.name, expanded=True):
            upload_one(i, upload, codebook)


def demo_sources() -> dict[str, tuple[Path, Path | None]]:
    """Demo data sets shipped with the core: description -> (data file, codebook or None)."""
    anes, anes_codebook = demo.demo_anes_paths()
    return {demo.DEMOS["gss2022"]: (demo.demo_gss_path(), None),
            demo.DEMOS["anes96"]: (anes, anes_codebook)}


def demo_section() -> None:
    """One-click demo data: stored like an upload (ANES with its codebook)."""
    sources = demo_sources()
    label = st.selectbox("Demo data set", list(sources), key="data_demo")
    if st.button("Load demo data", key="data_demo_load") and label:
        path, codebook = sources[label]
        book = (codebook.name, codebook.read_bytes()) if codebook else None
        mapping = {"population": demo.DEMO_POPULATION}
        if workspace_surveys.survey_exists(path.stem):
            st.info(f"A saved survey named '{path.stem}' is already in the workspace; delete "
                    "it below to load the demo afresh.")
            return
        try:
            parse_upload(path.name, path.read_bytes(), book[1] if book else None,
                         tuple(mapping.items()))
            saved = workspace_surveys.save_survey(path.stem, path.name, path.read_bytes(), mapping,
                                      codebook=book)
        except SimError as error:
            show_error(error)
            return
        st.success(f"Loaded '{saved}': pick it below or on any other page.")


def marginals_table(marginals) -> pd.DataFrame:
    """Real marginals as a table: slice, n, n asked, n_eff, too small, share [CI] per option,
    nonresponse (weighted shares of the slice's respondents)."""
    rows = []
    for m in marginals:
        row = {"slice": m.label, "n": m.n, "n asked": m.n_asked,
               "n_eff": None if m.n_eff is None else round(m.n_eff, 1), "too small": m.too_small}
        for j, option in enumerate(m.options):
            ci = "" if m.ci_low is None else f" [{m.ci_low[j]:.2f}, {m.ci_high[j]:.2f}]"
            row[option] = f"{m.shares[j]:.3f}{ci}"
        if m.n_total is not None:
            row["nonresponse"] = nonresponse_text(m.nonresponse) + (f"; {m.note}" if m.note else "")
        rows.append(row)
    table = pd.DataFrame(rows)
    # a table of shares only (e.g. the GSS marginals) has no counts: no column of "None"
    empty = [c for c in ("n", "n asked", "n_eff") if c in table and table[c].isna().all()]
    return table.drop(columns=empty)


PREVIEW_KEYS = ("data_preview_q", "data_preview_by", "data_preview_wave")


def forget_preview() -> None:
    """Another survey picked: its preview starts from its own defaults (a marginal table is
    sliced by its first attribute), not from the choices kept for the previous one."""
    for key in PREVIEW_KEYS:
        st.session_state.pop(key, None)


def preview_section() -> None:
    """Questions and real marginals per slice of a saved survey."""
    name, survey = survey_picker("data", "Saved survey", on_change=forget_preview)
    if survey is None:
        return
    describe(survey, "data_saved_notes")
    st.dataframe(pd.DataFrame([{"id": q.id, "text": q.text, "options": " | ".join(q.options),
                                "ordinal": q.is_ordinal} for q in survey.questions.values()]),
                 hide_index=True, key="data_questions_table")
    cols = st.columns(3)
    qid = cols[0].selectbox("Question", list(survey.questions), key="data_preview_q",
                            persist_state="session")
    default = survey.demographics[:1] if survey.kind == "marginals" else []
    by = cols[1].multiselect("Slice by", survey.demographics, key="data_preview_by",
                             default=default, persist_state="session",
                             max_selections=1 if survey.kind == "marginals" else 3)
    waves = survey.waves()
    wave = cols[2].selectbox("Wave", waves, key="data_preview_wave", persist_state="session") \
        if len(waves) > 1 else None
    try:
        marginals = real_marginals(survey, qid, by, wave=wave, include_total=bool(by))
    except SimError as error:
        show_error(error)
        return
    st.dataframe(marginals_table(marginals), hide_index=True, key="data_marginals")
    small = [m.label for m in marginals if m.too_small]
    if small:
        st.warning(f"Too few respondents to trust (effective n < 30): {', '.join(small)}")
    cols = st.columns([1, 2], vertical_alignment="center")
    sure = cols[1].checkbox(f"Yes, delete '{name}' and its files", key=f"data_delete_sure_{name}")
    if cols[0].button(f"Delete '{name}' from the workspace", key="data_delete",
                      disabled=not sure, help=None if sure else "Tick the box first."):
        workspace_surveys.delete_saved(name)
        st.rerun()


def main() -> None:
    """Draw the page."""
    st.header("Survey data")
    upload, demo = st.tabs(["Upload files", "Demo data"])
    with upload:
        upload_section()
    with demo:
        demo_section()
    st.divider()
    preview_section()


if __name__ == "__main__":
    run_page(main)
