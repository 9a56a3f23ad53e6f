"""Dense retrieval with a LOCAL sentence-transformers model: an optional extra, imported only when
used.

Only a folder on disk is accepted, never a hub name, so an evaluation never downloads a model
behind the user's back and its fingerprint pins exactly which encoder ranked the chunks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.core.errors import ConfigError, HarnessError


def resolve_dense_model(name: str, base_dir: Path) -> Path:
    folder = Path(name).expanduser()
    folder = folder if folder.is_absolute() else base_dir / folder
    if not folder.is_dir():
        raise ConfigError(
            str(folder),
            "dense_model",
            "not found: dense_model must be a local folder (hub names are never downloaded)",
            "save the model with SentenceTransformer(...).save(FOLDER) and give that folder's path",
        )
    if not ((folder / "modules.json").exists() or (folder / "config.json").exists()):
        raise ConfigError(
            str(folder),
            "dense_model",
            "not a sentence-transformers folder (no modules.json or config.json)",
            "give the folder SentenceTransformer.save() wrote",
        )
    return folder.resolve()


class DenseEncoder:
    """Unit-length embeddings, so a dot product is the cosine similarity."""

    def __init__(self, folder: Path) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise HarnessError(
                "method 'dense'/'hybrid' needs the sentence-transformers package, "
                "which is not installed.\n  fix: pip install sentence-transformers "
                "(or use `method: bm25`)"
            ) from None
        self.model = SentenceTransformer(str(folder), local_files_only=True)

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
