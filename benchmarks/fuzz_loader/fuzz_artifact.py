"""Coverage-guided fuzzing of edgec's artifact reader with atheris.

Each input's first byte picks how the rest is used:

- 0 (raw): the bytes are an .edgec file;
- 1 (manifest): the bytes are manifest.json, wrapped in a well-formed archive
  whose member hashes match, so the fuzzer spends its time on the manifest's
  schema rather than on tar headers and hashes;
- 2 (signed manifest): as 1, signed by a key the run trusts, read under that
  trust (the path a device with --trust takes).

The artifact then goes through everything that reads it without loading its
library (the fuzzer never runs the bytes as code): ``read_verified`` with
extraction, ``Artifact`` and its properties, the input checks of a run
(``checked_inputs`` on arrays of the manifest's shapes, when small), the
C bundle's tensor table (``model_io``) and ``edgec inspect`` (text and JSON)
through the CLI in-process, whose exit code must not be 70 (internal error).
EdgecError is the expected outcome for bad bytes; anything else is a finding
(findings.py).

    python benchmarks/fuzz_loader/fuzz_artifact.py [libFuzzer flags] CORPUS_DIR [SEED_DIR]
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from findings import Recorder  # noqa: E402

LIBRARY_BYTES = b"\x7fELF\x02\x01\x01" + bytes(57)
#: arrays for the input checks are made only for manifests this small
MAX_FEED_BYTES = 1 << 20

_work = Path(tempfile.mkdtemp(prefix="edgec-fuzz-artifact-", dir=os.environ.get("TMPDIR")))


class Target:
    """The artifact target; ``instrument`` (under atheris) adds coverage to edgec's code."""

    def __init__(self, instrument: bool = True):
        if instrument:
            import atheris

            context = atheris.instrument_imports(include=["edgec"])
        else:
            context = contextlib.nullcontext()
        with context:
            import edgec.artifact as artifact
            import edgec.bundle.writer as writer
            import edgec.cli as cli
            import edgec.runtime.inputs as inputs
            import edgec.signing as signing
            import edgec.tensors as tensors
            from edgec.errors import EdgecError
        self.artifact, self.writer, self.cli, self.inputs = artifact, writer, cli, inputs
        self.tensors, self.EdgecError = tensors, EdgecError
        keydir = _work / "keys"
        keydir.mkdir(exist_ok=True)
        priv, pub, _ = signing.generate_key(keydir / "fuzz")
        self.key = signing.load_private_key(priv)
        self.trust = signing.load_trust([pub])
        self.lib = _work / "lib.so"
        self.lib.write_bytes(LIBRARY_BYTES)

    def wrap(self, manifest: bytes, sign: bool) -> Path:
        """An archive holding ``manifest`` and a library it declares correctly (when the
        manifest is a JSON object; otherwise as is)."""
        import json

        a = self.artifact
        try:
            m = json.loads(manifest)
        except (ValueError, RecursionError):
            m = None
        if isinstance(m, dict):
            m.setdefault("format", a.FORMAT)
            m.setdefault("format_version", a.FORMAT_VERSION)
            m.setdefault("members", {a.LIBRARY: {"sha256": a.sha256_file(self.lib),
                                                 "bytes": len(LIBRARY_BYTES)}})
            manifest = json.dumps(m).encode()
        path = _work / "a.edgec"
        a._write_tar(path, manifest, {a.LIBRARY: self.lib} if isinstance(m, dict) else {},
                     self.key if sign else None)
        return path

    def one_input(self, data: bytes) -> None:
        if not data:
            return
        mode, body = data[0] % 3, data[1:]
        if mode == 0:
            path = _work / "a.edgec"
            path.write_bytes(body)
        else:
            path = self.wrap(body, sign=mode == 2)
        trust = self.trust if mode == 2 else None
        out = _work / "x"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        try:
            self.read(path, out, trust)
        except self.EdgecError as exc:
            if "\n" in str(exc).strip():
                raise AssertionError(f"multi-line EdgecError: {str(exc)!r}") from None
        self.inspect(path)

    def read(self, path: Path, out: Path, trust) -> None:
        a = self.artifact
        a.read_verified(path, extract_to=out, trust=trust)
        art = a.Artifact(path, trust=trust)
        repr(art)
        ins, outs = art.inputs, art.outputs
        art.input_bounds  # noqa: B018 - the property is what is fuzzed
        self.writer.model_io(art.manifest)
        self.inputs.index_extents(art.manifest)
        sizes = [math.prod(s.shape) * 8 for s in [*ins, *outs]]
        if sum(sizes) <= MAX_FEED_BYTES:
            feeds = self.tensors.random_inputs(ins, int_bounds=art.input_bounds)
            self.inputs.checked_inputs(path, art.manifest, feeds)

    def inspect(self, path: Path) -> None:
        for extra in ([], ["--json"]):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                code = self.cli.main(["inspect", str(path), *extra])
            if code == self.cli.EXIT_INTERNAL:
                raise AssertionError(f"edgec inspect {' '.join(extra)} exited 70: "
                                     + buf.getvalue().strip()[-300:])


def replay(files: list[str]) -> int:
    t = Target(instrument=False)
    bad = 0
    for f in files:
        try:
            t.one_input(Path(f).read_bytes())
            print(f"{f}: ok")
        except Exception:
            bad += 1
            print(f"{f}: FINDING\n{traceback.format_exc()}")
    return 1 if bad else 0


def main() -> int:
    if "--replay" in sys.argv:
        return replay([a for a in sys.argv[1:] if a != "--replay"])
    import atheris

    t = Target()
    recorder = Recorder("artifact")

    def test(data: bytes) -> None:
        try:
            t.one_input(data)
        except Exception as exc:
            recorder.record(data, exc)

    atheris.Setup(sys.argv, test)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
