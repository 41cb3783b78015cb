"""Synthetic prediction traffic with drift injected where the ground truth says, reproducibly.

Every key draws its features from its stage template; a drift changes one signal of one key over
a span of that key's positions. Predictions are computed from standardized features, so a shift
in a weighted feature also shifts the prediction, and in a pipeline the upstream prediction is an
input of the next stage (``vad_prob`` of ``asr``, ``segment`` of ``recommender``): drift injected
upstream reaches the downstream stage's inputs. The ground truth lists the injected drifts and
every signal they move (``derived`` on the same key, ``propagated`` downstream), so an evaluation
can tell a correctly attributed alert from a false one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .labels import DELAY_CAP, delays, outcome_signal, truth
from .scenario import TEMPLATES, VARIANT_KINDS, Drift, KeySpec, Scenario

__all__ = ["Generated", "generate", "write"]

_CLASSES = np.array(["A", "B", "C"], dtype=object)


def _draw(rng: np.random.Generator, dist: tuple[str, float, float], n: int) -> np.ndarray:
    kind, a, b = dist
    if kind == "normal":
        return rng.normal(a, b, n)
    if kind == "gamma":
        return rng.gamma(a, b, n)
    if kind == "lognormal":
        return rng.lognormal(a, b, n)
    return rng.poisson(a, n).astype(np.float64)


def _span(d: Drift, n: int) -> tuple[int, int]:
    start = int(d.start * n) if d.start < 1 else int(d.start)
    end = n if d.end is None else (int(d.end * n) if d.end <= 1 else int(d.end))
    return min(start, n), min(max(end, start), n)


def _phases(d: Drift, n: int) -> list[tuple[int, int]]:
    """Where the new concept is in force: one span, or the on-phases of a recurring drift."""
    a, b = _span(d, n)
    if d.kind != "recurring":
        return [(a, b)]
    return [(s, min(s + d.period, b)) for s in range(a, b, 2 * d.period)]


def _mix(d: Drift, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per position, how much of the new concept is in force (0..1)."""
    m = np.zeros(n)
    a, b = _span(d, n)
    if d.kind == "incremental":
        m[a:b] = np.linspace(0.0, 1.0, b - a, endpoint=False)
        if d.end is not None and b < n:
            m[b:] = 1.0  # it crept to the new level and stays
    elif d.kind == "gradual":
        ramp = np.linspace(0.0, 1.0, b - a, endpoint=False)
        m[a:b] = rng.random(b - a) < ramp  # each event from the new concept with a rising probability
        m[b:] = 1.0
    else:
        for s, e in _phases(d, n):
            m[s:e] = 1.0
    return m


class Generated:
    """Per-key columns of one scenario, plus its ground truth."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        sc = scenario
        self.per_key = sc.events // len(sc.keys)
        rng = np.random.default_rng(sc.seed)
        self.columns: dict[str, dict[str, Any]] = {}
        self.truth: list[dict[str, Any]] = []
        self._canary: dict[str, np.ndarray | None] = {}
        self._index = {s.key: i for i, s in enumerate(sc.keys)}
        upstream_of = {p[i + 1]: p[i] for p in sc.pipelines for i in range(len(p) - 1)}
        order = sorted(sc.keys, key=lambda k: _depth(k.key, upstream_of))
        for spec in order:
            up = upstream_of.get(spec.key)
            self.columns[spec.key] = self._key(spec, rng, self.columns[up] if up else None)
        self._propagate(upstream_of)
        self._outcomes()
        self.request_ids = [f"r{i:09d}" for i in range(self.per_key)]

    # ------------------------------------------------------------------ one key
    def _key(self, spec: KeySpec, rng: np.random.Generator, upstream: dict[str, Any] | None) -> dict[str, Any]:
        sc, n, t = self.scenario, self.per_key, TEMPLATES[spec.template]
        drifts = [d for d in sc.drifts if d.key == spec.key]
        num = {name: _draw(rng, dist, n) for name, dist in t["numeric"].items()}
        cat = {name: rng.choice(list(p), n, p=list(p.values())).astype(object) for name, p in t["categorical"].items()}
        if upstream is not None:
            up = upstream["prediction"]
            if up.dtype == object:
                cat[t["upstream"]] = up.copy()
            else:
                num[t["upstream"]] = up.copy()
        ref = {name: (float(np.mean(v)), float(np.std(v)) or 1.0) for name, v in num.items()}
        logit_shift = np.zeros(n)
        canary_shift = np.zeros(n)
        disagree: list[tuple[np.ndarray, float]] = []
        canary = rng.random(n) < spec.canary_share if spec.canary_share else None
        self._canary[spec.key] = canary
        lat_factor = np.ones(n)
        concept = np.zeros(n)
        missing_p = {name: np.full(n, sc.missing_rate) for name in num}
        for i, d in enumerate(drifts):
            name = d.signal.split(":", 1)[1] if ":" in d.signal else ""
            m = _mix(d, n, rng)
            if d.kind in ("sudden", "gradual", "incremental", "recurring"):
                num[name] += m * (d.magnitude if d.magnitude is not None else 2.0) * ref[name][1]
            elif d.kind == "categorical-shift":
                moved = rng.random(n) < m * (d.magnitude if d.magnitude is not None else 0.5)
                probs = t["categorical"][name]
                cat[name][moved] = min(probs, key=probs.get)  # mass moves to the rarest category
            elif d.kind == "missing-spike":
                missing_p.setdefault(name, np.zeros(n))[m > 0] = d.magnitude if d.magnitude is not None else 0.3
            elif d.kind == "prediction-shift":
                logit_shift += m * (d.magnitude if d.magnitude is not None else 2.0)
            elif d.kind == "latency-regression":
                lat_factor += m * (d.magnitude if d.magnitude is not None else 1.0)
            elif d.kind == "canary-regression":
                canary_shift += m * (d.magnitude if d.magnitude is not None else 2.0)
            elif d.kind == "shadow-disagreement":
                disagree.append((m, d.magnitude if d.magnitude is not None else 0.3))
            elif d.kind == "concept":
                concept += m * (d.magnitude if d.magnitude is not None else 1.0)
            self._record(spec, d, i)
        missing = {name: rng.random(n) < p for name, p in missing_p.items()}
        logit = logit_shift + rng.normal(0.0, 0.5, n)
        for name, w in t["weights"].items():
            mean, sd = ref[name]
            z = (num[name] - mean) / sd
            logit += w * np.where(missing.get(name, False), 0.0, z)
        score = 1.0 / (1.0 + np.exp(-logit))
        pred = _predict(t, score)
        if canary is not None:  # the canary serves its share of requests, with its own (shifted) model
            pred = np.where(canary, _predict(t, 1.0 / (1.0 + np.exp(-(logit + canary_shift)))), pred)
        shadow = pred.copy() if spec.shadow else None
        for m, share in disagree:  # the shadow answers differently on a share of the requests
            assert shadow is not None
            flip = (m > 0) & (rng.random(n) < share)
            shadow[flip] = _other(t, pred[flip])
        labels = self._truth(spec, t, num, ref, upstream, np.minimum(concept, 1.0))
        for name, v in num.items():
            num[name] = np.where(missing[name], np.nan, v.round(4))
        for name, v in cat.items():
            if name in missing:
                v[missing[name]] = None
        shape, scale = t["latency"]
        lat = (rng.gamma(shape, scale, n) * lat_factor).round(3)
        return {"spec": spec, "numeric": num, "categorical": cat, "prediction": pred, "latency": lat,
                "weights": t["weights"], "upstream_name": t.get("upstream"), "canary": canary,
                "shadow": shadow, **labels}  # fmt: skip

    def _truth(self, spec: KeySpec, t: dict[str, Any], num: dict[str, np.ndarray], ref: dict[str, tuple[float, float]],
               upstream: dict[str, Any] | None, concept: np.ndarray) -> dict[str, Any]:  # fmt: skip
        """The right answers (see ``labels``): the learned relation on the real inputs, the upstream
        stage's truth in place of its prediction."""
        rng = np.random.default_rng([self.scenario.seed, 7919, self._index[spec.key]])
        base = np.zeros(self.per_key)
        for name, w in t["weights"].items():
            mean, sd = ref[name]
            col = upstream["true_score"] if upstream is not None and name == t.get("upstream") else num[name]
            base += w * (col - mean) / sd
        labels, score = truth(t, base, concept, rng)
        return {"labels": labels, "true_score": score, "labelled": rng.random(self.per_key) < spec.label_share,
                "delay": delays(spec, self.per_key, rng)}  # fmt: skip

    # ------------------------------------------------------------ ground truth
    def _entry(self, spec: KeySpec, d: Drift, signal: str, role: str, source: int, span: tuple[int, int]) -> None:
        """One moved signal. Signals of joined labels count positions in the stream of joined pairs,
        which the generator cannot know: their entries say ``clock: ts`` and end when the last
        label of the span can have arrived."""
        a, b = span
        outcome = signal in _OUTCOME_SIGNALS
        end_ts = self.ts_of(spec.key, max(b - 1, a)) + (_max_delay_ms(spec) if outcome else 0)
        self.truth.append({
            "key": spec.key, "model": spec.model, "stage": spec.stage, "variant": spec.variant, "signal": signal,
            "kind": d.kind, "role": role, "source": source, "start_position": a, "end_position": b,
            "start_ts": self.ts_of(spec.key, a), "end_ts": end_ts, "magnitude": d.magnitude,
            **({"clock": "ts"} if outcome else {}),
        })  # fmt: skip

    def _outcomes(self) -> None:
        """A labelled stage's error moves with its prediction (the truth did not) and with the truth
        of its upstream stage (a concept drift there), even when its own relation holds."""
        specs = {s.key: s for s in self.scenario.keys}
        upstream_of = {p[i + 1]: p[i] for p in self.scenario.pipelines for i in range(len(p) - 1)}
        for e in list(self.truth):
            spec = specs[e["key"]]
            moved = [spec] if e["signal"] == "prediction" and e["variant"] == spec.variant else []
            if e["kind"] == "concept" and e["role"] == "injected":
                moved += [s for down, up in upstream_of.items() if up == e["key"]
                          for s in (specs[down],) if TEMPLATES[s.template]["weights"].get(
                              TEMPLATES[s.template].get("upstream", ""))]  # fmt: skip
            for s in moved:
                if not s.label_share:
                    continue
                role = "propagated" if s.key != e["key"] else "derived"
                d = Drift(kind=e["kind"], key=s.key, start=e["start_position"], end=e["end_position"],
                          magnitude=e["magnitude"])  # fmt: skip
                have = {(x["key"], x["signal"], x["source"], x["start_position"]) for x in self.truth}
                for sig in (outcome_signal(TEMPLATES[s.template]), "label"):
                    if (s.key, sig, e["source"], e["start_position"]) not in have:
                        self._entry(s, d, sig, role, e["source"], (e["start_position"], e["end_position"]))

    def _record(self, spec: KeySpec, d: Drift, _: int) -> None:
        if d.kind == "none":
            return
        if d.kind in VARIANT_KINDS:
            self._record_variant(spec, d)
            return
        source = len({e["source"] for e in self.truth if e["role"] == "injected"})
        if d.kind == "concept":
            for span in _phases(d, self.per_key):
                self._entry(spec, d, outcome_signal(TEMPLATES[spec.template]), "injected", source, span)
                self._entry(spec, d, "label", "derived", source, span)
            return
        name = d.signal.split(":", 1)[1] if ":" in d.signal else ""
        primary = {"latency-regression": "latency_ms", "prediction-shift": "prediction"}.get(d.kind, d.signal)
        weights = TEMPLATES[spec.template]["weights"]
        for span in _phases(d, self.per_key):
            self._entry(spec, d, primary, "injected", source, span)
            derived = []
            if d.kind == "missing-spike":
                derived.append(f"feature:{name}")
            moves_prediction = d.kind == "prediction-shift" or (d.kind != "categorical-shift" and weights.get(name))
            if moves_prediction and primary != "prediction":
                derived.append("prediction")
            for sig in derived:
                self._entry(spec, d, sig, "derived", source, span)

    def _record_variant(self, spec: KeySpec, d: Drift) -> None:
        """A candidate's drift: the comparison with the baseline (injected) and the candidate's own
        prediction (derived), at positions in the candidate's stream."""
        source = len({e["source"] for e in self.truth if e["role"] == "injected"})
        variant = "canary" if d.kind == "canary-regression" else "shadow"
        a, b = _span(d, self.per_key)
        mask = self._canary[spec.key]
        where = (int(mask[:a].sum()), int(mask[:b].sum())) if variant == "canary" and mask is not None else (a, b)
        for signal, role in ((f"variant:{variant}:prediction", "injected"), ("prediction", "derived")):
            self.truth.append({
                "key": spec.key, "model": spec.model, "stage": spec.stage, "variant": variant, "signal": signal,
                "kind": d.kind, "role": role, "source": source, "start_position": where[0],
                "end_position": where[1], "start_ts": self.ts_of(spec.key, a),
                "end_ts": self.ts_of(spec.key, max(b - 1, a)), "magnitude": d.magnitude,
            })  # fmt: skip

    def _propagate(self, upstream_of: dict[str, str]) -> None:
        """Upstream prediction moved → the downstream input that carries it moved (and what it feeds)."""
        changed = True
        while changed:
            changed = False
            for down, up in upstream_of.items():
                col = self.columns[down]
                feat = f"feature:{col['upstream_name']}"
                for e in [e for e in self.truth if e["key"] == up and e["signal"] == "prediction"]:
                    have = {(x["key"], x["signal"], x["source"], x["start_position"]) for x in self.truth}
                    spec: KeySpec = col["spec"]
                    d = Drift(kind=e["kind"], key=down, signal=feat, start=e["start_position"],
                              end=e["end_position"], magnitude=e["magnitude"])  # fmt: skip
                    sigs = [feat] + (["prediction"] if col["weights"].get(col["upstream_name"]) else [])
                    for sig in sigs:
                        if (down, sig, e["source"], e["start_position"]) not in have:
                            self._entry(spec, d, sig, "propagated", e["source"], (e["start_position"],
                                                                                  e["end_position"]))  # fmt: skip
                            changed = True

    # ------------------------------------------------------------------ output
    def ts_of(self, key: str, position: int) -> int:
        k = [s.key for s in self.scenario.keys].index(key)
        i = position * len(self.scenario.keys) + k
        return self.scenario.start_ts + int(i * 1000 / self.scenario.rate)

    def signals(self, key: str) -> list[str]:
        col = self.columns[key]
        names = sorted([*col["numeric"], *col["categorical"]])
        outcomes = ["label", outcome_signal(TEMPLATES[col["spec"].template])] if col["spec"].label_share else []
        return [f"feature:{n}" for n in names] + [f"missing:{n}" for n in names] + ["prediction", "latency_ms",
                                                                                    *outcomes]  # fmt: skip

    def labels(self) -> list[tuple[int, bytes]]:
        """(event time, JSON) of every label, in event-time order: a labelled request's label comes
        its delay after the prediction."""
        out: list[tuple[int, int, int, bytes]] = []
        for k, spec in enumerate(self.scenario.keys):
            c = self.columns[spec.key]
            for p in np.flatnonzero(c["labelled"]).tolist():
                ts = self.ts_of(spec.key, p) + int(c["delay"][p])
                label = c["labels"][p]
                doc = {"request_id": self.request_ids[p], "label": label if isinstance(label, str) else int(label),
                       "ts": ts, "model": spec.model, "stage": spec.stage}  # fmt: skip
                out.append((ts, k, p, orjson.dumps(doc)))
        out.sort(key=lambda x: x[:3])
        return [(ts, doc) for ts, _, _, doc in out]

    def events(self) -> Iterator[bytes]:
        """JSON lines in stream order: request by request, each key once per request; each label
        (no ``features``) just before the first prediction later than it."""
        sc = self.scenario
        cols = []
        for spec in sc.keys:
            c = self.columns[spec.key]
            feats = [(n, v.tolist()) for n, v in c["numeric"].items()] + [(n, v.tolist()) for n, v in
                                                                          c["categorical"].items()]  # fmt: skip
            variants = [("canary" if x else spec.variant) for x in c["canary"]] if c["canary"] is not None else None
            shadow = c["shadow"].tolist() if c["shadow"] is not None else None
            cols.append((spec, feats, c["prediction"].tolist(), c["latency"].tolist(), variants, shadow))
        step = 1000 / sc.rate
        i = 0
        labels = self.labels()
        li = 0
        for p in range(self.per_key):
            rid = self.request_ids[p]
            for spec, feats, pred, lat, variants, shadow in cols:
                ts = sc.start_ts + int(i * step)
                while li < len(labels) and labels[li][0] < ts:
                    yield labels[li][1]
                    li += 1
                f = {n: (None if v != v else v) for n, v in ((n, col[p]) for n, col in feats)}
                doc = {
                    "model": spec.model, "stage": spec.stage, "variant": variants[p] if variants else spec.variant,
                    "version": "1", "ts": ts, "features": f, "prediction": pred[p],
                    "latency_ms": lat[p], "request_id": rid,
                }  # fmt: skip
                yield orjson.dumps(doc)
                if shadow is not None:  # the same request, scored by the shadow too
                    yield orjson.dumps({**doc, "variant": "shadow", "prediction": shadow[p]})
                i += 1
        for _, rest in labels[li:]:
            yield rest

    def truth_document(self) -> dict[str, Any]:
        sc = self.scenario
        return {
            "scenario": sc.model_dump(),
            "events": self.per_key * (len(sc.keys) + sum(k.shadow for k in sc.keys)),
            "labels": sum(int(self.columns[k.key]["labelled"].sum()) for k in sc.keys),
            "keys": [{"key": s.key, "model": s.model, "stage": s.stage, "variant": s.variant,
                      "events": self.per_key, "signals": self.signals(s.key)} for s in sc.keys],
            "drifts": self.truth,
        }  # fmt: skip


def _predict(template: dict[str, Any], score: np.ndarray) -> np.ndarray:
    if template["prediction"] == "class":
        out: np.ndarray = _CLASSES[np.digitize(score, [0.35, 0.65])]
        return out
    return score.round(6)


def _other(template: dict[str, Any], pred: np.ndarray) -> np.ndarray:
    """A different answer: the next class, or the complementary score."""
    if template["prediction"] == "class":
        nxt: dict[Any, Any] = dict(zip(_CLASSES.tolist(), np.roll(_CLASSES, -1).tolist(), strict=True))
        return np.array([nxt[x] for x in pred], dtype=object)
    return (1.0 - pred.astype(np.float64)).round(6)


_OUTCOME_SIGNALS = ("error", "abs_error", "label")


def _max_delay_ms(spec: KeySpec) -> int:
    factor = {"fixed": 1.0, "uniform": 2.0, "exponential": DELAY_CAP}[spec.label_delay_dist]
    return int(spec.label_delay_s * 1000 * factor)


def _depth(key: str, upstream_of: dict[str, str]) -> int:
    d = 0
    while key in upstream_of:
        key, d = upstream_of[key], d + 1
    return d


def generate(scenario: Scenario) -> Generated:
    return Generated(scenario)


def write(gen: Generated, out: Path) -> tuple[Path, Path]:
    """``events.jsonl`` and ``ground_truth.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    events, truth = out / "events.jsonl", out / "ground_truth.json"
    with events.open("wb") as fh:
        buf: list[bytes] = []
        for line in gen.events():
            buf.append(line)
            if len(buf) >= 10_000:
                fh.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            fh.write(b"\n".join(buf) + b"\n")
    truth.write_bytes(orjson.dumps(gen.truth_document(), option=orjson.OPT_INDENT_2))
    return events, truth
