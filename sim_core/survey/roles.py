"""Column roles: which columns are questions, demographics, weight, wave or ignored.

Guesses are proposals for the mapping screen and the CLI default; demographics are never
"every other column": they are named (argument, codebook role) or guessed from names and
labels like `age`, `sex`, `educ`, with a message saying so. IDs, dates and columns with more
distinct values than the prompt can letter are not offered as questions.

Design and administration variables are not questions either (design_variable): the
split-ballot form or questionnaire version, the sample type, strata, PSU or cluster,
replicate and interviewer columns, recognised by their name ("form", "version", "ballot",
"splitform", "sample", "stratum", "psu", "intid"...), by a short variable label that names
one ("Questionnaire form", "Split sample", "Interviewer ID"), or by value labels that name
ballots ("Form 1" / "Form 2", "Version A" / "Version B"). They are listed as ignored with
the reason "design"; a codebook role (or --questions) makes one a question all the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.reading import MISSING_TOKENS
from sim_core.survey.schema import LETTERS, ColumnNote
from sim_core.survey.weights import weight_candidates

MAX_OPTIONS = len(LETTERS)          # the prompt letters at most 26 options
WAVE_NAMES = {"wave", "year", "round", "survey_year", "wave_id", "panel_wave"}
_ID_NAME = re.compile(r"^(id|idno|uuid|rid|respid|resp_id|respondent|respondent_id|caseid|"
                      r"case_id|case|serial|.*_id|id_.*|.*serial.*)$")
_DATE_NAME = re.compile(r"(^|_)(date|datum|time|timestamp|start|end|interview_date)($|_)")
_DATE_CELL = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}|^\d{1,2}[/.]\d{1,2}[/.]\d{2,4}$")
DEMOGRAPHIC_STEMS = ("age", "sex", "gender", "race", "ethnic", "hispanic", "income", "educ",
                     "degree", "region", "cregion", "state", "party", "pid", "polparty",
                     "ideolog", "polideology", "relig", "marital", "married", "employ",
                     "occup", "urban", "rural", "children", "kids", "household", "country",
                     "language", "citizen", "popul")
_SHORT_LABEL_WORDS = 5              # labels this short may name a demographic ("Age of R")
_DESIGN_NAME = re.compile(
    r"^(q|ques|questionnaire)?_?(form|formtype|version|ballot|split|splitform|splitballot|"
    r"sample|sampletype|samptype|stratum|strata|strat|vstrat|psu|vpsu|cluster|interviewer|"
    r"intid|intvwr|iwer|intnum|replicate)(_?(id|no|num|nr|type|[a-z]|\d+))?$")
_DESIGN_LABEL = re.compile(
    r"^(questionnaire |split[- ]?|ballot )?(form|version|ballot)( (type|number|no|id|\w{1,2}))?"
    r"\W*$|\bsplit[- ]?(sample|ballot|form)\b|"
    r"^sample( type)?\W*$|\binterviewer\b|\bstrat(um|a)\b|\bprimary sampling unit\b|\bpsu\b|"
    r"^replicate\b", re.IGNORECASE)
_BALLOT_VALUE = re.compile(r"^(form|version|ballot|split|sample)\s*[a-z0-9]{1,3}$",
                           re.IGNORECASE)


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", str(text).lower()) if t]


# Stems that are word beginnings on their own ("educ" -> education, "relig" -> religion);
# the others match a whole word plus at most a short tail ("agea", "sex_r" -> "sex", "age4")
# so that "statement", "agenda" or "racism" are not taken for state, age or race.
_PREFIX_STEMS = ("educ", "relig", "ideolog", "ethnic", "employ", "occup", "marital",
                 "hispanic", "polparty", "polideology", "cregion", "popul", "citizen")


def _demographic_word(word: str) -> bool:
    if word.startswith(_PREFIX_STEMS):
        return True
    for stem in DEMOGRAPHIC_STEMS:
        if word.startswith(stem):
            rest = word[len(stem):]
            if len(rest) <= 2 or rest.isdigit() or rest in ("group", "grp", "cat", "id"):
                return True
    return False


def looks_demographic(name: str, label: str = "") -> bool:
    """Name (or a short variable label) names a demographic: age, sex, educ, party, ..."""
    if any(_demographic_word(t) for t in _tokens(name) or [str(name).lower()]):
        return True
    words = _tokens(label)
    return 0 < len(words) <= _SHORT_LABEL_WORDS and any(_demographic_word(w) for w in words)


def design_variable(name: str, label: str = "", value_labels=()) -> bool:
    """A design or administration variable (form, version, sample, strata, PSU,
    interviewer...): by name, short label, or value labels naming ballots ("Form A")."""
    low = str(name).strip().lower()
    if _DESIGN_NAME.match(low):
        return True
    if 0 < len(_tokens(label)) <= _SHORT_LABEL_WORDS + 1 and _DESIGN_LABEL.search(str(label)):
        return True
    values = [str(v).strip() for v in value_labels]
    return len(values) >= 2 and all(_BALLOT_VALUE.match(v) for v in values)


def design_note(column: str) -> str:
    """The note about a design variable left out of the questions."""
    return (f"{column}: a design variable (form, version, sample, strata, PSU, interviewer), "
            "not offered as a question or slice attribute; to use it, give it a role in the "
            f"codebook or name it (--questions / --demographics {column}).")


def id_or_date_name(name: str) -> str | None:
    """"id" or "date" when the name alone says so."""
    low = str(name).strip().lower()
    if _ID_NAME.match(low):
        return "id"
    if _DATE_NAME.search(low):
        return "date"
    return None


def column_kind(values: pd.Series, name: str) -> str | None:
    """Why a text column is no question: "id", "date", "many values" (> 26), or None."""
    by_name = id_or_date_name(name)
    if by_name:
        return by_name
    present = values[~values.isin(MISSING_TOKENS)]
    distinct = present.nunique()
    if len(present) >= 50 and distinct == len(present) and distinct > MAX_OPTIONS:
        return "id"
    if len(present) and present.head(200).str.match(_DATE_CELL).mean() > 0.9:
        return "date"
    if distinct > MAX_OPTIONS:
        return "many values"
    return None


def guess_columns(df: pd.DataFrame, labels: dict[str, str] | None = None) -> dict:
    """Propose the role of every column from its name, label and values.

    Returns:
        {"demographics": [...], "questions": [...], "weight": str | None (first candidate),
         "weights": [...candidates], "wave": str | None, "ignored": [...],
         "why": {column: "id" | "date" | "design" | "many values" | "weight" | "wave"}}.
    """
    labels = labels or {}
    candidates = weight_candidates(list(df.columns), labels)
    wave = next((c for c in df.columns if str(c).strip().lower() in WAVE_NAMES), None)
    out = {"demographics": [], "questions": [], "weight": candidates[0] if candidates else None,
           "weights": candidates, "wave": wave, "ignored": [], "why": {}}
    for column in df.columns:
        if column in candidates or column == wave:
            out["why"][column] = "weight" if column in candidates else "wave"
            continue
        if design_variable(column, labels.get(column, "")):
            out["ignored"].append(column)
            out["why"][column] = "design"
            continue
        if looks_demographic(column, labels.get(column, "")):
            out["demographics"].append(column)      # before the ID rules: "party_id", age
            continue
        values = df[column].astype(str) if len(df) else pd.Series([], dtype=str)
        kind = column_kind(values, column)
        if kind is None:
            out["questions"].append(column)
        else:
            out["ignored"].append(column)
            out["why"][column] = kind
    return out


@dataclass
class Roles:
    """The resolved roles of a respondent file.

    Attributes:
        questions, demographics: the columns in those roles.
        notes: warnings about the survey as a whole (demographics guessed).
        column_notes: ColumnNote list about single columns (design variables left out...).
    """

    questions: list[str]
    demographics: list[str]
    notes: list[str] = field(default_factory=list)
    column_notes: list[ColumnNote] = field(default_factory=list)


def resolve_roles(columns: list[str], book: dict, guess: dict, *, reserved: list[str | None],
                  demographics: list[str] | None, questions: list[str] | None,
                  file: str) -> Roles:
    """Questions and demographics: named > codebook roles > guess (with a note).

    Args:
        columns: all columns of the file.
        book: column -> ColumnSpec from a codebook ({} when none).
        guess: guess_columns() of the file.
        reserved: weight, wave, strata, psu columns (never questions or demographics).
        demographics, questions: explicit lists (None = not given).
        file: for messages.
    """
    named = [("demographic", demographics or []), ("question", questions or []),
             ("weight/wave/design", [c for c in reserved if c])]
    for role, names in named:
        for column in names:
            if column not in columns:
                raise DataError(f"the {role} column is not in the file; it has: "
                                + ", ".join(map(str, columns[:50])), file=file, row=1,
                                column=column)
    taken = {c for c in reserved if c}
    notes = []
    if questions is None:      # named demographics are never also guessed as questions
        listed = [c for c, e in book.items() if e.role == "question"]
        chosen = set(demographics or [])
        questions = [c for c in (listed if book else guess["questions"])
                     if c not in taken and c not in chosen]
    if demographics is None:
        listed = [c for c, e in book.items() if e.role == "demographic"]
        demographics = listed or [c for c in guess["demographics"]
                                  if c not in taken and c not in questions]
        if demographics and not listed:
            notes.append("demographics guessed from column names: " + ", ".join(demographics)
                         + "; name them (--demographics, the column mapping, or role in the "
                         "codebook) to be sure.")
    _check_overlap(questions, demographics, taken, file)
    if not questions:
        raise DataError("no question columns found; pick them in the column mapping, name "
                        "them with --questions or give a codebook.", file=file)
    used = set(questions) | set(demographics) | taken
    design = [ColumnNote(c, "design", design_note(c)) for c, why in guess["why"].items()
              if why == "design" and c not in used]
    return Roles(list(questions), list(demographics), notes, design)


def _check_overlap(questions, demographics, taken, file) -> None:
    both = set(questions) & set(demographics)
    if both:
        raise DataError("a column cannot be both a question and a demographic.", file=file,
                        row=1, column=sorted(both)[0])
    clash = (set(questions) | set(demographics)) & taken
    if clash:
        raise DataError("the weight/wave/strata/PSU column cannot also be a question or "
                        "demographic.", file=file, row=1, column=sorted(clash)[0])
