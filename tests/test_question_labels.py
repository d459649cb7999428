"""Question picker labels (sim_core.base.labels.question_choice_labels): a battery's shared
preamble moves behind each item's own words; the full wording stays searchable."""

from __future__ import annotations

from sim_core.base.labels import question_choice_labels
from sim_core.survey.demo import load_demo

PRE = ("I'm going to name some problems, and for each one tell me whether we're spending "
       "too much, too little or about the right amount: ")


def test_battery_items_come_first_with_the_preamble_after():
    """Shared start cut at its last clause boundary (':'), not mid-phrase ("Improving the ")."""
    texts = {"natenvir": PRE + "Improving the environment.",
             "natheal": PRE + "Improving the nation's health.",
             "natspac": PRE + "Space exploration.",
             "alone": "Do you expect another world war within ten years?"}
    labels = question_choice_labels(texts)
    assert labels == {
        "natenvir": "natenvir: Improving the environment. · " + PRE.strip(),
        "natheal": "natheal: Improving the nation's health. · " + PRE.strip(),
        "natspac": "natspac: Space exploration. · " + PRE.strip(),
        "alone": "alone: " + texts["alone"]}
    assert list(labels) == list(texts)                   # the survey's order is kept


def test_short_shared_starts_are_not_preambles():
    """"Do you think…" shared by two unrelated questions stays in place (under 40 chars)."""
    texts = {"a": "Do you think: taxes are too high?", "b": "Do you think: the courts are fair?"}
    assert question_choice_labels(texts) == {"a": "a: " + texts["a"], "b": "b: " + texts["b"]}


def test_gss_nat_battery_is_told_apart_and_searchable():
    """Every GSS nat* label starts with a different item and still holds every word."""
    survey = load_demo("gss2022")
    texts = {q: survey.questions[q].text for q in survey.questions}
    labels = question_choice_labels(texts)
    nat = [q for q in texts if q.startswith("nat")]
    assert len(nat) >= 10
    starts = {labels[q].split(" · ")[0] for q in nat}
    assert len(starts) == len(nat) and all(len(s) < 80 for s in starts)
    assert labels["natspac"].startswith("natspac: Space exploration program.")
    for qid, text in texts.items():
        words = set(text.split())
        assert words <= set(labels[qid].replace(" · ", " ").split()), qid
