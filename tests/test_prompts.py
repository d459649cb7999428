"""Prompt construction: personas, lettered options, option orders, chat vs base."""

from __future__ import annotations

import pytest

from sim_core.base.errors import SimError
from sim_core.simulation.prompts import (
    ANSWER_CUE,
    PromptStyle,
    build_prompt,
    option_orders,
    persona_text,
    question_block,
)
from sim_core.survey.schema import Question

QUESTION = Question(id="natspac", text="Spending on space exploration?",
                    options=("Too little", "About right", "Too much"))


class PlainTokenizer:
    """A tokenizer without a chat template (a base model's)."""

    chat_template = None


def test_persona_uses_templates_and_fallback():
    text = persona_text({"SEX": "Female", "POLPARTY": "Democrat", "Hobby": "chess"})
    assert text == ("Your sex is Female. In politics, you think of yourself as a Democrat. "
                    "Your hobby is chess.")
    assert persona_text({}) == ""


def test_persona_custom_template_and_malformed_template():
    style = PromptStyle(templates={"sex": "I am {value}.", "*": "{attribute}: {value}."})
    assert persona_text({"SEX": "Male", "AGE": "30-44"}, style) == "I am Male. age: 30-44."
    with pytest.raises(SimError, match="malformed"):
        persona_text({"SEX": "Male"}, PromptStyle(templates={"sex": "I am {gender}."}))


def test_option_orders_identity_reversed_then_shifts():
    assert option_orders(3, 1) == [(0, 1, 2)]
    assert option_orders(3, 2) == [(0, 1, 2), (2, 1, 0)]
    assert option_orders(3, 6) == [(0, 1, 2), (2, 1, 0), (1, 2, 0), (0, 2, 1), (2, 0, 1), (1, 0, 2)]
    assert option_orders(2, 4) == [(0, 1), (1, 0)]  # only two distinct orders exist
    assert all(sorted(o) == list(range(5)) for o in option_orders(5, 10))
    assert len(set(option_orders(5, 10))) == 10


def test_question_block_letters_follow_order():
    block = question_block(QUESTION, order=(2, 1, 0))
    assert block.splitlines()[1:] == ["A. Too much", "B. About right", "C. Too little"]
    with pytest.raises(SimError):
        question_block(QUESTION, order=(0, 0, 1))


def test_chat_prompt_has_persona_template_and_answer_cue(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = build_prompt(tokenizer, QUESTION, {"RELIG": "Hindu"})
    assert "Your religion is: Hindu." in prompt
    assert "A. Too little\nB. About right\nC. Too much" in prompt
    assert prompt.endswith("<|im_start|>assistant\n" + ANSWER_CUE)
    assert prompt.count("<|im_start|>") == 3  # system, user, opened assistant turn


def test_base_prompt_is_plain_text():
    prompt = build_prompt(PlainTokenizer(), QUESTION, {"SEX": "Male"})
    assert "<|im_start|>" not in prompt
    assert prompt.startswith(PromptStyle().system_text())
    assert "Your sex is Male." in prompt and prompt.endswith("\n" + ANSWER_CUE)


def test_style_warning_compares_what_reaches_the_prompt():
    """A card's style (population None = the US default) against a survey's style: the same
    wording is no warning; another population, or a display name a slice uses, is."""
    from dataclasses import asdict
    from types import SimpleNamespace

    from sim_core.simulation.config import SimConfig
    from sim_core.simulation.simulate import style_warning

    lm = SimpleNamespace(label="tiny + a", prompt_style=asdict(PromptStyle()))
    us = SimpleNamespace(population="adults in the United States", labels={"polaf": "Party"})
    german = SimpleNamespace(population="adults in Germany", labels={})

    def config(survey):
        return SimConfig(style=PromptStyle().for_survey(survey))
    assert style_warning(lm, config(us), {"SEX"}) is None
    assert "system" in style_warning(lm, config(german), {"SEX"})
    assert "names" in style_warning(lm, config(us), {"polaf"})
    old_card = {k: v for k, v in asdict(PromptStyle()).items()
                if k not in ("population", "names")}
    old_card["system"] = ("You are taking part in a public opinion survey of adults in the "
                          "United States. Answer as the person described would answer.")
    assert style_warning(SimpleNamespace(label="old", prompt_style=old_card),
                         config(us), {"SEX"}) is None
