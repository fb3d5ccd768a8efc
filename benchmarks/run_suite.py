"""`make bench`: edgec vs onnxruntime vs TFLite over the fixed model suite.

Writes benchmarks/results.json (every engine's full report per model),
benchmarks/results.md (the table), benchmarks/chart.png, and replaces the
section between the bench markers in README.md with the table and chart.
Numbers are whatever this machine measures today, slower or faster.

    python benchmarks/run_suite.py [--only NAME ...] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main() -> int:
    from edgec.bench import BenchOptions, run_bench
    from edgec.bench.render import int8_markdown_table, markdown_table, plot
    from edgec.errors import EdgecError
    from edgec.fsutil import atomic_write
    from edgec.quantize import QuantizeOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = parser.parse_args()
    suite = tomllib.loads((HERE / "suite.toml").read_text())
    catalog = {m["name"]: m for m in tomllib.loads(
        (REPO / "models" / "catalog.toml").read_text())["model"]}
    names = args.only or suite["models"]
    int8 = suite.get("int8", {})
    reports = []
    for name in names:
        entry = catalog[name]
        print(f"== {name}", flush=True)
        quantize = None
        if name in int8:
            calib = int8[name]
            if calib != "random":
                calib = str(REPO / calib)
                if not Path(calib).is_dir():  # rendered text: benchmarks/accuracy makes it
                    sys.path.insert(0, str(HERE / "accuracy"))
                    import run_accuracy

                    run_accuracy.main(["--prepare-only"])
            quantize = QuantizeOptions(calibration=calib)
        options = BenchOptions(
            input_shapes={k: tuple(v) for k, v in entry["input_shapes"].items()},
            input_consts=dict(entry["input_consts"]), threads=args.threads,
            warmup=suite["warmup"], repeat=suite["repeat"], budget_s=suite["budget_s"],
            quantize=quantize)
        try:
            report = run_bench(REPO / entry["path"], options)
        except EdgecError as exc:
            print(f"edgec: error: {exc.message}", file=sys.stderr)
            return exc.exit_code
        report.model = entry["path"]
        for e in report.engines:
            ms = f"{e.stats.median_ms:.2f} ms" if e.stats else e.reason
            print(f"   {e.engine:12} {e.precision} {ms}", flush=True)
        reports.append(report)
    table = markdown_table(reports)
    if any(r.result("edgec", "int8") for r in reports):
        table += ("\nint8 (`--quantize int8`; onnxruntime runs quantize_static's own default "
                  "QDQ model (every op quantised, per-channel weights), TFLite onnx2tf's "
                  "integer model, both calibrated on the same samples; "
                  "inputs: a calibration sample, SQNR against onnxruntime fp32; "
                  + ", ".join(f"{n}: {'random calibration, speed only' if c == 'random' else c}"
                              for n, c in int8.items() if n in names)
                  + "):\n\n" + int8_markdown_table(reports))
    first = reports[0]
    m = first.machine
    cpu = (f"{m['cpu']} ({m['vendor']} family {m['family']} model {m['model']}; edgec's "
           f"host target {m['host_target']}; " if m.get("family") is not None
           else f"{m['cpu']} (")
    header = (f"Measured by `make bench` on {cpu}"
              f"{m['cores']} cores, {'/'.join(m['isa'])}), "
              f"{first.threads} threads for every engine, {first.machine['date'][:10]}; "
              f"edgec {first.versions['edgec']} (TVM {first.versions['apache-tvm']}), "
              f"onnxruntime {first.versions['onnxruntime']}, {first.versions['tflite']}. "
              "Each engine runs in a process of its own and the engines take turns in five "
              "rounds. Median latency over up to 100 runs or 10 s per engine; errors are "
              "the max "
              "absolute difference from onnxruntime fp32 on the same random inputs (the "
              "light models' Softmax is uniform, so theirs is 0 by construction). Timings on "
              "this shared 2-core VM move 10-40% between runs; compare ratios within a run.\n\n")
    with atomic_write(HERE / "results.json") as f:
        f.write(json.dumps([r.to_json() for r in reports], indent=2).encode())
    with atomic_write(HERE / "results.md") as f:
        f.write((header + table).encode())
    plot(reports, HERE / "chart.png")
    if not args.no_readme and not args.only:
        readme = REPO / "README.md"
        text = readme.read_text()
        if START in text and END in text:
            before, rest = text.split(START, 1)
            after = rest.split(END, 1)[1]
            block = f"{START}\n{header}{table}\n![benchmark chart](benchmarks/chart.png)\n{END}"
            with atomic_write(readme) as f:
                f.write((before + block + after).encode())
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
