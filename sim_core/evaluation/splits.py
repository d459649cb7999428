"""Held-out rows: how (question, slice) rows are split into training, validation and test,
what an adapter card records about it (SplitInfo), and which rows a card says were held out.

Splits are decided by a seeded hash of the question id / group label / row key
(sim_core.base.seeded), so the same seed gives the same split whatever order the rows come
in. Holding out whole respondents is sim_core.evaluation.respondent_table's business (it needs
the survey, not its rows). The shares held out by default live here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields

from sim_core.base.errors import DataError
from sim_core.base.options import Choice, check, registry, setting
from sim_core.base.seeded import holdout_count, pick
from sim_core.survey.marginal import slice_label
from sim_core.survey.slices import SurveyRow

TEST_SHARE = 0.2            # rows / questions held out for testing (fine-tuning splits)
VAL_SHARE = 0.1             # of the rest, for validation (early stopping, calibration)
TEST_GROUPS = 4             # whole groups held out by the slice split
RESPONDENT_TEST_SHARE = 0.3  # people held out by the model baselines and the individual level

SPLITS = registry(
    Choice("question", "Unseen questions",
           "whole questions held out: does the adapter generalise to new questions?"),
    Choice("slice", "Unseen groups",
           "whole groups (e.g. RELIG=Muslim) held out on every question: does it "
           "generalise to a subpopulation it never saw?"),
    Choice("wave", "Unseen wave",
           "train on earlier waves, test on the latest (needs a wave column)"),
    Choice("random", "Random rows", "(question, group) rows held out at random"),
    Choice("respondent", "Unseen respondents",
           "whole respondents held out (respondent-level data): trained on the group shares "
           "of the other people, tested on the held-out people's groups and, with "
           "`sim_core individual`, on each held-out person's own answers"),
)


@dataclass
class SplitConfig:
    """How survey rows are split into training, validation and held-out test rows."""

    how: str = setting("question", choices=SPLITS, flag="split", label="Hold out for testing",
                       help="which unit is held out for the before/after test")
    test_fraction: float = setting(TEST_SHARE, above=0, max=0.9, label="Test share",
                                   help="share of questions (question split), rows (random "
                                        "split) or respondents (respondent split) held out "
                                        "for testing")
    val_fraction: float = setting(VAL_SHARE, min=0, max=0.9, label="Validation share",
                                  help="share of the remaining units used for validation "
                                       "(early stopping; 0: none)")
    test_slices: int = setting(TEST_GROUPS, min=1, label="Groups held out",
                               help="whole groups held out by the slice split")

    def __post_init__(self) -> None:
        check(self)


@dataclass
class SplitInfo:
    """How a split was made and what it held out: written to an adapter card (to_dict) and
    read back (from_dict) wherever held-out rows or people must be found again.

    Attributes:
        how: a SPLITS key, or "" when no split is recorded.
        seed: seeds the held-out units.
        test_fraction, val_fraction: the shares held out (None: not a share-based split).
        test_questions / test_slices / test_waves: the held-out units of the question /
            slice / wave split; train_waves: the wave split's training waves.
        val_units: validation questions or groups (question and slice splits).
        n_train, n_val, n_test: rows in each part; train_questions, test_question_count:
            distinct questions trained and tested on.
        respondents: respondent split: people in each part ("train", "val", "test").
    """

    how: str = ""
    seed: int = 0
    test_fraction: float | None = None
    val_fraction: float | None = None
    test_questions: list[str] = field(default_factory=list)
    test_slices: list[str] = field(default_factory=list)
    test_waves: list[str] = field(default_factory=list)
    train_waves: list[str] = field(default_factory=list)
    val_units: list[str] = field(default_factory=list)
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    train_questions: int = 0
    test_question_count: int = 0
    respondents: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready; empty and unset fields left out (cards stay as they always were)."""
        return {k: v for k, v in asdict(self).items() if v not in (None, [], {}) or k == "how"}

    @classmethod
    def from_dict(cls, data: dict | None) -> SplitInfo:
        """A card's split record (unknown keys ignored; {} or None: no split recorded)."""
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in (data or {}).items() if k in known})
        except TypeError as error:
            raise DataError(f"malformed split record in an adapter card: {error}") from error


@dataclass
class Split:
    """Rows for training, validation (early stopping) and held-out testing, and how they were
    split (stored in the adapter card)."""

    train: list[SurveyRow]
    val: list[SurveyRow]
    test: list[SurveyRow]
    info: SplitInfo = field(default_factory=SplitInfo)


def row_key(row: SurveyRow) -> str:
    """Unique key of a row: question, slice and wave."""
    return f"{row.question.id}|{slice_label(row.slice)}|{row.wave}"


def _divide(rows: list[SurveyRow], unit: Callable[[SurveyRow], str], count: int,
            seed: int) -> tuple[list[SurveyRow], list[SurveyRow], list[str]]:
    """Split rows into (kept, held out) by holding out `count` whole units."""
    held = pick([unit(r) for r in rows], count, seed)
    kept = [r for r in rows if unit(r) not in held]
    out = [r for r in rows if unit(r) in held]
    return kept, out, sorted(held)


def _by_question(row: SurveyRow) -> str:
    return row.question.id


def _by_slice(row: SurveyRow) -> str:
    return slice_label(row.slice)


def split_rows(rows: Sequence[SurveyRow], how: str = "question", *,
               test_fraction: float = TEST_SHARE, val_fraction: float = VAL_SHARE,
               seed: int = 0, test_slices: int = TEST_GROUPS,
               hold_out: Sequence[str] = ()) -> Split:
    """Split survey rows into train / validation / test.

    Args:
        rows: SurveyRows (e.g. from sim_core.survey.slices.survey_rows).
        how: "question" (test questions never seen in training), "slice" (`test_slices`
            whole groups held out, e.g. "SEX=Female" for every question), "wave" (the latest
            wave held out; rows need distinct `wave` values) or "random" (rows at random).
        test_fraction: share of questions (question) or rows (random) held out for testing.
        val_fraction: share of the remaining units carved out for validation (early
            stopping); by question for the question split, by group for the slice split,
            by row otherwise.
        seed: seeds the hash that picks the held-out units (row order does not matter).
        test_slices: groups held out by the slice split.
        hold_out: slice labels (e.g. "RELIG=Jewish") the slice split must hold out; the
            seeded pick adds groups until there are `test_slices`.
    Returns:
        Split with `info` describing it.
    Raises:
        DataError: unknown `how`, no rows, or too few units to hold any out.
    """
    rows = list(rows)
    if how not in SPLITS:
        raise DataError(f"Unknown split '{how}': use one of {', '.join(SPLITS)}.")
    if how == "respondent":
        raise DataError("Holding out respondents needs the survey, not its rows: use "
                        "sim_core.evaluation.respondent_table.respondent_parts.")
    if not rows:
        raise DataError("No training rows: the survey gave no (question, slice) rows.")
    info = SplitInfo(how=how, seed=seed, val_fraction=val_fraction)
    if how == "question":
        n_q = len({r.question.id for r in rows})
        train, test, held = _divide(rows, _by_question, holdout_count(n_q, test_fraction), seed)
        info.test_fraction, info.test_questions = test_fraction, held
        val_unit = _by_question
    elif how == "slice":
        groups = {_by_slice(r) for r in rows}
        forced = set(hold_out)
        if forced - groups:
            raise DataError(f"Cannot hold out {', '.join(sorted(forced - groups))}: no such "
                            "group in these rows.")
        count = min(test_slices, max(len(groups) - 1, 0))
        held_set = forced | pick(sorted(groups - forced), max(0, count - len(forced)), seed)
        train = [r for r in rows if _by_slice(r) not in held_set]
        test = [r for r in rows if _by_slice(r) in held_set]
        held = sorted(held_set)
        info.test_slices = held
        val_unit = _by_slice
    elif how == "wave":
        waves = sorted({r.wave for r in rows})
        if len(waves) < 2:
            raise DataError("Split by wave needs rows from at least two waves; "
                            f"found {len(waves)} ({', '.join(map(repr, waves))}).")
        # Train on earlier waves, test on the latest: the longitudinal question (Lin 2024).
        train = [r for r in rows if r.wave != waves[-1]]
        test = [r for r in rows if r.wave == waves[-1]]
        info.test_waves, info.train_waves = [waves[-1]], waves[:-1]
        val_unit = row_key
    else:
        train, test, _ = _divide(rows, row_key, holdout_count(len(rows), test_fraction), seed)
        info.test_fraction = test_fraction
        val_unit = row_key
    if not test:
        raise DataError(f"Split by {how}: too few {how}s to hold any out for testing.")
    n_units = len({val_unit(r) for r in train})
    train, val, val_held = _divide(train, val_unit, holdout_count(n_units, val_fraction) if
                                   val_fraction > 0 else 0, seed + 1)
    if how in ("question", "slice"):
        info.val_units = val_held
    return Split(train=train, val=val, test=test, info=counted(info, train, val, test))


def counted(info: SplitInfo, train: Sequence[SurveyRow], val: Sequence[SurveyRow],
            test: Sequence[SurveyRow]) -> SplitInfo:
    """info with the rows and distinct questions of each part filled in."""
    info.n_train, info.n_val, info.n_test = len(train), len(val), len(test)
    info.train_questions = len({r.question.id for r in train})
    info.test_question_count = len({r.question.id for r in test})
    return info


def held_out_rows(rows: Sequence[SurveyRow], info: SplitInfo) -> list[SurveyRow]:
    """The rows an adapter never saw, given the split `info` stored in its card.

    Question, slice and wave splits are matched by their held-out units (so the rows may
    come from a fresh read of the survey); a random split is recomputed with its seed.

    Raises:
        DataError: the card has no split, or none of `rows` belongs to its held-out part.
    """
    how = info.how
    if how == "question":
        out = [r for r in rows if r.question.id in set(info.test_questions)]
    elif how == "slice":
        out = [r for r in rows if _by_slice(r) in set(info.test_slices)]
    elif how == "wave":
        held = {str(w) for w in info.test_waves}
        out = [r for r in rows if str(r.wave) in held]
    elif how == "random":
        out = split_rows(rows, "random", test_fraction=info.test_fraction or TEST_SHARE,
                         val_fraction=VAL_SHARE if info.val_fraction is None
                         else info.val_fraction, seed=info.seed).test
    else:
        raise DataError("The adapter's card records no train/test split; "
                        "score it on all rows instead (--rows all).")
    if not out:
        raise DataError(f"None of these rows is in the adapter's held-out part (split by "
                        f"{how}); is this the survey it was trained on? Use --rows all to "
                        "score every row.")
    return out


def held_out_with_reference(rows: Sequence[SurveyRow], info: SplitInfo
                            ) -> tuple[list[SurveyRow], list[SurveyRow]]:
    """The held-out rows (held_out_rows) and the rows their population baseline may use:
    all rows, except for a slice split, where only the groups the adapter saw count."""
    held = held_out_rows(rows, info)
    if info.how != "slice":
        return held, list(rows)
    held_ids = {id(r) for r in held}
    return held, [r for r in rows if id(r) not in held_ids]
