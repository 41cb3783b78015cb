"""A small binary container for detector and monitor snapshots.

Layout: ``b"DSS1"``, a little-endian u32 length, that many bytes of JSON metadata, then
the raw little-endian bytes of each array in the order the metadata lists them. Floats
round-trip bit for bit (including ``inf`` and ``nan``, which JSON cannot carry), and
reading never executes anything: snapshots come back from a Kafka topic, so no pickle.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

__all__ = ["SnapshotError", "get_positions", "get_times", "pack", "put_positions", "put_times", "unpack"]

_MAGIC = b"DSS1"
_DTYPES: dict[str, np.dtype[Any]] = {
    "f8": np.dtype("<f8"), "i8": np.dtype("<i8"), "u1": np.dtype("u1"), "u4": np.dtype("<u4"),
}  # fmt: skip


def _kind(arr: np.ndarray) -> str:
    """The container's type for an array: booleans and bytes as u1, other unsigned integers of
    up to 4 bytes as u4, all other integers as i8, floats as f8."""
    k = arr.dtype.kind
    if k == "f":
        return "f8"
    if k == "b" or (k == "u" and arr.dtype.itemsize == 1):
        return "u1"
    if k == "u" and arr.dtype.itemsize <= 4:
        return "u4"
    if k in "iu":
        return "i8"
    raise SnapshotError(f"cannot store an array of {arr.dtype}")


class SnapshotError(ValueError):
    """A snapshot is truncated, from another format, or inconsistent."""


def pack(meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """Encode JSON-able ``meta`` and named arrays (float64, int64, uint32 or uint8; see :func:`_kind`)."""
    specs = []
    blobs = []
    for name, arr in (arrays or {}).items():
        kind = _kind(arr)
        data = np.ascontiguousarray(arr, dtype=_DTYPES[kind])
        specs.append([name, kind, list(data.shape)])
        blobs.append(data.tobytes())
    header = orjson.dumps({"meta": meta, "arrays": specs})
    return b"".join([_MAGIC, struct.pack("<I", len(header)), header, *blobs])


def unpack(blob: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Decode what :func:`pack` wrote; raise :class:`SnapshotError` on anything else."""
    if len(blob) < 8 or blob[:4] != _MAGIC:
        raise SnapshotError("not a driftstream snapshot (bad magic)")
    (hlen,) = struct.unpack_from("<I", blob, 4)
    try:
        header = orjson.loads(blob[8 : 8 + hlen])
        meta, specs = header["meta"], header["arrays"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise SnapshotError(f"corrupt snapshot header: {exc}") from exc
    arrays: dict[str, np.ndarray] = {}
    offset = 8 + hlen
    for name, kind, shape in specs:
        dtype = _DTYPES[kind]
        count = int(np.prod(shape)) if shape else 1
        end = offset + count * dtype.itemsize
        if end > len(blob):
            raise SnapshotError(f"snapshot truncated in array {name!r}")
        arrays[name] = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(shape).copy()
        offset = end
    if offset != len(blob):
        raise SnapshotError("trailing bytes after the last array")
    return meta, arrays


def put_times(arrays: dict[str, np.ndarray], name: str, base_name: str, ts: np.ndarray) -> None:
    """Event times (ms) as 4-byte offsets from the first under ``name``, the base under
    ``base_name``; as int64 when they span 2^32 ms or more (or are none)."""
    if ts.shape[0]:
        base = int(ts.min())
        if int(ts.max()) - base < 2**32:
            arrays[base_name] = np.array([base], np.int64)
            arrays[name] = (ts - base).astype(np.uint32)
            return
    arrays[name] = ts


def get_times(arrays: dict[str, np.ndarray], name: str, base_name: str) -> np.ndarray:
    """The times :func:`put_times` wrote (int64)."""
    ts = arrays[name].astype(np.int64)
    if base_name in arrays:
        ts += arrays[base_name][0]
    return ts


def put_positions(arrays: dict[str, np.ndarray], name: str, pos: np.ndarray) -> None:
    """Increasing stream positions: a run of consecutive ones as (first, count) under
    ``name + ".run"``, else all of them under ``name``."""
    n = pos.shape[0]
    if n and int(pos[-1]) - int(pos[0]) == n - 1 and (n == 1 or bool((np.diff(pos) == 1).all())):
        arrays[f"{name}.run"] = np.array([pos[0], n], np.int64)
    else:
        arrays[name] = pos


def get_positions(arrays: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    """The positions :func:`put_positions` wrote; None if it wrote none under ``name``."""
    run = arrays.get(f"{name}.run")
    if run is not None:
        return np.arange(run[0], run[0] + run[1], dtype=np.int64)
    return arrays.get(name)
