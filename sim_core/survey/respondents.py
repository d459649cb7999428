"""Build a respondent-level Survey from columns of canonical text and their specs.

Shared by the CSV reader (sim_core.survey.readers) and the SPSS/Stata reader
(sim_core.survey.spss_stata), so that both apply the same missing-value rules
(sim_core.survey.nonresponse), roles, weight checks and waves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from sim_core.base.errors import DataError
from sim_core.base.reading import MISSING_TOKENS, number, rows_at
from sim_core.survey.nonresponse import code_column, describe_treated, suspect_missing_codes
from sim_core.survey.schema import RESPONDENTS, ColumnNote, ColumnSpec, Design, Question, Survey
from sim_core.survey.weights import check_weights


@dataclass
class ReadOptions:
    """What the user chose when reading respondent data (every field optional).

    Attributes:
        weight: weight column; None = unweighted (a warning names candidate columns
            unless unweighted=True says so on purpose).
        wave: wave/year column.
        demographics, questions: column lists (None = codebook roles, else guessed).
        keep_nonresponse: keep options labelled like nonresponse (Don't know, Refused...)
            as options instead of counting them as missing.
        unweighted: the user chose no weight although candidates exist.
        population: who the survey speaks for, for the prompt ("adults in Germany, 2018").
        strata, psu: design columns for design-based (Taylor) intervals.
        design_effect: a known design-effect factor (>= 1) when strata/PSU are not given.
    """

    weight: str | None = None
    wave: str | None = None
    demographics: list[str] | None = None
    questions: list[str] | None = None
    keep_nonresponse: bool = False
    unweighted: bool = False
    population: str = ""
    strata: str | None = None
    psu: str | None = None
    design_effect: float | None = None

    def design(self) -> Design | None:
        """The Design these options describe (None = weighting only)."""
        if self.design_effect is not None and not (np.isfinite(self.design_effect)
                                                   and self.design_effect >= 1):
            raise DataError(f"the design effect must be a number >= 1, not "
                            f"{self.design_effect}.")
        if self.strata or self.psu or self.design_effect:
            return Design(self.strata, self.psu, self.design_effect)
        return None

    def reserved(self) -> list[str | None]:
        """Columns that can be neither questions nor demographics."""
        return [self.weight, self.wave, self.strata, self.psu]


def with_codebook_weight(opts: ReadOptions, book: dict[str, ColumnSpec],
                        file: str) -> ReadOptions:
    """The options with the weight a codebook names (role `weight`), when none was chosen
    here (a weight or --unweighted given here wins)."""
    named = [c for c, entry in book.items() if entry.role == "weight"]
    if len(named) > 1:
        raise DataError(f"the codebook gives the role weight to {', '.join(named)}; a survey "
                        "has one weight: keep one.", file=file, column=named[1])
    if named and opts.weight is None and not opts.unweighted:
        return replace(opts, weight=named[0])
    return opts


def read_options(**kw) -> ReadOptions:
    """ReadOptions from keyword arguments; unknown keys are a TypeError (a typo is a bug)."""
    known = [f.name for f in fields(ReadOptions)]
    unknown = [k for k in kw if k not in known]
    if unknown:
        raise TypeError(f"unknown reader option(s) {', '.join(unknown)}; known: "
                        + ", ".join(known))
    if kw.get("weight") and kw.get("unweighted"):
        raise DataError(f"choose a weight ('{kw['weight']}') or unweighted, not both.")
    return ReadOptions(**kw)


@dataclass
class Columns:
    """The parts of a survey being built."""

    out: dict[str, pd.Series] = field(default_factory=dict)
    questions: dict[str, Question] = field(default_factory=dict)
    reasons: dict[str, pd.Series] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)       # about the survey as a whole
    notes: list[ColumnNote] = field(default_factory=list)   # about one column each
    rows: list[int] | None = None      # row number of each respondent, for messages


def add_question(parts: Columns, column: str, values: pd.Series, spec: ColumnSpec,
                 opts: ReadOptions, unlabelled: str, file: str) -> None:
    """Read one answer column into labels, reasons and a Question."""
    coded = code_column(values, spec, keep_nonresponse=opts.keep_nonresponse,
                        unlabelled=unlabelled, file=file, column=column, rows=parts.rows)
    parts.notes += describe_treated(column, coded)
    if not coded.options:
        parts.notes.append(ColumnNote(column, "no answers", f"{column}: the question has no "
                                      "answers and was left out."))
        return
    if not spec.options:
        _warn_suspect(parts, column, coded.options, spec)
    parts.questions[column] = Question(column, spec.text, tuple(coded.options),
                                       coded.ordinal_values)
    parts.out[column] = coded.labels
    parts.reasons[column] = coded.reasons


def add_demographic(parts: Columns, column: str, values: pd.Series, spec: ColumnSpec,
                    opts: ReadOptions, unlabelled: str, file: str) -> None:
    """A demographic: option labels (ordered categories), numbers, or text; missing codes
    (declared or labelled like nonresponse) become <NA> before any binning."""
    coded = code_column(values, spec, keep_nonresponse=opts.keep_nonresponse,
                        unlabelled=unlabelled, file=file, column=column, rows=parts.rows)
    parts.notes += describe_treated(column, coded)
    if spec.options:
        parts.out[column] = pd.Series(pd.Categorical(coded.labels, categories=coded.options,
                                                     ordered=True), index=values.index)
        return
    numbers = pd.to_numeric(coded.labels, errors="coerce")
    present = coded.labels.notna()
    if spec.numeric and present.any() and numbers[present].notna().all():
        _warn_suspect(parts, column, coded.options, spec)
        parts.out[column] = numbers.astype(float)
    else:
        parts.out[column] = coded.labels.astype("string")


def _warn_suspect(parts: Columns, column: str, options: list[str], spec: ColumnSpec) -> None:
    """Warn when undeclared codes like 98/99 or -1 look like missing codes."""
    numbers = [number(o) for o in options]
    if spec.missing or spec.missing_ranges or any(x is None for x in numbers):
        return
    suspects = suspect_missing_codes(numbers)
    if suspects:
        listed = ", ".join(f"{x:g}" for x in suspects)
        parts.notes.append(ColumnNote(column, "missing codes", f"{column}: value(s) {listed} "
                                      "look like missing-value codes but none is declared; if "
                                      "they are, list them in the codebook's `missing` column "
                                      "(they are counted as values now)."))


def add_required_text(parts: Columns, column: str, values: pd.Series, file: str,
                      what: str) -> None:
    """A wave, stratum or PSU column as canonical text (2020 and 2020.0 are one wave);
    every respondent needs a value."""
    blank = values.isin(MISSING_TOKENS)
    if blank.any():
        raise DataError(f"{what} is blank; every respondent needs one.", file=file,
                        column=column, rows=rows_at(np.flatnonzero(blank.to_numpy()),
                                                    parts.rows))
    parts.out[column] = values.astype("string")


def assemble(columns: list[str], values_of, specs: dict[str, ColumnSpec], roles, opts,
             *, weights: pd.Series | None, raw_weights: pd.Series | None, file: str,
             unlabelled: str, rows: list[int] | None = None) -> Columns:
    """Read every column in its role, in file order.

    Args:
        columns: the file's columns (order kept).
        values_of: column -> canonical text Series (called only for used columns).
        specs: column -> ColumnSpec.
        roles: sim_core.survey.roles.Roles.
        opts: ReadOptions.
        weights, raw_weights: weight numbers and cells (None = unweighted).
        file: for messages; unlabelled: "refuse" (CSV codebook) or "warn" (SPSS/Stata).
        rows: row number of each respondent in messages (CSV: spreadsheet rows; SPSS/Stata:
            case numbers); None = position + 2.
    """
    parts = Columns(warnings=list(roles.notes), notes=list(roles.column_notes), rows=rows)
    for column in columns:
        spec = specs[column]
        if column in roles.questions:
            add_question(parts, column, values_of(column), spec, opts, unlabelled, file)
        elif column in roles.demographics:
            add_demographic(parts, column, values_of(column), spec, opts, unlabelled, file)
        elif column == opts.weight:
            parts.out[column] = check_weights(weights, raw_weights, file, column, rows)
        elif column == opts.wave:
            add_required_text(parts, column, values_of(column), file, "wave")
        elif column in (opts.strata, opts.psu):
            add_required_text(parts, column, values_of(column), file, "strata/PSU cell")
    if not parts.questions:
        raise DataError("none of the question columns has an answer.", file=file)
    return parts


def weight_warning(opts: ReadOptions, candidates: list[str]) -> list[str]:
    """The warning when weight candidates exist but none was chosen (nor 'unweighted')."""
    if opts.weight is None and candidates and not opts.unweighted:
        return [f"column(s) {', '.join(candidates)} look like weights but no weight was "
                "chosen: shares are unweighted. Choose one (--weight) or say unweighted "
                "(--unweighted)."]
    return []


def make_survey(name: str, parts: Columns, roles, opts: ReadOptions, *, source: str,
                fingerprint: str, specs: dict[str, ColumnSpec], labels: dict[str, str],
                candidates: list[str]) -> Survey:
    """The Survey of a respondent file from its assembled parts."""
    frame = pd.DataFrame(parts.out)
    nonresponse = pd.DataFrame(parts.reasons, index=frame.index)
    warnings = parts.warnings + weight_warning(opts, candidates)
    # the weight stays in the codebook with the role `weight` (chosen, else proposed), so
    # that an exported codebook read back gives the same weight
    codebook = {c: specs[c] for c in specs if c not in opts.reserved() or c == opts.weight}
    weight = opts.weight or (candidates[0] if candidates and not opts.unweighted else None)
    if weight in codebook:
        codebook[weight] = replace(codebook[weight], role="weight")
    return Survey(name=name, kind=RESPONDENTS, questions=parts.questions,
                  demographics=list(roles.demographics), respondents=frame,
                  weight=opts.weight, wave=opts.wave, source=source, fingerprint=fingerprint,
                  warnings=warnings, column_notes=parts.notes, labels=labels,
                  population=opts.population,
                  nonresponse=nonresponse, design=opts.design(),
                  codebook=codebook,
                  weight_candidates=candidates)
