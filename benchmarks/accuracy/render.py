"""Seeded text-line and page rendering with Pillow for the accuracy benchmark.

Text: random Latin pseudo-words, digit strings (numbers, dates, times, phone numbers,
prices, percentages), Chinese strings and Chinese mixed with numbers. Chinese characters
come from GB 2312 level 1 (the 3755 most common hanzi, enumerated with Python's own
gb2312 codec, no data file), kept only when they are also in the recogniser's dictionary
and the font has a non-empty glyph for them; so are every Latin letter, digit and
punctuation mark used.

Font: WenQuanYi Micro Hei, Debian package fonts-wqy-microhei
(/usr/share/fonts/truetype/wqy/wqy-microhei.ttc).

Everything drawn from ``numpy.random.default_rng((seed, index))``: the same seed gives
the same images, byte for byte, and an item does not depend on how many came before.

    python benchmarks/accuracy/render.py --out /tmp/acc/preview [--seed 7] [--n 8]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_PACKAGE = "fonts-wqy-microhei"
FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
PAGE_SIZE = (640, 640)  # W, H: the det input, so pages need no resize
#: longest line aspect (width / height) rendered: the rec input's 320 / 48, so lines are
#: never squeezed by the fixed-width resize
MAX_LINE_ASPECT = 320 / 48

PUNCT = "-:/.%,()+$¥"
VOWELS = "aeiou"
CONSONANTS = "bcdfghjklmnprstvwxyz"


def gb2312_level1() -> list[str]:
    """The 3755 level-1 hanzi of GB 2312 (rows 16-55), in code order."""
    out = []
    for b1 in range(0xB0, 0xD8):
        for b2 in range(0xA1, 0xFF):
            try:
                out.append(bytes([b1, b2]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return out


def font_covers(font_path: Path, chars: Iterable[str]) -> set[str]:
    """The characters the font maps (cmap) and draws with some ink (Pillow mask bbox)."""
    from fontTools.ttLib import TTCollection, TTFont

    if font_path.suffix.lower() == ".ttc":
        cmap = TTCollection(str(font_path)).fonts[0].getBestCmap()
    else:
        cmap = TTFont(str(font_path)).getBestCmap()
    font = ImageFont.truetype(str(font_path), 24)
    return {c for c in chars if ord(c) in cmap and font.getmask(c).getbbox() is not None}


@dataclass(frozen=True)
class Charset:
    """What may be rendered: every character is in the dictionary and has a glyph."""

    latin: str
    upper: str
    digits: str
    punct: str
    hanzi: tuple[str, ...]

    @classmethod
    def build(cls, dictionary: Iterable[str], font_path: Path = FONT_PATH) -> Charset:
        dictionary = set(dictionary)
        wanted = [*string.ascii_letters, *string.digits, *PUNCT, *gb2312_level1()]
        ok = font_covers(font_path, [c for c in wanted if c in dictionary])

        def keep(s: str) -> str:
            return "".join(c for c in s if c in ok)

        return cls(latin=keep(string.ascii_lowercase), upper=keep(string.ascii_uppercase),
                   digits=keep(string.digits), punct=keep(PUNCT),
                   hanzi=tuple(c for c in gb2312_level1() if c in ok))

    def all_chars(self) -> set[str]:
        return set(self.latin + self.upper + self.digits + self.punct) | set(self.hanzi)


# ---------------------------------------------------------------- text

def _pick(rng: np.random.Generator, s) -> str:
    return s[int(rng.integers(len(s)))]


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(int(d)) for d in rng.integers(0, 10, n))


def latin_words(rng: np.random.Generator, cs: Charset) -> str:
    """1-3 pseudo-words of consonant-vowel syllables, in lower, Title or UPPER case."""
    words = []
    for _ in range(int(rng.integers(1, 4))):
        syll = int(rng.integers(1, 4))
        w = "".join(_pick(rng, CONSONANTS) + _pick(rng, VOWELS)
                    + (_pick(rng, CONSONANTS) if rng.random() < 0.4 else "")
                    for _ in range(syll))
        case = rng.random()
        w = w.upper() if case < 0.15 else w.title() if case < 0.5 else w
        words.append(w)
    return " ".join(words)


def digit_string(rng: np.random.Generator, cs: Charset) -> str:
    kind = int(rng.integers(7))
    if kind == 0:
        return str(int(rng.integers(0, 10 ** int(rng.integers(1, 9)))))
    if kind == 1:
        return f"{int(rng.integers(0, 10000))}.{_digits(rng, 2)}"
    if kind == 2:
        return f"{int(rng.integers(1990, 2031))}-{int(rng.integers(1, 13)):02d}-" \
               f"{int(rng.integers(1, 29)):02d}"
    if kind == 3:
        return f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}"
    if kind == 4:
        return f"1{_digits(rng, 2)}-{_digits(rng, 4)}-{_digits(rng, 4)}"
    if kind == 5:
        return f"{_pick(rng, '$¥')}{int(rng.integers(1, 1000))}.{_digits(rng, 2)}"
    return f"{int(rng.integers(0, 100))}.{_digits(rng, 1)}%"


def hanzi_string(rng: np.random.Generator, cs: Charset, lo: int = 2, hi: int = 9) -> str:
    return "".join(_pick(rng, cs.hanzi) for _ in range(int(rng.integers(lo, hi))))


def mixed_string(rng: np.random.Generator, cs: Charset) -> str:
    num = str(int(rng.integers(1, 10000))) if rng.random() < 0.6 else digit_string(rng, cs)
    return hanzi_string(rng, cs, 1, 4) + num + hanzi_string(rng, cs, 1, 3)


KINDS = (("latin", latin_words, 0.3), ("digits", digit_string, 0.2),
         ("chinese", hanzi_string, 0.35), ("mixed", mixed_string, 0.15))


def random_text(rng: np.random.Generator, cs: Charset) -> tuple[str, str]:
    """(kind, text), the kind drawn by KINDS' weights; only characters of ``cs``."""
    weights = np.array([k[2] for k in KINDS])
    name, fn, _ = KINDS[int(rng.choice(len(KINDS), p=weights / weights.sum()))]
    allowed = cs.all_chars() | {" "}
    text = "".join(c for c in fn(rng, cs) if c in allowed).strip()
    return name, text or "0"


# ---------------------------------------------------------------- drawing

@functools.lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _colors(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    bg = tuple(int(v) for v in rng.integers(200, 256, 3))
    fg = tuple(int(v) for v in rng.integers(0, 80, 3))
    return fg, bg


def _degrade(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Mild scanner-like noise: Gaussian noise (sigma 0-6) and sometimes a slight blur."""
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.8))))
    a = np.asarray(img).astype(np.float32)
    a += rng.normal(0.0, float(rng.uniform(0, 6)), a.shape).astype(np.float32)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


@dataclass
class Line:
    text: str
    kind: str
    image: Image.Image


def render_line(seed: int, index: int, cs: Charset, font_path: Path = FONT_PATH) -> Line:
    """One text line image, reproducible from (seed, index)."""
    rng = np.random.default_rng((seed, index))
    size = int(rng.integers(24, 41))
    font = _font(str(font_path), size)
    pad_x = int(rng.integers(2, 12))
    pad_top = int(rng.integers(2, 10))
    pad_bot = int(rng.integers(2, 10))
    for _ in range(50):
        kind, text = random_text(rng, cs)
        x0, y0, x1, y1 = font.getbbox(text)
        w = x1 - x0 + 2 * pad_x
        h = y1 - y0 + pad_top + pad_bot
        if w / h <= MAX_LINE_ASPECT:
            break
    fg, bg = _colors(rng)
    img = Image.new("RGB", (w, h), bg)
    ImageDraw.Draw(img).text((pad_x - x0, pad_top - y0), text, font=font, fill=fg)
    return Line(text, kind, _degrade(img, rng))


@dataclass
class Page:
    image: Image.Image
    boxes: list[tuple[int, int, int, int]]  # text boxes, x0 y0 x1 y1
    texts: list[str]


def render_page(seed: int, index: int, cs: Charset, font_path: Path = FONT_PATH,
                size: tuple[int, int] = PAGE_SIZE) -> Page:
    """A page of horizontal lines (one or two segments a row, 14-36 px), reproducible from
    (seed, index), with the box of every segment (ink width, font line height)."""
    rng = np.random.default_rng((seed, index))
    pw, ph = size
    fg, bg = _colors(rng)
    img = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(img)
    boxes, texts = [], []
    margin = int(rng.integers(12, 40))
    y = margin
    while True:
        fsize = int(rng.integers(14, 37))
        font = _font(str(font_path), fsize)
        if y + fsize * 1.4 > ph - margin:
            break
        x = margin + int(rng.integers(0, 60))
        row_h = 0
        for _seg in range(1 if rng.random() < 0.6 else 2):
            for _ in range(20):
                _, text = random_text(rng, cs)
                x0, y0, x1, y1 = font.getbbox(text)
                if x + (x1 - x0) <= pw - margin:
                    break
            else:
                break
            draw.text((x - x0, y - y0), text, font=font, fill=fg)
            # x: the ink; y: the font's line (ascender to descender), as text boxes are
            # annotated (DB's unclipped boxes cover the line, not the x-height)
            ascent, descent = font.getmetrics()
            boxes.append((x, y - y0, x + x1 - x0, y - y0 + ascent + descent))
            texts.append(text)
            row_h = max(row_h, y1 - y0)
            x += (x1 - x0) + int(fsize * rng.uniform(2.0, 5.0))
            if x > pw - margin - 2 * fsize:
                break
        y += max(row_h, fsize) + int(fsize * rng.uniform(0.6, 1.6))
    return Page(_degrade(img, rng), boxes, texts)


def rotate180(img: Image.Image) -> Image.Image:
    return img.transpose(Image.Transpose.ROTATE_180)


def image_digest(img: Image.Image) -> str:
    return hashlib.sha256(img.tobytes() + repr(img.size).encode()).hexdigest()


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ocr import load_character_list

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--rec-model", type=Path,
                    default=Path(__file__).resolve().parents[2]
                    / "models/real/ch_PP-OCRv4_rec_infer.onnx")
    args = ap.parse_args()
    cs = Charset.build(load_character_list(args.rec_model))
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.n):
        line = render_line(args.seed, i, cs)
        line.image.save(args.out / f"line{i:03d}.png")
        print(f"line{i:03d}.png [{line.kind}] {line.text}")
    for i in range(max(1, args.n // 4)):
        render_page(args.seed, i, cs).image.save(args.out / f"page{i:03d}.png")
    print(f"charset: {len(cs.hanzi)} hanzi, {len(cs.latin + cs.upper)} letters, "
          f"{len(cs.digits)} digits, punctuation {cs.punct!r}")


if __name__ == "__main__":
    main()
