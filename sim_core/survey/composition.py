"""Who makes up a population: the share of each cell (a crossed slice, e.g. SEX=Female,
AGE=30-44) in it, for post-stratified population estimates (sim_core.evaluation.population).

Two sources:
- the survey itself: its weighted composition over the chosen attributes (respondent data;
  those who answered the question when one is named, so that composing the real cell shares
  gives back the weighted topline). A marginal table has no joint composition: it gives one
  attribute's composition where every group of it has an n (valid answers per group).
- margins the researcher gives (sim_core.survey.margins, e.g. census figures), joined into
  cell shares by raking (iterative proportional fitting, through the `svy` library's raking
  of weights): seeded with the survey's joint composition when there is one, so that the
  sample's associations between attributes are kept, otherwise with every cell equal, which
  gives the product of the margins (independence).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from sim_core.base.errors import DataError
from sim_core.base.options import Choice, check, registry, setting
from sim_core.survey.marginal import slice_label
from sim_core.survey.margins import Margins
from sim_core.survey.schema import MARGINALS, Survey
from sim_core.survey.slices import real_marginals, weighted_groups

RAKE_FROM = registry(
    Choice("survey", "The survey's joint composition",
           "start from the survey's weighted cell shares, so that the sample's associations "
           "between the attributes are kept (respondent data)"),
    Choice("independence", "Independence",
           "start from equal cells: the cell shares become the product of the margins "
           "(when no joint composition is known)"),
)
RAKE_TOLERANCE = 1e-10      # largest relative error left in any margin
RAKE_MAX_ITER = 1000        # sweeps over the margins; a positive seed converges in far fewer
SHOWN = 5                   # cells named in a message before the rest are counted


@dataclass
class PopulationConfig:
    """Which population an estimate is for; every field's help lives in its setting."""

    margins: str | None = setting(
        None, label="Population margins", none="the survey's own weighted composition",
        help="the population's shares per attribute and group: a CSV with the columns "
             "attribute, group, share (e.g. census figures) or the name of a saved "
             "population (`python -m sim_core populations`)")
    rake_from: str | None = setting(
        None, choices=RAKE_FROM, label="Raking starts from",
        none="the survey's joint composition for respondent data, else independence",
        help="where raking the margins into cell shares starts")
    subgroup: str = setting(
        "", label="Subgroup",
        help='estimate a subgroup from the cells that make it up, e.g. "SEX=Female" '
             '(empty: the whole population)')

    def __post_init__(self) -> None:
        check(self)


@dataclass
class Composition:
    """Population share of each cell.

    Attributes:
        attributes: the crossed attributes, in order.
        cells: attribute -> group of each cell (every cell has a positive share).
        shares: share of each cell; sums to 1.
        source: where the shares come from, in words.
        notes: what the reader should know (left-out respondents, unused margins).
        max_error: raking only: the largest absolute error left in any margin.
    """

    attributes: list[str]
    cells: list[dict[str, str]]
    shares: np.ndarray
    source: str
    notes: list[str] = field(default_factory=list)
    max_error: float | None = None

    @property
    def labels(self) -> list[str]:
        """slice_label of each cell."""
        return [slice_label(c) for c in self.cells]

    def margins(self) -> dict[str, dict[str, float]]:
        """attribute -> group -> share implied by the cells."""
        out: dict[str, dict[str, float]] = {a: {} for a in self.attributes}
        for cell, share in zip(self.cells, self.shares):
            for attribute in self.attributes:
                groups = out[attribute]
                groups[cell[attribute]] = groups.get(cell[attribute], 0.0) + float(share)
        return out

    def subgroup(self, within: dict[str, str]) -> Composition:
        """The cells that make up a subgroup (e.g. {"SEX": "Female"}), shares renormalised."""
        unknown = [a for a in within if a not in self.attributes]
        if unknown:
            raise DataError(f"subgroup attribute(s) {', '.join(unknown)} are not among the "
                            f"composition's attributes ({', '.join(self.attributes)}).")
        keep = [i for i, cell in enumerate(self.cells)
                if all(cell[a] == str(v) for a, v in within.items())]
        if not keep:
            groups = self.margins()
            known = "; ".join(f"{a}: {', '.join(groups[a])}" for a in within)
            raise DataError(f"no cell is in the subgroup {slice_label(within)}; groups: {known}.")
        shares = self.shares[keep]
        return replace(self, cells=[self.cells[i] for i in keep], shares=shares / shares.sum(),
                       source=f"{self.source}; the cells of {slice_label(within)}")

    def to_dict(self) -> dict:
        """JSON-ready: attributes, source, notes, max_error and every cell with its share."""
        return {"attributes": list(self.attributes), "source": self.source,
                "notes": list(self.notes), "max_error": self.max_error,
                "cells": [{"slice": dict(c), "label": slice_label(c), "share": float(s)}
                          for c, s in zip(self.cells, self.shares)]}


def _check_attributes(survey: Survey, by: Sequence[str]) -> list[str]:
    by = list(by)
    if not by:
        raise DataError("a composition needs at least one attribute to cross.")
    if len(set(by)) < len(by):
        raise DataError(f"an attribute is named twice: {', '.join(by)}.")
    unknown = [a for a in by if a not in survey.demographics]
    if unknown:
        raise DataError(f"unknown attribute(s) {', '.join(unknown)}; the survey has: "
                        + ", ".join(survey.demographics))
    return by


def survey_composition(survey: Survey, by: Sequence[str], *, wave: str | None = None,
                       question_id: str | None = None, bins=None) -> Composition:
    """The survey's own weighted composition over crossed attributes.

    Args:
        survey: respondent data (or a marginal table: one attribute, see module docstring).
        by: attributes to cross.
        wave: one wave (None: pooled; the only wave of a table).
        question_id: count those who answered it (None: everyone in the wave).
        bins: band edges for numeric attributes.
    Returns:
        Composition of the cells with a positive weighted count, in real_marginals' order;
        respondents without a group on some attribute are left out (a note gives their
        weighted share).
    """
    by = _check_attributes(survey, by)
    if survey.kind == MARGINALS:
        return _table_composition(survey, by, wave, question_id)
    frame = weighted_groups(survey, by, wave=wave, question_id=question_id, bins=bins)
    known = frame[by].notna().all(axis=1)
    total = float(frame["weight"].sum())
    sums = frame[known].groupby(by, observed=True, sort=True)["weight"].sum()
    sums = sums[sums > 0]
    if sums.empty:
        raise DataError(f"no respondent with a positive weight has a group on "
                        f"{', '.join(by)}.")
    keys = [k if isinstance(k, tuple) else (k,) for k in sums.index]
    cells = [dict(zip(by, map(str, key))) for key in keys]
    who = f"those who answered {question_id}" if question_id else "all respondents"
    notes = []
    left_out = total - float(sums.sum())
    if total > 0 and left_out > 0:
        notes.append(f"{100 * left_out / total:.1f} % of the weight ({who}) has no group on "
                     f"{', '.join(by)} and is left out of the composition.")
    weighting = "weighted" if survey.weight else "unweighted"
    return Composition(by, cells, sums.to_numpy(float) / float(sums.sum()),
                       f"the survey's {weighting} composition ({who})", notes)


def _table_composition(survey: Survey, by: list[str], wave, question_id) -> Composition:
    """One attribute's composition from a marginal table's group sizes (n)."""
    if len(by) > 1:
        raise DataError("a marginal table gives one attribute at a time, not how attributes "
                        "combine: cross several with margins (raking).")
    if not question_id:
        raise DataError("a marginal table's group sizes belong to its questions: for a "
                        "drafted question give the population's margins.")
    groups = real_marginals(survey, question_id, by, wave=wave, min_n_eff=0)
    if not groups or any(g.n is None for g in groups):
        raise DataError(f"the table gives no group sizes (n) for {by[0]} in {question_id}, so "
                        "the population's composition is unknown: give its margins.")
    counts = np.array([g.n for g in groups], dtype=float)
    return Composition(by, [dict(g.slice) for g in groups], counts / counts.sum(),
                       "the table's group sizes (n of valid answers per group)")


def composition_for(survey: Survey | None, attributes: Sequence[str],
                    margins: Margins | None = None, *, rake_from: str | None = None,
                    wave: str | None = None, question_id: str | None = None,
                    bins=None) -> Composition:
    """The composition of a population estimate: raked margins when given, else the
    survey's own composition (the one entry point for the CLI and the dashboard).

    Args:
        survey: the survey (None: a drafted question; margins are then required).
        attributes: the attributes to cross (empty: the margins' attributes).
        margins: the population's margins (None: the survey's own composition).
        rake_from, wave, question_id, bins: as in composition_from_margins.
    """
    if margins is not None:
        return composition_from_margins(margins, list(attributes) or None, survey=survey,
                                        wave=wave, question_id=question_id, bins=bins,
                                        rake_from=rake_from)
    if rake_from is not None:
        raise DataError("the raking start applies to margins only; give the margins too.")
    if survey is None:
        raise DataError("without a survey the population's composition is unknown: give "
                        "its margins (attribute, group, share).")
    if not attributes:
        raise DataError("choose the attributes whose cells make up the population (e.g. "
                        "--by sex,age), or give margins.")
    return survey_composition(survey, attributes, wave=wave, question_id=question_id,
                              bins=bins)


# ---------------------------------------------------------------- margins and raking

def _margin_keys(margins: Margins, attributes: Sequence[str]) -> dict[str, str]:
    """attribute -> its key in the margins (matched case-insensitively)."""
    lookup = {key.lower(): key for key in margins.shares}
    missing = [a for a in attributes if a.lower() not in lookup]
    if missing:
        raise DataError(f"the margins '{margins.name}' give no shares for "
                        f"{', '.join(missing)} (they have: {', '.join(margins.shares)}); add "
                        "its groups or leave the attribute out of the slices.")
    return {a: lookup[a.lower()] for a in attributes}


def _survey_groups(survey: Survey, attribute: str, wave, bins) -> list[str]:
    """The groups the survey has for an attribute (respondents, or the table's rows)."""
    if survey.kind == MARGINALS:
        table = survey.marginals
        return [str(g) for g in dict.fromkeys(table.loc[table["attribute"] == attribute,
                                                        "group"])]
    frame = weighted_groups(survey, [attribute], wave=wave, bins=bins)
    present = frame.loc[frame["weight"] > 0, attribute].dropna().unique()
    return [str(g) for g in frame[attribute].cat.categories if g in set(map(str, present))]


def _check_groups(margins: Margins, keys: dict[str, str], survey: Survey, wave, bins
                  ) -> dict[str, list[str]]:
    """Every margin group is one the survey has, and every survey group has a margin.

    Returns:
        attribute -> its groups in the survey's order (that of real_marginals' slices).
    """
    order = {}
    for attribute, key in keys.items():
        given = margins.shares[key]
        have = _survey_groups(survey, attribute, wave, bins)
        extra = [g for g in given if g not in have]
        if extra:
            raise DataError(f"the margins give {attribute} group(s) {', '.join(extra)} that the "
                            f"survey does not have; its groups: {', '.join(have)}.")
        lacking = [g for g in have if g not in given]
        if lacking:
            raise DataError(f"the margins give no share for {attribute} group(s) "
                            f"{', '.join(lacking)}, which the survey has; add them (share 0 "
                            "if the population has none).")
        order[attribute] = have
    return order


def composition_from_margins(margins: Margins, attributes: Sequence[str] | None = None, *,
                             survey: Survey | None = None, wave: str | None = None,
                             question_id: str | None = None, bins=None,
                             rake_from: str | None = None, tol: float = RAKE_TOLERANCE,
                             max_iter: int = RAKE_MAX_ITER) -> Composition:
    """Cell shares that reproduce the margins: raking (IPF) over the crossed attributes.

    Args:
        margins: the population's figures.
        attributes: the attributes to cross (default: every attribute of the margins).
        survey: the survey the cells come from (None: a drafted question; cells from the
            margins' groups).
        wave, question_id, bins: as in survey_composition (the seed's respondents).
        rake_from: "survey" (default for respondent data) or "independence" (RAKE_FROM).
        tol: largest relative margin error allowed; max_iter: sweeps allowed.
    Returns:
        Composition of the cells with a positive share.
    Raises:
        DataError: an attribute missing from the margins, a group the survey lacks or a
            survey group without a margin, a seed cell with no respondents, margins that
            cannot all hold at once.
    """
    attributes = list(attributes or margins.attributes)
    if survey is not None:          # the survey's spelling of an attribute named in the margins
        spelling = {d.lower(): d for d in survey.demographics}
        attributes = [a if a in survey.demographics else spelling.get(a.lower(), a)
                      for a in attributes]
    keys = _margin_keys(margins, attributes)
    notes = list(margins.warnings)
    unused = [k for k in margins.shares if k not in keys.values()]
    if unused:
        notes.append(f"margins not used (not among the slices): {', '.join(unused)}.")
    order = {a: list(margins.shares[keys[a]]) for a in attributes}
    if survey is not None:
        _check_attributes(survey, attributes)
        order = _check_groups(margins, keys, survey, wave, bins)
    if rake_from is None:
        rake_from = "survey" if survey is not None and survey.kind != MARGINALS \
            else "independence"
    if rake_from not in RAKE_FROM:
        raise DataError(f"unknown raking start '{rake_from}'; choose {', '.join(RAKE_FROM)}.")
    targets = {a: {g: margins.shares[keys[a]][g] for g in order[a]
                   if margins.shares[keys[a]][g] > 0} for a in attributes}
    cells, seed, what = _seed(targets, rake_from, survey, wave, question_id, bins)
    shares, max_error = rake(cells, seed, targets, tol=tol, max_iter=max_iter)
    keep = shares > 0
    return Composition(attributes, [c for c, k in zip(cells, keep) if k], shares[keep],
                       f"margins '{margins.name}' raked (IPF) from {what}", notes, max_error)


def _seed(targets, rake_from, survey, wave, question_id, bins):
    """(cells, seed weights, the seed in words) for raking."""
    attributes = list(targets)
    cells = [dict(zip(attributes, combo))
             for combo in itertools.product(*(list(targets[a]) for a in attributes))]
    if rake_from == "independence":
        return cells, np.ones(len(cells)), "independence (every cell alike)"
    if survey is None or survey.kind == MARGINALS:
        raise DataError("raking from the survey's composition needs respondent data; a table "
                        "or a drafted question has no joint composition: rake from "
                        "independence.")
    own = survey_composition(survey, attributes, wave=wave, question_id=question_id,
                             bins=bins)
    weight = dict(zip(own.labels, own.shares))
    seed = np.array([weight.get(slice_label(c), 0.0) for c in cells])
    empty = [slice_label(c) for c, w in zip(cells, seed) if w <= 0]
    if empty:
        shown = "; ".join(empty[:SHOWN]) + (f" and {len(empty) - SHOWN} more"
                                            if len(empty) > SHOWN else "")
        raise DataError(f"{len(empty)} cell(s) have no respondents ({shown}): raking from the "
                        "survey's composition would leave them out of the population. Rake "
                        "from independence, or cross fewer attributes.")
    return cells, seed, own.source


def rake(cells: list[dict[str, str]], seed: np.ndarray,
         targets: dict[str, dict[str, float]], *, tol: float = RAKE_TOLERANCE,
         max_iter: int = RAKE_MAX_ITER) -> tuple[np.ndarray, float]:
    """Iterative proportional fitting of cell weights to margins (svy's raking).

    Args:
        cells: attribute -> group of each cell; every group of `targets` appears.
        seed: starting weight of each cell (>= 0; a 0 cell stays 0).
        targets: attribute -> group -> share (each attribute summing to 1).
        tol: largest relative margin error allowed; max_iter: sweeps allowed.
    Returns:
        (cell shares summing to 1, the largest absolute margin error left).
    Raises:
        DataError: the margins cannot all hold given the seed's zero cells.
    """
    import polars as pl
    import svy

    attributes = list(targets)
    frame = pl.DataFrame({**{a: [c[a] for c in cells] for a in attributes},
                          "_seed": np.asarray(seed, dtype=float)})
    sample = svy.Sample(frame, svy.Design(wgt="_seed"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raked = sample.weighting.rake(shares=targets, tol=tol, max_iter=max_iter,
                                          update_design_wgts=False)
    except svy.SvyError as error:
        raise DataError(_contradiction(error, max_iter)) from None
    except ValueError:          # svy: a group whose every cell has weight 0
        raise DataError(_contradiction(None, max_iter)) from None
    weights = raked.data["rk_wgt"].to_numpy().astype(float)
    shares = weights / weights.sum()
    errors = [abs(sum(s for c, s in zip(cells, shares) if c[a] == g) - t)
              for a in attributes for g, t in targets[a].items()]
    return shares, float(max(errors))


def _contradiction(error: Exception | None, max_iter: int) -> str:
    """One message for margins that raking cannot meet."""
    got = getattr(error, "got", None) or {}
    left = got.get("max_margin_error") if isinstance(got, dict) else None
    if error is None:
        detail = "a group with a positive share has no cell that can hold anyone"
    elif left is not None:
        detail = f"after {max_iter} sweeps a margin is still off by {100 * left:.2g} %"
    else:
        detail = str(getattr(error, "detail", None) or error)
    return ("the margins contradict each other given the cells that can hold people (cells "
            f"with no sample stay empty): {detail}. Check the figures, or rake from "
            "independence.")
