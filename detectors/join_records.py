"""The label join's records in the state topic.

A join is written as a small head record (``[model, stage, ""]``: its settings' state, the
waiting labels as columns, the list of segments and their removal notes as arrays) and one
record per segment of kept predictions (``[model, stage, "\\u0000segment:N"]``: request keys,
checks, event times and predictions of its live rows, per variant). Records written before
request keys (request ids as strings) still read: their ids are hashed on the way in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .kept import Column, Notes, Segment
from .keys import request_key, request_keys
from .snapshot import get_times, put_times
from .waiting import Inline, Waiting

if TYPE_CHECKING:
    from .join import LabelJoin

__all__ = ["head_record", "read_head", "read_segment", "segment_record"]


def head_record(join: LabelJoin) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(JSON-able meta, arrays) of the join without its segments' entries: written at every
    checkpoint of a labelled stage, so it stays small."""
    meta = {
        "active": join.active,
        "since": join.since_ts,
        "watermark": join.watermark,
        "variants": join.variants,
        "segments": [[s.id, s.gen, len(s.removed)] for s in join.segments],  # notes: nk, nv
        "open_inserts": join.open_inserts,
        "next_gen": join.next_gen,
    }
    q = join.waiting
    keys, checks, lts, plain = q.columns()
    labels = q.labels[q.front :]
    inline = [[i, *q.inline[q.front + i]] for i in np.flatnonzero(~plain).tolist()]  # type: ignore[misc]
    meta["waiting"] = {"labels": labels, "inline": inline}
    noted = [s.removed.arrays(join.variants) for s in join.segments if s.removed]
    nk = np.concatenate([k for k, _ in noted]) if noted else np.empty(0, np.int64)
    nv = np.concatenate([v for _, v in noted]) if noted else np.empty(0, np.int64)
    arrays = {"wk": keys, "wc": checks.astype(np.uint32), "nk": nk,
              "nv": nv.astype(np.uint8 if len(join.variants) < 256 else np.int64)}  # fmt: skip
    put_times(arrays, "wt", "wtb", lts)
    return meta, arrays


def segment_record(join: LabelJoin, seg_id: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(JSON-able meta, arrays) of one segment: columns per variant (up to SEGMENT_SIZE rows)."""
    seg = next(s for s in join.segments if s.id == seg_id)
    meta: dict[str, Any] = {"segment": seg.id, "gen": seg.gen, "variants": [], "predictions": []}
    arrays: dict[str, np.ndarray] = {}
    for variant, col in seg.entries.items():
        if col:
            i = len(meta["variants"])
            arrays[f"k{i}"], checks, ts, preds = col.columns()
            arrays[f"c{i}"] = checks.astype(np.uint32)
            put_times(arrays, f"ts{i}", f"tb{i}", ts)
            meta["variants"].append(variant)
            if type(preds) is np.ndarray:  # floats go as an array: exact and compact
                arrays[f"p{i}"] = preds
                meta["predictions"].append(None)
            else:
                meta["predictions"].append(preds)
    return meta, arrays


def read_head(join: LabelJoin, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Fill a new join from its head record (its segments stay empty until their records come)."""
    join.active = bool(meta["active"]) or join.settings.join == "always"
    join.since_ts = int(meta["since"])
    join.watermark = int(meta["watermark"])
    join.variants = [str(v) for v in meta["variants"]]
    if "nk" in arrays:
        nk, nv = arrays["nk"], arrays["nv"]
        at = np.cumsum([0] + [n for _, _, n in meta["segments"]]).tolist()
        join.segments = [Segment(int(i), int(g), {}, Notes.from_arrays(nk[at[j] : at[j + 1]], nv[at[j] : at[j + 1]],
                                                                         join.variants))
                         for j, (i, g, _) in enumerate(meta["segments"])]  # fmt: skip
    else:  # before request keys: each segment's notes as request ids and variant indices
        join.segments = [
            Segment(
                int(i),
                int(g),
                {},
                Notes.of((request_key(str(k))[0], join.variants[v]) for k, v in zip(ks, vs, strict=True)),
            )
            for i, g, ks, vs in meta["segments"]
        ]
    join.by_gen = {s.gen: s for s in join.segments}
    join.open_inserts = int(meta["open_inserts"])
    join.next_gen = int(meta["next_gen"])
    waiting = meta["waiting"]
    if isinstance(waiting, dict):
        inline: list[Inline | None] = [None] * len(waiting["labels"])
        for i, variant, pts, pred in waiting["inline"]:
            inline[i] = (str(variant), int(pts), pred)
        join.waiting.push(arrays["wk"], arrays["wc"], waiting["labels"], get_times(arrays, "wt", "wtb"), inline)
    else:  # before request keys: [request_id, label, ts, inline] per label
        for w in map(_waiting, waiting):
            join.waiting.push(np.array(w[:1]), np.array(w[1:2]), [w[2]], np.array(w[3:4]), [w[4]])


def read_segment(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[int, int, dict[str, Column]]:
    """(id, generation, entries) of a segment record (or of one written before
    request keys, with the request ids themselves)."""
    entries = {}
    for i, (variant, preds) in enumerate(zip(meta["variants"], meta["predictions"], strict=True)):
        if "rids" in meta:
            keys, checks = request_keys([str(r) for r in meta["rids"][i]])
        else:
            keys, checks = arrays[f"k{i}"], arrays[f"c{i}"]
        values = arrays[f"p{i}"] if preds is None else preds
        ts = get_times(arrays, f"ts{i}", f"tb{i}")
        entries[str(variant)] = Column.of(keys, checks.astype(np.int64), ts, values)
    return int(meta["segment"]), int(meta["gen"]), entries


def _waiting(w: list[Any]) -> Waiting:
    """A waiting label from a head record written before request keys."""
    rid, lab, lts, inl = w
    key, check = request_key(str(rid)) if inl is None else (0, 0)
    return key, check, lab, int(lts), (str(inl[0]), int(inl[1]), inl[2]) if inl else None
