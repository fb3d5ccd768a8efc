"""The edgec command line: turns options into API calls and errors into exit codes.

Every failure the user can cause prints one line, ``edgec: error: ...``, and
exits with the code documented in the README; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .console import SafeConsole, one_line, shown
from .errors import EXIT_USAGE, EdgecError, MismatchError, UnsupportedError, UsageError, first_line
from .fsutil import atomic_write, check_output
from .specs import (
    DEFAULT_MAX_MODEL_BYTES,
    DEFAULT_MAX_NODES,
    parse_const_spec,
    parse_shape_spec,
)

# Made per invocation in main(), so COLUMNS and the streams of that moment apply.
out = SafeConsole(highlight=False)
err = SafeConsole(stderr=True, highlight=False)
EXIT_INTERNAL = 70  # an edgec bug (EX_SOFTWARE); run with --debug and report it
_state = {"debug": bool(os.environ.get("EDGEC_DEBUG"))}


def _size(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", text.strip().lower())
    if not m:
        raise UsageError(f"--max-model-size '{text}': give bytes or a size like 500M or 4G")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def _shapes(specs: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, dims = parse_shape_spec(spec)
        if name in shapes and shapes[name] != dims:
            raise UsageError(f"--input-shape {name} is given twice with different dims")
        shapes[name] = dims
    return shapes


def _consts(specs: tuple[str, ...]) -> dict[str, np.ndarray]:
    return dict(parse_const_spec(s) for s in specs)


@contextlib.contextmanager
def _progress():
    """A spinner with the current step on stderr (silent when stderr is not a terminal)."""
    if not err.is_terminal:
        yield lambda msg: None
        return
    with err.status("starting") as status:
        yield lambda msg: status.update(msg)


class OutputPath(click.Path):
    """click.Path that keeps a trailing '/' visible: Path('out/') drops it, and the
    command wrote a file 'out' where the user meant a folder."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.endswith(("/", os.sep)) and not self.dir_okay:
            self.fail(f"'{value}' ends in '/': give a file name, not a folder", param, ctx)
        return super().convert(value, param, ctx)


def trust_option(f):
    """--trust KEYS: the public keys (.pub files or folders of them) an artifact must be
    signed by before any of it is extracted or loaded; EDGEC_TRUST gives a default."""
    return click.option(
        "--trust", "trust", multiple=True, envvar="EDGEC_TRUST",
        type=click.Path(path_type=Path), metavar="KEYS",
        help="Accept only artifacts signed by one of these keys (.pub files or folders of "
             "them; repeatable; default: EDGEC_TRUST, paths separated by ':'). Refused "
             "before the library is loaded: unsigned, another key, a changed manifest.")(f)


def _trust(paths: tuple[Path, ...]):
    """The TrustStore --trust (or EDGEC_TRUST) names, or None when neither is given."""
    if not paths:
        return None
    from .signing import load_trust

    return load_trust(paths)


def _open_artifact(path: Path, trust: tuple[Path, ...]):
    """The artifact at ``path``, its signature checked against --trust when given."""
    from .artifact import Artifact

    return Artifact(path, trust=_trust(trust))


def device_option(f):
    """--device SPEC and --timeout: run on a remote device over TVM RPC (edgec.devices)."""
    f = click.option("--timeout", type=click.FloatRange(min=1), default=120.0,
                     show_default=True, metavar="SECONDS",
                     help="With --device: the most any remote step may take.")(f)
    return click.option(
        "--device", "device", default=None, metavar="KEY@HOST:PORT|HOST:PORT",
        help="Run on a device over TVM RPC: a free board of KEY from the tracker at "
             "HOST:PORT, or the 'edgec device serve' at HOST:PORT.")(f)


def _remote(art, device, timeout: float):
    """The artifact uploaded to the device (checked first), as a RemoteSession;
    ``device`` is a --device spec or an already connected Device."""
    from .runtime.device.client import RemoteSession, connect

    with _progress() as say:
        if isinstance(device, str):
            say(f"connecting to {device}")
            device = connect(device, timeout=timeout)
        say(f"uploading {art.path.name} to {device.name}")
        return RemoteSession(art.path, device, trust=art.trust)


def _artifact_for(path: Path, trust: tuple[Path, ...], target: str | None,
                  device: str | None, timeout: float, stack: contextlib.ExitStack, *,
                  fallback: str = "host"):
    """(artifact, connected device or None) for run and profile: PATH's artifact
    (checked before any device is contacted), or PATH the ONNX model compiled now
    (default options) for -t, else the target that best fits the device's CPU, else
    ``fallback``."""
    from .runtime.device.client import connect, pick_device_target

    if path.suffix.lower() != ".onnx":
        if target is not None:
            raise UsageError(f"{path}: -t is for a model compiled now; this is an artifact, "
                             "compiled for its target already")
        art = _open_artifact(path, trust)
        return art, connect(device, timeout=timeout) if device else None
    source = click.get_current_context().get_parameter_source("trust")
    if trust and source == click.core.ParameterSource.COMMANDLINE:
        raise UsageError(f"{path}: --trust checks an artifact's signature; this model is "
                         "compiled now, by this command")
    from . import api

    dev = connect(device, timeout=timeout) if device else None
    chosen = target or (pick_device_target(dev).name if dev else fallback)
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="edgec-run-"))
    with _progress() as say:
        art = api.compile(path, target=chosen, output=Path(tmp) / "model.edgec", progress=say)
    err.print(f"compiled {shown(path)} for {chosen} (default options; 'edgec compile' for "
              "others)", markup=False)
    return art, dev


def _model_target_option(f):
    return click.option("-t", "--target", default=None,
                        help="When PATH is an ONNX model: the target to compile it for "
                             "(default: the device's best fit with --device, else host).")(f)


def _device_latency(session, feeds, repeat: int) -> str:
    from .runtime.profiler import device_clock_note

    return session.time(feeds, repeat=repeat).line() + device_clock_note(session.device.info)


quantize_options = [
    click.option("--quantize", type=click.Choice(["int8", "fp16"]), default=None,
                 help="int8: calibrated integer kernels (needs --calibration); fp16: float16 "
                      "arithmetic, on targets that have it."),
    click.option("--calibration", default=None, metavar="DIR|random",
                 help="Calibration samples: .npz per sample, .npy per sample, DIR/<input>/*.npy "
                      "or images (with --preprocess); 'random' for smoke tests only."),
    click.option("--calib-method", type=click.Choice(["minmax", "percentile", "entropy"]),
                 default="minmax", show_default=True, help="How activation ranges are chosen."),
    click.option("--percentile", type=float, default=99.999, show_default=True,
                 help="The percentile kept by --calib-method percentile."),
    click.option("--per-tensor", is_flag=True,
                 help="One weight scale per tensor (default: one per output channel)."),
    click.option("--symmetric-activations", is_flag=True,
                 help="int8 activations with zero point 0 (default: uint8, asymmetric)."),
    click.option("--calib-samples", type=click.IntRange(min=1), default=None, metavar="N",
                 help="Calibrate on the first N samples (default: up to 100; random: 16)."),
    click.option("--keep-float", multiple=True, metavar="NODE|OP",
                 help="Leave a node (by name) or every node of an op type in float; "
                      "repeatable."),
    click.option("--preprocess", multiple=True, metavar="KEY=VALUE",
                 help="Image calibration: size=HxW, mean=.., std=.., scale=1/255, "
                      "layout=NCHW|NHWC, rgb|bgr; repeatable."),
]


def _quant_opts(f):
    for deco in reversed(quantize_options):
        f = deco(f)
    return f


def _quantize(o: dict):
    """The QuantizeOptions the quantisation flags give (None without --quantize)."""
    from .quantize.options import Preprocess, QuantizeOptions

    if o.get("quantize") is None:
        given = [f for f, v in (("--calibration", o.get("calibration")),
                                ("--keep-float", o.get("keep_float")),
                                ("--preprocess", o.get("preprocess")),
                                ("--calib-samples", o.get("calib_samples")),
                                ("--per-tensor", o.get("per_tensor")),
                                ("--symmetric-activations", o.get("symmetric_activations")))
                 if v]
        if o.get("calib_method", "minmax") != "minmax":
            given.append("--calib-method")
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --quantize int8")
        return None
    return QuantizeOptions(mode=o["quantize"], calibration=o["calibration"],
                           method=o["calib_method"], percentile=o["percentile"],
                           per_channel=not o["per_tensor"],
                           symmetric_activations=o["symmetric_activations"],
                           samples=o["calib_samples"], keep_float=tuple(o["keep_float"]),
                           preprocess=Preprocess.parse(o["preprocess"]))


def compile_options(f):
    """Options shared by compile and verify (when verify compiles)."""
    for deco in reversed([
        click.option("-t", "--target", default="host", show_default=True,
                     help="Target file name, short name or alias (x86, arm, host); "
                          "see 'edgec targets'."),
        click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=D1,D2,..",
                     help="Bind an input's shape (dynamic dims); repeatable."),
        click.option("--input-const", "input_consts", multiple=True, metavar="NAME=VALUE",
                     help="Bind an input to a constant (number, list or .npy); repeatable."),
        click.option("-O", "opt_level", type=click.IntRange(0, 3), default=None,
                     help="Optimisation level 0-3 (default 2); see 'edgec passes'."),
        click.option("--pipeline", default=None, metavar="NAME|P1,P2,..",
                     help="A named pipeline or a comma-separated pass list."),
        click.option("--save-temps", type=click.Path(file_okay=False, path_type=Path),
                     default=None, metavar="DIR",
                     help="Keep the model after each pass, the Relax IR, target and "
                          "a reproducer in DIR."),
        click.option("--max-model-size", default=str(DEFAULT_MAX_MODEL_BYTES), metavar="SIZE",
                     help="Refuse bigger models (bytes, or 500M, 4G).", show_default=True),
        click.option("--max-nodes", type=click.IntRange(min=1), default=DEFAULT_MAX_NODES,
                     show_default=True, help="Refuse models with more nodes (subgraphs "
                     "counted)."),
        click.option("--tuning-db", type=click.Path(file_okay=False, path_type=Path),
                     default=None, metavar="DIR",
                     help="Tuning database from 'edgec tune --db DIR' (default: the "
                          "target's own under the cache, when it exists)."),
        click.option("--no-tuning-db", "no_tuning_db", is_flag=True,
                     help="Ignore tuning records: every kernel keeps its template schedule."),
        *quantize_options,
    ]):
        f = deco(f)
    return f


def _compile_kwargs(o: dict) -> dict:
    return {"target": o["target"], "input_shapes": _shapes(o["input_shapes"]),
            "input_consts": _consts(o["input_consts"]), "opt_level": o["opt_level"],
            "pipeline": o["pipeline"], "save_temps": o["save_temps"],
            "max_model_bytes": _size(o["max_model_size"]), "max_nodes": o["max_nodes"],
            "use_tuning_db": not o["no_tuning_db"], "tuning_db": o["tuning_db"],
            "quantize": _quantize(o)}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgec")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """edgec: compile ONNX models with Apache TVM for edge devices, run and verify them."""
    _state["debug"] = _state["debug"] or debug
    if _state["debug"]:
        os.environ["EDGEC_DEBUG"] = "1"  # also shows TVM's native log while building


@cli.command("compile")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=OutputPath(dir_okay=False, path_type=Path), default=None,
              help="Artifact to write (default: MODEL's name with .edgec, here).")
@click.option("--sign", "sign_key", type=OutputPath(dir_okay=False, path_type=Path),
              default=None, metavar="KEY",
              help="Sign the artifact with this Ed25519 private key ('edgec keygen').")
@compile_options
def compile_cmd(model: Path, output: Path | None, sign_key: Path | None, **o) -> None:
    """Compile MODEL.onnx for a target into an .edgec artifact."""
    from . import api  # the compiler side, loaded only when needed

    key = None
    if sign_key is not None:  # a bad key fails now, not after the compile
        from .signing import load_private_key

        key = load_private_key(sign_key)
    with _progress() as say:
        art = api.compile(model, output=output, progress=say, **_compile_kwargs(o))
        if key is not None:
            from .artifact import Artifact, sign_artifact

            say("signing")
            signature = sign_artifact(art.path, key)
            art = Artifact(art.path)
    m = art.manifest
    passes = m["passes"]
    first, last = passes[0]["nodes_before"], passes[-1]["nodes_after"]
    out.print(f"compiled {shown(model)} for {m['target']['name']} -> {shown(art.path)} "
              f"({art.path.stat().st_size / 1024:.0f} KiB, {m['compile_seconds']['total']:.1f} s)")
    out.print(f"  passes ({m['pipeline']}): nodes {first} -> {last}; "
              + ", ".join(f"{p['name']} {p['nodes_before']}->{p['nodes_after']}"
                          for p in passes if p["nodes_before"] != p["nodes_after"]))
    out.print("  inputs:  " + shown(", ".join(s.describe() for s in art.inputs)))
    out.print("  outputs: " + shown(", ".join(s.describe() for s in art.outputs)))
    tuning = m.get("tuning")
    if tuning:
        tuned = tuning["tuned_kernels"]
        out.print(f"  tuning db {shown(tuning['db'])}: "
                  + (f"{len(tuned)} kernel(s) use a tuned schedule" if tuned
                     else "no kernel has a faster record than its template"))
    if o["save_temps"]:
        out.print(f"  intermediates in {shown(o['save_temps'])}")
    if key is not None:
        out.print(f"  signed with key {signature.key_id} ({shown(sign_key)})")


def _check_outputs(*, inputs: tuple = (), **paths: Path | None) -> None:
    """Each output option's path checked before any work (fsutil.check_output), and
    refused when it is one of the command's ``inputs`` (it would replace it)."""
    given = tuple(p for p in inputs if p is not None)
    for option, path in paths.items():
        if path is not None:
            check_output(path, what="--" + option.replace("_", "-"), inputs=given)


def _input_files(specs: tuple[str, ...]) -> tuple[Path, ...]:
    """The files named by --input NAME=F.npy / F.npz options."""
    return tuple(Path(spec.split("=", 1)[-1]) for spec in specs)


def _summary(v: np.ndarray) -> str:
    """min, max and mean of an output (numbers only where they exist: an output
    may have no elements, or be strings or booleans)."""
    if v.size == 0:
        return "(no elements)"
    if v.dtype.kind not in "biuf":
        return f"{v.size} element(s)"
    x = v.astype(np.float64)
    return f"min {x.min():.6g} max {x.max():.6g} mean {x.mean():.6g}"


def _feeds(art, inputs: tuple[str, ...], random: bool, seed: int) -> dict[str, np.ndarray]:
    from .tensors import load_input_files, random_inputs

    feeds = load_input_files(art.inputs, list(inputs)) if inputs else {}
    missing = [s for s in art.inputs if s.name not in feeds]
    if missing and not random:
        raise UsageError(f"{art.path}: give input(s) "
                         + ", ".join(s.describe() for s in missing)
                         + " with --input NAME=FILE.npy, or pass --random")
    feeds.update(random_inputs(missing, seed=seed, int_bounds=art.input_bounds))
    return feeds


@cli.command("run")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--input", "inputs", multiple=True, metavar="NAME=FILE.npy|FILE.npz",
              help="Input data; repeatable.")
@click.option("--random", is_flag=True, help="Random data for inputs not given (seeded).")
@click.option("--seed", default=0, show_default=True, help="Seed for --random.")
@click.option("-o", "--output", type=OutputPath(dir_okay=False, path_type=Path), default=None,
              help="Write outputs to this .npz (default: ARTIFACT's name + .out.npz).")
@click.option("--repeat", default=10, show_default=True,
              help="Timed runs after one warm-up (0: run once, no timing).")
@click.option("--emulate", is_flag=True,
              help="Run an aarch64 artifact through its C bundle under qemu-user.")
@device_option
@_model_target_option
@trust_option
def run_cmd(artifact: Path, inputs, random: bool, seed: int, output: Path | None,
            repeat: int, emulate: bool, device: str | None, timeout: float,
            target: str | None, trust: tuple[Path, ...]) -> None:
    """Run an artifact (or an ONNX model, compiled now) on this machine, a device
    (--device) or under qemu; write its outputs to .npz."""
    out_path = output or artifact.with_name(artifact.stem + ".out.npz")
    check_output(out_path, what="-o", inputs=(artifact, *_input_files(inputs)))
    if emulate and device:
        raise UsageError("--emulate runs here under qemu, --device on a device: give one")
    with contextlib.ExitStack() as stack:
        _run(artifact, inputs, random, seed, out_path, repeat, emulate, device, timeout,
             target, trust, stack)


def _run(artifact, inputs, random, seed, target, repeat, emulate, device, timeout,
         compile_for, trust, stack) -> None:
    art, dev = _artifact_for(artifact, trust, compile_for, device, timeout, stack,
                             fallback="arm" if emulate else "host")
    feeds = _feeds(art, inputs, random, seed)
    if device:
        session = _remote(art, dev, timeout)
        results = session.run(feeds)
    elif emulate:
        with _progress() as say:
            say("running the aarch64 build under qemu (the runner is built once per setup)")
            results = art.run(feeds, emulate=True)
        repeat = 0  # emulated time says nothing about the board
    else:
        session = art.session()
        results = session.run(feeds)
    with atomic_write(target) as f:  # never a half-written .npz
        np.savez(f, **results)
    for name, v in results.items():
        out.print(f"{shown(name)}: {v.dtype}{list(v.shape)} " + _summary(v))
    out.print(f"outputs written to {shown(target)}")
    if device:
        out.print(f"ran on {escape(session.device.describe())}")
        if repeat > 0:
            out.print("latency: " + _device_latency(session, feeds, repeat))
    elif emulate:
        out.print("ran under qemu-user: no latency (emulated time says nothing about a board)")
    elif repeat > 0:
        out.print("latency: " + _latency_line(session, feeds, repeat))


def _latency_line(session, feeds, repeat: int) -> str:
    """A local session's latency; an accelerator artifact's CPU steps are measured and
    its accelerator steps estimated, each said so."""
    if hasattr(session, "latency_line"):
        return session.latency_line(feeds, repeat)
    return session.time(feeds, repeat=repeat).line()


@cli.command("profile")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--input", "inputs", multiple=True, metavar="NAME=FILE.npy|FILE.npz",
              help="Input data (default: random, seeded).")
@click.option("--seed", default=0, show_default=True, help="Seed for random inputs.")
@click.option("--repeat", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed runs, without and then with per-kernel instrumentation.")
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Show only the N slowest kernels (the rest in one row).")
@click.option("--trace", type=OutputPath(dir_okay=False, path_type=Path), default=None,
              help="Write the last run as a Chrome/Perfetto trace (ui.perfetto.dev).")
@click.option("--json", "json_out", type=OutputPath(dir_okay=False, path_type=Path),
              default=None, help="Also write the profile as JSON.")
@device_option
@_model_target_option
@trust_option
def profile_cmd(artifact: Path, inputs, seed: int, repeat: int, top: int | None,
                trace: Path | None, json_out: Path | None, device: str | None, timeout: float,
                target: str | None, trust: tuple[Path, ...]) -> None:
    """Latency and per-kernel time breakdown of an artifact, here or on a device.

    Each fused TVM kernel is listed with its time, share, calls and the ONNX
    nodes it came from: nodes of the graph TVM imported, i.e. after edgec's
    passes (the last file --save-temps writes), so nodes a pass rewrote carry
    new names. Kernel times are measured with the VM's call instrumentation;
    a warning says when they do not add up to within 15% of the latency
    measured without it.
    """
    _check_outputs(inputs=(artifact, *_input_files(inputs)), trace=trace, json=json_out)
    from .runtime.profiler import profile, render_profile

    with contextlib.ExitStack() as stack:
        art, dev = _artifact_for(artifact, trust, target, device, timeout, stack)
        art.refuse_offload("edgec profile")
        feeds = _feeds(art, inputs, True, seed)
        if device:
            from .runtime.device.client import profile_remote

            prof = profile_remote(_remote(art, dev, timeout), feeds, repeat=repeat)
        else:
            prof = profile(art.session(), feeds, repeat=repeat)
    render_profile(prof, out, top=top)
    if (warning := prof.warning()) is not None:
        err.print(f"edgec: warning: {warning}", markup=False)
    for what, path, data in (("trace", trace, prof.trace), ("profile", json_out, prof.to_json)):
        if path is not None:
            with atomic_write(path) as f:
                f.write(json.dumps(data(), indent=1).encode())
            out.print(f"{what} written to {shown(path)}")


@cli.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--model", "model", type=click.Path(path_type=Path), default=None,
              help="The ONNX model, when PATH is an artifact.")
@click.option("-o", "--output", type=OutputPath(dir_okay=False, path_type=Path), default=None,
              help="Keep the artifact compiled for verification here.")
@compile_options
@click.option("--input", "inputs", multiple=True, metavar="NAME=FILE.npy|FILE.npz",
              help="Input data (default: random, seeded).")
@click.option("--seed", default=0, show_default=True, help="Seed for random inputs.")
@click.option("--rtol", type=float, default=None, help="Override the relative tolerance.")
@click.option("--atol", type=float, default=None, help="Override the absolute tolerance.")
@click.option("--min-sqnr", type=float, default=None, metavar="DB",
              help="Quantised artifacts: the SQNR each output must reach against float32 "
                   "(default: int8 20 dB, fp16 40 dB).")
@click.option("--repeat", default=10, show_default=True,
              help="Timed runs for the latency line (0: none).")
@click.option("--json", "json_out", type=OutputPath(dir_okay=False, path_type=Path),
              default=None, help="Also write the report as JSON.")
@device_option
@trust_option
def verify_cmd(path: Path, model: Path | None, output: Path | None, inputs, seed: int,
               rtol, atol, min_sqnr, repeat: int, json_out: Path | None, device: str | None,
               timeout: float, trust: tuple[Path, ...], **o) -> None:
    """Compare an artifact's outputs with onnxruntime's on the same inputs.

    PATH is an ONNX model (compiled now with the compile options) or an
    .edgec artifact (then give --model).
    """
    _check_outputs(inputs=(path, model, output, *_input_files(inputs)), json=json_out)
    from . import api  # the compiler side, loaded only when needed
    from .artifact import Artifact
    from .verification import DEFAULT_TOLERANCES, verify_artifact

    with contextlib.ExitStack() as stack:
        if path.suffix == ".onnx" or model is None:
            if model is not None:
                raise UsageError(f"{path}: --model is only for verifying an artifact; "
                                 "give the .edgec file as PATH")
            if path.suffix == ".edgec":
                raise UsageError(f"{path}: an artifact needs --model MODEL.onnx to compare "
                                 "against")
            source = click.get_current_context().get_parameter_source("trust")
            if trust and source == click.core.ParameterSource.COMMANDLINE:
                raise UsageError(f"{path}: --trust checks an artifact's signature; this "
                                 "model is compiled now, by this command (EDGEC_TRUST is "
                                 "not applied to it either)")
            model = path
            if output is None:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="edgec-verify-"))
                output = Path(tmp) / "model.edgec"
            if device:  # compile for the device: -t, else the file that fits its CPU
                from .runtime.device.client import connect, pick_device_target

                device = connect(device, timeout=timeout)
                source = click.get_current_context().get_parameter_source("target")
                if source == click.core.ParameterSource.DEFAULT:
                    o["target"] = pick_device_target(device).name
            with _progress() as say:
                art = api.compile(path, output=output, progress=say, **_compile_kwargs(o))
        else:
            art = Artifact(path, trust=_trust(trust))
        feeds = _feeds(art, inputs, True, seed) if inputs else None
        remote = _remote(art, device, timeout) if device else None
        report, feeds = verify_artifact(art, model, feeds=feeds, seed=seed, rtol=rtol,
                                        atol=atol, min_sqnr=min_sqnr, device=remote)
        quant = report.quantization
        where = f" on {remote.device.name}" if remote else ""
        title = f"{model.name} on {art.target['name']}{where} vs onnxruntime" + (
            " here" if remote else "") + (
            f" float32 ({quant['mode']} artifact)" if quant else "")
        table = Table(title=escape(title))
        cols = ["output", "shape", "dtype", "max abs err", "max rel err"]
        cols += ["SQNR", "rule"] if quant else ["tolerance"]
        for col in [*cols, "result"]:
            table.add_column(col)
        for c in report.checks:
            verdict = "[green]ok[/]" if c.ok else (
                "[red]BELOW[/]" if c.sqnr_db is not None else
                f"[red]MISMATCH[/] {c.mismatched} el.")
            if c.problem:
                verdict += f" ({escape(c.problem)})"
            row = [escape(c.name), "x".join(map(str, c.shape)), c.dtype,
                   f"{c.max_abs_err:.3g}", f"{c.max_rel_err:.3g}"]
            if quant:
                row += [f"{c.sqnr_db:.1f} dB" if c.sqnr_db is not None else "-",
                        f"SQNR >= {c.min_sqnr_db:g} dB" if c.min_sqnr_db is not None
                        else "exact"]
            else:
                row += [f"rtol {c.rtol:g} atol {c.atol:g}"]
            table.add_row(*row, verdict)
        out.print(table)
        if report.partitions:
            _partition_table(report.partitions)
        if quant and quant.get("label"):
            out.print(f"[yellow]note[/]: {quant['label']}")
        if report.seed is not None and quant:
            out.print(f"inputs: random, seed {report.seed} (give --input with real data for a "
                      "calibrated model); rule SQNR = 10 log10(sum ref^2 / sum (edgec-ref)^2)")
        elif report.seed is not None:
            defaults = ", ".join(f"{k} {v[0]:g}/{v[1]:g}" for k, v in DEFAULT_TOLERANCES.items())
            out.print(f"inputs: random, seed {report.seed}; rule |edgec-ref| <= atol + "
                      f"rtol*|ref| (default rtol/atol: {defaults}; integers exact)")
        if remote is not None:
            out.print(f"edgec ran on {escape(remote.device.describe())}")
            if repeat > 0 and report.ok:
                out.print("edgec latency: " + _device_latency(remote, feeds, repeat))
        elif report.emulated:
            out.print("edgec ran the aarch64 build under qemu-user (its C bundle); no latency")
        elif repeat > 0 and report.ok:
            out.print("edgec latency: " + _latency_line(art.session(), feeds, repeat))
        if json_out is not None:
            with atomic_write(json_out) as f:
                f.write(json.dumps(report.to_json(), indent=2).encode())
        if not report.ok:
            bad = [c.name for c in report.checks if not c.ok]
            bad_parts = sorted({p.partition for p in report.partitions if not p.ok})
            if bad_parts:
                raise MismatchError(f"{model}: accelerator partition(s) {', '.join(bad_parts)} "
                                    "differ from onnxruntime on the same quantised inputs "
                                    "beyond the rule; report it with the artifact")
            if quant:
                raise MismatchError(f"{model}: output(s) {', '.join(bad)} of the {quant['mode']} "
                                    "artifact are below the SQNR floor; calibrate on real data, "
                                    "keep the most sensitive layers float (edgec quant-report) "
                                    "or lower --min-sqnr")
            raise MismatchError(f"{model}: output(s) {', '.join(bad)} differ from onnxruntime "
                                "beyond tolerance; rerun with --save-temps DIR to bisect the "
                                "passes (or -O0)")
        if quant:
            out.print(f"[green]verified[/]: all {len(report.checks)} output(s) of the "
                      f"{quant['mode']} artifact reach the SQNR floor against onnxruntime "
                      "float32")
        else:
            out.print(f"[green]verified[/]: all {len(report.checks)} output(s) match "
                      "onnxruntime")


@cli.command("bench")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-t", "--target", default=None,
              help="A target this machine can run (default: host); with --device, one the "
                   "device runs (default: the file that best fits its CPU).")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=D1,D2,..")
@click.option("--input-const", "input_consts", multiple=True, metavar="NAME=VALUE")
@click.option("-O", "opt_level", type=click.IntRange(0, 3), default=None)
@click.option("--threads", type=click.IntRange(1, 1024), default=None,
              help="Threads for every engine (default: all cores).")
@click.option("--baseline", "baselines", default="onnxruntime,tflite", show_default=True,
              help="Comma-separated engines to compare with, or 'none'.")
@click.option("--warmup", default=2, show_default=True, help="Untimed runs first.")
@click.option("--repeat", default=100, show_default=True, help="At most this many timed runs.")
@click.option("--budget", default=10.0, show_default=True,
              help="Seconds of timed runs per engine (at least 5 runs).")
@click.option("--seed", default=0, show_default=True, help="Seed for the random inputs.")
@click.option("--json", "json_out", type=OutputPath(dir_okay=False, path_type=Path),
              default=None, help="Write the report as JSON.")
@click.option("--plot", "plot_out", type=OutputPath(dir_okay=False, path_type=Path),
              default=None, help="Draw a bar chart PNG.")
@device_option
@_quant_opts
def bench_cmd(model: Path, target: str | None, input_shapes, input_consts, opt_level, threads,
              baselines: str, warmup: int, repeat: int, budget: float, seed: int,
              json_out: Path | None, plot_out: Path | None, device: str | None,
              timeout: float, **q) -> None:
    """Time edgec against onnxruntime and TFLite on MODEL: same inputs, same threads.

    With --quantize int8, also edgec int8, onnxruntime int8 (quantize_static's default,
    same calibration) and TFLite int8.
    """
    _check_outputs(inputs=(model,), json=json_out, plot=plot_out)
    from . import api  # the compiler side, loaded only when needed
    from .bench import BenchOptions, run_bench
    from .bench.render import failure_lines, int8_speedup, plot, ratio_to_best_peer, rich_table

    quantize = _quantize(q)
    if quantize is not None and quantize.mode != "int8":
        raise UsageError("bench --quantize: only int8 has rows to compare (fp16 runs on "
                         "targets bench cannot time here)")
    if target is not None:
        from .target_registry import resolve_target

        if resolve_target(target).accelerator is not None:
            raise UnsupportedError(f"bench -t {target}: an accelerator target's partitions "
                                   "cannot be timed on this machine; 'edgec inspect MODEL -t "
                                   f"{target} --offload' gives its toolchain's estimate, "
                                   "'edgec verify' its numerics")
    chosen = () if baselines.strip() == "none" else tuple(
        b.strip() for b in baselines.split(",") if b.strip())
    options = BenchOptions(target=target or ("host" if device is None else None),
                           input_shapes=_shapes(input_shapes),
                           input_consts=_consts(input_consts),
                           pipeline=api._pipeline(opt_level, None), threads=threads,
                           baselines=chosen, warmup=warmup, repeat=repeat, budget_s=budget,
                           seed=seed, quantize=quantize)
    if device and threads is not None:
        raise UsageError("bench --device --threads: edgec and LiteRT on the device use its "
                         "cores; onnxruntime here uses this machine's")
    with _progress() as say:
        if device:
            from .bench.device import run_device_bench

            report = run_device_bench(model, options, device, timeout=timeout, progress=say)
        else:
            report = run_bench(model, options, progress=say)
    out.print(rich_table(report))
    if report.device is not None:
        from .runtime.profiler import device_clock_note

        out.print(f"device: {escape(report.device['name'])}: edgec (and TFLite) timed by its "
                  "own clock" + device_clock_note(report.device) + "; onnxruntime timed on "
                  "this machine")
    for line in failure_lines(report):
        out.print(line, markup=False)
    ratio = ratio_to_best_peer(report)
    if report.device is not None:
        edgec_row, lite = report.result("edgec"), report.result("tflite")
        ratio = None  # onnxruntime ran on another machine: no ratio with it
        if edgec_row and lite and edgec_row.stats and lite.stats:
            out.print(f"on the device: edgec / TFLite median latency: "
                      f"{edgec_row.stats.median_ms / lite.stats.median_ms:.2f}x")
    if ratio is not None:
        out.print(f"edgec / best peer median latency: {ratio:.2f}x "
                  f"({'edgec is slower' if ratio > 1 else 'edgec is faster'})")
    if quantize is not None:
        up, peer = int8_speedup(report), ratio_to_best_peer(report, "int8")
        if up is not None:
            out.print(f"edgec int8 is {up:.2f}x {'faster' if up > 1 else 'slower'} than edgec "
                      "fp32" + ("" if peer is None else
                                f"; edgec int8 / best int8 peer: {peer:.2f}x"))
        out.print(f"inputs: {escape(report.feeds_from)}"
                  + (" (random calibration: a smoke test)" if quantize.is_random else ""))
    if json_out is not None:
        with atomic_write(json_out) as f:
            f.write(json.dumps(report.to_json(), indent=2).encode())
        out.print(f"report written to {json_out}")
    if plot_out is not None:
        plot([report], plot_out)
        out.print(f"chart written to {plot_out}")


@cli.command("tune")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-t", "--target", default="host", show_default=True,
              help="Target to tune for; measured here, or on devices with --device.")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=D1,D2,..")
@click.option("--input-const", "input_consts", multiple=True, metavar="NAME=VALUE")
@click.option("-O", "opt_level", type=click.IntRange(0, 3), default=None,
              help="The level you will compile with (it decides which kernels exist).")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Stop after this many measured candidates in all.")
@click.option("--budget", default=None, metavar="TIME",
              help="Stop after this long (90s, 20m, 1h). Default 20m when --trials is "
                   "not given either.")
@click.option("--db", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Tuning database folder (default: the target's own "
                                  "under the cache, which compile uses automatically).")
@click.option("--device", default=None, metavar="KEY@HOST:PORT",
              help="Measure on boards of KEY registered with the TVM RPC tracker at "
                   "HOST:PORT instead of this machine.")
@click.option("--devices", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --device: measure on up to this many boards of the key at once.")
@click.option("--rpc", default=None, hidden=True, metavar="KEY@HOST:PORT",
              help="Deprecated spelling of --device.")
@click.option("--json", "json_out", type=OutputPath(dir_okay=False, path_type=Path),
              default=None, help="Write the report as JSON.")
def tune_cmd(model: Path, target: str, input_shapes, input_consts, opt_level,
             trials: int | None, budget: str | None, db: Path | None, device: str | None,
             devices: int, rpc: str | None, json_out: Path | None) -> None:
    """Search faster schedules for MODEL's edgec kernels; later compiles use them.

    Resumable: records are saved as they are measured, so after Ctrl-C the
    same command continues where it stopped."""
    _check_outputs(inputs=(model,), json=json_out)
    from . import api
    from .tuning import parse_budget, tune

    if rpc is not None:
        if device is not None:
            raise UsageError("--rpc is the old spelling of --device; give only --device")
        err.print("edgec: warning: --rpc is deprecated; use --device KEY@HOST:PORT",
                  markup=False)
        device = rpc
    budget_s = parse_budget(budget) if budget is not None else (
        20 * 60.0 if trials is None else None)
    with _progress() as say, _tune_bar() as status:
        report = tune(model, target, input_shapes=_shapes(input_shapes),
                      input_consts=_consts(input_consts),
                      pipeline=api._pipeline(opt_level, None), db=db, trials=trials,
                      budget_s=budget_s, device=device, devices=devices, progress=say,
                      status=status)
    table = Table(title=f"edgec tune: {model} for {report.target}")
    for col in ("kernel", "uses", "MFLOP", "template us", "best us", "speedup", "trials"):
        table.add_column(col, justify="left" if col == "kernel" else "right")
    for t in report.tasks:
        j = t.to_json()
        table.add_row(j["kernel"], str(j["uses"]), f"{j['gflop'] * 1e3:.3g}",
                      f"{j['template_ms'] * 1e3:.3g}", f"{j['best_ms'] * 1e3:.3g}",
                      f"{j['speedup']:.2f}x", str(j["trials"]))
    out.print(table)
    before = sum(t.template_s * t.uses for t in report.tasks)
    after = sum(t.best_s * t.uses for t in report.tasks)
    if device is not None:
        out.print(f"measured on boards of {escape(device)}, up to {devices} at once (device "
                  "clock)")
    out.print(f"{report.trials} candidates measured in {report.seconds:.0f} s; edgec kernels "
              f"{before * 1e6:.1f} -> {after * 1e6:.1f} us per run (as measured by the tuner)")
    out.print(f"records in {report.db}; 'edgec compile' uses them"
              + (f" with --tuning-db {report.db}" if db is not None else ""))
    if json_out is not None:
        with atomic_write(json_out) as f:
            f.write(json.dumps(report.to_json(), indent=2).encode())
    if report.interrupted:
        err.print(f"edgec: interrupted after {report.trials} candidates; they are saved: run "
                  "the same command to resume", markup=False)
        raise click.exceptions.Exit(130)


@contextlib.contextmanager
def _tune_bar():
    """Task, trials, the task's best GFLOP/s and time left, on stderr (terminals only)."""
    if not err.is_terminal:
        yield lambda status: None
        return
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.fields[info]}"), console=err, transient=True) as bar:
        job = bar.add_task("tuning", total=None, info="")

        def show(s) -> None:
            total = s.max_trials
            done = s.trials
            if total is None and s.left_s is not None:  # budget only: the bar is time
                total, done = s.elapsed_s + s.left_s, s.elapsed_s
            left = f", {s.left_s / 60:.1f} min left" if s.left_s is not None else ""
            bar.update(job, total=total, completed=done, description=s.task,
                       info=s.message or f"{s.trials} trials, best {s.task_gflops:.1f} "
                                         f"GFLOP/s{left}")
        yield show


@cli.command("quant-report")
@click.argument("model", type=click.Path(path_type=Path))
@_quant_opts
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=D1,D2,..")
@click.option("--input-const", "input_consts", multiple=True, metavar="NAME=VALUE")
@click.option("-O", "opt_level", type=click.IntRange(0, 3), default=None)
@click.option("--eval", "eval_data", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="Held-out samples to measure on (default: the last quarter of the "
                   "calibration samples, not used for calibrating).")
@click.option("--max-drop", type=float, default=None, metavar="DB",
              help="Keep the noisiest layers float until every output's SQNR is at least "
                   "DB dB (automatic mixed precision).")
@click.option("--json", "json_out", type=OutputPath(dir_okay=False, path_type=Path),
              default=None, help="Also write the report as JSON.")
@click.option("--plot", "plot_out", type=OutputPath(dir_okay=False, path_type=Path),
              default=None, help="A per-layer SQNR chart (PNG).")
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Show only the N noisiest layers.")
def quant_report_cmd(model: Path, input_shapes, input_consts, opt_level, eval_data,
                     max_drop, json_out, plot_out, top, **o) -> None:
    """Per-layer and per-output int8 error of MODEL against float (onnxruntime)."""
    _check_outputs(inputs=(model,), json=json_out, plot=plot_out)
    from . import api

    o.setdefault("quantize", "int8")
    o["quantize"] = o["quantize"] or "int8"
    if o.get("calibration") is None:
        raise UsageError("quant-report needs --calibration DIR (or random)")
    if eval_data is not None and not eval_data.is_dir():
        raise UsageError(f"--eval {eval_data}: no such folder")
    with _progress() as say:
        rep = api.quant_report(model, quantize=_quantize(o), max_drop=max_drop,
                               eval_data=str(eval_data) if eval_data else None,
                               input_shapes=_shapes(input_shapes),
                               input_consts=_consts(input_consts), opt_level=opt_level,
                               progress=say)
    table = Table(title=escape(f"{model.name}: int8 ({rep.options.method}) vs float on "
                               f"{rep.eval_samples} held-out sample(s)"))
    for col in ("layer", "op", "sensitivity", "accumulated", "max abs err", "MACs", ""):
        table.add_column(col)
    rows = sorted(rep.layers, key=lambda la: la.sensitivity_db)[:top] if top else rep.layers
    for la in rows:
        table.add_row(escape(la.node), la.op, f"{la.sensitivity_db:.1f} dB",
                      f"{la.sqnr_db:.1f} dB", f"{la.max_abs_err:.3g}", f"{la.macs / 1e6:.2f}M",
                      "[yellow]kept float[/]" if la.node in rep.kept_float else "")
    out.print(table)
    out.print("sensitivity: the outputs' SQNR with only that layer int8; accumulated: the "
              "layer's own output SQNR in the all-int8 model")
    for o_all, o_now in zip(rep.outputs_all_int8, rep.outputs, strict=True):
        line = (f"output {escape(o_all['name'])}: all int8 SQNR {o_all['sqnr_db']:.1f} dB, "
                f"max abs err {o_all['max_abs_err']:.3g}")
        if rep.kept_float:
            line += f"; with kept-float layers {o_now['sqnr_db']:.1f} dB"
        out.print(line)
    if rep.budget_db is not None:
        verdict = "met" if rep.budget_met else "[red]not met[/]"
        out.print(f"--max-drop {rep.budget_db:g} dB {verdict}: "
                  + (f"{len(rep.kept_float)} layer(s) kept float ("
                     + escape(", ".join(rep.kept_float)) + f"), {rep.float_mac_share:.1%} of "
                     "the MACs (estimated speed cost: those MACs at float rate)"
                     if rep.kept_float else "no layer needs to stay float"))
        if rep.kept_float:
            out.print("compile with: " + escape(" ".join(
                f"--keep-float {n}" for n in rep.kept_float)))
    if rep.options.is_random:
        out.print("[yellow]note[/]: random calibration data: a smoke test, not an accuracy "
                  "measurement")
    if json_out is not None:
        with atomic_write(json_out) as f:
            f.write(json.dumps(rep.to_json(), indent=2).encode())
    if plot_out is not None:
        from .quantize.report import plot

        plot(rep, plot_out)
        out.print(f"chart: {plot_out}")


@cli.command("bundle")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to create (must not exist or be empty).")
@click.option("--build", "do_build", is_flag=True,
              help="Also build it with CMake (cross-compiling for aarch64 targets).")
@click.option("--runtime-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Take libtvm_runtime.so and libtvm_ffi.so for the target from here.")
@trust_option
def bundle_cmd(artifact: Path, output: Path, do_build: bool, runtime_dir: Path | None,
               trust: tuple[Path, ...]) -> None:
    """Write a C/C++ app bundle: the model, the TVM runtime for the target, a C API."""
    from .artifact import trusting
    from .bundle.writer import write_bundle

    art = _open_artifact(artifact, trust)  # the manifest's schema, and its signature
    art.refuse_offload("edgec bundle (the C API runs one TVM library)")
    with _progress() as say, trusting(art.trust):  # the writer's own read is checked too
        say("writing the bundle (downloads the target's TVM runtime wheels once)"
            + (" and building it with CMake" if do_build else ""))
        info = write_bundle(artifact, output, runtime_dir=runtime_dir, build=do_build)
    out.print(f"bundle for {info.arch} written to {info.path} (see its README.md)")
    out.print(f"runtime footprint: {info.total_bytes / 2**20:.2f} MiB shipped: "
              + ", ".join(f"{Path(k).name} {v / 2**20:.2f} MiB" for k, v in
                          sorted(info.footprint.items(), key=lambda kv: -kv[1])))
    name, size = info.largest()
    out.print(f"  largest: {Path(name).name} ({100 * size / info.total_bytes:.0f}%)")
    if info.program is not None:
        out.print(f"built {info.program}")


@cli.command("keygen")
@click.argument("name", type=click.Path(path_type=Path))
def keygen_cmd(name: Path) -> None:
    """Make an Ed25519 key pair for signing artifacts: NAME.key (private, mode 0600)
    and NAME.pub (public, for --trust on the devices). Never overwrites a key."""
    from .signing import generate_key

    private, public, kid = generate_key(name)
    out.print(f"key {kid}: private key {shown(private)} (mode 0600: keep it secret, off the "
              f"devices), public key {shown(public)}")
    out.print(f"sign with 'edgec compile --sign {shown(private)}' or 'edgec sign ART --key "
              f"{shown(private)}'; devices check with '--trust {shown(public)}'")


@cli.command("sign")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--key", "key_path", type=OutputPath(dir_okay=False, path_type=Path),
              required=True, metavar="KEY", help="The Ed25519 private key (NAME.key).")
@click.option("-o", "--output", type=OutputPath(dir_okay=False, path_type=Path), default=None,
              help="Write the signed artifact here (default: sign ARTIFACT in place).")
def sign_cmd(artifact: Path, key_path: Path, output: Path | None) -> None:
    """Sign an artifact (replacing any signature it has); its hashes are checked first."""
    from .artifact import sign_artifact
    from .signing import load_private_key

    if output is not None:
        check_output(output, what="-o", inputs=())
    key = load_private_key(key_path)
    signature = sign_artifact(artifact, key, output)
    out.print(f"{shown(output or artifact)}: signed with key {signature.key_id}")


@cli.command("inspect")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=D1,D2,..",
              help="Bind dynamic dims first (for FLOPs).")
@click.option("--input-const", "input_consts", multiple=True, metavar="NAME=VALUE")
@click.option("--max-model-size", default=str(DEFAULT_MAX_MODEL_BYTES), metavar="SIZE")
@click.option("--max-nodes", type=click.IntRange(min=1), default=DEFAULT_MAX_NODES,
              show_default=True, help="Refuse models with more nodes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("-t", "--target", default=None,
              help="With --offload: the accelerator target (edgec targets lists them).")
@click.option("--offload", is_flag=True,
              help="How the model splits between the target's accelerator and its CPU: "
                   "partitions, MACs, why each op stays on the CPU, the accelerator "
                   "toolchain's latency estimate.")
@click.option("--chart", type=OutputPath(dir_okay=False, path_type=Path), default=None,
              metavar="FILE.png|svg", help="With --offload: draw the split.")
@_quant_opts
@trust_option
def inspect_cmd(model: Path, input_shapes, input_consts, max_model_size: str, max_nodes: int,
                as_json: bool, target: str | None, offload: bool, chart: Path | None,
                trust: tuple[Path, ...], **q) -> None:
    """Describe a model (I/O, ops, parameters, FLOPs, what TVM cannot import) or an
    .edgec artifact (target, I/O, passes, quantisation, kernels, the offload split);
    with -t TARGET --offload, how the model splits for an accelerator."""
    from . import api  # the compiler side, loaded only when needed
    from .model_info import render_model_info

    given = [f for f, v in (("-t", target), ("--chart", chart),
                            ("--quantize", q.get("quantize"))) if v]
    if given and not offload:
        raise UsageError(f"{', '.join(given)}: only with --offload (inspect -t TARGET "
                         "--offload MODEL.onnx)")
    if model.suffix == ".edgec":
        if offload:
            raise UsageError(f"{model}: --offload splits a model for a target; an artifact's "
                             "split is shown by 'edgec inspect ARTIFACT'")
        _inspect_artifact(_open_artifact(model, trust), as_json)
        return
    if trust and click.get_current_context().get_parameter_source("trust") == \
            click.core.ParameterSource.COMMANDLINE:
        raise UsageError(f"{model}: --trust checks an .edgec artifact's signature, not a "
                         "model's")
    if offload:
        if target is None:
            raise UsageError("--offload needs -t TARGET, an accelerator target (edgec "
                             "targets lists them under npu/)")
        _check_outputs(chart=chart)
        from .accel.report import plot_offload, render_offload

        with _progress() as say:
            report = api.offload_report(model, target, quantize=_quantize(q),
                                        input_shapes=_shapes(input_shapes),
                                        input_consts=_consts(input_consts),
                                        max_model_bytes=_size(max_model_size),
                                        max_nodes=max_nodes, progress=say)
        if chart is not None:
            plot_offload(report, chart)
        if as_json:
            out.print_json(json.dumps(report))
        else:
            render_offload(report, out)
            if chart is not None:
                out.print(f"chart written to {shown(chart)}")
        return

    info = api.inspect(model, input_shapes=_shapes(input_shapes),
                       input_consts=_consts(input_consts), max_model_bytes=_size(max_model_size),
                       max_nodes=max_nodes)
    if as_json:
        out.print_json(json.dumps(info.to_json()))
    else:
        render_model_info(info, out)


def _partition_table(checks) -> None:
    table = Table(title="accelerator partitions vs onnxruntime on the same inputs")
    for col in ("partition", "ran here as", "whole: max diff", "whole: exact",
                "each op alone: max diff (worst op)", "rule", "result"):
        table.add_column(col)
    for p in checks:
        table.add_row(escape(p.partition), escape(p.runs_as), f"{p.max_abs_err:.3g}",
                      f"{100 * p.exact_share:.1f}%",
                      f"{p.op_max_err:.3g} ({escape(p.worst_op)}) over {p.ops} ops"
                      if p.ops else "-", escape(p.rule),
                      "[green]ok[/]" if p.ok else "[red]MISMATCH[/]")
    out.print(table)


def _signature_line(art) -> str:
    sig = art.signature
    if sig is None:
        return "unsigned"
    if art.trust is None:
        return f"signed by key {sig.key_id} (not checked: give --trust KEYS to check it)"
    source = art.trust.source(sig.key_id)
    return f"signed by key {sig.key_id}, verified against {source}"


def _inspect_artifact(art, as_json: bool) -> None:
    m = art.manifest
    if as_json:
        sig = ({"signature": {"key_id": art.signed_by, "verified": art.trust is not None}}
               if art.signature is not None else {})
        out.print_json(json.dumps({**m, **sig}))
        return
    src = m["source_model"]
    out.print(f"{escape(str(art.path))}: edgec {escape(str(m.get('edgec_version', '?')))} "
              f"artifact of {escape(src['file'])} (sha256 {escape(src['sha256'][:12])}...), "
              f"built {escape(str(m.get('created', '?')))} with TVM "
              f"{escape(str(m.get('tvm_version', '?')))}")
    out.print(f"  target:  {escape(m['target']['name'])} ({escape(m['target']['arch'])})")
    out.print(f"  signature: {escape(_signature_line(art))}")
    out.print("  inputs:  " + escape(", ".join(s.describe() for s in art.inputs)))
    out.print("  outputs: " + escape(", ".join(s.describe() for s in art.outputs)))
    out.print(f"  pipeline {escape(str(m.get('pipeline', '?')))}: "
              f"{len(m.get('passes', []))} passes; {len(m.get('kernels') or {})} kernels")
    if art.offload is not None:
        from .accel.report import render_offload

        render_offload({**art.offload, "model": src["file"], "target": m["target"]["name"]},
                       out)
    q = m.get("quantization")
    if not q:
        out.print("  quantisation: none (float32)")
        return
    if q["mode"] == "fp16":
        out.print(f"  quantisation: fp16 ({q.get('reason', '')})")
        return
    cal = q["calibration"]
    out.print(f"  quantisation: int8, {q['method']} calibration on {cal['samples']} "
              f"{cal['kind']} sample(s) from {escape(str(cal['source']))}")
    out.print(f"    weights {q['weights']}; activations {q['activations']}; "
              f"{q['quantized_ops']} op(s) quantised, {q.get('integer_chains', 0)} run on "
              "integer kernels")
    kept = q.get("kept_float", [])
    out.print("    kept float: " + (escape(", ".join(kept)) if kept else "none"))
    out.print(f"    scales sha256 {q['scales_sha256'][:16]}...")
    if q.get("label"):
        out.print(f"    [yellow]{escape(q['label'])}[/]")


@cli.group("device")
def device_group() -> None:
    """Devices over TVM RPC: serve one, run a tracker, list a farm, ask one what it is.

    On the device: 'edgec device serve' (TVM runtime only). On the build
    machine: --device KEY@TRACKER:PORT or HOST:PORT on run, profile, verify,
    bench and tune. Servers and trackers bind to 127.0.0.1 unless --host says
    otherwise: an RPC server runs any code a peer uploads.
    """


def _host_port(text: str, option: str) -> tuple[str, int]:
    from .devices import parse_device

    address = parse_device(text, option=option)
    if address.key is not None:
        raise UsageError(f"{option} {text}: give HOST:PORT, without a key")
    return address.host, address.port


@device_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback lets peers run code here.")
@click.option("--port", type=click.IntRange(1, 65535), default=9090, show_default=True)
@click.option("--tracker", default=None, metavar="HOST:PORT",
              help="Register with this tracker (then give --key).")
@click.option("--key", default=None, help="The device key clients ask the tracker for.")
@click.option("--emulate", type=click.Choice(["arm"]), default=None,
              help="Serve an emulated aarch64 device (qemu-user) instead of this CPU; its "
                   "latency is labelled emulated everywhere.")
@click.option("--cpu", default=None, metavar="MODEL",
              help="With --emulate: qemu's CPU model, the board it reports (cortex-a72, "
                   "cortex-a76, ...; default: max, every feature qemu has).")
def device_serve_cmd(host: str, port: int, tracker: str | None, key: str | None,
                     emulate: str | None, cpu: str | None) -> None:
    """Serve this machine (or an emulated aarch64 CPU) to edgec over TVM RPC."""
    from .runtime.device.server import exposure_warning, serve

    if (warning := exposure_warning(host, port)) is not None:
        err.print(f"edgec: warning: {warning}", markup=False)
    serve(host=host, port=port, tracker=_host_port(tracker, "--tracker") if tracker else None,
          key=key, emulate={"arm": "aarch64"}.get(emulate), cpu=cpu,
          announce=lambda line: out.print(line, markup=False))


@device_group.command("tracker")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (boards and clients must reach it).")
@click.option("--port", type=click.IntRange(1, 65535), default=9190, show_default=True)
def device_tracker_cmd(host: str, port: int) -> None:
    """Run TVM's RPC tracker: the queue a farm's boards register with."""
    from .runtime.device.server import exposure_warning, serve_tracker

    if (warning := exposure_warning(host, port, what="register devices and take them")
            ) is not None:
        err.print(f"edgec: warning: {warning}", markup=False)
    serve_tracker(host=host, port=port, announce=lambda line: out.print(line, markup=False))


@device_group.command("list")
@click.option("--tracker", required=True, metavar="HOST:PORT", help="The tracker to ask.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--timeout", type=click.FloatRange(min=1), default=10.0, show_default=True)
def device_list_cmd(tracker: str, as_json: bool, timeout: float) -> None:
    """Keys a tracker has, with total, free and busy devices of each."""
    from .devices import DeviceAddress
    from .runtime.device.tracker import list_devices

    host, port = _host_port(tracker, "--tracker")
    data = list_devices(DeviceAddress(host, port), timeout=timeout)
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table(title=f"devices at the tracker {escape(data['tracker'])}")
    for col in ("key", "total", "free", "busy", "waiting", "servers"):
        table.add_column(col, justify="left" if col in ("key", "servers") else "right")
    for k in data["keys"]:
        table.add_row(escape(k["key"]), str(k["total"]), str(k["free"]), str(k["busy"]),
                      str(k["pending"]), escape(", ".join(k["servers"])))
    out.print(table)
    if not data["keys"]:
        out.print("no device is registered (start one with 'edgec device serve --tracker "
                  f"{escape(data['tracker'])} --key KEY')")


@device_group.command("info")
@click.argument("device")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--timeout", type=click.FloatRange(min=1), default=30.0, show_default=True)
def device_info_cmd(device: str, as_json: bool, timeout: float) -> None:
    """What a device reports: architecture, CPU features, cores, emulated or not,
    and the targets of 'edgec targets' it can run."""
    from .runtime.device.client import connect
    from .target_registry import load_targets

    dev = connect(device, timeout=timeout)
    info = dict(dev.info)
    feats = set(info.get("features", ()))
    info["targets"] = sorted(t.name for t in load_targets().values()
                             if t.arch == info["arch"] and t.kind == "llvm"
                             and t.accelerator is None  # split artifacts run here only
                             and set(t.cpu_flags) <= feats)
    if as_json:
        out.print_json(json.dumps(info))
        return
    out.print(escape(dev.describe()))
    out.print(f"server: {escape(str(info.get('server')))}; LiteRT: "
              f"{'yes' if info.get('litert') else 'no'}")
    out.print(f"targets it can run: {escape(', '.join(info['targets']) or 'none')}")


@cli.command("targets")
@click.option("--host", "explain", is_flag=True,
              help="Explain the file 'host' resolves to here: flags seen, each CPU target "
                   "and why it fits or not, the vector unit and core count it implies.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def targets_cmd(explain: bool, as_json: bool) -> None:
    """List the target files (name, aliases, description), or explain the host pick."""
    from . import api  # the compiler side, loaded only when needed
    from .errors import UnsupportedError
    from .target_registry import explain_host

    targets = api.targets()
    pick = explain_host(targets)
    if explain:
        # the unit build.py will hand the kernels, from LLVM's features (loads TVM)
        from .backend.tvm.kernels.vector_unit import target_vector_unit

        unit = target_vector_unit(pick.chosen) if pick.chosen else None
        report = pick.to_json() | {"vector_unit": unit.to_json() if unit else None}
        if as_json:
            out.print_json(json.dumps(report))
        else:
            for line in pick.lines(report["vector_unit"]):
                out.print(line, markup=False, soft_wrap=True)
        if pick.chosen is None:
            raise UnsupportedError(pick.why)
        return
    host = pick.chosen.name if pick.chosen else None
    if as_json:
        out.print_json(json.dumps({n: t.to_json() | {"aliases": list(t.aliases)}
                                   for n, t in targets.items()}))
        return
    # One entry per target, two lines each: readable at any terminal width.
    for name, t in targets.items():
        ok, _ = t.runs_on_host()
        aliases = [*t.aliases, *(["host"] if name == host else [])]
        kind = t.kind + (f" + {t.accelerator['plugin']}" if t.accelerator else "")
        out.print(f"[bold]{name}[/]  ({', '.join(aliases) or 'no aliases'})  {kind}, "
                  f"{t.arch}{', runs here' if ok else ''}")
        out.print(f"    {t.description}", markup=False)


@cli.command("passes")
def passes_cmd() -> None:
    """List edgec's passes and the pipelines (-O levels) that order them."""
    from .passes import PASSES, PIPELINE_DOCS, PIPELINES

    table = Table(title="passes")
    table.add_column("name")
    table.add_column("what it does")
    for p in PASSES.values():
        table.add_row(p.name, p.description)
    out.print(table)
    table = Table(title="pipelines (-O0..-O3 = O0..O3)")
    table.add_column("name")
    table.add_column("passes")
    table.add_column("what")
    for name, passes in PIPELINES.items():
        table.add_row(name, ", ".join(passes), PIPELINE_DOCS[name])
    out.print(table)


#: Width for output that is not a terminal (a log, a pipe, CI): rich would use 80
#: columns there and cut table cells ("1.3e-..."); rows are never padded to it.
PIPE_WIDTH = 10_000


def _console(*, stderr: bool) -> Console:
    """A console for stdout or stderr: the terminal's width, COLUMNS when set, and
    otherwise no limit, so logs keep whole rows and whole numbers."""
    console = SafeConsole(stderr=stderr, highlight=False, soft_wrap=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = SafeConsole(stderr=stderr, highlight=False, soft_wrap=stderr, width=PIPE_WIDTH)
    return console


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map every failure to one line and an exit code."""
    global out, err
    out = _console(stderr=False)
    err = _console(stderr=True)
    try:
        code = cli.main(args=argv, prog_name="edgec", standalone_mode=False)
        return code if isinstance(code, int) else 0  # click returns an Exit's code
    except EdgecError as exc:
        if _state["debug"]:
            raise
        err.print(one_line(f"edgec: error: {exc.message}"), markup=False)
        return exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:
        out.print(exc.ctx.get_help() if exc.ctx else "", markup=False)
        return 0
    except click.UsageError as exc:
        err.print(one_line(f"edgec: error: {exc.format_message()} (see 'edgec {_cmd(exc)}--help')"),
                  markup=False)
        return EXIT_USAGE
    except (click.Abort, KeyboardInterrupt):
        err.print("edgec: interrupted", markup=False)
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except Exception as exc:  # a bug: one line unless --debug
        if _state["debug"]:
            raise
        err.print(one_line(f"edgec: internal error: {type(exc).__name__}: {first_line(exc)}; "
                           "rerun with --debug and report it"), markup=False)
        return EXIT_INTERNAL


def _cmd(exc: click.UsageError) -> str:
    ctx = exc.ctx
    return f"{ctx.info_name} " if ctx is not None and ctx.parent is not None else ""


def entry() -> None:
    """Console-script entry: exit with main()'s code."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
