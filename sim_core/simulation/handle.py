"""The model handle: what every way of running a model offers the rest of the core.

A backend — local transformers (sim_core.simulation.models.LoadedModel), an OpenAI-compatible
completions server (sim_core.simulation.completions.EndpointModel), a chat API — subclasses
ModelHandle: it fills in the attributes below and implements the abstract methods. The
simulator, the result cache, calibration, comparison, the verdict and the reports use only
what is declared here, so they never ask which backend they hold. A new backend is one new
subclass; nothing else changes.

The simulator does the rest the same way for every backend: option orders and their
debiasing (sim_core.simulation.answers), the cache, the calibration, the run plan.
Backends that render prompts here with a tokenizer's chat template mix in RenderedHere.
tests/test_handle.py builds a whole backend in a dozen lines.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sim_core.base.labels import Progress, ShouldStop
from sim_core.simulation.calibration import Calibration
from sim_core.simulation.config import SimConfig
from sim_core.simulation.prompts import Prompt, PromptStyle, build_prompt


class ModelHandle(ABC):
    """A checkpoint (base model + optional adapter) ready to simulate answers.

    Attributes every backend sets (dataclass fields or properties):
        name: the base model's name as the user gave it ("default", a folder, a hub id, a
            served model's id).
        fingerprint: the base model's identity in reports and calibration records.
        label: display name (base, "+ adapter", "@ host" for a server).
        adapter: the adapter's name, or None.
        adapter_path: the adapter's folder here (its card), or None.
        adapter_fingerprint: the adapter's identity, or None.
        inference_orders: option orders its card recommends (None: the simulator's default).
        prompt_style: the prompt wording an adapter was trained with (its card), or None.
        calibration: the calibration its card carries (sim_core.simulation.calibration), or
            None; a base model's calibration comes from its records
            (sim_core.evaluation.calibration_records).
        sampling_temperature: the temperature its individual-level sweep chose, or None.
    """

    name: str
    fingerprint: str
    label: str
    adapter: str | None
    adapter_path: Path | None
    adapter_fingerprint: str | None
    inference_orders: int | None
    prompt_style: dict | None
    calibration: Calibration | None
    sampling_temperature: float | None

    @property
    @abstractmethod
    def cache_identity(self) -> dict:
        """What names this checkpoint in result-cache keys (never a secret such as a key)."""

    @property
    def runtime(self) -> dict:
        """Where it runs, for reports: dtype and device (local), endpoint (a server)."""
        return {}

    @property
    def remote(self) -> bool:
        """Whether prompts leave this machine (then requests are counted and may cost)."""
        return False

    def check_device(self, device: str) -> None:  # noqa: B027 (a default, not a stub)
        """Refuse settings that ask for another device than the one it runs on (SimConfig's
        `device`; "auto" always passes). A server chooses its own device: nothing to check."""

    def requests_for(self, mode: str, prompts: int, samples: int) -> int:
        """Requests a run of `prompts` prompts sends (0: it runs here)."""
        return 0

    def prompt_tokens(self, prompt: Prompt) -> tuple[int, bool]:
        """(tokens in a prompt, whether counted exactly); default: ~4 characters a token."""
        text = prompt if isinstance(prompt, str) else " ".join(m["content"] for m in prompt)
        return max(1, round(len(text) / 4)), False

    @abstractmethod
    def prompt(self, question: Any, slice_: dict[str, str], *,
               order: Sequence[int] | None = None, style: PromptStyle | None = None,
               mode: str = "first-token") -> Prompt:
        """The exact prompt for one (question, slice, option order, mode): text for a model
        run here or behind a completions server, chat messages for a chat API; it also keys
        the result cache."""

    @abstractmethod
    def first_token(self, prompts: list[Prompt], ks: list[int], config: SimConfig, *,
                    progress: Progress = None, should_stop: ShouldStop = None
                    ) -> list[tuple[np.ndarray, float]]:
        """Per prompt: (shares over its k option letters in shown order, summing to 1;
        letter mass, the probability the model put on those letters)."""

    @abstractmethod
    def sample(self, prompts: list[Prompt], options: list[Sequence[str]], config: SimConfig, *,
               progress: Progress = None, should_stop: ShouldStop = None
               ) -> list[tuple[np.ndarray, int, int]]:
        """Per prompt: config.samples answers at config.temperature with the per-prompt seed
        (sim_core.simulation.answers.sample_seed), parsed to the options in original order:
        (shares, n_samples, n_unparsed); shares all NaN when no answer parsed."""

    @abstractmethod
    def verbalized(self, prompts: list[Prompt], ks: list[int], config: SimConfig, *,
                   progress: Progress = None, should_stop: ShouldStop = None
                   ) -> list[np.ndarray | None]:
        """Per prompt: the percentages the model gives for its k option letters, as shares in
        shown order (sim_core.simulation.answers.parse_percentages), asked at temperature 0;
        a reply that cannot be read is asked once more (seeded, temperature 1), then None."""


class RenderedHere:
    """Prompts rendered on this machine with a tokenizer's chat template (the local and the
    completions backends; a chat API renders its own): mixed in before ModelHandle."""

    tokenizer: Any

    def prompt(self, question: Any, slice_: dict[str, str], *,
               order: Sequence[int] | None = None, style: PromptStyle | None = None,
               mode: str = "first-token") -> str:
        """The chat-template prompt (plain text for base models), with the mode's answer cue."""
        return build_prompt(self.tokenizer, question, slice_, order=order, style=style,
                            mode=mode)

    def prompt_tokens(self, prompt: str) -> tuple[int, bool]:
        """Tokens in a prompt, counted exactly by the tokenizer."""
        return len(self.tokenizer.encode(prompt, add_special_tokens=False)), True
