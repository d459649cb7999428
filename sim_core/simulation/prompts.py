"""Prompts: a persona for the slice, the question with lettered options, and an answer cue.

One set of chat messages per (question, slice, option order, mode): a system message (who the
survey speaks for), a user message (persona, question, options, instruction). A local or
completions backend renders them with the model's chat template (build_prompt); a chat API
receives them as they are (its server applies the template). The instruction depends on the
mode: a letter (first-token, sample) or a percentage for every option (verbalized).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sim_core.base.errors import SimError
from sim_core.survey.schema import LETTERS

ANSWER_CUE = "Answer:"

# One sentence per attribute (lower-case key); {value} is the group label, {attribute} the
# attribute name. Keys cover the GSS SubPOP attributes and the ANES demo's columns.
DEFAULT_TEMPLATES: dict[str, str] = {
    "cregion": "You live in the {value} region of the United States.",
    "region": "You live in the {value} region.",
    "education": "Your highest level of education is: {value}.",
    "educ": "Your highest level of education is: {value}.",
    "sex": "Your sex is {value}.",
    "gender": "Your gender is {value}.",
    "polideology": "Politically, you consider yourself {value}.",
    "ideology": "Politically, you consider yourself {value}.",
    "income": "Your annual household income is {value}.",
    "polparty": "In politics, you think of yourself as a {value}.",
    "party": "In politics, you think of yourself as a {value}.",
    "race": "Your race or ethnicity is {value}.",
    "relig": "Your religion is: {value}.",
    "religion": "Your religion is: {value}.",
    "age": "Your age is {value} years.",
    "*": "Your {attribute} is {value}.",
}
DEFAULT_POPULATION = "adults in the United States"    # a drafted question without a survey
DEFAULT_SYSTEM = ("You are taking part in a public opinion survey of {population}. Answer as "
                  "the person described would answer.")
DEFAULT_INSTRUCTION = "Answer with the letter of one option only."
# Verbalized mode asks for the distribution itself; {who} is "people like you" for a persona,
# the population for the whole population (no persona).
DEFAULT_VERBALIZED = ("What percentage of {who} would choose each option? Give a percentage "
                      "for every option, one line per option like \"A: 45%\", summing to 100.")
VERBALIZED_SYSTEM = ("You are an expert on public opinion among {population}. Estimate how "
                     "they answer survey questions.")

Prompt = str | list[dict[str, str]]
"""What a backend is sent: text (local, completions) or chat messages (a chat API)."""


@dataclass
class PromptStyle:
    """How prompts are written.

    Attributes:
        templates: lower-case attribute -> sentence with {value} ("*" = fallback for any other).
        system: system message (chat models) or opening line (base models); "{population}"
            is replaced by the population.
        instruction: the line after the options asking for a letter.
        population: who the survey speaks for ("adults in Germany, 2018"); None = the
            survey's own (for_survey), or DEFAULT_POPULATION without a survey; "" = none
            named ("a public opinion survey").
        names: attribute -> display name used by the "*" template (variable labels), so
            that a persona never reads "Your polaf is Republican".
    """

    templates: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TEMPLATES))
    system: str = DEFAULT_SYSTEM
    instruction: str = DEFAULT_INSTRUCTION
    population: str | None = None
    names: dict[str, str] = field(default_factory=dict)
    verbalized: str = DEFAULT_VERBALIZED
    verbalized_system: str = VERBALIZED_SYSTEM

    def population_text(self) -> str:
        """Who the survey speaks for ("" when none is named)."""
        return DEFAULT_POPULATION if self.population is None else self.population.strip()

    def system_text(self, mode: str = "first-token") -> str:
        """The system message with the population filled in (verbalized mode: an expert's)."""
        system = self.verbalized_system if mode == "verbalized" else self.system
        population = self.population_text()
        if population:
            return system.replace("{population}", population)
        return system.replace(" among {population}", "").replace(" of {population}", "") \
            .replace("{population}", "")

    def signature(self, attributes=None) -> dict:
        """What reaches the prompts: templates, instruction, the system text with its
        population filled in, and the display names the "*" template uses (of `attributes`
        only, when given: the slices' attributes)."""
        names = {a: n for a, n in self.names.items() if str(a).lower() not in self.templates
                 and (attributes is None or a in attributes)}
        return {"templates": dict(self.templates), "system": self.system_text(),
                "instruction": self.instruction, "names": names}

    @classmethod
    def from_dict(cls, values: dict) -> PromptStyle:
        """A style from asdict() output (an adapter card); unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def for_survey(self, survey: Any) -> PromptStyle:
        """This style with the survey's population (unless set here) and display names."""
        if survey is None:
            return self
        population = self.population if self.population is not None else \
            (getattr(survey, "population", "") or "")
        labels = getattr(survey, "labels", {}) or {}
        names = {a: display_name(t) for a, t in labels.items() if t}
        # an attribute labelled with a question's wording (a question used as a slice
        # attribute) gets a sentence from that wording, unless a template covers it
        worded = {str(a).lower(): persona_template(t) for a, t in labels.items()
                  if t and str(a).lower() not in self.templates}
        templates = {**self.templates, **{k: v for k, v in worded.items() if v}}
        return replace(self, population=population, names={**names, **self.names},
                       templates=templates)


_PREFIX = re.compile(r"^(r'?s|respondent'?s|resp\.?)\s+", re.IGNORECASE)
_SUFFIX = re.compile(r"\s+(of|for)\s+(the\s+)?(respondent|r)$|\s*\((r|respondent)\)$",
                     re.IGNORECASE)


def display_name(label: str) -> str:
    """A variable label as a persona attribute: "R's party affiliation" -> "party
    affiliation", "Education level of respondent" -> "education level"; acronyms kept."""
    text = _SUFFIX.sub("", _PREFIX.sub("", str(label).strip())).strip().rstrip(":?.")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return text or str(label)


_QUESTION_START = re.compile(r"^(do|does|did|are|is|was|were|would|will|have|has|how|what|"
                             r"which|who|where|when|why|in general|generally|thinking|"
                             r"suppose|please)\b", re.IGNORECASE)
_SELF_VIEW = re.compile(r"^(?P<lead>.*?)\b(do|would) you (?P<verb>consider|think of|describe|"
                        r"identify|see|call) yourself(?P<as>\s+as)?\b", re.IGNORECASE)
_SHOUTED = re.compile(r"\b[A-Z]{4,}\b")


def persona_template(label: str) -> str | None:
    """A persona sentence for an attribute labelled with a question's wording, or None for
    a label that names the attribute ("R's party affiliation": display_name does).

    "In politics TODAY, do you consider yourself a Republican, Democrat, or independent?"
    -> "In politics today, you consider yourself {value}." (a self-description listing its
    alternatives); any other question -> 'Asked "<wording>", you answered: {value}.'
    """
    text = " ".join(str(label).split())
    if not text or (not text.rstrip().endswith("?") and not _QUESTION_START.match(text)):
        return None
    text = text.replace("{", "{{").replace("}", "}}")
    self_view = _SELF_VIEW.match(text)
    if self_view and " or " in text[self_view.end():]:     # it lists what one may be
        lead = _SHOUTED.sub(lambda m: m.group(0).lower(), self_view.group("lead"))
        verb = self_view.group("verb").lower()
        sentence = f"{lead}you {verb} yourself{' as' if self_view.group('as') else ''} {{value}}."
        return sentence[0].upper() + sentence[1:]
    return f'Asked "{text}", you answered: {{value}}.'


def persona_text(slice: dict[str, str], style: PromptStyle | None = None) -> str:
    """One sentence per attribute of the slice, from the style's templates.

    Args:
        slice: attribute -> group label ({} = whole population: empty text).
        style: templates to use (default PromptStyle()).
    Returns:
        The persona sentences joined by spaces.
    """
    style = style or PromptStyle()
    templates = style.templates
    sentences = []
    for attribute, value in slice.items():
        name = style.names.get(attribute) or str(attribute).lower()
        template = templates.get(str(attribute).lower()) or templates.get(name.lower()) \
            or templates.get("*") or DEFAULT_TEMPLATES["*"]
        try:
            sentences.append(template.format(value=value, attribute=name))
        except (KeyError, IndexError, ValueError) as error:
            raise SimError(f"Persona template for '{attribute}' is malformed ({error}): "
                           "use {value} and optionally {attribute}.") from error
    return " ".join(sentences)


def option_orders(k: int, count: int) -> list[tuple[int, ...]]:
    """Up to `count` distinct option orders: identity, reversed, then cyclic shifts.

    Each order lists original option indices in the order they are shown (letter A first).
    """
    if k < 1 or count < 1:
        return [tuple(range(max(k, 0)))]
    identity = tuple(range(k))
    candidates = [identity, identity[::-1]]
    for shift in range(1, k):
        candidates.append(identity[shift:] + identity[:shift])
        candidates.append((identity[shift:] + identity[:shift])[::-1])
    orders: list[tuple[int, ...]] = []
    for order in candidates:
        if order not in orders:
            orders.append(order)
        if len(orders) == count:
            break
    return orders


def question_block(question: Any, order: Sequence[int] | None = None) -> str:
    """The question text with lettered options in the given order."""
    options = list(question.options)
    if len(options) > len(LETTERS):
        raise SimError(f"Question '{question.id}' has {len(options)} options; at most "
                       f"{len(LETTERS)} can be lettered.")
    order = list(order) if order is not None else list(range(len(options)))
    if sorted(order) != list(range(len(options))):
        raise SimError(f"Option order {order} is not a permutation of {len(options)} options.")
    lines = [f"Question: {question.text.strip()}"]
    lines += [f"{LETTERS[j]}. {options[i]}" for j, i in enumerate(order)]
    return "\n".join(lines)


def instruction_text(slice: dict[str, str], style: PromptStyle, mode: str) -> str:
    """The line after the options: a letter, or (verbalized) a percentage for every option."""
    if mode != "verbalized":
        return style.instruction
    who = "people like you" if slice else (style.population_text() or "people")
    return style.verbalized.replace("{who}", who)


def user_text(question: Any, slice: dict[str, str], order: Sequence[int] | None = None,
              style: PromptStyle | None = None, mode: str = "first-token") -> str:
    """Persona, question with options, instruction (the user turn of a chat prompt)."""
    style = style or PromptStyle()
    parts = [persona_text(slice, style), question_block(question, order),
             instruction_text(slice, style, mode)]
    return "\n\n".join(part for part in parts if part)


def chat_messages(question: Any, slice: dict[str, str], *, order: Sequence[int] | None = None,
                  style: PromptStyle | None = None, mode: str = "first-token"
                  ) -> list[dict[str, str]]:
    """The system and user messages of one prompt (what a chat API is sent)."""
    style = style or PromptStyle()
    return [{"role": "system", "content": style.system_text(mode)},
            {"role": "user", "content": user_text(question, slice, order, style, mode)}]


def build_prompt(tokenizer: Any, question: Any, slice: dict[str, str], *,
                 order: Sequence[int] | None = None, style: PromptStyle | None = None,
                 mode: str = "first-token") -> str:
    """The exact text fed to a local (or completions-served) model.

    Args:
        tokenizer: the model's tokenizer (chat template used when it has one).
        question: a sim_core.survey.schema.Question (text, options).
        slice: attribute -> group label.
        order: original option indices in shown order (default: original order).
        style: templates and wording.
        mode: "first-token" and "sample" end in the "Answer:" cue (a letter follows);
            "verbalized" opens the answer for the percentage lines.
    Returns:
        Chat models: the chat template with the assistant turn opened and "Answer:" appended;
        base models: a plain-text version ending in "Answer:".
    """
    messages = chat_messages(question, slice, order=order, style=style, mode=mode)
    cue = ANSWER_CUE if mode != "verbalized" else ""
    if getattr(tokenizer, "chat_template", None):
        opened = tokenizer.apply_chat_template(messages, tokenize=False,
                                               add_generation_prompt=True)
        return opened + cue
    system, user = messages[0]["content"], messages[1]["content"]
    return f"{system}\n\n{user}\n{cue or ANSWER_CUE + chr(10)}"


def prompt_text(prompt: Prompt) -> str:
    """A prompt as one text: itself, or chat messages as canonical JSON (what seeds, cache
    keys and the reports' prompt column read)."""
    if isinstance(prompt, str):
        return prompt
    return json.dumps(prompt, ensure_ascii=False, separators=(",", ":"))
