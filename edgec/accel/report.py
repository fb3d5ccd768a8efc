"""``edgec inspect MODEL -t TARGET --offload`` as text and as a chart.

The report says per step what runs where (ops, MACs, share of the model's
MACs), why each operator left on the CPU is there, and the accelerator's
latency only as its toolchain's estimate with the configuration it assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

_BAR = 40


def _ops(counts: dict[str, int]) -> str:
    text = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in counts.items())
    return text if len(text) <= 60 else text[:57] + "..."


def _share(macs: int, total: int) -> str:
    return f"{100 * macs / total:.1f}%" if total else "-"


def split_bar(report: dict[str, Any], width: int = _BAR) -> str:
    """One line: the model's MACs in execution order, '#' on the accelerator, '.' on
    the CPU (each step at least one cell when it has MACs)."""
    total = report["summary"]["macs"] or 1
    cells = []
    for st in report["steps"]:
        n = round(width * st["macs"] / total) or (1 if st["macs"] else 0)
        cells.append(("." if st["device"] == "cpu" else "#") * n)
    return "".join(cells)


def render_offload(report: dict[str, Any], out) -> None:
    """Print the report to a rich console."""
    s = report["summary"]
    out.print(f"{escape(Path(report['model']).name)} on {escape(report['target'])}: "
              f"{escape(report['plugin'])} ({escape(report['description'])})")
    q = report.get("quantization")
    if q is not None:
        cal = q["calibration"]
        note = (" [yellow](random ranges: placement and estimates do not depend on them; "
                "give --quantize int8 --calibration DIR for accuracy)[/]"
                if cal.get("random") else "")
        out.print(f"  int8, calibrated on {cal['samples']} {cal['kind']} sample(s){note}")
    table = Table(title="the split, in execution order")
    for col in ("step", "device", "ops", "MACs", "share of MACs", "estimate"):
        table.add_column(col, justify="right" if col in ("MACs", "share of MACs") else "left")
    for i, st in enumerate(report["steps"], 1):
        est = st.get("estimate") or {}
        table.add_row(str(i), escape(st["device"]), escape(_ops(st["ops"]) or "(Q/DQ only)"),
                      f"{st['macs']:,}", _share(st["macs"], s["macs"]),
                      f"{est['seconds'] * 1e3:.3f} ms" if est.get("seconds") is not None
                      else "-")
    out.print(table)
    out.print(f"  [{split_bar(report)}]  # accelerator, . CPU (MACs in execution order)",
              markup=False)
    out.print(f"  {s['nodes_offloaded']} of {s['nodes']} ops and "
              f"{_share(s['macs_offloaded'], s['macs'])} of {s['macs']:,} MACs on the "
              f"accelerator, in {s['partitions']} partition(s); {s['cpu_steps']} CPU step(s)")
    if s.get("estimated_accelerator_seconds") is not None:
        out.print(f"  accelerator latency: {s['estimated_accelerator_seconds'] * 1e3:.3f} ms, "
                  f"{escape(s['estimate'])} (an estimate, not a measurement)")
    cpu = [p for p in report["placements"] if p["device"] == "cpu"]
    if cpu:
        out.print("ops left on the CPU, and why:")
        for p in cpu:
            out.print(f"  {escape(p['node'])}: {escape(p.get('reason', ''))}")
    for note in report.get("notes", []):
        out.print(f"  [yellow]note[/]: {escape(note)}")


def plot_offload(report: dict[str, Any], path: Path) -> None:
    """A bar per step (MACs, log scale), coloured by where it runs; PNG or SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = report["steps"]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(steps) + 3), 3.5))
    colours = ["#999999" if st["device"] == "cpu" else "#1f77b4" for st in steps]
    ax.bar(range(1, len(steps) + 1), [max(st["macs"], 1) for st in steps], color=colours)
    ax.set_yscale("log")
    ax.set_xlabel("step (execution order)")
    ax.set_ylabel("MACs")
    s = report["summary"]
    ax.set_title(f"{Path(report['model']).name} on {report['target']}: "
                 f"{_share(s['macs_offloaded'], s['macs'])} of MACs on the accelerator "
                 "(blue), CPU grey", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
