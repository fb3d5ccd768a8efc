"""Benchmark reports as a terminal table, a Markdown table and a bar chart PNG."""

from __future__ import annotations

import math
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from ..fsutil import atomic_write
from .machine import caption
from .runner import BenchReport, EngineResult


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _err(e: EngineResult) -> str:
    if e.sqnr_db is not None:
        from ..verification import DEFAULT_MIN_SQNR

        mark = "" if e.within_tolerance else f" (below {DEFAULT_MIN_SQNR['int8']:g} dB)"
        return f"{e.max_abs_err:.2g} abs, SQNR {e.sqnr_db:.1f} dB{mark}"
    if e.max_abs_err is None:
        return "-"
    mark = "" if e.within_tolerance else " (over tolerance)"
    return f"{e.max_abs_err:.2g} / {e.max_rel_err:.2g}{mark}"


def rich_table(report: BenchReport) -> Table:
    gflop = f"{report.flops / 1e9:.3f} GFLOP" if report.flops else "FLOPs unknown"
    threads = (f"{report.threads} threads" if report.device is None else
                "threads: each engine's, on its machine")
    cap = caption(report.machine, {"tvm": report.versions["apache-tvm"]})
    if report.device is not None:
        cap = f"here: {cap}"
    table = Table(title=f"{Path(report.model).name}: {gflop}, {threads}", caption=cap)
    for col in ("engine", "median ms", "p90", "p99", "min", "stdev", "runs", "GFLOP/s",
                "max err abs / rel vs ort"):
        table.add_column(col, justify="left" if col in ("engine",) else "right")
    for e in report.engines:
        label = f"{e.engine} ({e.precision})" + (
            "" if not e.device else " here" if e.device == "here" else f" on {escape(e.device)}")
        if e.status != "ok" or e.stats is None:  # the reason is printed under the table
            table.add_row(label, "[red]n/a[/]", *[""] * 7)
            continue
        s = e.stats
        table.add_row(label, f"{s.median_ms:.3f}", f"{s.p90_ms:.3f}",
                      f"{s.p99_ms:.3f}", f"{s.min_ms:.3f}", f"{s.stdev_ms:.3f}", str(s.runs),
                      _fmt(e.gflops_per_s, ".2f"), _err(e))
    return table


def failure_lines(report: BenchReport) -> list[str]:
    """'tflite: conversion failed: ...' for every engine that produced no numbers."""
    return [f"{e.engine} ({e.precision}): {e.reason}" for e in report.engines
            if e.status != "ok"]


def ratio_to_best_peer(report: BenchReport, precision: str = "fp32") -> float | None:
    """edgec median / the fastest working baseline's median at ``precision`` (below
    1: edgec is faster)."""
    edgec = report.result("edgec", precision)
    peers = [e.stats.median_ms for e in report.engines
             if e.engine != "edgec" and e.precision == precision and e.status == "ok"
             and e.stats]
    if edgec is None or edgec.stats is None or not peers:
        return None
    return edgec.stats.median_ms / min(peers)


def int8_speedup(report: BenchReport) -> float | None:
    """edgec fp32 median / edgec int8 median (above 1: int8 is faster)."""
    f, q = report.result("edgec"), report.result("edgec", "int8")
    if f is None or q is None or f.stats is None or q.stats is None:
        return None
    return f.stats.median_ms / q.stats.median_ms


def int8_markdown_table(reports: list[BenchReport]) -> str:
    """The int8 rows: latency per engine, int8 over fp32, the error, artifact sizes."""
    lines = ["| model | edgec fp32 ms | edgec int8 ms | onnxruntime int8 ms | tflite int8 ms | "
             "int8 speed-up over edgec fp32 | edgec int8 / best int8 peer | SQNR edgec / ort / "
             "tflite int8 | artifact fp32 / int8 MB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        q = r.result("edgec", "int8")
        if q is None:
            continue
        f, o, t = r.result("edgec"), r.result("onnxruntime", "int8"), \
            r.result("tflite", "int8")

        def ms(e):
            return "not run" if e is None else (
                f"{e.stats.median_ms:.2f}" if e.status == "ok" and e.stats else "failed")
        up, peer = int8_speedup(r), ratio_to_best_peer(r, "int8")
        size = "-" if f is None or f.artifact_bytes is None else \
            f"{f.artifact_bytes / 1e6:.1f} / {q.artifact_bytes / 1e6:.1f}"
        sq = " / ".join("-" if e is None or e.sqnr_db is None else f"{e.sqnr_db:.1f}"
                        for e in (q, o, t))
        lines.append(f"| {Path(r.model).name} | {ms(f)} | {ms(q)} | {ms(o)} | {ms(t)} | "
                     + ("-" if up is None else f"{up:.2f}x") + " | "
                     + ("-" if peer is None else f"{peer:.2f}x") + f" | {sq} dB | {size} |")
    return "\n".join(lines) + "\n"


def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def markdown_table(reports: list[BenchReport]) -> str:
    """One row per model: median latency per engine, edgec's error, and the ratio."""
    lines = ["| model | GFLOP | edgec ms | onnxruntime ms | tflite ms | edgec / best peer | "
             "edgec max abs err vs ort | tflite max abs err vs ort |",
             "|---|---|---|---|---|---|---|---|"]
    for r in reports:
        cells = []
        for name in ("edgec", "onnxruntime", "tflite"):
            e = r.result(name)
            if e is None:
                cells.append("not run")
            elif e.status != "ok":  # the full reason is in results.json
                reason = e.reason.replace("|", "/").removesuffix(" (cached)")
                cells.append(reason if len(reason) <= 70 else reason[:67] + "...")
            else:
                cells.append(f"{e.stats.median_ms:.2f}")
        ratio = ratio_to_best_peer(r)
        errs = [_fmt((r.result(n) or EngineResult(n, "", "", "", 0)).max_abs_err, ".1e")
                for n in ("edgec", "tflite")]
        flops = f"{r.flops / 1e9:.3g}" if r.flops else "?"
        verdict = "-" if ratio is None else (
            f"{ratio:.2f}x ({'slower' if ratio > 1 else 'faster'})")
        lines.append(f"| {Path(r.model).name} | {flops} | " + " | ".join(cells)
                     + f" | {verdict} | {errs[0]} | {errs[1]} |")
    g = geomean([ratio_to_best_peer(r) for r in reports])
    if g is not None:
        lines.append("")
        lines.append(f"Geometric mean of edgec / best-peer latency: **{g:.2f}x** "
                     f"({'edgec slower' if g > 1 else 'edgec faster'}).")
    return "\n".join(lines) + "\n"


def plot(reports: list[BenchReport], path: Path) -> None:
    """Grouped bars of median latency (log scale) per model and engine, p90 as whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = ["edgec", "onnxruntime", "tflite"]
    colors = {"edgec": "#d95f02", "onnxruntime": "#1b9e77", "tflite": "#7570b3"}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(reports) + 2), 4.5))
    width = 0.8 / len(engines)
    for k, name in enumerate(engines):
        xs, ys, errs = [], [], []
        for i, r in enumerate(reports):
            e = r.result(name)
            if e is not None and e.status == "ok" and e.stats:
                xs.append(i + (k - 1) * width)
                ys.append(e.stats.median_ms)
                errs.append(max(0.0, e.stats.p90_ms - e.stats.median_ms))
            elif e is not None:
                ax.text(i + (k - 1) * width, 1.0, "n/a", rotation=90, ha="center",
                        va="bottom", fontsize=7, color=colors[name])
        ax.bar(xs, ys, width, yerr=[[0] * len(errs), errs], label=name, color=colors[name],
               capsize=2)
    ax.set_yscale("log")
    ax.set_ylabel("median latency, ms (log scale; whisker: p90)")
    ax.set_xticks(range(len(reports)))
    ax.set_xticklabels([Path(r.model).stem[:28] for r in reports], rotation=20, ha="right",
                       fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("edgec vs onnxruntime vs TFLite (lower is better)")
    first = reports[0]
    text = caption(first.machine, {"tvm": first.versions["apache-tvm"],
                                   "onnxruntime": first.versions["onnxruntime"]})
    fig.text(0.01, 0.01, f"{text}; {first.threads} threads", fontsize=6.5, ha="left")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
