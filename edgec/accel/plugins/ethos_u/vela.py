"""Compile a TFLite model for an Arm Ethos-U NPU with Arm's Vela and read back its report.

Vela (``ethos-u-vela``) runs as a subprocess so its crashes, tracebacks and
``sys.exit`` calls stay out of edgec: a failing Vela gives a :class:`VelaResult`
with ``ok=False`` and a one-line ``error``; it never raises into the caller.

What is read back:

* ``<stem>_vela.tflite``: the command stream (NPU custom ops plus any CPU ops);
* ``<stem>_summary_<system_config>.csv``: network totals (cycles, inference time,
  MACs, memory used per area);
* ``<stem>_per-layer.csv`` (written because of ``--verbose-performance``): one row
  per operation Vela scheduled, with its target (NPU or CPU), op cycles, MACs and
  the name of its output tensor. Vela may split one TFLite operator into several
  rows (a fused activation, a stride decomposition) and rename their outputs
  (``conv1/Relu_act``), so rows are mapped back to TFLite operators through
  ``<stem>_debug.xml`` (``--enable-debug-db``: each row's ``source_id`` names a
  source operator whose ``ext_key`` is the operator's index in the input model),
  falling back to matching output-tensor names;
* Vela's stdout: one warning per operator it leaves on the CPU, e.g.::

      Warning (supported operators) operator: CONV_2D, ofm: 'c1_act'
      Reason: Unsupported kernel stride: 5, 5
      Stride>3 is only supported IF (dilation = 1 AND padding = VALID)

  The reason is attached to the layer whose output tensor is (a prefix of) ``ofm``.

Each layer of the result is one operator of the input TFLite model, named by its
(first) output tensor, which is how edgec maps it back to ONNX nodes.
"""

from __future__ import annotations

import configparser
import contextlib
import csv
import importlib.metadata
import importlib.util
import io
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from edgec.errors import ToolchainError, UsageError

_PACKAGE = "ethos-u-vela"
_MODULE = "ethosu.vela"
_CONFIG = os.path.join("Arm", "vela.ini")  # Vela resolves <dir>/<file> inside its config_files
_OPTIMISE = ("Performance", "Size")
_KEYS = ("accelerator", "system_config", "memory_mode", "optimise")
_REQUIRED = ("accelerator", "system_config", "memory_mode")
# The memory areas of Vela's summary CSV, as "<area>_memory_used" (KiB).
_AREAS = ("sram", "dram", "on_chip_flash", "off_chip_flash")


def _need_vela() -> None:
    if importlib.util.find_spec(_MODULE) is None:
        raise ToolchainError(
            f"Arm Vela is not installed for {sys.executable}; "
            f"install it with `pip install {_PACKAGE}` to compile for Ethos-U"
        )


def vela_version() -> str:
    """The installed Vela's version, e.g. ``"5.2.0"``; ToolchainError when it is missing."""
    try:
        return importlib.metadata.version(_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        _need_vela()  # raises when the module is missing too
        return "unknown"


def vela_ini() -> Path:
    """The ``vela.ini`` bundled with Vela (``ethosu/config_files/Arm/vela.ini``)."""
    _need_vela()
    spec = importlib.util.find_spec("ethosu")
    assert spec is not None and spec.submodule_search_locations
    for base in spec.submodule_search_locations:
        path = Path(base) / "config_files" / "Arm" / "vela.ini"
        if path.is_file():
            return path
    raise ToolchainError(f"Vela's bundled Arm/vela.ini is missing; reinstall {_PACKAGE}")


@cache
def _ini_sections() -> tuple[tuple[str, ...], tuple[str, ...]]:
    parser = configparser.ConfigParser()
    parser.read(vela_ini())
    systems = tuple(s.split(".", 1)[1] for s in parser.sections() if s.startswith("System_Config."))
    modes = tuple(s.split(".", 1)[1] for s in parser.sections() if s.startswith("Memory_Mode."))
    return systems, modes


def system_configs() -> tuple[str, ...]:
    """The system configurations (``[System_Config.<name>]``) of the bundled vela.ini."""
    return _ini_sections()[0]


def memory_modes() -> tuple[str, ...]:
    """The memory modes (``[Memory_Mode.<name>]``) of the bundled vela.ini."""
    return _ini_sections()[1]


def accelerators() -> tuple[str, ...]:
    """Vela's accelerator configurations (``ethos-u55-128``, ...)."""
    _need_vela()
    from ethosu.vela.architecture_features import Accelerator

    return tuple(Accelerator.member_list())


@dataclass(frozen=True)
class VelaConfig:
    """Which Ethos-U Vela compiles for, and how (one ``[ethos_u]``-style TOML table)."""

    accelerator: str  # Vela's --accelerator-config: "ethos-u55-128", "ethos-u85-256", ...
    system_config: str  # a [System_Config.*] section of the bundled vela.ini
    memory_mode: str  # a [Memory_Mode.*] section of the bundled vela.ini
    optimise: str = "Performance"  # Vela's --optimise: Performance or Size

    def label(self) -> str:
        """E.g. ``Vela 5.2.0 estimate for ethos-u55-128, Ethos_U55_High_End_Embedded,
        Shared_Sram``."""
        return (f"Vela {vela_version()} estimate for {self.accelerator}, "
                f"{self.system_config}, {self.memory_mode}")

    def to_json(self) -> dict[str, str]:
        return {"accelerator": self.accelerator, "system_config": self.system_config,
                "memory_mode": self.memory_mode, "optimise": self.optimise}

    @classmethod
    def from_table(cls, table: dict, where: str) -> VelaConfig:
        """Validate a TOML table against the installed Vela; UsageError naming the bad key.

        ``where`` names the table for messages, e.g. ``"targets/u55.toml [ethos_u]"``.
        """

        def bad(what: str) -> UsageError:
            return UsageError(f"{where}: {what}; fix the target file")

        if not isinstance(table, dict):
            raise bad(f"expected a table of {', '.join(_KEYS)}, got {type(table).__name__}")
        unknown = sorted(set(table) - set(_KEYS))
        if unknown:
            raise bad(f"unknown key {', '.join(map(repr, unknown))} "
                      f"(valid keys: {', '.join(_KEYS)})")
        missing = [k for k in _REQUIRED if k not in table]
        if missing:
            raise bad(f"missing key {', '.join(map(repr, missing))}")
        for key, value in table.items():
            if not isinstance(value, str):
                raise bad(f"{key} must be a string, got {value!r}")
        accel = table["accelerator"]
        choices = accelerators()
        if accel not in choices:
            raise bad(f"unknown accelerator {accel!r} (Vela {vela_version()} knows: "
                      f"{', '.join(choices)})")
        system = table["system_config"]
        if system not in system_configs():
            raise bad(f"system_config {system!r} is not a section of Vela's vela.ini "
                      f"(valid: {', '.join(system_configs())})")
        mode = table["memory_mode"]
        if mode not in memory_modes():
            raise bad(f"memory_mode {mode!r} is not a section of Vela's vela.ini "
                      f"(valid: {', '.join(memory_modes())})")
        optimise = table.get("optimise", "Performance")
        if optimise not in _OPTIMISE:
            raise bad(f"optimise {optimise!r} is not one of {', '.join(_OPTIMISE)}")
        problem = _check_combination(accel, system, mode)
        if problem:
            raise bad(f"memory_mode {mode!r} does not work with system_config {system!r}: "
                      f"{problem}")
        return cls(accel, system, mode, optimise)


def _check_combination(accel: str, system: str, mode: str) -> str:
    """Vela's own consistency checks of a system config and memory mode ("" when fine)."""
    from ethosu.vela.architecture_features import ArchitectureFeatures
    from ethosu.vela.errors import VelaError

    try:
        ArchitectureFeatures(
            vela_config_files=[str(vela_ini())], accelerator_config=accel, system_config=system,
            memory_mode=mode, max_blockdep=ArchitectureFeatures.MAX_BLOCKDEP,
            verbose_config=False, arena_cache_size=None)
    except VelaError as e:
        return str(getattr(e, "error_msg", e))
    return ""


@dataclass(frozen=True)
class LayerReport:
    """One operator of the input TFLite model, as Vela placed it."""

    name: str  # the operator's (first) output tensor name
    op: str  # TFLite op type: CONV_2D, ... (custom ops: their custom code)
    on_npu: bool
    macs: int  # MACs Vela counted for it (0 on the CPU)
    cycles: int  # estimated NPU op cycles, summed over the NPU operations it became (0 on the CPU)
    reason: str  # why Vela left it on the CPU ("" on the NPU)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "on_npu": self.on_npu, "macs": self.macs,
                "cycles": self.cycles, "reason": self.reason}


@dataclass(frozen=True)
class VelaResult:
    """What Vela made of one TFLite model: the command stream and its performance estimate."""

    ok: bool
    command_stream: Path | None  # <stem>_vela.tflite
    layers: list[LayerReport]
    cycles: int  # total NPU cycles of the network (summary cycles_total)
    seconds: float  # Vela's estimated inference time (cycles / core clock)
    macs: int  # total MACs (summary nn_macs)
    sram_bytes: int | None  # peak SRAM used (arena and cache)
    dram_bytes: int | None
    flash_bytes: int | None  # on-chip plus off-chip flash used (weights in Shared_Sram mode)
    weights_bytes: int | None  # NPU-encoded weights
    core_clock_hz: float | None
    error: str  # one line when not ok
    config: VelaConfig
    vela_version: str
    log: Path | None = None  # Vela's stdout and stderr, kept for debugging
    files: dict[str, Path] = field(default_factory=dict)  # the other files Vela wrote

    @property
    def npu_layers(self) -> list[LayerReport]:
        return [layer for layer in self.layers if layer.on_npu]

    @property
    def cpu_layers(self) -> list[LayerReport]:
        return [layer for layer in self.layers if not layer.on_npu]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "vela_version": self.vela_version,
            "config": self.config.to_json(),
            "label": f"Vela {self.vela_version} estimate for {self.config.accelerator}, "
                     f"{self.config.system_config}, {self.config.memory_mode}",
            "command_stream": str(self.command_stream) if self.command_stream else None,
            "cycles": self.cycles,
            "seconds": self.seconds,
            "macs": self.macs,
            "sram_bytes": self.sram_bytes,
            "dram_bytes": self.dram_bytes,
            "flash_bytes": self.flash_bytes,
            "weights_bytes": self.weights_bytes,
            "core_clock_hz": self.core_clock_hz,
            "npu_layers": len(self.npu_layers),
            "cpu_layers": len(self.cpu_layers),
            "layers": [layer.to_json() for layer in self.layers],
            "log": str(self.log) if self.log else None,
        }


def vela_command(tflite: Path, config: VelaConfig, out_dir: Path) -> list[str]:
    """The command line compile_tflite runs."""
    return [
        # -P: Vela runs with cwd=out_dir; never import a module from there
        sys.executable, "-P", "-m", _MODULE, str(tflite),
        "--accelerator-config", config.accelerator,
        "--config", _CONFIG,
        "--system-config", config.system_config,
        "--memory-mode", config.memory_mode,
        "--optimise", config.optimise,
        "--output-dir", str(out_dir),
        "--verbose-performance",  # writes <stem>_per-layer.csv
        "--enable-debug-db",  # writes <stem>_debug.xml: per-layer rows -> input operator index
    ]


def compile_tflite(tflite: Path, config: VelaConfig, out_dir: Path, *,
                   timeout: float = 300) -> VelaResult:
    """Run Vela on ``tflite`` for ``config``, writing into ``out_dir``.

    Never raises for Vela's failures (they give ``ok=False``).

    Raises ToolchainError only when Vela is not installed.
    """
    _need_vela()
    version = vela_version()
    tflite = Path(tflite).resolve()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = os.path.splitext(tflite.name)[0]
    files = {
        "command_stream": out_dir / f"{stem}_vela.tflite",
        "per_layer": out_dir / f"{stem}_per-layer.csv",
        "summary": out_dir / f"{stem}_summary_{config.system_config}.csv",
        "debug_db": out_dir / f"{stem}_debug.xml",
    }
    log = out_dir / f"{stem}_vela.log"
    for path in [*files.values(), log]:  # never read a previous run's files
        path.unlink(missing_ok=True)

    def failed(error: str) -> VelaResult:
        return VelaResult(
            ok=False, command_stream=None, layers=[], cycles=0, seconds=0.0, macs=0,
            sram_bytes=None, dram_bytes=None, flash_bytes=None, weights_bytes=None,
            core_clock_hz=None, error=_one_line(error), config=config, vela_version=version,
            log=log if log.exists() else None)

    if not tflite.is_file():
        return failed(f"{tflite}: no such file")
    cmd = vela_command(tflite, config, out_dir)
    env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env,
                              cwd=out_dir, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as e:
        _write_log(log, cmd, _text(e.stdout), _text(e.stderr), None)
        return failed(f"Vela timed out after {timeout:g} s on {tflite.name}")
    except OSError as e:
        return failed(f"could not run Vela: {e}")
    stdout, stderr = _text(proc.stdout), _text(proc.stderr)
    _write_log(log, cmd, stdout, stderr, proc.returncode)
    if proc.returncode != 0:
        return failed(_failure_line(proc.returncode, stdout, stderr))
    for key in ("command_stream", "summary"):
        if not files[key].is_file():
            return failed(f"Vela exited 0 but wrote no {files[key].name} (see {log})")
    try:
        summary = _read_summary(files["summary"])
        rows = _read_per_layer(files["per_layer"]) if files["per_layer"].is_file() else []
        sources = _read_debug_sources(files["debug_db"])
        operators = _read_operators(tflite)
        warnings = _parse_cpu_warnings(stdout)
        layers = _layers(operators, rows, sources, warnings)
    except Exception as e:  # a Vela whose output format changed: report, don't raise
        return failed(f"could not read Vela {version}'s report: {type(e).__name__}: {e}")

    def kib(area: str) -> int | None:
        value = summary.get(f"{area}_memory_used")
        return None if value is None else round(float(value) * 1024)

    flash = [kib(a) for a in ("on_chip_flash", "off_chip_flash")]
    return VelaResult(
        ok=True,
        command_stream=files["command_stream"],
        layers=layers,
        cycles=_int(summary.get("cycles_total")),
        seconds=_float(summary.get("inference_time")),
        macs=_int(summary.get("nn_macs")),
        sram_bytes=kib("sram"),
        dram_bytes=kib("dram"),
        flash_bytes=None if all(f is None for f in flash) else sum(f or 0 for f in flash),
        weights_bytes=_int(summary["total_npu_encoded_weights"])
        if "total_npu_encoded_weights" in summary else None,
        core_clock_hz=_float(summary["core_clock"]) if "core_clock" in summary else None,
        error="",
        config=config,
        vela_version=version,
        log=log,
        files={k: v for k, v in files.items() if v.is_file()},
    )


# ---- reading Vela's output ----------------------------------------------------------------


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."


def _int(value: Any) -> int:
    try:
        return round(float(value))
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return 0.0
    return result if result == result else 0.0  # NaN -> 0


def _write_log(log: Path, cmd: list[str], stdout: str, stderr: str, rc: int | None) -> None:
    text = f"$ {' '.join(cmd)}\n# exit: {rc}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n"
    with contextlib.suppress(OSError):
        log.write_text(text, encoding="utf-8")


_EXC_LINE = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*([A-Z]\w*(?:Error|Exception|Exit|Interrupt)): ?(.*)$")


def _failure_line(rc: int, stdout: str, stderr: str) -> str:
    """One line saying why Vela failed: its exception, its 'Error: ...' or its last words."""
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"Vela crashed ({name})"
    err_lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    out_lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    for line in reversed(err_lines):  # a traceback's last line
        m = _EXC_LINE.match(line)
        if m:
            message = m.group(2).strip()
            if len(message) >= 2 and message[0] == message[-1] and message[0] in "'\"":
                message = message[1:-1]  # VelaError's str() is repr()
            message = message.removeprefix("Error: ")
            return f"Vela failed: {m.group(1)}" + (f": {message}" if message else "")
    for line in reversed(err_lines + out_lines):  # VelaError printed by Vela, argparse errors
        if line.startswith("Error:") or ": error:" in line:
            return f"Vela failed: {line.split('rror:', 1)[1].strip()}"
    last = err_lines[-1] if err_lines else (out_lines[-1] if out_lines else "")
    return f"Vela exited with status {rc}" + (f": {last}" if last else "")


def _read_summary(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise ValueError(f"{path.name} has no data row")
    return dict(zip(rows[0], rows[1], strict=False))


@dataclass
class _Row:
    """One row of <stem>_per-layer.csv: an operation Vela scheduled."""

    original: str  # Vela's name of the source operator type (Conv2D)
    operator: str  # what it became (Conv2D, Relu, Passthrough = left to the CPU)
    on_npu: bool
    cycles: int  # "Op Cycles"
    macs: int  # "MAC Count"
    name: str  # its output tensor
    source: int | None = None  # index of the input TFLite operator (from the debug db)


def _read_per_layer(path: Path) -> list[_Row]:
    # Vela joins the fields with bare commas, unquoted; Name is the last column and
    # may itself hold commas, so everything past the header's width belongs to it.
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        return []
    header = lines[0].split(",")
    col = {name: i for i, name in enumerate(header)}
    need = ("Original Operator", "NNG Operator", "Target", "Op Cycles", "MAC Count", "Name")
    missing = [n for n in need if n not in col]
    if missing:
        raise ValueError(f"{path.name} lacks columns {missing}")
    if col["Name"] != len(header) - 1:
        raise ValueError(f"{path.name}: Name is not the last column")
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        fields = line.split(",", len(header) - 1)
        if len(fields) < len(header):
            continue
        rows.append(_Row(
            original=fields[col["Original Operator"]],
            operator=fields[col["NNG Operator"]],
            on_npu=fields[col["Target"]].strip().upper() == "NPU",
            cycles=_int(fields[col["Op Cycles"]]),
            macs=_int(fields[col["MAC Count"]]),
            name=fields[col["Name"]],
        ))
    return rows


def _read_debug_sources(path: Path) -> list[tuple[int | None, str]] | None:
    """(input operator index, name) per row of the debug db's perf table, in per-layer CSV order."""
    if not path.is_file():
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return None
    tables = {}
    for table in root.iter("table"):
        rows = list(csv.reader(io.StringIO((table.text or "").strip())))
        if rows:
            tables[table.get("name")] = rows
    perf, source = tables.get("perf"), tables.get("source")
    if not perf or not source:
        return None
    try:
        s_id, s_key = source[0].index("id"), source[0].index("ext_key")
        p_src, p_name = perf[0].index("source_id"), perf[0].index("name")
    except ValueError:
        return None
    ext_key = {}
    for row in source[1:]:
        try:
            ext_key[row[s_id]] = int(row[s_key])
        except (IndexError, ValueError):
            continue
    return [(ext_key.get(row[p_src]), row[p_name])
            for row in perf[1:] if len(row) > max(p_src, p_name)]


@dataclass
class _Operator:
    index: int
    op: str
    outputs: list[str]


def _read_operators(tflite: Path) -> list[_Operator]:
    """The operators of the model's main subgraph: TFLite type and output tensor names."""
    from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
    from ethosu.vela.tflite.Model import Model

    names = {v: k for k, v in vars(BuiltinOperator).items()
             if not k.startswith("_") and isinstance(v, int)}
    model = Model.GetRootAs(tflite.read_bytes(), 0)
    if model.SubgraphsLength() == 0:
        return []
    sg = model.Subgraphs(0)
    result = []
    for i in range(sg.OperatorsLength()):
        operator = sg.Operators(i)
        code = model.OperatorCodes(operator.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        op = names.get(builtin, f"BUILTIN_{builtin}")
        if op == "CUSTOM" and code.CustomCode():
            op = code.CustomCode().decode("utf-8", "replace")
        outputs = []
        for j in range(operator.OutputsLength()):
            t = operator.Outputs(j)
            if t >= 0:
                name = sg.Tensors(t).Name()
                outputs.append(name.decode("utf-8", "replace") if name else f"tensor_{t}")
        result.append(_Operator(i, op, outputs))
    return result


_WARNING = re.compile(
    r"^Warning \(supported operators\) operator: (?P<op>[^,]+), ofm: '(?P<ofm>.*)'\s*$")
# Vela's legacy Python core:
# "Warning: CONV_2D 'name' is not supported on the NPU. Placing on CPU instead"
_LEGACY = re.compile(r"^Warning: (?P<op>\S+) '(?P<ofm>.*)' is not supported on the NPU\.")


def _parse_cpu_warnings(stdout: str) -> list[tuple[str, str, str]]:
    """(TFLite op type, output tensor name, reason) per operator Vela left on the CPU."""
    result: list[tuple[str, str, str]] = []
    current: tuple[str, str] | None = None
    reason: list[str] = []

    def close() -> None:
        if current is not None:
            result.append((*current, "; ".join(reason)))

    for raw in stdout.splitlines():
        line = raw.strip()
        m = _WARNING.match(line) or _LEGACY.match(line)
        if m:
            close()
            current, reason = (m.group("op").strip(), m.group("ofm")), []
        elif current is not None:
            if not line or line.startswith(("#", "Warning", "Performance for", "Network summary")):
                close()
                current, reason = None, []
            else:
                reason.append(line.removeprefix("Reason:").removeprefix("- ").strip())
    close()
    return result


def _match(name: str, operators: list[_Operator], op: str | None = None) -> _Operator | None:
    """The operator whose output is ``name``, else whose output is its longest prefix
    (Vela renames the outputs of what it splits off: ``conv1/Relu_act``)."""
    candidates = [o for o in operators if op is None or o.op == op]
    for o in candidates:
        if name in o.outputs:
            return o
    best, best_len = None, 0
    for o in candidates:
        for out in o.outputs:
            if len(out) > best_len and name.startswith(out):
                best, best_len = o, len(out)
    return best


def _layers(operators: list[_Operator], rows: list[_Row],
            sources: list[tuple[int | None, str]] | None,
            warnings: list[tuple[str, str, str]]) -> list[LayerReport]:
    by_index = {o.index: o for o in operators}
    if sources is not None and len(sources) == len(rows) and all(
            s[1] == r.name for s, r in zip(sources, rows, strict=True)):
        for (index, _), row in zip(sources, rows, strict=True):
            row.source = index if index in by_index else None
    for row in rows:
        if row.source is None:
            found = _match(row.name, operators)
            row.source = found.index if found else None

    reasons: dict[int, list[str]] = {}
    warned: set[int] = set()
    for op, ofm, reason in warnings:
        found = _match(ofm, operators, op) or _match(ofm, operators)
        if found is None:
            continue
        warned.add(found.index)
        if reason and reason not in reasons.setdefault(found.index, []):
            reasons[found.index].append(reason)

    layers = []
    for o in operators:
        mine = [r for r in rows if r.source == o.index]
        # nothing scheduled: Vela removed it (a reshape, a no-op) unless it warned
        on_npu = all(r.on_npu for r in mine) if mine else o.index not in warned
        layers.append(LayerReport(
            name=o.outputs[0] if o.outputs else f"operator_{o.index}",
            op=o.op,
            on_npu=on_npu,
            macs=sum(r.macs for r in mine if r.on_npu),
            cycles=sum(r.cycles for r in mine if r.on_npu),
            reason="" if on_npu else ("; ".join(reasons.get(o.index, []))
                                      or "Vela placed it on the CPU without giving a reason"),
        ))
    return layers
