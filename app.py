"""Opinion simulator dashboard: `streamlit run app.py`.

Navigation over five thin pages (pages/) plus a sidebar (workspace, base model, adapter),
drawn by dashboard.navigation.run_app, which a page file run alone also calls. Nothing heavy
is imported here: the model loads on first use (dashboard.loaders.get_model).
"""

from __future__ import annotations

from dashboard.navigation import run_app

run_app()
