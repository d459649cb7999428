"""The app around the pages: page config, the five pages in st.navigation and the sidebar;
and the entry every page file calls, which hands a page that Streamlit ran on its own over to
the app.

Why the hand-over: a `pages/` folder next to app.py puts a fresh server in Streamlit's legacy
multipage mode until st.navigation is first called ("As soon as any session of your app
executes the st.navigation command, your app will ignore the pages/ directory", st.navigation
docs). Until then an address such as /simulate (a bookmark, a refresh right after a restart)
runs pages/simulate.py alone: no sidebar, and app.py listed beside the page files. Streamlit's
test harness (AppTest) starts every run in that mode. A page run that way calls run_app()
itself: its st.navigation ends the legacy mode and runs the same page inside the app, in the
same run (so a click that started the run is not lost).

Form choices that should survive a visit to another page say so at their widget
(`persist_state="session"`, Streamlit's own; buttons, uploads, data editors and per-upload
mapping forms are not kept).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

import streamlit as st

from dashboard.sidebar import sidebar
from sim_core.base.serving import exposure_notice

# True while the app runs its current page (a page file run by Streamlit alone sees False).
_INSIDE_APP: ContextVar[bool] = ContextVar("inside_app", default=False)


def app_pages() -> list:
    """The five pages, in menu order (paths relative to app.py)."""
    return [
        st.Page("pages/data.py", title="Data", icon=":material/table_chart:",
                url_path="data", default=True),
        st.Page("pages/simulate.py", title="Simulate & compare",
                icon=":material/compare_arrows:", url_path="simulate"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/grid_on:",
                url_path="evaluate"),
        st.Page("pages/fine_tune.py", title="Fine-tune", icon=":material/model_training:",
                url_path="fine_tune"),
        st.Page("pages/reports.py", title="Reports", icon=":material/description:",
                url_path="reports"),
    ]


def run_app() -> None:
    """Draw the app: navigation over the five pages, the sidebar, then the current page."""
    st.set_page_config(page_title="Opinion simulator", page_icon=":material/bar_chart:",
                       layout="wide")
    navigation = st.navigation(app_pages())
    sidebar()
    exposure_warning()
    token = _INSIDE_APP.set(True)
    try:
        navigation.run()
    finally:
        _INSIDE_APP.reset(token)


def exposure_warning() -> None:
    """A warning above every page while other machines can reach this server (it has no
    sign-in of its own): a first visit sees it whichever page it opens."""
    notice = exposure_notice(st.get_option("server.address"))
    if notice is not None:
        st.warning(notice, icon=":material/public:")


def run_page(draw: Callable[[], None]) -> None:
    """Draw a page (every page file's `__main__` calls this): inside the app, the page
    itself; run alone by Streamlit's legacy pages/ mode, the whole app, which runs this page
    again inside it."""
    if _INSIDE_APP.get():
        draw()
    else:
        run_app()
