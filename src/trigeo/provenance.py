"""Provenance records and atomic writes shared by every artifact.

Every artifact trigeo writes (mesh, dataset, model, predictions, report)
carries a provenance record: the trigeo version, the UTC creation time, the
config that produced it and hashes of its inputs. Artifacts are written to a
temporary file in the target directory and renamed into place, so a crash
never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trigeo import __version__

__all__ = [
    "atomic_path",
    "hash_arrays",
    "hash_file",
    "make_provenance",
    "write_json_atomic",
]

_CHUNK = 1 << 20


def hash_file(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, streamed in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_arrays(*arrays: np.ndarray, algorithm: str = "sha256") -> str:
    """Hex digest of arrays' dtypes, shapes and bytes (order-sensitive)."""
    digest = hashlib.new(algorithm)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def make_provenance(
    config: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build the provenance record stored in an artifact.

    Parameters
    ----------
    config
        The parameters that produced the artifact (JSON-serializable).
    inputs
        Input name -> content hash (``hash_file``/``hash_arrays``).
    **extra
        Further JSON-serializable fields (e.g. ``seed``).
    """
    record: dict[str, Any] = {
        "trigeo_version": __version__,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": dict(config or {}),
        "inputs": dict(inputs or {}),
    }
    record.update(extra)
    return record


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file lives in the same directory so the final ``os.replace``
    is atomic on POSIX. On any exception the temporary file is removed and the
    previous content of ``path`` (if any) is left untouched.

    Examples
    --------
    >>> with atomic_path("mesh.npz") as tmp:  # doctest: +SKIP
    ...     np.savez(tmp, ...)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; artifacts should get the usual umask-based mode.
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | Path, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (UTF-8, trailing newline)."""
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=indent, default=_json_default) + "\n", "utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")
