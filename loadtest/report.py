"""report.md, PNG plots and figures.json from a scored run; matplotlib without a display."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = ["write_report"]


def _signal_values(events_path: Path, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], np.ndarray]:
    """Per (key, signal), one number per event of the key: the value, a 0/1 for missing or a class share."""
    raw: dict[tuple[str, str], list[Any]] = defaultdict(list)
    with events_path.open("rb") as fh:
        for line in fh:
            ev = orjson.loads(line)
            key = f"{ev['model']}/{ev['stage']}"
            for k, sig in wanted:
                if k != key:
                    continue
                if sig.startswith("feature:"):
                    v = ev["features"].get(sig[8:])
                elif sig.startswith("missing:"):
                    v = float(ev["features"].get(sig[8:]) is None)
                elif sig == "prediction":
                    v = ev.get("prediction")
                else:
                    v = ev.get("latency_ms")
                raw[(k, sig)].append(v)
    out = {}
    for ks, vals in raw.items():
        if any(isinstance(v, str) for v in vals):  # categorical: share of the value that grew the most
            half = len(vals) // 2
            cats = {v for v in vals if isinstance(v, str)}
            grew = max(cats, key=lambda c: vals[half:].count(c) - vals[:half].count(c))
            out[ks] = np.array([1.0 if v == grew else 0.0 for v in vals])
        else:
            out[ks] = np.array([np.nan if v is None else float(v) for v in vals])
    return out


def _rolling(x: np.ndarray, w: int) -> np.ndarray:
    ok = ~np.isnan(x)
    c = np.convolve(np.where(ok, x, 0.0), np.ones(w), "valid")
    n = np.convolve(ok.astype(float), np.ones(w), "valid")
    with np.errstate(invalid="ignore", divide="ignore"):
        return c / n


def _plots(out: Path, truth: dict[str, Any], result: dict[str, Any], alerts: list[dict[str, Any]],
           summaries: list[dict[str, Any]], events_path: Path | None, tput: dict[str, Any]) -> list[str]:  # fmt: skip
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    files: list[str] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        files.append(name)

    # one panel per drifted (key, signal), every injected span of it shaded
    spans: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for d in result["drifts"]:
        if d["kind"] != "none":
            spans[(d["key"], d["signal"])].append(d)
    shown = list(spans)[:4]
    firing = [a for a in alerts if a["status"] == "firing"]
    if events_path is not None and events_path.exists() and shown:
        values = _signal_values(events_path, set(shown))
        fig, axes = plt.subplots(len(shown), 1, figsize=(10, 2.6 * len(shown)), squeeze=False)
        for ax, (key, signal) in zip(axes[:, 0], shown, strict=True):
            v = values.get((key, signal), np.array([]))
            w = max(50, len(v) // 300)
            if len(v) > w:
                ax.plot(np.arange(w - 1, len(v)), _rolling(v, w), lw=0.8, color="tab:blue")
            for d in spans[(key, signal)]:
                ax.axvspan(d["start_position"], d["end_position"], color="tab:orange", alpha=0.15)
            for a in firing:
                if f"{a['model']}/{a['stage']}" == key:
                    same = a["signal"] == signal
                    ax.axvline(a["window"]["last_position"], color="tab:red" if same else "tab:gray",
                               lw=0.9 if same else 0.6, ls="--")  # fmt: skip
            kinds = ", ".join(sorted({d["kind"] for d in spans[(key, signal)]}))
            ax.set_title(f"{key} {signal} ({kinds}): rolling mean over {w} events; shaded = injected, "
                         "red = alerts on this signal, grey = other signals of the key", fontsize=8)  # fmt: skip
            ax.set_xlabel("position in the key's stream")
        save(fig, "signals.png")
    psi: dict[str, list[tuple[int, float]]] = defaultdict(list)
    wanted = set(shown)
    for s in summaries:
        k = f"{s['model']}/{s['stage']}"
        for sig, st in s.get("signals", {}).items():
            if (k, sig) in wanted and st.get("psi") is not None:
                psi[f"{k} {sig}"].append((s["window"]["last_position"], st["psi"]))
    if psi:
        fig, ax = plt.subplots(figsize=(10, 3.5))
        for name, pts in sorted(psi.items()):
            pts.sort()
            ax.plot([p for p, _ in pts], [v for _, v in pts], marker=".", label=name)
        ax.axhline(0.1, color="grey", ls=":", lw=0.8)
        ax.axhline(0.25, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("position in the key's stream (end of summary window)")
        ax.set_ylabel("PSI")
        ax.legend(fontsize=7)
        save(fig, "psi.png")
    if tput.get("series"):
        s = tput["series"]
        fig, ax = plt.subplots(figsize=(10, 3.5))
        ax.plot([x["t"] for x in s], [x["events_per_s"] for x in s], color="tab:blue", label="processed events/s")
        ax.set_xlabel("seconds since the replay started")
        ax.set_ylabel("events/s")
        ax2 = ax.twinx()
        ax2.plot([x["t"] for x in s], [x["lag"] for x in s], color="tab:red", label="consumer lag")
        ax2.set_ylabel("lag (messages)")
        fig.legend(fontsize=8)
        save(fig, "throughput.png")
    return files


def _fmt(v: Any, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def write_report(out: Path, truth: dict[str, Any], result: dict[str, Any], alerts: list[dict[str, Any]],
                 summaries: list[dict[str, Any]], events_path: Path | None, replay: dict[str, Any] | None,
                 tput: dict[str, Any]) -> Path:  # fmt: skip
    """Write report.md, the plots and figures.json into ``out``; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    files = _plots(out, truth, result, alerts, summaries, events_path, tput)
    figures = {"score": result, "replay": {k: v for k, v in (replay or {}).items() if k != "metrics_samples"},
               "throughput": {k: v for k, v in tput.items() if k != "series"}}  # fmt: skip
    (out / "figures.json").write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    r = result
    ev_rate = r["false_alerts_per_signal_per_million_events"]
    lines = [
        f"# driftstream evaluation: {truth['scenario']['name']}",
        "",
        f"- events: {r['events']:,} over {len(truth['keys'])} keys",
        f"- injected drifts: {r['injected']}, detected {r['detected']}, missed {r['missed']}",
        f"- firing alert events: {r['firing_alerts']} ({r['distinct_alert_ids']} alert ids), "
        f"attributed {r['attributed_alerts']}, false {r['false_alerts']} ({ev_rate:.2f} per signal per million events)",
        f"- event-to-alert latency: p50 {_fmt(r['latency_p50_ms'])} ms, p99 {_fmt(r['latency_p99_ms'])} ms",
    ]
    if replay:
        lines.append(f"- replay: {replay['sent']:,} events in {replay['seconds']:.1f} s = {replay['rate']:,.0f}/s"
                     + (f" (target {replay['target_rate']:,.0f}/s, {replay['rate_error_percent']:+.1f} %)"
                        if replay.get("target_rate") else "") + f", {replay['errors']} errors")  # fmt: skip
    if tput.get("mean_events_per_s") is not None:
        lines.append(f"- processor: mean {tput['mean_events_per_s']:,.0f} events/s, peak "
                     f"{tput['peak_events_per_s']:,.0f}/s, max lag {tput['max_lag']:,.0f}, lag at the last "
                     f"sample {tput['final_lag']:,.0f}")  # fmt: skip
    lines += ["", "## Injected drifts", "",
              "| key | signal | kind | start | detected by | delay (events) | delay (s) |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for d in r["drifts"]:
        delays = f"{_fmt(d['delay_events'])} | {_fmt(d['delay_s'], '.2f')}"
        lines.append(f"| {d['key']} | {d['signal']} | {d['kind']} | {d['start_position']:,} | "
                     f"{d['by'] or '**missed**'} | {delays} |")  # fmt: skip
    lines += ["", "## False alerts", ""]
    if r["false_alerts_by_signal"]:
        lines += [f"- {k}: {v}" for k, v in sorted(r["false_alerts_by_signal"].items())]
    else:
        lines.append("None.")
    lines += ["", "## Plots", ""] + [f"![{f}]({f})" for f in files]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
