"""Shared fixtures: an isolated workspace per test session and a tiny local model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# bench/shapes.py (random models of published shapes) serves the tests too: the tiny model
# is its "tiny" shape (tests/factories.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GSS_JSONL = SHARED_DATA / "gss2022_subpop" / "subpop_eval.jsonl"


@pytest.fixture(scope="session", autouse=True)
def isolated_workspace(tmp_path_factory) -> Path:
    """Point SIM_WORKSPACE at a temporary folder for the whole test session."""
    folder = tmp_path_factory.mktemp("workspace")
    previous = os.environ.get("SIM_WORKSPACE")
    os.environ["SIM_WORKSPACE"] = str(folder)
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield folder
    if previous is None:
        os.environ.pop("SIM_WORKSPACE", None)
    else:
        os.environ["SIM_WORKSPACE"] = previous


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny randomly initialised Llama with the embedded model's real tokenizer."""
    from factories import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0)


@pytest.fixture(scope="session")
def gss_path() -> Path:
    """The real GSS 2022 SubPOP file (shared/ beside the checkout, or the bundled demo copy)."""
    if GSS_JSONL.exists():
        return GSS_JSONL
    from sim_core.survey.demo import demo_gss_path

    return demo_gss_path()
