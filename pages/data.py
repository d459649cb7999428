"""Data: upload survey files (or pick demo data), map columns, validate, preview marginals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from pages import common
from sim_core import demo, store
from sim_core.errors import DataError, SimError
from sim_core.fileio import read_table
from sim_core.readers import load_survey
from sim_core.slices import real_marginals

UPLOAD_TYPES = ["csv", "tsv", "txt", "jsonl"]
NONE = "(none)"


@st.cache_resource(max_entries=8, show_spinner="Reading file…")
def parse_upload(filename: str, data: bytes, codebook: bytes | None = None,
                 mapping: tuple = ()):
    """Read uploaded bytes through sim_core.readers.load_survey (mapping as sorted items)."""
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in mapping if v}
    try:
        return load_survey(data, name=Path(filename).stem, codebook=codebook, **kwargs)
    except DataError as error:  # bytes carry no file name: say which upload it was
        raise DataError(f"{filename}: {error}") from None


@st.cache_data(max_entries=8, show_spinner=False)
def upload_columns(data: bytes) -> list[str]:
    """All columns of an uploaded CSV (sim_core.fileio.read_table)."""
    return [str(c) for c in read_table(data)[0].columns]


def _index(columns: list[str], value: str | None) -> int:
    """Selectbox index of a guessed column (0 = none)."""
    return 1 + columns.index(value) if value in columns else 0


def mapping_widgets(i: int, data: bytes, guess) -> dict:
    """Column mapping for a respondent file, defaulting to what the reader guessed.

    The guess is the Survey read without a mapping: the codebook's roles when there is one,
    else readers.guess_columns.
    """
    columns = upload_columns(data)
    cols = st.columns(2)
    demographics = cols[0].multiselect("Demographics (slice attributes)", columns,
                                       default=[c for c in guess.demographics if c in columns],
                                       key=f"data_demographics_{i}")
    questions = cols[1].multiselect("Questions (answer columns)", columns,
                                    default=[c for c in guess.questions if c in columns],
                                    key=f"data_questions_{i}")
    weight = cols[0].selectbox("Weight column", [NONE, *columns], key=f"data_weight_{i}",
                               index=_index(columns, guess.weight))
    wave = cols[1].selectbox("Wave / year column", [NONE, *columns], key=f"data_wave_{i}",
                             index=_index(columns, guess.wave))
    return {"demographics": demographics, "questions": questions,
            "weight": None if weight == NONE else weight, "wave": None if wave == NONE else wave}


def upload_one(i: int, upload, codebook) -> None:
    """Validate one uploaded file with its mapping, and save it to the workspace."""
    data, book = upload.getvalue(), codebook.getvalue() if codebook else None
    try:
        survey = parse_upload(upload.name, data, book)
        mapping = mapping_widgets(i, data, survey) if survey.kind == "respondents" else {}
        items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in mapping.items()))
        survey = parse_upload(upload.name, data, book, items) if mapping else survey
    except SimError as error:
        common.show_error(error)
        return
    describe(survey)
    name = st.text_input("Save as", value=Path(upload.name).stem, key=f"data_name_{i}")
    if st.button("Save to workspace", key=f"data_save_{i}", type="primary"):
        try:
            book_file = (codebook.name, book) if book else None
            saved = store.save_survey(name, upload.name, data, mapping, codebook=book_file)
        except SimError as error:
            common.show_error(error)
            return
        st.success(f"Saved as '{saved}': it is now available on every page.")


def describe(survey) -> None:
    """One line about a survey plus its reader warnings."""
    size = (f"{len(survey.respondents)} respondents" if survey.respondents is not None
            else f"{len(survey.marginals)} marginal rows")
    waves = survey.waves()
    st.caption(f"{survey.kind}: {len(survey.questions)} questions, {size}, "
               f"demographics: {', '.join(survey.demographics) or 'none'}"
               + (f", waves: {', '.join(waves)}" if waves else ""))
    for warning in survey.warnings:
        st.warning(warning)


def upload_section() -> None:
    """File uploaders and one mapping form per file."""
    uploads = st.file_uploader("Survey files: respondent CSV, marginals CSV or GSS/SubPOP JSONL "
                               "(one file per wave)", type=UPLOAD_TYPES,
                               accept_multiple_files=True, key="data_upload")
    codebook = st.file_uploader("Codebook CSV (optional; column, question_text, options, "
                                "ordinal, missing)", type=["csv"], key="data_codebook")
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
        try:
            parse_upload(path.name, path.read_bytes(), book[1] if book else None)
            saved = store.save_survey(path.stem, path.name, path.read_bytes(), codebook=book)
        except SimError as error:
            common.show_error(error)
            return
        st.success(f"Loaded '{saved}': pick it below or on any other page.")


def marginals_table(marginals) -> pd.DataFrame:
    """Real marginals as a table: slice, n, n_eff, too small, share [CI] per option."""
    rows = []
    for m in marginals:
        row = {"slice": m.label, "n": m.n, "n_eff": None if m.n_eff is None else round(m.n_eff, 1),
               "too small": m.too_small}
        for j, option in enumerate(m.options):
            ci = "" if m.ci_low is None else f" [{m.ci_low[j]:.2f}, {m.ci_high[j]:.2f}]"
            row[option] = f"{m.shares[j]:.3f}{ci}"
        rows.append(row)
    return pd.DataFrame(rows)


def preview_section() -> None:
    """Questions and real marginals per slice of a saved survey."""
    name, survey = common.survey_picker("data", "Saved survey")
    if survey is None:
        return
    describe(survey)
    st.dataframe(pd.DataFrame([{"id": q.id, "text": q.text, "options": " | ".join(q.options),
                                "ordinal": q.is_ordinal} for q in survey.questions.values()]),
                 hide_index=True, key="data_questions_table")
    cols = st.columns(3)
    qid = cols[0].selectbox("Question", list(survey.questions), key="data_preview_q")
    default = survey.demographics[:1] if survey.kind == "marginals" else []
    by = cols[1].multiselect("Slice by", survey.demographics, key="data_preview_by", default=default,
                             max_selections=1 if survey.kind == "marginals" else 3)
    waves = survey.waves()
    wave = cols[2].selectbox("Wave", waves, key="data_preview_wave") if len(waves) > 1 else None
    try:
        marginals = real_marginals(survey, qid, by, wave=wave, include_total=bool(by))
    except SimError as error:
        common.show_error(error)
        return
    st.dataframe(marginals_table(marginals), hide_index=True, key="data_marginals")
    small = [m.label for m in marginals if m.too_small]
    if small:
        st.warning(f"Too few respondents to trust (effective n < 30): {', '.join(small)}")
    if st.button(f"Delete '{name}' from the workspace", key="data_delete"):
        store.delete_saved(name)
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
    main()
