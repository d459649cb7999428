"""Core library of the opinion simulator: survey data, slices, scores, simulation, comparison.

Never imports streamlit. See docs/API.md for the public API.
"""
