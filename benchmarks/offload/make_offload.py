"""make offload: how each real model splits for the bundled Ethos-U targets.

For every real model of models/catalog.toml and every npu/ target, the
partitioner and Vela run exactly as `edgec inspect MODEL -t TARGET --offload`
would (calibration on random data: placement and Vela's estimates do not
depend on the ranges), and benchmarks/offload.md gets one row each: the
share of ops and MACs on the NPU, partitions, Vela's estimated NPU time, and
the most common reasons ops stay on the CPU. Estimates, never measurements:
no Ethos-U is reachable from the machine that runs this.

    python benchmarks/offload/make_offload.py [--out benchmarks/offload.md]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import time
import tomllib
from pathlib import Path

import edgec
from edgec.target_registry import load_targets

REPO = Path(__file__).resolve().parents[2]


def _rows(models, targets):
    for entry in models:
        path = REPO / entry["path"]
        if not path.exists():
            print(f"skip {entry['name']}: {path} not fetched (make models)")
            continue
        for target in targets:
            t0 = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):
                r = edgec.offload_report(
                    path, target,
                    input_shapes={k: tuple(v) for k, v in entry["input_shapes"].items()},
                    input_consts=dict(entry.get("input_consts", {})))
            yield entry["name"], target, r, time.perf_counter() - t0


def _reasons(report, top: int = 3) -> str:
    counts = collections.Counter(p["reason"] for p in report["placements"]
                                 if p["device"] == "cpu")
    return "; ".join(f"{n}x {reason}" for reason, n in counts.most_common(top)) or "none"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "offload.md")
    args = ap.parse_args()
    catalog = tomllib.loads((REPO / "models" / "catalog.toml").read_text())["model"]
    models = [m for m in catalog if m["origin"] == "pypi"]
    targets = sorted(n for n, t in load_targets().items()
                     if t.accelerator and t.accelerator["plugin"] == "ethos-u")
    lines = ["# Ethos-U offload of the real models", "",
             "Written by `make offload` (benchmarks/offload/make_offload.py). Per model "
             "and target: the share of compute ops and of MACs edgec places on the NPU, "
             "its partitions, **Vela's estimated** NPU time for them (its configuration "
             "is the target file's; an estimate, not a measurement: no Ethos-U was "
             "reachable), and the commonest reasons ops stay on the CPU. Calibration: "
             "random data (placement and estimates do not depend on the ranges).", "",
             "| model | target | ops on NPU | MACs on NPU | partitions | Vela estimate | "
             "commonest reasons for the CPU | s |", "|---|---|---|---|---|---|---|---|"]
    for name, target, r, secs in _rows(models, targets):
        s = r["summary"]
        est = s.get("estimated_accelerator_seconds")
        lines.append(f"| {name} | {target} | {s['nodes_offloaded']}/{s['nodes']} | "
                     f"{100 * s['macs_share_offloaded']:.1f}% | {s['partitions']} | "
                     f"{est * 1e3:.2f} ms | {_reasons(r)} | {secs:.0f} |"
                     if est is not None else
                     f"| {name} | {target} | {s['nodes_offloaded']}/{s['nodes']} | "
                     f"{100 * s['macs_share_offloaded']:.1f}% | {s['partitions']} | - | "
                     f"{_reasons(r)} | {secs:.0f} |")
        print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
