"""Saved surveys: files the user loaded, kept in workspace/surveys/ for every page and the
CLI (`--data NAME`, `python -m sim_core surveys`).

Each survey is a folder named exactly as the user named it (sim_core.base.workspace.check_name:
never rewritten) holding

    mapping.json          the app's own record: file names and reader arguments (weight,
                          wave, roles, nonresponse, population, design)
    data/<file>           the uploaded file's bytes, unchanged
    codebook/<file>       the codebook's bytes, when there is one

so an upload can never clobber the app's files (an upload named mapping.json lands in
data/). A folder is written whole under a temporary name and renamed into place; an
existing survey is replaced only when asked. Never pickles: the survey is re-read through
sim_core.survey.readers from the original bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from sim_core.base.errors import DataError, SimError
from sim_core.base.workspace import check_name, is_valid_name, safe_name, subdir
from sim_core.base.writing import atomic_write, make_folder, remove_folder, staged_folder
from sim_core.survey.demo import DEMO_POPULATION, demo_anes_paths, demo_gss_path
from sim_core.survey.readers import load_survey

MAPPING_FILE = "mapping.json"
MAPPING_KEYS = ("weight", "wave", "demographics", "questions", "keep_nonresponse",
                "unweighted", "population", "strata", "psu", "design_effect")
DATA_DIR, CODEBOOK_DIR = "data", "codebook"


def surveys_dir() -> Path:
    """workspace/surveys/ (created on demand)."""
    return subdir("surveys")


def suggest_name(filename: str) -> str:
    """A storable name for an uploaded file: its stem made safe ("survey" if nothing is left)."""
    try:
        return safe_name(Path(filename).stem)
    except SimError:
        return "survey"


def survey_exists(name: str) -> bool:
    """Whether a saved survey of exactly this name exists."""
    return is_valid_name(name) and (surveys_dir() / name).exists()


def save_survey(name: str, filename: str, data: bytes, mapping: dict | None = None,
                codebook: tuple[str, bytes] | None = None, *, overwrite: bool = False) -> str:
    """Store an uploaded file (and optional codebook) with its column mapping, whole or not
    at all.

    Args:
        name: the stored name, exactly (check_name: SimError with a suggestion otherwise).
        filename: the uploaded file's name (its extension picks the reader).
        data: the file's bytes, stored unchanged.
        mapping: reader keyword arguments (sim_core.survey.respondents.ReadOptions fields: weight,
            wave, demographics, questions, keep_nonresponse, population, strata, ...).
        codebook: optional (filename, bytes) of a codebook CSV.
        overwrite: replace a saved survey of the same name (otherwise SimError).
    Returns:
        The stored survey's name (== name).
    """
    name = check_name(name, "survey name")
    data_file = f"{DATA_DIR}/{safe_name(Path(filename).name)}"
    info = {"name": name, "file": data_file, "codebook": None,
            "mapping": {k: v for k, v in (mapping or {}).items() if k in MAPPING_KEYS}}
    if codebook is not None:
        info["codebook"] = f"{CODEBOOK_DIR}/{safe_name(Path(codebook[0]).name)}"
    target = surveys_dir() / name
    with staged_folder(target, overwrite=overwrite, what=f"saved survey '{name}'") as temp:
        atomic_write(make_folder(temp / DATA_DIR) / Path(data_file).name, data)
        if codebook is not None:
            atomic_write(make_folder(temp / CODEBOOK_DIR) / Path(info["codebook"]).name,
                         codebook[1])
        atomic_write(temp / MAPPING_FILE, json.dumps(info, indent=2, ensure_ascii=False))
    return name


def saved_surveys() -> list[str]:
    """Names of the stored surveys, sorted (half-written and hidden folders left out)."""
    return sorted(p.parent.name for p in surveys_dir().glob(f"*/{MAPPING_FILE}")
                  if not p.parent.name.startswith("."))


def _folder(name: str) -> Path:
    """The folder of a saved survey, by its exact name (DataError when there is none)."""
    folder = surveys_dir() / name if is_valid_name(name) else None
    if folder is None or not (folder / MAPPING_FILE).is_file():
        known = ", ".join(saved_surveys()) or "none yet"
        raise DataError(f"no saved survey named '{name}' (saved surveys: {known}).")
    return folder


def read_info(name: str) -> dict:
    """The stored mapping.json of a survey."""
    path = _folder(name) / MAPPING_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"the saved survey's record is unreadable ({error}).",
                        file=str(path)) from None
    if not isinstance(info, dict) or not isinstance(info.get("file"), str):
        raise DataError("the saved survey's record is damaged.", file=str(path))
    return info


def stamp(name: str) -> float:
    """Modification time of a stored survey (cache key: changes when re-saved)."""
    return (_folder(name) / MAPPING_FILE).stat().st_mtime


def _inside(folder: Path, relative: str) -> Path:
    """folder/relative, refused when a hand-edited record points outside the folder."""
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise DataError(f"the saved survey's record names a file outside its folder "
                        f"('{relative}').", file=str(folder / MAPPING_FILE))
    return path


def load_saved(name: str):
    """Re-read a stored survey through sim_core.survey.readers.load_survey."""
    info = read_info(name)
    folder = _folder(name)
    codebook = _inside(folder, info["codebook"]) if info.get("codebook") else None
    kwargs = {k: v for k, v in info.get("mapping", {}).items() if v and k in MAPPING_KEYS}
    if "population" not in info.get("mapping", {}) and Path(info["file"]).name in _demo_files():
        kwargs["population"] = DEMO_POPULATION      # a demo saved before populations existed
    return load_survey(_inside(folder, info["file"]), name=info.get("name", name),
                       codebook=codebook, **kwargs)


def _demo_files() -> set[str]:
    """Stored file names of the demo data sets."""
    return {safe_name(demo_gss_path().name), safe_name(demo_anes_paths()[0].name)}


def delete_saved(name: str) -> None:
    """Remove a stored survey folder (exact name; DataError when there is none)."""
    remove_folder(_folder(name))
