"""Reports: PDF, CSV and JSON from the session's last results or from the saved results of
the workspace history (kept across refreshes; rename and delete them here)."""

from __future__ import annotations

import streamlit as st

from dashboard.display import show_error
from dashboard.navigation import run_page
from sim_core.base.errors import SimError
from sim_core.base.workspace import safe_name
from sim_core.report import history
from sim_core.report.document import (
    report_from_comparisons,
    report_from_evaluation,
    report_from_individual,
)
from sim_core.report.exports import report_csv, report_json
from sim_core.report.pdf import render_pdf

SOURCES = ("Comparisons from Simulate & compare", "Last evaluation",
           "Last individual-level run")
STATE_KEYS = ("sim_history", "eval_evaluation", "eval_individual")
SAVED = "Saved results (workspace history)"


def build(source: str, title: str | None, page_size: str, saved: list[str]) -> None:
    """Build the Report and its three files once; kept in rep_files."""

    try:
        if source == SAVED:
            report = history.combined_report(saved, title=title)
        elif source == SOURCES[0]:
            report = report_from_comparisons(st.session_state["sim_history"], title=title)
        elif source == SOURCES[1]:
            report = report_from_evaluation(st.session_state["eval_evaluation"], title=title)
        else:
            report = report_from_individual(st.session_state["eval_individual"], title=title)
        with st.spinner("Rendering PDF…"):
            pdf = render_pdf(report, page_size=page_size)
    except SimError as error:
        show_error(error)
        return
    st.session_state["rep_files"] = {"title": report.title, "pdf": pdf,
                                     "csv": report_csv(report), "json": report_json(report)}


def downloads(files: dict) -> None:
    """Download buttons for the built report."""
    stem = safe_name(files["title"]) if files["title"] else "report"
    st.success(f"Report ready: {files['title']} ({len(files['pdf']) // 1024} KiB PDF)")
    cols = st.columns(3)
    cols[0].download_button("PDF report", files["pdf"], f"{stem}.pdf", "application/pdf",
                            key="rep_pdf")
    cols[1].download_button("Numbers (CSV)", files["csv"], f"{stem}.csv", "text/csv",
                            key="rep_csv")
    cols[2].download_button("Numbers (JSON)", files["json"], f"{stem}.json",
                            "application/json", key="rep_json")


def saved_picker(stored: list) -> list[str]:
    """Pick saved results (several comparisons make one report); rename or delete one."""
    names = {r.id: f"{r.created} · {r.kind} · {r.title}" for r in stored}
    picked = st.multiselect("Saved results (several comparisons: one section each)",
                            list(names), default=[stored[0].id], key="rep_saved",
                            format_func=names.get)
    with st.expander("Rename or delete a saved result"):
        one = st.selectbox("Result", list(names), key="rep_saved_one", format_func=names.get)
        cols = st.columns([2, 1, 1], vertical_alignment="bottom")
        title = cols[0].text_input("New title", key="rep_saved_title")
        sure = cols[2].checkbox("Yes, delete it", key="rep_saved_sure")
        try:
            if cols[1].button("Rename", key="rep_saved_rename", disabled=not title.strip()):
                history.rename_result(one, title)
                st.rerun()
            if cols[2].button("Delete", key="rep_saved_delete", disabled=not sure):
                history.delete_result(one)
                st.rerun()
        except SimError as error:
            show_error(error)
    return picked


def main() -> None:
    """Draw the page."""
    st.header("Reports")
    available = [s for s, key in zip(SOURCES, STATE_KEYS)
                 if st.session_state.get(key)]
    try:
        stored = history.list_results()
    except SimError as error:
        show_error(error)
        stored = []
    if stored:
        available.append(SAVED)
    if not available:
        st.info("Nothing to report yet: run a comparison (Simulate & compare) or an evaluation.")
        return
    source = st.radio("Report on", available, key="rep_source", persist_state="session")
    saved = []
    if source == SOURCES[0]:
        n = len(st.session_state["sim_history"])
        st.caption(f"{n} comparison(s) from this session, one section per question.")
    elif source == SAVED:
        saved = saved_picker(stored)
    title = st.text_input("Title", key="rep_title", persist_state="session",
                          placeholder="(automatic)").strip() or None
    page_size = st.selectbox("Page size", ["A4", "Letter"], key="rep_page_size",
                             persist_state="session")
    if st.button("Build report", type="primary", key="rep_build",
                 disabled=source == SAVED and not saved):
        build(source, title, page_size, saved)
    if st.session_state.get("rep_files"):
        downloads(st.session_state["rep_files"])


if __name__ == "__main__":
    run_page(main)
