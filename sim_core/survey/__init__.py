"""Survey data in: readers (CSV, SPSS/Stata, Excel, SubPOP JSONL), the typed survey model,
codebooks and column roles, weights and design, nonresponse, slices and their real shares.

Imports only sim_core.base.
"""
