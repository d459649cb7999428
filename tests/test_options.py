"""sim_core.base.options: settings carry their help and bounds; configs refuse bad values at once;
CLI flags are generated from the same fields."""

from __future__ import annotations

import argparse
import math

import pytest

from finetune.config import LOSSES, TrainConfig
from sim_core.base import options
from sim_core.base.errors import SimError
from sim_core.simulation.config import MODES, SimConfig


@pytest.mark.parametrize("cls, changes, words", [
    (SimConfig, {"temperature": -1.0}, "temperature = -1.0 is out of range: it must be above 0"),
    (SimConfig, {"temperature": math.nan}, "temperature = nan is out of range"),
    (SimConfig, {"samples": 100_000}, "samples = 100000 is out of range: it must be 1 to 1000"),
    (SimConfig, {"batch_size": 0}, "batch_size = 0 is out of range"),
    (SimConfig, {"mode": "guess"}, "mode 'guess' is unknown: use first-token, sample, verbalized."),
    (SimConfig, {"orders": 2.5}, "orders must be a whole number"),
    (TrainConfig, {"batch_size": -1}, "batch_size = -1 is out of range: it must be 1 to 1024"),
    (TrainConfig, {"lr": math.nan}, "lr = nan is out of range: it must be above 0"),
    (TrainConfig, {"epochs": 0.0}, "epochs = 0.0 is out of range: it must be above 0"),
    (TrainConfig, {"max_steps": 0}, "max_steps = 0 is out of range: it must be at least 1"),
    (TrainConfig, {"loss": "mse"}, "loss 'mse' is unknown: use kl, kl+ordinal, kl+ce."),
    (TrainConfig, {"rank": True}, "rank must be a number"),
])
def test_bad_values_are_refused_naming_the_setting_and_its_bounds(cls, changes, words):
    with pytest.raises(SimError) as error:
        cls(**changes)
    assert words in str(error.value)


def test_defaults_pass_and_none_means_what_the_field_says():
    assert SimConfig().orders is None and TrainConfig().max_steps is None
    assert TrainConfig().lora_alpha == 32 and TrainConfig(rank=4).lora_alpha == 8
    assert TrainConfig(rank=4, alpha=4).lora_alpha == 4
    assert "2 x rank" in options.describe(TrainConfig, "alpha")
    assert options.describe(SimConfig, "samples") == (
        "synthetic respondents generated per slice (sampling mode); default 20; 1 to 1000")


def test_cli_flags_are_generated_from_the_fields():
    parser = argparse.ArgumentParser()
    options.add_arguments(parser, TrainConfig)
    args = parser.parse_args(["--rank", "8", "--shuffle", "--no-score-test", "--loss",
                              "kl+ordinal", "--max-steps", "5"])
    config = options.from_arguments(TrainConfig, args)
    assert (config.rank, config.shuffle_options, config.evaluate_test, config.loss,
            config.max_steps) == (8, True, False, "kl+ordinal", 5)
    assert config.lr == TrainConfig().lr           # not given: the dataclass default stays
    assert config.lora_alpha == 16
    with pytest.raises(SystemExit):                 # argparse refuses unknown choices
        parser.parse_args(["--loss", "mse"])
    help_text = " ".join(parser.format_help().split())
    assert "every transformer layer" in help_text and "target-modules" not in help_text
    with pytest.raises(SimError, match="batch_size = 0"):
        options.from_arguments(TrainConfig, parser.parse_args(["--batch-size", "0"]))


def test_registries_hold_labels_for_people_and_keys_for_code():
    assert list(MODES) == ["first-token", "sample", "verbalized"]
    assert list(LOSSES) == ["kl", "kl+ordinal", "kl+ce"]
    assert all(choice.label and choice.help for choice in [*MODES.values(), *LOSSES.values()])
