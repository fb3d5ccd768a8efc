"""Findings of a fuzz run: any exception that is not one of edgec's own errors.

libFuzzer stops at the first crash. For a bounded run that should find as
much as it can, a finding is instead recorded once per *kind* (exception
type plus the innermost frame in edgec, or in the library edgec called) and
the run goes on: ``FINDINGS/<target>-<kind>.bin`` holds the first input,
``.txt`` its traceback, and a ``#### FINDING`` line goes to stderr (libFuzzer
ends the process without Python's exit handlers, so there is no summary: list
the folder). EDGEC_FUZZ_STRICT=1 restores libFuzzer's behaviour
(raise: the run stops and libFuzzer writes ``crash-<sha1>``).
"""

from __future__ import annotations

import hashlib
import os
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STRICT = os.environ.get("EDGEC_FUZZ_STRICT") == "1"
FINDINGS = Path(os.environ.get("EDGEC_FUZZ_FINDINGS", REPO / "out" / "fuzz" / "findings"))


class Recorder:
    def __init__(self, target: str):
        self.target = target
        self.kinds: dict[str, int] = {}

    def kind(self, exc: BaseException) -> str:
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if "/edgec/" in f.filename]
        where = ours[-1] if ours else (frames[-1] if frames else None)
        deepest = frames[-1] if frames else None
        parts = [type(exc).__name__]
        for f in (where, deepest):
            if f is not None:
                parts.append(f"{Path(f.filename).name}:{f.name}")
        return "-".join(dict.fromkeys(parts))

    def record(self, data: bytes, exc: BaseException) -> None:
        if STRICT:
            raise exc
        kind = self.kind(exc)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if self.kinds[kind] > 1:
            return
        FINDINGS.mkdir(parents=True, exist_ok=True)
        stem = str(FINDINGS / f"{self.target}-{kind.replace('/', '_')}"[:200])
        Path(stem + ".bin").write_bytes(data)
        Path(stem + ".txt").write_text(
            f"target {self.target}, input sha1 {hashlib.sha1(data).hexdigest()}\n"
            + "".join(traceback.format_exception(exc)))
        print(f"\n#### FINDING {kind}: {type(exc).__name__}: "
              f"{str(exc).splitlines()[0][:200] if str(exc) else ''} -> {stem}.bin",
              file=sys.stderr, flush=True)
