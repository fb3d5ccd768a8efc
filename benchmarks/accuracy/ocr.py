"""PP-OCR pre- and post-processing for the accuracy benchmark (numpy, Pillow, scipy.ndimage).

Follows rapidocr-onnxruntime 1.4.4 (the wheel the models come from: its config.yaml and
ch_ppocr_{det,rec,cls}/), with the differences written down in README.md:

- every model runs at one fixed input shape (edgec compiles for static shapes): det on
  1x3x640x640 pages, rec on 1x3x48x320 lines, cls on 1x3x48x192 lines;
- images are BGR like rapidocr's (it reads with OpenCV), resized with Pillow's bilinear
  filter instead of cv2.resize;
- DB post-processing takes axis-aligned boxes of connected components (scipy.ndimage)
  instead of OpenCV's contours and minimum-area rectangles: the rendered text is
  horizontal, where the two agree; thresholds are rapidocr's (0.3, box 0.5, unclip 1.6,
  2x2 dilation, "fast" box score).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DET_SHAPE = (1, 3, 640, 640)
REC_SHAPE = (1, 3, 48, 320)
CLS_SHAPE = (1, 3, 48, 192)
CLS_LABELS = ("0", "180")

# rapidocr 1.4.4 config.yaml, Det:
DET_THRESH = 0.3
DET_BOX_THRESH = 0.5
DET_UNCLIP_RATIO = 1.6
DET_MAX_CANDIDATES = 1000
DET_MIN_SIZE = 3


# ---------------------------------------------------------------- dictionary

def load_character_list(rec_model: str | Path) -> list[str]:
    """The recogniser's characters, from the model's metadata_props key "character"
    (one character a line: how rapidocr ships ppocr_keys_v1 inside the ONNX file)."""
    import onnx

    model = onnx.load(str(rec_model), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == "character":
            return prop.value.split("\n")
    raise ValueError(f"{rec_model}: no metadata_props key 'character'")


def ctc_labels(characters: Sequence[str]) -> list[str]:
    """CTC class index -> text, as rapidocr's CTCLabelDecode builds it: blank at 0, the
    dictionary, then a space (use_space_char)."""
    return ["", *characters, " "]


# ---------------------------------------------------------------- images

def to_bgr(img: Image.Image) -> np.ndarray:
    """HxWx3 uint8 in BGR order (rapidocr's channel order)."""
    return np.asarray(img.convert("RGB"))[:, :, ::-1]


def _resize(bgr: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(bgr)).resize(
        (w, h), Image.Resampling.BILINEAR))


def det_preprocess(page: Image.Image, shape: tuple[int, ...] = DET_SHAPE
                   ) -> tuple[np.ndarray, float]:
    """A page -> (1x3xHxW float32, scale). The page is scaled to fit HxW keeping its aspect
    ratio and padded right/bottom with zeros after normalising ((x/255 - 0.5) / 0.5,
    rapidocr 1.4.4's det mean/std). ``scale`` maps input pixels back: page = input / scale."""
    _, _, h, w = shape
    bgr = to_bgr(page)
    ph, pw = bgr.shape[:2]
    scale = min(h / ph, w / pw)
    if scale != 1.0:
        bgr = _resize(bgr, max(1, round(pw * scale)), max(1, round(ph * scale)))
    x = np.zeros((3, h, w), np.float32)
    rh, rw = bgr.shape[:2]
    x[:, :rh, :rw] = (bgr.astype(np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return x[None], scale


def line_preprocess(line: Image.Image, shape: tuple[int, ...]) -> np.ndarray:
    """A text line -> 1x3xHxW float32, rapidocr's resize_norm_img for rec and cls: height H,
    width ceil(H * aspect) capped at W (longer lines are squeezed), (x/255 - 0.5) / 0.5,
    zero padding on the right."""
    _, c, h, w = shape
    bgr = to_bgr(line)
    lh, lw = bgr.shape[:2]
    rw = min(w, math.ceil(h * lw / lh))
    resized = _resize(bgr, rw, h).astype(np.float32).transpose(2, 0, 1) / 255.0
    x = np.zeros((c, h, w), np.float32)
    x[:, :, :rw] = (resized - 0.5) / 0.5
    return x[None]


def rec_preprocess(line: Image.Image, shape: tuple[int, ...] = REC_SHAPE) -> np.ndarray:
    return line_preprocess(line, shape)


def cls_preprocess(line: Image.Image, shape: tuple[int, ...] = CLS_SHAPE) -> np.ndarray:
    return line_preprocess(line, shape)


# ---------------------------------------------------------------- rec: CTC

def ctc_greedy_decode(probs: np.ndarray, labels: Sequence[str]) -> list[tuple[str, float]]:
    """NxTxC probabilities -> [(text, mean confidence)]: argmax per step, repeats merged,
    blanks (class 0) dropped (rapidocr's CTCLabelDecode with is_remove_duplicate)."""
    probs = np.asarray(probs)
    if probs.ndim == 2:
        probs = probs[None]
    out = []
    for p in probs:
        idx = p.argmax(axis=1)
        conf = p.max(axis=1)
        keep = np.ones(len(idx), bool)
        keep[1:] = idx[1:] != idx[:-1]
        keep &= idx != 0
        text = "".join(labels[i] for i in idx[keep])
        out.append((text, float(conf[keep].mean()) if keep.any() else 0.0))
    return out


# ---------------------------------------------------------------- cls

def cls_decode(probs: np.ndarray) -> list[tuple[str, float]]:
    probs = np.asarray(probs).reshape(-1, len(CLS_LABELS))
    return [(CLS_LABELS[int(i)], float(p[i])) for p, i in zip(probs, probs.argmax(1),
                                                             strict=True)]


# ---------------------------------------------------------------- det: DB

@dataclass(frozen=True)
class Box:
    """Axis-aligned box, corners in page pixels (x1, y1 exclusive-ish like a polygon)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)

    def as_list(self) -> list[float]:
        return [round(self.x0, 1), round(self.y0, 1), round(self.x1, 1), round(self.y1, 1)]


def db_postprocess(prob: np.ndarray, *, scale: float = 1.0,
                   dest_hw: tuple[int, int] | None = None,
                   thresh: float = DET_THRESH, box_thresh: float = DET_BOX_THRESH,
                   unclip_ratio: float = DET_UNCLIP_RATIO,
                   max_candidates: int = DET_MAX_CANDIDATES,
                   dilate: bool = True) -> list[Box]:
    """The det model's probability map (1x1xHxW, or HxW) -> text boxes in page pixels.

    rapidocr's DBPostProcess with axis-aligned rectangles: binarise at ``thresh``, dilate
    with a 2x2 kernel, take 8-connected components; per component the rectangle through
    its pixel centres (cv2.minAreaRect of a horizontal blob), dropped when its short side
    is < 3 or its mean probability ("fast" score) < ``box_thresh``; grown on every side by
    area * unclip_ratio / perimeter (the pyclipper offset of a rectangle), dropped when
    the short side is then < 5; mapped back with ``scale`` (input = page * scale) and
    clipped to the page (``dest_hw``, default the map's size / scale); finally boxes whose
    sides are <= 3 page pixels are dropped (filter_tag_det_res)."""
    from scipy import ndimage

    pred = np.asarray(prob, np.float32)
    pred = pred.reshape(pred.shape[-2:])
    h, w = pred.shape
    mask = pred > thresh
    if dilate:
        grown = mask.copy()
        grown[1:, :] |= mask[:-1, :]
        grown[:, 1:] |= mask[:, :-1]
        grown[1:, 1:] |= mask[:-1, :-1]
        mask = grown
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    dh, dw = dest_hw if dest_hw is not None else (h / scale, w / scale)
    boxes: list[Box] = []
    for sl in ndimage.find_objects(labels)[:max_candidates]:
        if sl is None:
            continue
        ys, xs = sl
        x0, x1 = xs.start, xs.stop - 1
        y0, y1 = ys.start, ys.stop - 1
        bw, bh = x1 - x0, y1 - y0
        if min(bw, bh) < DET_MIN_SIZE:
            continue
        score = float(pred[y0:y1 + 1, x0:x1 + 1].mean())
        if score < box_thresh:
            continue
        d = bw * bh * unclip_ratio / (2.0 * (bw + bh))
        ex0, ey0, ex1, ey1 = x0 - d, y0 - d, x1 + d, y1 + d
        if min(ex1 - ex0, ey1 - ey0) < DET_MIN_SIZE + 2:
            continue
        bx0 = float(np.clip(round(ex0 / scale), 0, dw))
        bx1 = float(np.clip(round(ex1 / scale), 0, dw))
        by0 = float(np.clip(round(ey0 / scale), 0, dh))
        by1 = float(np.clip(round(ey1 / scale), 0, dh))
        if bx1 - bx0 <= 3 or by1 - by0 <= 3:
            continue
        boxes.append(Box(bx0, by0, bx1, by1, score))
    boxes.sort(key=lambda b: (b.y0, b.x0))
    return boxes


# ---------------------------------------------------------------- metrics

def iou(a: Box, b: Box) -> float:
    iw = min(a.x1, b.x1) - max(a.x0, b.x0)
    ih = min(a.y1, b.y1) - max(a.y0, b.y0)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a.area + b.area - inter)


def match_boxes(pred: Sequence[Box], ref: Sequence[Box], iou_thresh: float = 0.5
                ) -> tuple[int, int, int]:
    """(matched, len(pred), len(ref)): greedy one-to-one matching by descending IoU,
    pairs with IoU >= ``iou_thresh`` only (the ICDAR-style detection criterion)."""
    pairs = sorted(((iou(p, r), i, j) for i, p in enumerate(pred) for j, r in enumerate(ref)),
                   reverse=True)
    used_p: set[int] = set()
    used_r: set[int] = set()
    for v, i, j in pairs:
        if v < iou_thresh:
            break
        if i in used_p or j in used_r:
            continue
        used_p.add(i)
        used_r.add(j)
    return len(used_p), len(pred), len(ref)


def prf(matched: int, n_pred: int, n_ref: int) -> dict[str, float]:
    """Precision, recall and F1 from match counts (both empty counts as perfect)."""
    precision = matched / n_pred if n_pred else (1.0 if not n_ref else 0.0)
    recall = matched / n_ref if n_ref else (1.0 if not n_pred else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def normalise_text(s: str) -> str:
    """What exact match and CER compare: NFKC (full-width and half-width forms agree) with
    all whitespace removed (the recogniser's spaces between words are unreliable and
    not what int8 should be judged on)."""
    import unicodedata

    return "".join(unicodedata.normalize("NFKC", s).split())
