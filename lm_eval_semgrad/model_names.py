"""Whether two model names denote the same model (one rule for every file that records a model)."""

from __future__ import annotations


def same_model(a: str, b: str) -> bool:
    """Equal names, or an equal final path component (case-insensitive), so that a hub id and a local copy
    of it (`org/Name` and `/models/Name`) match."""

    def last(name: str) -> str:
        return name.strip().rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower()

    return a.strip() == b.strip() or (bool(last(a)) and last(a) == last(b))
