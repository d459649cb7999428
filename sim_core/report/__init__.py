"""Results that leave the tool: the report as plain data (CSV, JSON), its PDF, the methods
text, colours, and the workspace history of finished results.

Imports the layers below it (base, survey, simulation, evaluation); only the CLI
(sim_core.commands) and the dashboard sit above.
"""
