"""`make hostile`: run every hostile-input case through the real CLI and classify the outcome.

Each command runs as ``python -m edgec ...`` in a scratch copy of its case folder
(a few levels below the case's own scratch root, so a write through ``../..`` is
seen), under a wall-clock timeout and an address-space limit (and, as root, without
the capabilities that let root ignore file permissions, so a read-only folder is
one). A case ends well when it exits with a code its case allows: 0 with clean
output, or exactly one stderr line ``edgec: error: ...`` without a traceback or raw
terminal escapes, having written nothing but its declared outputs (none after a
failure; what an earlier command of the case made, a compile before a run, counts as
that command's), left nothing in TMPDIR and changed none of its inputs.

Writes benchmarks/hostile.md (inputs tried, counts per class, the cases that did not
end as expected, every case with its class and one-line message). The exit status is
1 when any case crashed, hung, hit an internal error, printed a traceback, left
partial or stray output, or could not be set up (``--strict``: any case that did not
end as expected). The corpus (benchmarks/hostile/corpus/, git-ignored) is built by
make_corpus.py when missing or made by another version of it.

    python benchmarks/hostile/run_hostile.py [--only REGEX] [--timeout S] [--mem SIZE]
        [--corpus DIR] [--rebuild] [--huge] [--ci] [--jobs N] [--report F.md]
        [--json F.json] [--trace] [--strict] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_CORPUS = HERE / "corpus"
DEFAULT_REPORT = REPO / "benchmarks" / "hostile.md"

#: exit codes the README documents (70: internal error, a bug)
DOCUMENTED = {0, 1, 2, 3, 4, 5, 6, 7, 70, 130}
#: worst first: a case takes the first class among its problems
SEVERITY = ["setup_failed", "hang", "crash", "traceback", "internal_error", "partial_output",
            "unclear_error", "wrong_code", "bad_output"]
CLASSES = ["ok", "clear_error", *SEVERITY, "skipped"]
#: classes that fail `make hostile` (with --strict: everything but ok, clear_error, skipped)
FATAL = {"setup_failed", "hang", "crash", "traceback", "internal_error", "partial_output"}
CONTROL = re.compile("[\x1b\x07\x08\x9b]")
#: files others leave in TMPDIR by design: onnxruntime's session-id file
TMP_ALLOWED = {".ses"}
HASH_LIMIT = 64 << 20  # bigger files (the sparse 64 GiB one) are compared by metadata only

# Runs in the child before edgec: limits, no core files, and (as root) no capabilities
# that bypass file permissions; then exec, so the limits cover edgec and nothing else.
LAUNCHER = r"""
import ctypes, os, resource, sys
mem, fsize = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
if fsize:
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
if os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP: gone after the exec
os.execv(sys.argv[3], sys.argv[3:])
"""


def parse_size(text: str) -> int:
    """``4G``, ``512M``, ``4GiB`` or bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", text.strip().lower())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text}")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def visible(text: str) -> str:
    """Control characters as escapes, so a report never carries them raw."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


# ---------------------------------------------------------------- files


def snapshot(root: Path, skip: set[Path] = frozenset()) -> dict[str, tuple]:
    """Every path under ``root`` with what identifies its content (no symlink followed),
    the folders in ``skip`` listed but not their content."""
    snap: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) in skip:
            dirnames[:] = []
            filenames = []
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                snap[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                digest = None
                if st.st_size <= HASH_LIMIT:
                    try:
                        digest = hashlib.sha256(p.read_bytes()).hexdigest()
                    except OSError:
                        digest = "unreadable"
                snap[rel] = ("file", st.st_ino, st.st_size, digest,
                             None if digest else st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                snap[rel] = ("dir", st.st_ino)
            else:
                snap[rel] = ("special", kind, st.st_ino, st.st_rdev)
    return snap


def file_problems(before: dict, after: dict, outputs: list[str], succeeded: bool) -> list[str]:
    """What a run wrote, changed or removed that it should not have."""
    allowed = {os.path.normpath(o) for o in outputs}
    parents = {str(Path(o).parent) for o in allowed} | {
        str(p) for o in allowed for p in Path(o).parents}
    problems = []
    for rel in sorted(set(after) - set(before)):
        if rel in parents and after[rel][0] == "dir":
            continue
        if rel in allowed:
            if not succeeded:
                problems.append(f"left {visible(rel)} after failing")
            continue
        problems.append(f"wrote {visible(rel)}, which is not an output")
    for rel in sorted(set(before) & set(after)):
        if before[rel] != after[rel] and rel not in allowed and before[rel][0] != "dir":
            problems.append(f"changed {visible(rel)} ({before[rel][0]} -> {after[rel][0]})")
        elif rel in allowed and before[rel][0] == "special" and before[rel] != after[rel]:
            problems.append(f"replaced {visible(rel)}, a device node or FIFO")
    for rel in sorted(set(before) - set(after)):
        problems.append(f"removed {visible(rel)}")
    return problems


def setup_case(case_dir: Path, ops: list[list]) -> str | None:
    """Make what git and copies cannot carry; returns why the case cannot run, if it cannot."""
    for op, *args in ops:
        p = case_dir / args[0]
        if op == "mkdir":
            p.mkdir(parents=True, exist_ok=True)
        elif op == "chmod":
            p.chmod(args[1])
        elif op == "symlink":
            link = case_dir / args[1]
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(args[0], link)
        elif op == "hardlink":
            dst = case_dir / args[1]
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(p, dst)
        elif op == "fifo":
            p.parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(p)
        elif op == "chardev_null":
            p.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 3))
            except PermissionError:
                return "cannot make a device node here (needs root)"
        elif op == "sparse":
            os.truncate(p, p.stat().st_size + args[2])
        else:
            raise ValueError(f"unknown setup op {op}")
    return None


def remove_tree(path: Path) -> None:
    def retry(func, p, _exc):
        os.chmod(os.path.dirname(p), 0o755)
        func(p)
    if path.exists():
        shutil.rmtree(path, onerror=retry)


# ---------------------------------------------------------------- running


class Runner:
    """Runs cases of one corpus with one interpreter, timeout and memory limit."""

    def __init__(self, corpus: Path, scratch: Path, *, python: str = sys.executable,
                 timeout: float = 120.0, mem: int = 4 << 30, trace: bool = False):
        self.corpus, self.scratch = corpus, scratch
        self.python, self.timeout, self.mem, self.trace = python, timeout, mem, trace

    def exec(self, argv: list[str], cwd: Path, env: dict, fsize: int = 0) -> dict:
        cmd = [self.python, "-I", "-S", "-c", LAUNCHER, str(self.mem), str(fsize), self.python,
               "-m", "edgec", *argv]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=self.timeout)
            hung = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            hung = True
        return {"argv": argv, "rc": proc.returncode, "hung": hung,
                "seconds": round(time.monotonic() - t0, 2),
                "stdout": out.decode("utf-8", "backslashreplace"),
                "stderr": err.decode("utf-8", "backslashreplace")}

    def env(self, envdir: Path) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("EDGEC_DEBUG", "COLUMNS")}
        for sub in ("tmp", "tuning"):
            (envdir / sub).mkdir(parents=True, exist_ok=True)
        env.update(TMPDIR=str(envdir / "tmp"), EDGEC_TUNING_DB=str(envdir / "tuning"),
                   EDGEC_NO_DOWNLOAD="1", PYTHONDONTWRITEBYTECODE="1")
        return env

    def paths(self, case: dict) -> tuple[Path, Path, Path]:
        """(root, case folder, env folder) of a case. The case folder, where its commands
        run, sits a few levels below the root, so a write through '../..' (a tar member,
        an output name) still lands inside the root, where it is seen."""
        root = self.scratch / "cases" / case["name"]
        return root, root / "d1" / "d2" / "d3" / "case", root / "env"

    def prepare(self, case: dict) -> tuple[Path, Path, Path]:
        root, case_dir, envdir = self.paths(case)
        remove_tree(root)
        case_dir.parent.mkdir(parents=True)
        shutil.copytree(self.corpus / case["name"], case_dir, symlinks=True)
        envdir.mkdir()
        return root, case_dir, envdir

    def run(self, case: dict) -> dict:
        result = {"name": case["name"], "category": case["class"], "why": case["why"],
                  "expect": case["expect"], "steps": [], "problems": []}
        if case.get("setup_error"):
            return self._finish(result, "setup_failed", [case["setup_error"]])
        try:
            return self._run(case, result)
        except Exception as exc:  # the harness' own failure, reported as the case's
            root, _, _ = self.paths(case)
            remove_tree(root)
            return self._finish(result, "setup_failed",
                                [f"harness: {type(exc).__name__}: {visible(str(exc))}"])

    def _run(self, case: dict, result: dict) -> dict:
        root, case_dir, envdir = self.prepare(case)
        why_not = setup_case(case_dir, case.get("setup", []))
        if why_not:
            remove_tree(root)
            return self._finish(result, "skipped", [why_not])
        env = self.env(envdir)
        skip = {case_dir, envdir / "tmp", envdir / "tuning"}
        outside_before = snapshot(root, skip=skip)
        before = snapshot(case_dir)
        outputs = case.get("outputs", [])
        allowed = case["expect"]["exit"]
        klass, problems, last, fs = "ok", [], None, []
        for i, argv in enumerate(case["commands"]):
            last = self.exec(argv, case_dir, env, case.get("limits", {}).get("fsize", 0))
            result["steps"].append(last)
            final = i == len(case["commands"]) - 1
            if last["rc"] == 0 and not final and not last["hung"]:
                # an earlier command that worked (compile before run): what it wrote is
                # judged as a success's; the next command is judged from here
                mid = snapshot(case_dir)
                fs += file_problems(before, mid, outputs, True)
                before = mid
                continue
            klass, problems = classify(last, allowed, case.get("checks", {}))
            break
        succeeded = last is not None and last["rc"] == 0 and not last["hung"]
        after = snapshot(case_dir)
        fs += file_problems(before, after, outputs, succeeded)
        fs += [f"outside the case folder: {p}" for p in
               file_problems(outside_before, snapshot(root, skip=skip), [], False)]
        leftovers = sorted(p.name for p in (envdir / "tmp").iterdir()
                           if p.name not in TMP_ALLOWED)
        if leftovers and klass not in ("hang", "crash"):
            fs.append(f"left {len(leftovers)} temp file(s) in TMPDIR: "
                      + ", ".join(visible(n) for n in leftovers[:3]))
        if fs:
            problems += fs
            if klass not in SEVERITY or SEVERITY.index("partial_output") < SEVERITY.index(klass):
                klass = "partial_output"
        remove_tree(root)
        if self.trace and klass not in ("ok", "clear_error", "hang", "crash") and last \
                and last["rc"] not in (0, None):
            result["where"] = self.where(case, last["argv"])
        return self._finish(result, klass, problems)

    def where(self, case: dict, argv: list[str]) -> str:
        """Rerun a failed command with --debug in a fresh copy of its case (after the
        earlier commands): where in edgec it failed."""
        root, case_dir, envdir = self.prepare(case)
        setup_case(case_dir, case.get("setup", []))
        env, fsize = self.env(envdir), case.get("limits", {}).get("fsize", 0)
        for earlier in case["commands"][: case["commands"].index(argv)]:
            self.exec(earlier, case_dir, env, fsize)
        dbg = self.exec(["--debug", *argv], case_dir, env, fsize)
        remove_tree(root)
        return where(dbg["stderr"])

    @staticmethod
    def _finish(result: dict, klass: str, problems: list[str]) -> dict:
        result["class"] = klass
        result["problems"] = problems
        last = result["steps"][-1] if result["steps"] else None
        result["command"] = ["edgec", *last["argv"]] if last else []
        result["exit"] = last["rc"] if last else None
        lines = [ln for ln in (last["stderr"] if last else "").splitlines() if ln.strip()]
        result["stderr_first"] = visible(lines[0]) if lines else ""
        outs = [ln for ln in (last["stdout"] if last else "").splitlines() if ln.strip()]
        result["stdout_first"] = visible(outs[0]) if outs else ""
        result["seconds"] = round(sum(s["seconds"] for s in result["steps"]), 2)
        return result


def classify(step: dict, allowed: list[int], checks: dict) -> tuple[str, list[str]]:
    """The class of one command's outcome and what is wrong with it."""
    rc, err, out = step["rc"], step["stderr"], step["stdout"]
    if step["hung"]:
        return "hang", [f"no exit within the timeout ({step['seconds']:.0f} s)"]
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return "crash", [f"killed by {name}"]
    problems: list[tuple[str, str]] = []
    if "Traceback (most recent call last)" in err:
        problems.append(("traceback", "a Python traceback on stderr"))
    if rc == 70:
        problems.append(("internal_error", "exit 70 (internal error)"))
    if rc not in DOCUMENTED:
        problems.append(("wrong_code", f"exit {rc} is not a documented code"))
    if rc == 0:
        if CONTROL.search(out) or CONTROL.search(err):
            problems.append(("bad_output", "raw terminal control bytes in the output"))
        if re.search(r"^\S.*\b\w+Warning: ", err, re.M):
            problems.append(("bad_output", "a Python warning on stderr"))
        for needle in checks.get("stdout_contains", []):
            if needle not in out:
                problems.append(("bad_output", f"stdout lacks {visible(needle)!r}"))
        if 0 not in allowed:
            problems.append(("wrong_code", f"exit 0, expected one of {allowed}"))
    else:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if len(lines) != 1:
            problems.append(("unclear_error", f"{len(lines)} lines on stderr, not one"))
        if not lines or not (lines[0].startswith("edgec: error: ") or rc == 70):
            problems.append(("unclear_error", "stderr does not start with 'edgec: error: '"))
        if CONTROL.search(err):
            problems.append(("unclear_error", "raw terminal control bytes on stderr"))
        if rc not in allowed and rc in DOCUMENTED and rc != 70:
            problems.append(("wrong_code", f"exit {rc}, expected one of {allowed}"))
    if not problems:
        return ("ok" if rc == 0 else "clear_error"), []
    klass = min((k for k, _ in problems), key=SEVERITY.index)
    return klass, [p for _, p in problems]


def where(debug_stderr: str) -> str:
    """file:function of the innermost edgec frame of a --debug traceback, and the exception."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', debug_stderr)
    ours = [(f, ln, fn) for f, ln, fn in frames if "/edgec/" in f and "/.venv/" not in f]
    lines = [ln for ln in debug_stderr.strip().splitlines() if ln.strip()]
    exc = visible(lines[-1].strip())[:160] if lines else ""
    if not ours:
        return exc
    f, ln, fn = ours[-1]
    return f"{f[f.rindex('/edgec/') + 1:]}:{ln} {fn}: {exc}"


def generator_digest() -> str:
    """sha256 of make_corpus.py, which cases.json records: a corpus made by another
    version of the script is rebuilt rather than run."""
    return hashlib.sha256((HERE / "make_corpus.py").read_bytes()).hexdigest()


def load_corpus(corpus: Path, *, rebuild: bool, huge: bool, python: str,
                ci: bool = False) -> dict:
    index = corpus / "cases.json"
    doc = json.loads(index.read_text()) if index.exists() else None
    stale = doc is not None and doc.get("generator_sha256") != generator_digest()
    if stale:
        print(f"{corpus} was made by another make_corpus.py: rebuilding it", file=sys.stderr)
    partial = doc is not None and (doc.get("ci", False) != ci or doc.get("only"))
    if rebuild or doc is None or stale or partial or (huge and not doc.get("huge")):
        sys.path.insert(0, str(HERE))
        import make_corpus

        print(f"building the corpus in {corpus} ...", file=sys.stderr)
        doc = make_corpus.write_corpus(corpus, huge=huge, python=python, ci=ci)
    return doc


def run_all(corpus: Path, *, only: str | None = None, timeout: float = 120.0,
            mem: int = 4 << 30, jobs: int | None = None, python: str = sys.executable,
            huge: bool = False, trace: bool = False, scratch: Path | None = None,
            progress=None) -> list[dict]:
    """Run the corpus' cases (those matching ``only``); one result dict per case."""
    doc = json.loads((corpus / "cases.json").read_text())
    cases = [c for c in doc["cases"] if (huge or not c.get("huge"))
             and (only is None or re.search(only, c["name"]))]
    cases.sort(key=lambda c: (not c["name"].startswith("size-"), c["name"]))  # slow ones first
    own = scratch is None
    scratch = Path(tempfile.mkdtemp(prefix="edgec-hostile-")) if own else scratch
    runner = Runner(corpus, scratch, python=python, timeout=timeout, mem=mem, trace=trace)

    def one(case: dict) -> dict:
        r = runner.run(case)
        if progress:
            progress(r)
        return r

    try:
        with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
            results = list(pool.map(one, cases))
    finally:
        if own:
            remove_tree(scratch)
    return sorted(results, key=lambda r: r["name"])


# ---------------------------------------------------------------- reporting


def counts(results: list[dict]) -> dict[str, int]:
    return {k: sum(r["class"] == k for r in results) for k in CLASSES}


def md_cell(text: str, limit: int = 240) -> str:
    text = visible(text)
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return text.replace("|", "\\|").replace("`", "'")


def markdown(results: list[dict], meta: dict) -> str:
    c = counts(results)
    commands = sum(len(r["steps"]) for r in results)
    lines = [
        "# edgec on hostile inputs",
        "",
        f"`make hostile` (benchmarks/hostile/run_hostile.py), {meta['date']}: edgec "
        f"{meta['edgec']} on {meta['host']}; each command under a {meta['timeout']:g} s "
        f"timeout and a {meta['mem'] / 2**30:g} GiB address-space limit; "
        f"{meta['wall_seconds']:g} s wall, {meta['cpu_seconds']:g} s CPU.",
        "",
        f"Inputs tried: **{len(results)}** cases ({commands} commands). Clear errors: "
        f"**{c['clear_error']}**, ran fine: **{c['ok']}**. Crashes: **{c['crash']}** (must "
        f"be 0), hangs: **{c['hang']}** (must be 0), internal errors: "
        f"**{c['internal_error']}**, tracebacks: **{c['traceback']}**, partial or stray "
        f"output: **{c['partial_output']}**.",
        "",
        "| class | cases | meaning |",
        "|---|---:|---|",
    ]
    meaning = {
        "ok": "exit 0 where the input is valid, clean output",
        "clear_error": "an allowed exit code and one clean `edgec: error:` line",
        "setup_failed": "a fixture artifact did not compile",
        "hang": "no exit within the timeout (killed)",
        "crash": "killed by a signal (SIGSEGV, SIGABRT, SIGKILL from the kernel)",
        "traceback": "a Python traceback on stderr",
        "internal_error": "exit 70",
        "partial_output": "a file left after a failure, written outside the outputs, or an "
                          "input changed",
        "unclear_error": "an allowed-looking failure whose stderr is not one clean line",
        "wrong_code": "a documented exit code the case does not allow (0 included)",
        "bad_output": "exit 0 with raw escapes or a mangled name in the output",
        "skipped": "cannot be set up on this machine",
    }
    lines += [f"| {k} | {c[k]} | {meaning[k]} |" for k in CLASSES if c[k] or k in FATAL]
    bad = [r for r in results if r["class"] not in ("ok", "clear_error", "skipped")]
    lines += ["", f"## Cases that did not end as expected ({len(bad)})", ""]
    if bad:
        traced = any(r.get("where") for r in bad)
        heads = ["case", "class", "command", "exit (allowed)", "stderr, first line", "problems"]
        heads += ["where (--debug)"] if traced else []
        lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        for r in sorted(bad, key=lambda r: (SEVERITY.index(r["class"]), r["name"])):
            exit_ = "-" if r["exit"] is None else str(r["exit"])
            row = [r["name"], r["class"], "`" + md_cell(shlex.join(r["command"]), 160) + "`",
                   f"{exit_} ({','.join(map(str, r['expect']['exit']))})",
                   md_cell(r["stderr_first"]), md_cell("; ".join(r["problems"]))]
            if traced:
                row.append(md_cell(r.get("where", ""), 200))
            lines.append("| " + " | ".join(row) + " |")
    else:
        lines.append("None.")
    skipped = [r for r in results if r["class"] == "skipped"]
    if skipped:
        lines += ["", "Skipped: " + ", ".join(f"{r['name']} ({r['problems'][0]})"
                                              for r in skipped)]
    cats = sorted({r["category"] for r in results})
    lines += ["", "## Inputs tried, by kind", "", "| kind | cases | " + " | ".join(
        k for k in CLASSES if c[k]) + " |", "|---|---:|" + "---:|" * sum(1 for k in CLASSES
                                                                   if c[k])]
    for cat in cats:
        rs = [r for r in results if r["category"] == cat]
        lines.append(f"| {cat} | {len(rs)} | " + " | ".join(
            str(sum(r["class"] == k for r in rs)) for k in CLASSES if c[k]) + " |")
    lines += ["", f"## Every case ({len(results)})", "",
              "The message is the first line on stderr (for a run that worked and printed "
              "nothing there, the first line on stdout).", "",
              "| case | kind | class | exit (allowed) | seconds | message |",
              "|---|---|---|---|---:|---|"]
    for r in results:
        exit_ = "-" if r["exit"] is None else str(r["exit"])
        msg = r["stderr_first"] or (r.get("stdout_first") if r["exit"] == 0 else "") or ""
        if not msg and r["problems"]:
            msg = r["problems"][0]
        lines.append(f"| {r['name']} | {r['category']} | {r['class']} | {exit_} "
                     f"({','.join(map(str, r['expect']['exit']))}) | {r['seconds']:g} | "
                     f"{md_cell(msg, 200)} |")
    return "\n".join(lines) + "\n"


def edgec_version(python: str) -> str:
    res = subprocess.run([python, "-c", "import edgec, os; print(edgec.__version__, "
                          "os.path.dirname(edgec.__file__))"], capture_output=True, text=True)
    return res.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", metavar="REGEX", help="run the cases whose name matches")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per command")
    p.add_argument("--mem", type=parse_size, default=parse_size("4G"),
                   help="address-space limit per command (RLIMIT_AS), e.g. 4G")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--rebuild", action="store_true", help="regenerate the corpus first")
    p.add_argument("--huge", action="store_true", help="include the 10^6-node cases")
    p.add_argument("--ci", action="store_true",
                   help="the CI-sized corpus (tests/test_hostile.py's): no NOT_IN_CI cases")
    p.add_argument("--jobs", type=int, default=None, help="cases at once (default: CPUs)")
    p.add_argument("--python", default=sys.executable, help="interpreter that runs edgec")
    p.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="markdown report")
    p.add_argument("--json", type=Path, default=None, help="also write every result as JSON")
    p.add_argument("--trace", action="store_true",
                   help="rerun each unexpected failure with --debug and name where it fails")
    p.add_argument("--strict", action="store_true",
                   help="fail on any case that did not end as expected, not only fatal ones")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR",
                   help="run in DIR and keep it (default: a temp folder, removed)")
    args = p.parse_args(argv)

    load_corpus(args.corpus, rebuild=args.rebuild, huge=args.huge, python=args.python,
                ci=args.ci)

    def progress(r: dict) -> None:
        mark = "" if r["class"] in ("ok", "clear_error") else f"  <- {r['problems'][:1]}"
        print(f"{r['class']:>14}  {r['name']}  ({r['seconds']:.1f} s){visible(mark)}",
              file=sys.stderr, flush=True)

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    t0, cpu0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    results = run_all(args.corpus, only=args.only, timeout=args.timeout, mem=args.mem,
                      jobs=args.jobs, python=args.python, huge=args.huge, trace=args.trace,
                      scratch=args.keep, progress=progress)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    meta = {"wall_seconds": round(time.monotonic() - t0, 1),
            "cpu_seconds": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1),
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "edgec": edgec_version(args.python), "host": f"{platform.node()} "
            f"{platform.machine()}, {os.cpu_count()} CPUs", "timeout": args.timeout,
            "mem": args.mem}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(markdown(results, meta))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "counts": counts(results),
                                         "results": results}, indent=1))
    c = counts(results)
    print(f"{len(results)} cases: " + ", ".join(f"{k} {v}" for k, v in c.items() if v)
          + f"; report in {args.report}")
    failing = FATAL if not args.strict else set(SEVERITY)
    return 1 if any(c[k] for k in failing) else 0


if __name__ == "__main__":
    sys.exit(main())
