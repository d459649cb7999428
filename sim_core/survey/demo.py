"""Demo surveys shipped under sim_core/data (real data; no network needed)."""

from __future__ import annotations

from pathlib import Path

from sim_core.base.errors import DataError
from sim_core.survey.marginal_readers import read_subpop_jsonl
from sim_core.survey.readers import read_respondents_csv
from sim_core.survey.schema import Survey

DATA_DIR = Path(__file__).resolve().parents[1] / "data"     # sim_core/data
DEMO_POPULATION = "adults in the United States"     # both demos: GSS 2022, ANES 1996
DEMOS: dict[str, str] = {
    "gss2022": "GSS 2022 subgroup marginals (SubPOP): 133 questions x 22 groups",
    "anes96": "ANES 1996 respondents (statsmodels): 944 people, party id, ideology, vote",
}


def demo_gss_path() -> Path:
    """The bundled GSS 2022 SubPOP JSONL."""
    return DATA_DIR / "gss2022_subpop_eval.jsonl"


def demo_anes_paths() -> tuple[Path, Path]:
    """The bundled ANES 1996 data CSV and its codebook CSV."""
    return DATA_DIR / "anes96.csv", DATA_DIR / "anes96_codebook.csv"


def load_demo(name: str) -> Survey:
    """Load a demo survey by name ("gss2022" or "anes96").

    Args:
        name: a key of DEMOS.
    Returns:
        Survey (ANES with its codebook, so options keep their order and labels).
    """
    if name == "gss2022":
        survey = read_subpop_jsonl(demo_gss_path(), name="gss2022")
        survey.population = DEMO_POPULATION
        return survey
    if name == "anes96":
        data, codebook = demo_anes_paths()
        return read_respondents_csv(data, codebook=codebook, name="anes96",
                                    population=DEMO_POPULATION)
    raise DataError(f"unknown demo {name!r}; choose one of: {', '.join(DEMOS)}")
