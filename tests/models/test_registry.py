import multiprocessing
import shutil

import pytest

from nevermind.errors import CorruptModelError, ModelNotFoundError
from nevermind.models import registry
from nevermind.models.registry import BUNDLED, CACHE_MARKER, check_gguf, ensure_converted, resolve_model


def test_unknown_model_lists_bundled_names():
    with pytest.raises(ModelNotFoundError) as error:
        resolve_model("no-such-model")
    message = str(error.value)
    assert "\n" not in message
    for name in BUNDLED:
        assert name in message


def test_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_missing_gguf_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not found"):
        resolve_model(str(tmp_path / "model.gguf"))


def test_local_directory_and_hub_id(tiny_llama_dir):
    assert resolve_model(str(tiny_llama_dir)).origin == "local"
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct").origin == "hub"


def test_not_a_gguf(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"this is not a model at all")
    with pytest.raises(CorruptModelError, match="not a GGUF file"):
        check_gguf(bad)


def test_truncated_gguf_gives_clear_error(tmp_path):
    source = registry._smollm2_gguf()
    truncated = tmp_path / "truncated.gguf"
    with open(source, "rb") as handle:
        truncated.write_bytes(handle.read(2_000_000))
    with pytest.raises(CorruptModelError, match="truncated or corrupt"):
        check_gguf(truncated)
    with pytest.raises(CorruptModelError):
        resolve_model(str(truncated))
    leftovers = list((registry.cache_root() / "models").glob(".gguf-truncated-*partial*"))
    assert leftovers == []


def _convert(target: str) -> str:
    return str(ensure_converted(registry._smollm2_gguf, __import__("pathlib").Path(target)))


@pytest.mark.slow
def test_concurrent_conversion_leaves_one_complete_copy(tmp_path):
    target = tmp_path / "models" / "smol"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_convert, [str(target), str(target)])
    assert results == [str(target), str(target)]
    assert (target / CACHE_MARKER).exists() and (target / "model.safetensors").exists()
    assert [p.name for p in target.parent.iterdir() if "partial" in p.name] == []
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(target)  # the copy loads
    shutil.rmtree(target)
