"""What a user asks of quantisation, checked before any work (printable, no onnxruntime).

The defaults are onnxruntime's advice for CPUs with integer dot products:
uint8 activations (asymmetric), int8 weights (symmetric, per output channel),
min/max calibration. Everything here is recorded in the artifact's manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UsageError

MODES = ("int8", "fp16")
METHODS = ("minmax", "percentile", "entropy")
#: at most this many samples are calibrated on unless --calib-samples says otherwise:
#: onnxruntime's calibrators keep every sample's activations (entropy and percentile
#: histograms) in memory
DEFAULT_SAMPLES = 100
RANDOM = "random"


@dataclass(frozen=True)
class Preprocess:
    """How an image file becomes a model input: resized to ``size`` (default: the
    input's own H, W), ``color`` order, scaled by ``scale``, then (x - mean) / std
    per channel, in ``layout`` (default: NCHW when dim 1 is 1 or 3, else NHWC)."""

    size: tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    scale: float = 1 / 255
    layout: str | None = None
    color: str = "rgb"

    @classmethod
    def parse(cls, items: tuple[str, ...] | list[str]) -> Preprocess:
        """``("size=224x224", "mean=0.485,0.456,0.406", "bgr")`` -> Preprocess."""
        kw: dict = {}
        for item in items:
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            try:
                if not eq and key in ("rgb", "bgr"):
                    kw["color"] = key
                elif not eq and key in ("nchw", "nhwc"):
                    kw["layout"] = key.upper()
                elif key == "size":
                    h, w = value.lower().replace(",", "x").split("x")
                    kw["size"] = (int(h), int(w))
                elif key in ("mean", "std"):
                    kw[key] = tuple(float(v) for v in value.split(","))
                elif key == "scale":
                    kw["scale"] = float(value.split("/")[0]) / float(value.split("/")[1]) \
                        if "/" in value else float(value)
                elif key == "layout" and value.upper() in ("NCHW", "NHWC"):
                    kw["layout"] = value.upper()
                elif key == "color" and value.lower() in ("rgb", "bgr"):
                    kw["color"] = value.lower()
                else:
                    raise ValueError
            except (ValueError, ZeroDivisionError):
                raise UsageError(
                    f"--preprocess '{item}': expected size=HxW, mean=M[,M,M], std=S[,S,S], "
                    "scale=1/255, layout=NCHW|NHWC or rgb|bgr") from None
        if any(s == 0 for s in kw.get("std", (1.0,))):
            raise UsageError("--preprocess std: a standard deviation of 0 divides by zero")
        return cls(**kw)


@dataclass(frozen=True)
class QuantizeOptions:
    """``--quantize`` and its calibration options."""

    mode: str = "int8"
    calibration: str | None = None  # a folder, or "random" (smoke tests only)
    method: str = "minmax"
    percentile: float = 99.999
    per_channel: bool = True
    symmetric_activations: bool = False
    samples: int | None = None
    keep_float: tuple[str, ...] = ()  # node names or op types left in float
    preprocess: Preprocess = field(default_factory=Preprocess)
    seed: int = 0  # for "random" calibration data (API only)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"--quantize {self.mode}: choose one of {', '.join(MODES)}")
        if self.method not in METHODS:
            raise UsageError(f"--calib-method {self.method}: choose one of {', '.join(METHODS)}")
        if not 50.0 < self.percentile <= 100.0:
            raise UsageError(f"--percentile {self.percentile}: give a value in (50, 100], "
                             "e.g. 99.99")
        if self.samples is not None and self.samples < 1:
            raise UsageError(f"--calib-samples {self.samples}: give at least 1")
        if self.mode == "int8" and self.calibration is None:
            raise UsageError("--quantize int8 needs --calibration DIR (a folder of .npz/.npy "
                             "files or images) or --calibration random for a smoke test")
        if self.mode == "fp16" and self.calibration is not None:
            raise UsageError("--calibration is for --quantize int8; fp16 needs no data")
        if self.calibration not in (None, RANDOM) and not Path(self.calibration).is_dir():
            raise UsageError(f"--calibration {self.calibration}: no such folder; give a folder "
                             "of .npz/.npy files or images, or 'random' for a smoke test")

    @property
    def is_random(self) -> bool:
        """Calibrating on random data: a smoke test, labelled so everywhere."""
        return self.calibration == RANDOM

    def to_json(self) -> dict:
        """The options as a plain dict (the compile plan's ``quantize``)."""
        d = asdict(self)
        d["keep_float"] = list(self.keep_float)
        d["preprocess"] = {k: list(v) if isinstance(v, tuple) else v
                           for k, v in asdict(self.preprocess).items()}
        if self.calibration not in (None, RANDOM):
            d["calibration"] = str(Path(self.calibration).resolve())
        return d

    def command(self) -> list[str]:
        """The command-line options that give these options."""
        cmd = ["--quantize", self.mode]
        if self.mode != "int8":
            return cmd
        cmd += ["--calibration", str(self.calibration), "--calib-method", self.method]
        if self.method == "percentile":
            cmd += ["--percentile", f"{self.percentile:g}"]
        if not self.per_channel:
            cmd += ["--per-tensor"]
        if self.symmetric_activations:
            cmd += ["--symmetric-activations"]
        if self.samples is not None:
            cmd += ["--calib-samples", str(self.samples)]
        for k in self.keep_float:
            cmd += ["--keep-float", k]
        if self.preprocess != Preprocess():
            p = self.preprocess
            if p.size:
                cmd += ["--preprocess", f"size={p.size[0]}x{p.size[1]}"]
            cmd += ["--preprocess", "mean=" + ",".join(f"{v:g}" for v in p.mean),
                    "--preprocess", "std=" + ",".join(f"{v:g}" for v in p.std),
                    "--preprocess", f"scale={p.scale:.9g}", "--preprocess", p.color]
            if p.layout:
                cmd += ["--preprocess", f"layout={p.layout}"]
        return cmd
