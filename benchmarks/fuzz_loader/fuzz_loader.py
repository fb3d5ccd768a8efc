"""Coverage-guided fuzzing of edgec's model loader with atheris (libFuzzer for Python).

Each input is written as a model file and goes through the loading path a
compile and ``edgec inspect`` take before TVM: ``frontend.prepare.bind``
(size limits, protobuf parse, external-data checks, opset, onnx.checker with
full checks, then onnx_ir's deserialisation, the type checks, the refusals and
the input binding). edgec's own errors (EdgecError: one line, a documented
exit code) are the expected outcome for bad bytes; any other exception is a
finding, recorded once per kind under out/fuzz/findings (findings.py;
EDGEC_FUZZ_STRICT=1: libFuzzer stops and writes ``crash-<sha1>``).

    python benchmarks/fuzz_loader/fuzz_loader.py [libFuzzer flags] CORPUS_DIR [SEED_DIR]
    # e.g. -max_total_time=300 -rss_limit_mb=4096 -max_len=65536 \
    #      out/fuzz/loader out/fuzz/loader-seeds

``--replay FILE...`` runs inputs once without atheris and prints the traceback of
each finding (for triage).
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from findings import Recorder  # noqa: E402

#: what a model's external data may refer to inside the work folder (seeds.py's
#: "external" seed points at 432 bytes of w.bin)
EXTERNAL = {"w.bin": bytes(range(256)) * 2}
#: small limits: the fuzzer is after logic errors, not after 2 GiB allocations
MAX_BYTES = 8 << 20
MAX_NODES = 2000

_work = Path(tempfile.mkdtemp(prefix="edgec-fuzz-loader-", dir=os.environ.get("TMPDIR")))
for _name, _data in EXTERNAL.items():
    (_work / _name).write_bytes(_data)


def _imports():
    import atheris

    with atheris.instrument_imports(include=["edgec"]):
        from edgec.errors import EdgecError
        from edgec.frontend.binding import Bindings
        from edgec.frontend.prepare import bind
    return EdgecError, Bindings, bind


def one_input(data: bytes, EdgecError, Bindings, bind) -> None:
    path = _work / "model.onnx"
    path.write_bytes(data)
    try:
        bind(path, Bindings(), max_bytes=MAX_BYTES, max_nodes=MAX_NODES)
    except EdgecError as exc:
        msg = str(exc)
        if "\n" in msg.strip():  # edgec's promise: one line per error
            raise AssertionError(f"multi-line EdgecError: {msg!r}") from None


def replay(files: list[str]) -> int:
    from edgec.errors import EdgecError
    from edgec.frontend.binding import Bindings
    from edgec.frontend.prepare import bind

    bad = 0
    for f in files:
        try:
            one_input(Path(f).read_bytes(), EdgecError, Bindings, bind)
            print(f"{f}: ok")
        except Exception:
            bad += 1
            print(f"{f}: FINDING\n{traceback.format_exc()}")
    return 1 if bad else 0


def main() -> int:
    if "--replay" in sys.argv:
        return replay([a for a in sys.argv[1:] if a != "--replay"])
    import atheris

    EdgecError, Bindings, bind = _imports()
    recorder = Recorder("loader")

    def test(data: bytes) -> None:
        try:
            one_input(data, EdgecError, Bindings, bind)
        except Exception as exc:
            recorder.record(data, exc)

    atheris.Setup(sys.argv, test)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
