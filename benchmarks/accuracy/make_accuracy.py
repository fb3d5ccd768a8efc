"""make accuracy: edgec int8 against float on PP-OCR, written into the README.

Writes the calibration data (run_accuracy.py --prepare-only), compiles det, rec
and cls with ``edgec compile --quantize int8`` on it (the defaults, and
``KEEP_FLOAT`` where a model has layers kept float), then runs the harness
with those artifacts against onnxruntime float and puts the table between the
README's accuracy markers.

    python benchmarks/accuracy/make_accuracy.py [--readme README.md] [--no-readme]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import run_accuracy

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: layers left float per model, chosen by 'edgec quant-report --max-drop' (see
#: benchmarks/accuracy/README.md); empty: every quantisable op is int8
KEEP_FLOAT: dict[str, tuple[str, ...]] = {}


def compile_all(work: Path, out: Path, keep: dict[str, tuple[str, ...]]) -> None:
    edgec = Path(sys.executable).parent / "edgec"
    for name, info in run_accuracy.MODELS.items():
        cmd = [str(edgec), "compile", str(info.path), "--input-shape",
               f"{info.input}={','.join(map(str, info.shape))}", "--quantize", "int8",
               "--calibration", str(work / "calib" / name), "-o", str(out / f"{name}.edgec")]
        for node in keep.get(name, ()):
            cmd += ["--keep-float", node]
        print("+", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", type=Path, default=REPO / "README.md")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args(argv)
    work = HERE / "work"
    out = work / "edgec"
    out.mkdir(parents=True, exist_ok=True)
    run_accuracy.main(["--prepare-only", "--workdir", str(work)])
    compile_all(work, out, KEEP_FLOAT)
    run = ["--edgec-artifacts", str(out), "--workdir", str(work)]
    if not args.no_readme:
        run += ["--readme", str(args.readme)]
    return run_accuracy.main(run)


if __name__ == "__main__":
    raise SystemExit(main())
