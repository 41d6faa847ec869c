"""Shared fixtures: tiny random models of both bundled architectures (fast), and the real bundled
models (loaded once per session; the first test run converts their GGUFs into the cache)."""

from __future__ import annotations

import pytest

from nevermind.models.hf import HFModel
from nevermind.models.tiny import build_tiny_model


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_gemma_dir(tmp_path_factory):
    return build_tiny_model("gemma3", tmp_path_factory.mktemp("tiny-gemma"))


@pytest.fixture(scope="session")
def tiny_llama(tiny_llama_dir):
    return HFModel.load(str(tiny_llama_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_gemma(tiny_gemma_dir):
    return HFModel.load(str(tiny_gemma_dir), device="cpu")


@pytest.fixture(scope="session", params=["llama", "gemma3"])
def tiny_model(request):
    return request.getfixturevalue("tiny_llama" if request.param == "llama" else "tiny_gemma")


@pytest.fixture(scope="session")
def smollm2():
    return HFModel.load("smollm2-135m-instruct", device="cpu")


@pytest.fixture(scope="session")
def gemma():
    return HFModel.load("gemma-3-270m", device="cpu")
