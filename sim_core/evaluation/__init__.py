"""Simulated against real: comparisons, evaluations over many rows, baselines, splits,
calibration fitting, the verdict, individual-level and fairness views.

Imports only sim_core.base, sim_core.survey and sim_core.simulation.
"""
