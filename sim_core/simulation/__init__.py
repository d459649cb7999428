"""Simulated answers: prompts, the model handle every backend implements (local transformers,
an OpenAI-compatible server), devices, adapters, the result cache and the calibration applied
to simulated shares.

Imports only sim_core.base and sim_core.survey.
"""
