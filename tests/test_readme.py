"""Every code block of README.md and docs/*.md works as written.

- ```sh blocks run with ``bash`` (``set -e -o pipefail``) and ```python blocks with
  the venv's Python, each in a scratch directory laid out like the checkout
  (symlinks to its files, its own ``out/``), with ``.venv/bin`` first on PATH;
- ```toml blocks are target files: parsed, then used for a compile;
- a block the test suite cannot run carries ``<!-- not run by tests: REASON -->``
  on the line before its fence; NOT_RUN below lists them, so adding one is a
  visible decision;
- relative links and their #anchors resolve, and the API reference
  (``make docs``) documents every public name.

Tiers, decided from the block's text: every shell and Python block is a
``compile`` test; those that use the real models, ``edgec bench`` or
``edgec tune`` are ``slow``; those that build or run for ARM are ``cross``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgec.target_registry import parse_target_file

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
VENV = REPO / ".venv"

#: Languages whose blocks run; "" and "text" are diagrams and output, never code.
RUN_LANGS = {"sh": "sh", "bash": "sh", "python": "python", "toml": "toml"}
TEXT_LANGS = {"", "text"}
#: (file, first line of the block) of every block marked not-run, with why it cannot run.
NOT_RUN = {
    ("README.md", "make test"): "the test suite itself",
    ("README.md", "python3 -m venv ~/edgec-env"): "downloads from PyPI; tests/test_install.py "
    "installs the built wheel into a clean venv offline",
    ("README.md", "# on the board"): "needs a Raspberry Pi and PyPI; test_device.py serves "
    "from exactly that install's distributions",
    ("README.md", "# on the phone, in Termux"): "needs an Android phone with Termux and adb",
}
SLOW = ("models/real", "edgec bench", "edgec tune")
CROSS = ("--target arm", "-t arm", "qemu-aarch64", "edgec bundle")
#: Checkout entries the scratch directory does not link: git, its own out/ and venv.
UNLINKED = {".git", ".venv", "out", ".pytest_cache", ".ruff_cache"}

MARKER = re.compile(r"^<!--\s*not run by tests\b(.*?)-->\s*$")
FENCE = re.compile(r"^```([\w+-]*)\s*$")


@dataclass(frozen=True)
class Block:
    file: str  # relative to the checkout
    line: int  # of the opening fence
    lang: str
    code: str
    not_run: str | None = None  # the marker's reason ("" when the marker gives none)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def first_line(self) -> str:
        return next((ln.strip() for ln in self.code.splitlines() if ln.strip()), "")


def parse(path: Path) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a Markdown file, and problems with its not-run markers."""
    rel = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name
    lines = path.read_text().splitlines()
    blocks, problems = [], []
    marker: tuple[int, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARKER.match(line.strip())
        if m:
            if marker is not None:
                problems.append(f"{rel}:{marker[0]}: not-run marker not followed by a fence")
            reason = m.group(1).strip()
            if not reason.startswith(":") or not reason[1:].strip():
                problems.append(f"{rel}:{i + 1}: not-run marker without a reason; write "
                                "<!-- not run by tests: REASON -->")
            marker = (i + 1, reason[1:].strip() if reason.startswith(":") else "")
            i += 1
            continue
        f = FENCE.match(line)
        if f:
            start = i
            i += 1
            body = []
            while i < len(lines) and lines[i].rstrip() != "```":
                body.append(lines[i])
                i += 1
            blocks.append(Block(rel, start + 1, f.group(1), "\n".join(body) + "\n",
                                marker[1] if marker else None))
            marker = None
        elif line.strip() and marker is not None:
            problems.append(f"{rel}:{marker[0]}: not-run marker not followed by a fence")
            marker = None
        i += 1
    if marker is not None:
        problems.append(f"{rel}:{marker[0]}: not-run marker not followed by a fence")
    return blocks, problems


def all_blocks() -> list[Block]:
    return [b for path in DOCS for b in parse(path)[0]]


def _marks(block: Block) -> list:
    marks = []
    if block.lang in ("sh", "bash", "python"):
        marks.append(pytest.mark.compile)
        if any(s in block.code for s in SLOW):
            marks.append(pytest.mark.slow)
    if any(s in block.code for s in CROSS):
        marks.append(pytest.mark.cross)
    return marks


def _params(langs: set[str]) -> list:
    return [pytest.param(b, id=b.id, marks=_marks(b))
            for b in all_blocks() if RUN_LANGS.get(b.lang) in langs]


# --------------------------------------------------------------------------- structure


def test_every_not_run_marker_has_a_reason_and_a_block():
    problems = [p for path in DOCS for p in parse(path)[1]]
    assert not problems, "\n".join(problems)


def test_markers_are_checked(tmp_path: Path):
    """The checks above catch a marker without a reason and one that marks no block."""
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- not run by tests: too slow -->\n```sh\nsleep 1h\n```\n\n"
                   "<!-- not run by tests -->\n```sh\ntrue\n```\n\n"
                   "<!-- not run by tests: orphan -->\nSome text.\n\n```python\nprint(1)\n```\n")
    blocks, problems = parse(doc)
    assert [(b.line, b.lang, b.not_run) for b in blocks] == [
        (2, "sh", "too slow"), (7, "sh", ""), (14, "python", None)]
    assert problems == ["doc.md:6: not-run marker without a reason; write "
                        "<!-- not run by tests: REASON -->",
                        "doc.md:11: not-run marker not followed by a fence"]


def test_not_run_blocks_are_the_listed_ones():
    """NOT_RUN is the whole list; a marker nobody listed (or a listed block now run) fails."""
    marked = {(b.file, b.first_line): b.not_run for b in all_blocks() if b.not_run is not None}
    assert set(marked) == set(NOT_RUN), (
        f"marked in the docs: {sorted(marked)}; listed in NOT_RUN: {sorted(NOT_RUN)}")


def test_every_block_has_a_known_language():
    """A block in a language this test ignores (```shell, ```py) would never run."""
    unknown = [f"{b.id}: ```{b.lang}" for b in all_blocks()
               if b.lang not in RUN_LANGS and b.lang not in TEXT_LANGS]
    assert not unknown, "\n".join(unknown)


def test_readme_has_blocks_of_each_kind():
    langs = {RUN_LANGS.get(b.lang) for b in parse(REPO / "README.md")[0]}
    assert {"sh", "python", "toml"} <= langs


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as '-'."""
    text = re.sub(r"`|\*\*?|\[|\]\([^)]*\)", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    out, seen = set(), {}
    fenced = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("#"):
            continue
        slug = _slug(line.lstrip("#"))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_relative_links_and_anchors_resolve():
    """Links between the README and docs/ (and to benchmarks/chart.png) point somewhere."""
    link = re.compile(r"\]\(([^)\s]+)\)")
    bad = []
    for path in DOCS:
        text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
        for target in link.findall(text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                bad.append(f"{path.name}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                bad.append(f"{path.name}: {target}: no heading with that anchor")
    assert not bad, "\n".join(bad)


def test_bench_markers_appear_once():
    """benchmarks/run_suite.py replaces the text between the first start and end marker."""
    text = (REPO / "README.md").read_text()
    for marker in ("<!-- bench:start -->", "<!-- bench:end -->"):
        assert text.count(marker) == 1, marker
    inside = text.split("<!-- bench:start -->")[1].split("<!-- bench:end -->")[0]
    assert "![benchmark chart](benchmarks/chart.png)" in inside


# --------------------------------------------------------------------------- TOML blocks


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in all_blocks()
                                   if b.lang == "toml"])
def test_toml_block_is_a_valid_target_file(block: Block, tmp_path: Path):
    path = tmp_path / "mine" / "device.toml"
    path.parent.mkdir()
    path.write_text(block.code)
    target = parse_target_file(path, "mine/device")
    assert target.description and target.kind


@pytest.mark.compile
@pytest.mark.cross
@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in all_blocks()
                                   if b.lang == "toml"])
def test_toml_block_compiles_a_model(block: Block, tmp_path: Path, monkeypatch):
    """The file is also accepted where it is used: TVM takes its [tvm] table, and its
    cpu_flags declare every feature LLVM may use for its mcpu/mattr."""
    import edgec

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "device.toml").write_text(block.code)
    monkeypatch.setenv("EDGEC_TARGET_PATH", str(tmp_path))
    art = edgec.compile(REPO / "models" / "tiny_cnn.onnx", target="mine/device",
                        output=tmp_path / "out.edgec")
    assert art.target["name"] == "mine/device"


# --------------------------------------------------------------------------- shell / Python


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A directory that looks like the checkout: its files as symlinks, its own out/.

    .venv is a real folder of symlinks to the checkout venv's contents with a fresh
    .installed stamp, so a README `make` target sees the venv as up to date and never
    reinstalls into the shared one.
    """
    if not (VENV / "bin" / "python").exists():
        pytest.skip("needs the checkout's .venv (make setup)")
    work = tmp_path / "checkout"
    work.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in UNLINKED:
            (work / entry.name).symlink_to(entry)
    (work / ".venv").mkdir()
    for entry in VENV.iterdir():
        if entry.name != ".installed":
            (work / ".venv" / entry.name).symlink_to(entry)
    (work / ".venv" / ".installed").touch()
    return work


def _run(block: Block, work: Path, argv: list[str], timeout: float) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{work / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("EDGEC_NO_DOWNLOAD", "1")
    try:
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.id}: still running after {timeout:.0f} s:\n{block.code}"
                    f"\n--- stdout\n{exc.stdout}\n--- stderr\n{exc.stderr}")
    if proc.returncode != 0:
        pytest.fail(f"{block.id}: exit {proc.returncode}\n--- block\n{block.code}"
                    f"--- stdout (tail)\n{proc.stdout[-4000:]}\n"
                    f"--- stderr (tail)\n{proc.stderr[-4000:]}", pytrace=False)


def _skip_not_run(block: Block) -> None:
    if block.not_run is not None:
        pytest.skip(f"not run by tests: {block.not_run or '(no reason given)'}")


@pytest.mark.parametrize("block", _params({"sh"}))
def test_shell_block_runs(block: Block, checkout: Path):
    _skip_not_run(block)
    script = checkout / "block.sh"
    script.write_text("set -e -o pipefail\n" + block.code)
    _run(block, checkout, ["bash", str(script)],
         timeout=900 if any(s in block.code for s in SLOW) else 300)


@pytest.mark.parametrize("block", _params({"python"}))
def test_python_block_runs(block: Block, checkout: Path):
    _skip_not_run(block)
    script = checkout / "block.py"
    script.write_text(block.code)
    _run(block, checkout, [str(checkout / ".venv" / "bin" / "python"), str(script)],
         timeout=300)


# --------------------------------------------------------------------------- API reference


_SECTION = re.compile(r'<section id="([^"]+)">|<div id="([^"]+)" class="classattr">')


def _undocumented(html_dir: Path) -> list[str]:
    """Functions, methods, properties and classes on the pdoc pages without a docstring."""
    missing = []
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text()
        marks = [(m.start(), m.group(1) or m.group(2)) for m in _SECTION.finditer(text)]
        if not marks:
            continue  # index.html: a redirect
        for (pos, name), (end, _) in zip(marks, [*marks[1:], (len(text), "")], strict=True):
            chunk = text[pos:end]
            code = ('<div class="attr function">' in chunk or '<div class="attr class">' in chunk
                    or "@property</span>" in chunk)
            generated = name.endswith("__init__") and "view-source-button" not in chunk
            if code and not generated and '<div class="docstring">' not in chunk:
                missing.append(f"{page.relative_to(html_dir).as_posix()}: {name}")
    return missing


@pytest.fixture(scope="module")
def api_html(tmp_path_factory) -> Path:
    pytest.importorskip("pdoc", reason="pdoc is in the dev extra: make setup")
    out = tmp_path_factory.mktemp("api")
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "build_api.py"), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def test_api_reference_has_every_public_name(api_html: Path):
    import edgec

    page = (api_html / "edgec.html").read_text()
    for name in edgec.__all__:
        assert f'<section id="{name}">' in page, name
    # the signature is rendered, with its keyword-only arguments
    assert "input_shapes" in page and "opt_level" in page


def test_api_reference_has_a_docstring_for_everything(api_html: Path):
    missing = _undocumented(api_html)
    assert not missing, "\n".join(missing)
