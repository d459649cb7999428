"""SPSS reading benchmark: metadata first and only the needed columns, against reading the
whole file.

A synthetic wave in the shape real ones ship (ESS/GSS-like: many labelled columns with
declared missing codes, a weight, an ID, dates) is written once with pyreadstat, then read:

  full pyreadstat   pyreadstat.read_sav of every column (what a hand conversion does)
  named columns     sim_core.survey.readers.load_survey with 5 questions and 3 demographics named
  all labelled      load_survey with the defaults: every labelled column is a question
  marginals         real_marginals of one question by two crossed demographics (named load)

Each path runs in its own child process so peak memory (RSS) is its own.
Usage: python bench/survey_files.py [--rows 20000] [--columns 400]
Prints a markdown table and writes it to bench/results/survey_files.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PATHS = ("full pyreadstat", "named columns", "all labelled", "marginals")
QUESTIONS = ["q1", "q2", "q3", "q4", "q5"]
DEMOGRAPHICS = ["sex", "agea", "region"]


def write_wave(path: Path, rows: int, columns: int, seed: int = 0) -> None:
    """A wide labelled .sav: id, date, weight, 3 demographics, `columns` 5-point items."""
    import numpy as np
    import pandas as pd
    import pyreadstat

    rng = np.random.default_rng(seed)
    data = {"idno": np.arange(rows, dtype=float),
            "inwdate": pd.Timestamp("2018-09-01") + pd.to_timedelta(
                rng.integers(0, 90, rows), unit="D"),
            "pspwght": rng.uniform(0.2, 4.0, rows).round(4),
            "sex": rng.integers(1, 3, rows).astype(float),
            "agea": np.where(rng.random(rows) < 0.02, 999,
                             rng.integers(15, 95, rows)).astype(float),
            "region": rng.integers(1, 9, rows).astype(float)}
    scale = {1: "Agree strongly", 2: "Agree", 3: "Neither", 4: "Disagree",
             5: "Disagree strongly", 7: "Refusal", 8: "Don't know", 9: "No answer"}
    for j in range(columns):
        answers = rng.integers(1, 6, rows).astype(float)
        answers[rng.random(rows) < 0.05] = 8
        answers[rng.random(rows) < 0.01] = 7
        data[f"q{j + 1}"] = answers
    frame = pd.DataFrame(data)
    labels = {f"q{j + 1}": scale for j in range(columns)}
    labels.update(sex={1: "Male", 2: "Female"},
                  region={i: f"Region {i}" for i in range(1, 9)})
    pyreadstat.write_sav(
        frame, path, variable_value_labels=labels,
        column_labels={"pspwght": "Post-stratification weight", "agea": "Age of respondent",
                       **{f"q{j + 1}": f"Statement {j + 1}" for j in range(columns)}},
        missing_ranges={**{f"q{j + 1}": [7, 8, 9] for j in range(columns)}, "agea": [999]},
        variable_measure={f"q{j + 1}": "ordinal" for j in range(columns)},
        variable_format={"inwdate": "DATE11"})


def run_path(name: str, path: str) -> dict:
    """One path in this process; returns seconds, columns read, peak RSS."""
    start = time.perf_counter()
    if name == "full pyreadstat":
        import pyreadstat
        frame, _ = pyreadstat.read_sav(path, user_missing=True)
        columns = frame.shape[1]
    else:
        from sim_core.survey.readers import load_survey
        named = name != "all labelled"
        kw = dict(questions=QUESTIONS, demographics=DEMOGRAPHICS) if named else \
            dict(demographics=DEMOGRAPHICS)
        survey = load_survey(path, weight="pspwght", **kw)
        columns = survey.respondents.shape[1]
        if name == "marginals":
            from sim_core.survey.slices import real_marginals
            start = time.perf_counter()
            real_marginals(survey, "q1", ["sex", "region"])
    seconds = time.perf_counter() - start
    return {"path": name, "seconds": seconds, "columns": columns, "rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM: unlike ru_maxrss, not inherited from
    the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--columns", type=int, default=400)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_path(*args.child)))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "wave.sav"
        write_wave(path, args.rows, args.columns)
        size = path.stat().st_size / 2**20
        results = []
        for name in PATHS:
            out = subprocess.run([sys.executable, __file__, "--child", name, str(path)],
                                 check=True, capture_output=True, text=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    lines = [f"Synthetic SPSS wave: {args.rows} rows x {args.columns + 6} columns "
             f"({size:.1f} MiB). Reproduce: `python bench/survey_files.py --rows {args.rows} "
             f"--columns {args.columns}`.", "",
             "| path | seconds | columns kept | peak RSS (MB) |", "|---|---|---|---|"]
    lines += [f"| {r['path']} | {r['seconds']:.2f} | {r['columns']} | {r['rss_mb']:.0f} |"
              for r in results]
    table = "\n".join(lines)
    print(table)
    out = ROOT / "bench" / "results" / "survey_files.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
