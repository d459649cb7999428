"""Known answer scales: the order of text options read without a codebook.

A CSV export carries answer labels, not codes, so without a codebook the reader cannot know
that "Strongly agree" comes before "Agree"; sorting them alphabetically scrambles the prompt and
every ordinal score. When a column's options all belong to one known scale (agree/disagree,
liberal/conservative, the German, French, Spanish and Chinese agreement wordings, ...) they
are put in that scale's order and marked ordinal, and the reader says so in a warning so the
user can confirm it (or correct it in the codebook). Options that fit no scale, or fit two
scales that disagree on the order, are left alone: never a guess between two readings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """A named scale: its labels from one end to the other (lower case, normalised)."""

    name: str
    labels: tuple[str, ...]


def normalise(label: str) -> str:
    """Lower case, one kind of apostrophe, single spaces, no trailing full stop."""
    text = str(label).replace("\u2019", "'").replace("\u2018", "'").lower()
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip()


def _scale(name: str, labels: str) -> Scale:
    return Scale(name, tuple(normalise(label) for label in labels.split("|")))


SCALES = (
    _scale("agree/disagree",
           "strongly agree|agree strongly|completely agree|totally agree|agree|mostly agree|"
           "somewhat agree|agree somewhat|tend to agree|slightly agree|"
           "neither agree nor disagree|neither agree or disagree|neutral|"
           "slightly disagree|tend to disagree|somewhat disagree|disagree somewhat|"
           "mostly disagree|disagree|strongly disagree|disagree strongly|completely disagree|"
           "totally disagree"),
    _scale("liberal/conservative",
           "extremely liberal|very liberal|liberal|somewhat liberal|slightly liberal|"
           "moderate|moderate, middle of the road|middle of the road|"
           "slightly conservative|somewhat conservative|conservative|very conservative|"
           "extremely conservative"),
    _scale("favor/oppose",
           "strongly favor|favor strongly|favor|somewhat favor|favor somewhat|"
           "neither favor nor oppose|somewhat oppose|oppose somewhat|oppose|oppose strongly|"
           "strongly oppose"),
    _scale("approve/disapprove",
           "strongly approve|approve strongly|approve|somewhat approve|"
           "neither approve nor disapprove|somewhat disapprove|disapprove|"
           "disapprove strongly|strongly disapprove"),
    _scale("satisfied/dissatisfied",
           "very satisfied|completely satisfied|satisfied|fairly satisfied|somewhat satisfied|"
           "neither satisfied nor dissatisfied|somewhat dissatisfied|not very satisfied|"
           "dissatisfied|not at all satisfied|very dissatisfied"),
    _scale("likely/unlikely",
           "very likely|likely|somewhat likely|fairly likely|neither likely nor unlikely|"
           "somewhat unlikely|not very likely|unlikely|not at all likely|very unlikely"),
    _scale("importance",
           "extremely important|very important|important|fairly important|"
           "somewhat important|moderately important|slightly important|not too important|"
           "not very important|not important|not at all important"),
    _scale("frequency",
           "always|very often|often|frequently|sometimes|occasionally|rarely|seldom|"
           "hardly ever|never"),
    _scale("good/bad", "very good|good|fairly good|neither good nor bad|fairly bad|bad|very bad"),
    _scale("too little/too much", "far too little|too little|about right|too much|far too much"),
    _scale("confidence", "a great deal|quite a lot|only some|not very much|hardly any|"
                         "none at all"),
    _scale("interest", "very interested|somewhat interested|not very interested|"
                       "not at all interested"),
    _scale("German agreement",
           "stimme voll und ganz zu|stimme voll zu|stimme völlig zu|stimme zu|stimme eher zu|"
           "teils/teils|teils, teils|weder noch|weder zustimmung noch ablehnung|"
           "stimme eher nicht zu|lehne eher ab|stimme nicht zu|lehne ab|"
           "stimme überhaupt nicht zu|lehne völlig ab|lehne voll und ganz ab"),
    _scale("French agreement",
           "tout à fait d'accord|plutôt d'accord|d'accord|ni d'accord ni pas d'accord|"
           "plutôt pas d'accord|pas d'accord|pas du tout d'accord"),
    _scale("Spanish agreement",
           "muy de acuerdo|de acuerdo|ni de acuerdo ni en desacuerdo|en desacuerdo|"
           "muy en desacuerdo"),
    _scale("Chinese agreement", "非常同意|同意|比较同意|一般|不太同意|不同意|非常不同意"),
)


def known_order(options: Sequence[str]) -> tuple[list[str], Scale] | None:
    """The options in the order of the one known scale they all belong to, else None.

    Args:
        options: distinct option labels (any order), nonresponse already removed.
    Returns:
        (options reordered, the scale), or None when they fit no scale, or several scales
        that would order them differently (never a guess between two readings).
    """
    keys = [normalise(option) for option in options]
    if len(keys) < 2 or len(set(keys)) != len(keys):
        return None
    orders = {}
    for scale in SCALES:
        if all(key in scale.labels for key in keys):
            ordered = sorted(options, key=lambda o: scale.labels.index(normalise(o)))
            orders.setdefault(tuple(ordered), scale)
    if len(orders) != 1:
        return None
    [(ordered, scale)] = orders.items()
    return list(ordered), scale
