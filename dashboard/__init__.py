"""What the dashboard's pages share: the app's navigation and sidebar, cached model and survey
loading, the status box of a run, tables, charts, form widgets, and the Evaluate page's
fairness and individual-level sections.

The pages in pages/ import from here; this package imports sim_core and finetune, never pages.
Nothing here computes survey numbers: it wires widgets to the core and draws what it returns.
Session-state keys are prefixed by page: side_ (sidebar), data_, sim_, eval_, ft_, rep_.
"""
