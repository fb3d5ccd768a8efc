"""Calibration samples from a folder (arrays or images) or random data, checked.

Accepted folders, sorted by file name:
- one ``.npz`` per sample holding one array per model input (by input name);
- one ``.npy`` per sample, for a model with one input;
- one sub-folder per input name, ``DIR/<input>/<k>.npy``, matched by file name;
- images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.webp``) for a model with
  one image input, turned into arrays by --preprocess.
Every sample must have each input's bound shape (a leading batch dim of 1
may be left out) and finite values: a NaN would poison every range after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifact import TensorSpec
from ..errors import UsageError
from ..specs import load_array_file
from .options import DEFAULT_SAMPLES, Preprocess, QuantizeOptions

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class Calibration:
    """The samples (``{input name: array}`` each) and where they came from."""

    samples: list[dict[str, np.ndarray]]
    source: str  # the folder, or "random"
    kind: str  # "npz", "npy", "per-input npy", "images" or "random"
    files: list[str]  # file names, in the order used

    def to_json(self) -> dict:
        return {"source": self.source, "kind": self.kind, "samples": len(self.samples),
                "random": self.kind == "random"}

    def split(self, fraction: float = 0.25) -> tuple[Calibration, Calibration]:
        """(calibration, held out): the last ``fraction`` of the samples held out for
        measuring, at least one each when there are two or more."""
        n = len(self.samples)
        held = max(1, round(n * fraction)) if n > 1 else 0
        cut = n - held
        return (Calibration(self.samples[:cut], self.source, self.kind, self.files[:cut]),
                Calibration(self.samples[cut:], self.source, self.kind, self.files[cut:]))


def _check(where: str, name: str, value: np.ndarray, spec: TensorSpec) -> np.ndarray:
    want = tuple(spec.shape)
    if value.shape != want and (1, *value.shape) == want:
        value = value.reshape(want)  # a sample saved without its batch dim of 1
    if value.shape != want:
        raise UsageError(f"{where}: '{name}' has shape {'x'.join(map(str, value.shape))}; the "
                         f"model is compiled for {'x'.join(map(str, want))}")
    dtype = np.dtype(spec.dtype)
    if value.dtype != dtype:
        same_kind = (value.dtype.kind == dtype.kind == "f") or \
            (value.dtype.kind in "iu" and dtype.kind in "iu")
        if not same_kind:
            raise UsageError(f"{where}: '{name}' is {value.dtype}; the model takes {dtype}")
        value = value.astype(dtype)
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        bad = int((~np.isfinite(value)).sum())
        raise UsageError(f"{where}: '{name}' has {bad} NaN/Inf value(s); calibration needs "
                         "finite data (they would poison every range)")
    return value


def _sample(where: str, arrays: dict[str, np.ndarray],
            specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    names = {s.name for s in specs}
    missing, extra = sorted(names - set(arrays)), sorted(set(arrays) - names)
    if missing:
        raise UsageError(f"{where}: no array for input(s) {', '.join(missing)}"
                         + (f" (it has {', '.join(extra)})" if extra else "")
                         + f"; the model's inputs are {', '.join(sorted(names))}")
    return {s.name: _check(where, s.name, np.asarray(arrays[s.name]), s) for s in specs}


def _image(path: Path, spec: TensorSpec, pre: Preprocess) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    shape = tuple(spec.shape)
    if len(shape) != 4:
        raise UsageError(f"{path}: images calibrate 4-D image inputs; '{spec.name}' is "
                         f"{'x'.join(map(str, shape))}: give .npz files instead")
    layout = pre.layout or ("NCHW" if shape[1] in (1, 3) else "NHWC")
    h, w, c = (shape[2], shape[3], shape[1]) if layout == "NCHW" else shape[1:4]
    size = pre.size or (h, w)
    if size != (h, w):
        raise UsageError(f"--preprocess size={size[0]}x{size[1]}: the model is compiled for "
                         f"{h}x{w} images; compile with --input-shape or change the size")
    try:
        with Image.open(path) as im:
            im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"{path}: not a readable image ({exc})") from None
    arr = arr.reshape(h, w, c)
    if pre.color == "bgr" and c == 3:
        arr = arr[..., ::-1]
    for what, vals in (("mean", pre.mean), ("std", pre.std)):
        if len(vals) not in (1, c):
            raise UsageError(f"--preprocess {what}: give 1 or {c} values for {c}-channel "
                             "images")
    arr = (arr * pre.scale - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    arr = arr.transpose(2, 0, 1) if layout == "NCHW" else arr
    return arr.reshape(shape).astype(spec.dtype)


def _random(specs: list[TensorSpec], count: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    for _ in range(count):
        sample = {}
        for s in specs:
            dtype = np.dtype(s.dtype)
            if dtype.kind == "f":
                sample[s.name] = rng.standard_normal(s.shape).astype(dtype)
            elif dtype.kind in "iu":
                sample[s.name] = rng.integers(0, 2, s.shape).astype(dtype)
            else:
                sample[s.name] = np.zeros(s.shape, dtype)
        yield sample


def load_calibration(options: QuantizeOptions, specs: list[TensorSpec]) -> Calibration:
    """The samples ``options.calibration`` names, for inputs ``specs``."""
    limit = options.samples or DEFAULT_SAMPLES
    if options.is_random:
        samples = list(_random(specs, options.samples or 16, options.seed))
        return Calibration(samples, "random", "random", [])
    folder = Path(options.calibration)
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    npz = [p for p in entries if p.suffix == ".npz" and p.is_file()]
    npy = [p for p in entries if p.suffix == ".npy" and p.is_file()]
    images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    subdirs = {p.name: p for p in entries if p.is_dir()}
    names = [s.name for s in specs]
    kinds = [k for k, found in (("npz", npz), ("npy", npy), ("images", images)) if found]
    if len(kinds) > 1:
        raise UsageError(f"--calibration {folder}: holds both {kinds[0]} and {kinds[1]} "
                         "files; keep one kind of sample per folder")
    if npz:
        files = npz[:limit]
        samples = []
        for p in files:
            data = load_array_file("--calibration", p)
            samples.append(_sample(str(p), data, specs))
        return Calibration(samples, str(folder), "npz", [p.name for p in files])
    if npy or images:
        if len(specs) != 1:
            raise UsageError(f"--calibration {folder}: the model has {len(specs)} inputs "
                             f"({', '.join(names)}); give one .npz per sample, or one "
                             "sub-folder of .npy files per input")
        spec = specs[0]
        files = (npy or images)[:limit]
        if npy:
            samples = [{spec.name: _check(str(p), spec.name,
                                          load_array_file("--calibration", p), spec)}
                       for p in files]
        else:
            samples = [{spec.name: _check(str(p), spec.name,
                                          _image(p, spec, options.preprocess), spec)}
                       for p in files]
        return Calibration(samples, str(folder), "npy" if npy else "images",
                           [p.name for p in files])
    if subdirs and set(names) <= set(subdirs):
        per = {n: sorted(q.name for q in subdirs[n].glob("*.npy")) for n in names}
        common = sorted(set.intersection(*(set(v) for v in per.values())))
        uneven = sorted({f for v in per.values() for f in v} - set(common))
        if uneven:
            raise UsageError(f"--calibration {folder}: {uneven[0]} is not in every input's "
                             "sub-folder; each sample needs one file per input, same name")
        files = common[:limit]
        samples = [_sample(f"{folder}/*/{f}",
                           {n: load_array_file("--calibration", subdirs[n] / f)
                            for n in names}, specs) for f in files]
        if samples:
            return Calibration(samples, str(folder), "per-input npy", files)
    raise UsageError(f"--calibration {folder}: no samples found (.npz per sample, .npy per "
                     f"sample for one input, DIR/<input>/*.npy, or images); the model's "
                     f"inputs are {', '.join(names)}")
