"""Encoder features computed once per episode and kept on disk as memory-mapped .npy files.

The key of an entry covers everything the features depend on: the encoder (``encoder.model_id``, which hashes
its weights and config, plus its preprocessing config), the source episode (path, size and modification time of
every file of it) and which frames were taken from it (their stamps). A changed recording, another encoder or
other read options therefore never hit a stale entry. Entries are written to a temporary file and renamed, so
concurrent processes (e.g. DDP ranks) only ever see complete files.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from jepa_world_model.data.dataset import Episode

LOG = logging.getLogger(__name__)
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/jepa_ros/features`` (default ``~/.cache/jepa_ros/features``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jepa_ros" / "features"


def source_identity(path: str | Path) -> list[dict]:
    """(path, size, mtime_ns) of the file, or of every file of a bag directory."""
    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    identity = []
    for file in files:
        stat = file.stat()
        identity.append({"path": str(file), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return identity


class FeatureCache:
    """Directory of cached encoder features, one float array (frames, N, D) per (encoder, episode) pair."""

    def __init__(self, root: str | Path | None = None, dtype: str = "float32"):
        if dtype not in ("float32", "float16"):
            raise ValueError(f"FeatureCache dtype must be 'float32' or 'float16', got {dtype!r}")
        self.root = Path(root) if root is not None else default_cache_dir()
        self.dtype = dtype
        self.hits = 0
        self.misses = 0

    def key(self, encoder: torch.nn.Module, episode: Episode) -> str:
        """Hex key of the features of ``episode`` under ``encoder``."""
        description = {
            "version": CACHE_VERSION,
            "dtype": self.dtype,
            "encoder": encoder.model_id,
            "preprocessing": encoder.config.to_dict(),
            "source": source_identity(episode.source),
            "camera_topic": episode.camera_topic,
            "frames": hashlib.sha256(np.ascontiguousarray(episode.stamps, dtype=np.int64).tobytes()).hexdigest(),
        }
        return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        """The .npy file of an entry."""
        return self.root / f"{key}.npy"

    def features(self, encoder: torch.nn.Module, episode: Episode, batch_size: int = 32) -> np.ndarray:
        """Features (frames, N, D) of ``episode``, read-only memory-mapped; computed and stored on a miss."""
        key = self.key(encoder, episode)
        path = self.path(key)
        if path.is_file():
            self.hits += 1
            return np.load(path, mmap_mode="r")
        self.misses += 1
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        out = None
        try:
            with torch.no_grad():
                for start in range(0, len(episode.frames), batch_size):
                    batch = torch.from_numpy(np.ascontiguousarray(episode.frames[start:start + batch_size]))
                    feats = encoder(batch).float().cpu().numpy()
                    if out is None:
                        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.dtype,
                                                        shape=(len(episode.frames),) + feats.shape[1:])
                    out[start:start + len(feats)] = feats
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        meta = {"source": str(episode.source), "encoder": encoder.model_id, "frames": len(episode.frames)}
        path.with_suffix(".json").write_text(json.dumps(meta) + "\n")
        LOG.info("cached features of %s (%d frames) as %s", episode.source, len(episode.frames), path.name)
        return np.load(path, mmap_mode="r")
