"""One slice's real answer distribution: labels, the SliceMarginal record, Wilson
intervals, and the weighted summary of respondents (shares, n, effective n, nonresponse,
intervals by weighting, a design effect or the survey design)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from sim_core.base.errors import DataError
from sim_core.survey.design import interval_method, taylor_estimates
from sim_core.survey.nonresponse import REASONS, SYSTEM_MISSING
from sim_core.survey.schema import Design, Question, Survey
from sim_core.survey.weights import kish_n_eff

CI_ALPHA = 0.05


def slice_label(slice: dict[str, str]) -> str:
    """{"SEX": "Female", "AGE": "18-29"} -> "SEX=Female, AGE=18-29"; {} -> "All"."""
    if not slice:
        return "All"
    return ", ".join(f"{key}={value}" for key, value in slice.items())


def parse_slice_label(label: str) -> dict[str, str]:
    """Inverse of slice_label, and the one parser of typed slices (CLI --slice, pages).

    Parts are separated by commas; a part without "=" continues the previous value, so group
    labels may hold commas ("INCOME=$100,000 or more", "X=a, b"). "" and "All" are {}.

    Raises:
        DataError: a part before the first "=" or an empty attribute or value.
    """
    text = label.strip()
    if text in ("", "All"):
        return {}
    pieces = re.split(r"(,\s*)", text)          # parts and the separators between them
    result: dict[str, str] = {}
    key = None
    for i in range(0, len(pieces), 2):
        part = pieces[i]
        if "=" in part:
            key, _, value = part.partition("=")
            key = key.strip()
            result[key] = value
        elif key is not None:
            result[key] += pieces[i - 1] + part
        else:
            key = ""
            result[key] = part
    bad = [k for k, v in result.items() if not k or not v.strip()]
    if bad:
        raise DataError(f"slice '{text}' is not attribute=value: write ATTR=VALUE, several "
                        "joined by commas, e.g. 'SEX=Female' or 'SEX=Male, AGE=18-29', "
                        "or 'All'.")
    return {k: v.strip() for k, v in result.items()}


def parse_slices(text: str) -> list[dict[str, str]]:
    """Slices typed one per line (see parse_slice_label), duplicates dropped, in order."""
    slices = [parse_slice_label(line) for line in text.splitlines() or ["All"]]
    return list({slice_label(s): s for s in slices}.values())


@dataclass
class SliceMarginal:
    """Real answer distribution of one slice.

    Attributes:
        slice: attribute -> group label ({} = everyone).
        options: option labels in the question's order.
        shares: share per option (sums to 1; NaN when every weight in the slice is 0).
        n: raw count of valid answers (None when a marginal table has no n).
        n_eff: effective n: Kish (sum w)^2 / sum w^2 of the valid answers, divided by a
            given design effect, or implied by design-based standard errors (= n for
            marginal tables).
        ci_low, ci_high: 95 % interval per share (None without n); see `interval`.
        too_small: n_eff below the min_n_eff asked for.
        n_total: respondents in the slice, answered or not (None for marginal tables).
        n_asked: n_total minus those not asked / system-missing.
        nonresponse: reason ("dk", "refused", "not_asked", "other") -> weighted share of
            the slice's respondents; valid answers make up the rest.
        interval: how the interval was computed (sim_core.survey.design.interval_method).
        note: why the slice is flagged beyond its size ("" = nothing).
    """

    slice: dict[str, str]
    options: tuple[str, ...]
    shares: np.ndarray
    n: int | None
    n_eff: float | None
    ci_low: np.ndarray | None
    ci_high: np.ndarray | None
    too_small: bool
    n_total: int | None = None
    n_asked: int | None = None
    nonresponse: dict[str, float] = field(default_factory=dict)
    interval: str = ""
    note: str = ""

    @property
    def label(self) -> str:
        """slice_label of the slice."""
        return slice_label(self.slice)

    @property
    def usable(self) -> bool:
        """False when the shares are undefined (every weight in the slice is 0)."""
        return bool(np.all(np.isfinite(self.shares)))


def wilson_interval(shares: np.ndarray, n_eff: float | None):
    """Wilson 95 % interval per share with n_eff observations (None, None without n)."""
    if n_eff is None or not n_eff > 0:
        return None, None
    low, high = proportion_confint(np.asarray(shares) * n_eff, n_eff, alpha=CI_ALPHA,
                                   method="wilson")
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def make_marginal(slice_, options, weights_by_option, n, n_eff, min_n_eff) -> SliceMarginal:
    shares = weights_by_option / weights_by_option.sum()
    low, high = wilson_interval(shares, n_eff)
    small = n_eff is not None and n_eff < min_n_eff
    return SliceMarginal(dict(slice_), tuple(options), shares, n, n_eff, low, high, small)


def respondent_reasons(survey: Survey, question: Question, frame: pd.DataFrame) -> np.ndarray:
    """Nonresponse reason per respondent of `frame` ("" = valid answer)."""
    table = survey.nonresponse
    if table is not None and question.id in table.columns:
        reasons = table[question.id].reindex(frame.index)
    else:
        reasons = pd.Series(pd.NA, index=frame.index, dtype="string")
    reasons = reasons.mask(reasons.isna() & frame[question.id].isna(), SYSTEM_MISSING)
    return reasons.fillna("").to_numpy(dtype=object)


@dataclass
class SliceData:
    """One question's answers, weights and nonresponse reasons over the respondents."""

    question: Question
    codes: np.ndarray          # option index, -1 = no valid answer
    weights: np.ndarray
    reasons: np.ndarray        # reason text, "" = valid
    design: Design | None
    strata: np.ndarray | None
    psu: np.ndarray | None
    min_n_eff: float

    def summaries(self, slices: list[tuple[dict, np.ndarray]]) -> list[SliceMarginal]:
        """SliceMarginal of each (slice, mask); design-based intervals when strata/PSU."""
        estimates: dict[int, object] = {}
        if self.design is not None and self.design.taylor:
            estimates = self._taylor(slices)
        return [self.summary(slice_, mask, estimates.get(i))
                for i, (slice_, mask) in enumerate(slices)]

    def _taylor(self, slices) -> dict:
        """Design-based estimates per slice index (domains keep the whole sample)."""
        def run(domains):
            return taylor_estimates(self.codes, self.question.k, self.weights, self.strata,
                                    self.psu, domains)
        out = {}
        domains = np.full(len(self.codes), -1, dtype=np.int64)
        for i, (slice_, mask) in enumerate(slices):
            if slice_:
                domains[mask] = i
            else:
                out[i] = run(None).get(0)
        if (domains >= 0).any():
            out.update(run(domains))
        return out

    def summary(self, slice_: dict, mask: np.ndarray, estimate=None) -> SliceMarginal:
        """Weighted shares, n, effective n, nonresponse of one slice."""
        codes, weights, reasons = self.codes[mask], self.weights[mask], self.reasons[mask]
        valid = codes >= 0
        w = weights[valid]
        everyone = weights.sum()
        nonresponse = {r: (float(weights[reasons == r].sum() / everyone) if everyone > 0
                           else float("nan")) for r in REASONS if (reasons == r).any()}
        k = self.question.k
        base = dict(n_total=int(len(codes)), n_asked=int(np.sum(reasons != SYSTEM_MISSING)),
                    nonresponse=nonresponse, interval=interval_method(self.design))
        if not w.sum() > 0:
            return SliceMarginal(dict(slice_), self.question.options, np.full(k, np.nan),
                                 int(valid.sum()), 0.0, None, None, True,
                                 note="every weight in this slice is 0: no weighted share",
                                 **base)
        scaled = w / w.max()            # shares and n_eff do not depend on the scale
        shares = np.bincount(codes[valid], weights=scaled, minlength=k) / scaled.sum()
        n_eff = kish_n_eff(w)
        if self.design is not None and self.design.design_effect:
            n_eff /= self.design.design_effect
        low, high = wilson_interval(shares, n_eff)
        if estimate is not None:
            low, high = estimate.low, estimate.high
            n_eff = estimate.n_eff if estimate.n_eff is not None else n_eff
        return SliceMarginal(dict(slice_), self.question.options, shares, int(valid.sum()),
                             float(n_eff), low, high, n_eff < self.min_n_eff, **base)
