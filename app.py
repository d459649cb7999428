"""Opinion simulator dashboard: `streamlit run app.py`.

Navigation over five thin pages plus a sidebar (workspace, base model, adapter). Nothing
heavy is imported here: the model loads on first use (pages/common.get_model).
"""

from __future__ import annotations

import streamlit as st

from pages import common

st.set_page_config(page_title="Opinion simulator", page_icon=":material/bar_chart:", layout="wide")

PAGES = [
    st.Page("pages/data.py", title="Data", icon=":material/table_chart:", url_path="data", default=True),
    st.Page("pages/simulate.py", title="Simulate & compare", icon=":material/compare_arrows:", url_path="simulate"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/grid_on:", url_path="evaluate"),
    st.Page("pages/fine_tune.py", title="Fine-tune", icon=":material/model_training:", url_path="fine_tune"),
    st.Page("pages/reports.py", title="Reports", icon=":material/description:", url_path="reports"),
]

navigation = st.navigation(PAGES)
common.restore_form()
common.sidebar()
try:
    navigation.run()
finally:       # also after st.rerun / st.stop: the choices made in this run are noted
    common.remember_form()
