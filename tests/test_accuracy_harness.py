"""The int8 accuracy benchmark's own parts (benchmarks/accuracy): CTC decoding, DB
post-processing, box matching, metrics and seeded rendering. Fast; the real rec model
and the font are used only where present."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ACC = REPO / "benchmarks" / "accuracy"
REC_MODEL = REPO / "models" / "real" / "ch_PP-OCRv4_rec_infer.onnx"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"accuracy_{name}", ACC / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


ocr = _load("ocr")
render = _load("render")

needs_font = pytest.mark.skipif(not render.FONT_PATH.exists(),
                                reason=f"no {render.FONT_PATH} (apt-get install "
                                       f"{render.FONT_PACKAGE})")


def one_hot(indices: list[int], classes: int, p: float = 0.9) -> np.ndarray:
    probs = np.full((len(indices), classes), (1 - p) / (classes - 1), np.float32)
    probs[np.arange(len(indices)), indices] = p
    return probs


def test_ctc_greedy_decode_merges_repeats_and_drops_blanks():
    labels = ocr.ctc_labels(["a", "b", "c"])
    assert labels == ["", "a", "b", "c", " "]
    # a a _ a b b _ _ c <space> c: adjacent repeats merge, a blank keeps a repeat apart
    seq = [1, 1, 0, 1, 2, 2, 0, 0, 3, 4, 3]
    (text, conf), = ocr.ctc_greedy_decode(one_hot(seq, 5)[None], labels)
    assert text == "aabc c"
    assert conf == pytest.approx(0.9)
    # batch of two, 2-D input accepted as one item, all-blank gives ""
    out = ocr.ctc_greedy_decode(np.stack([one_hot([0, 0, 0], 5), one_hot([2, 0, 2], 5)]),
                                labels)
    assert out == [("", 0.0), ("bb", pytest.approx(0.9))]
    assert ocr.ctc_greedy_decode(one_hot([3], 5), labels)[0][0] == "c"


def test_db_postprocess_boxes_on_a_synthetic_map():
    prob = np.zeros((1, 1, 64, 96), np.float32)
    prob[0, 0, 10:20, 10:50] = 0.9   # a text line
    prob[0, 0, 40:50, 60:90] = 0.8   # another
    prob[0, 0, 30:32, 5:7] = 0.9     # a speck: 3x3 pixels dilated, short side 2 < 3
    prob[0, 0, 52:60, 5:40] = 0.4    # above thresh (0.3) but box score < 0.5
    boxes = ocr.db_postprocess(prob)
    assert len(boxes) == 2
    a, b = boxes
    # component 10..19 x 10..49, dilated by one pixel down/right: 10..20 x 10..50;
    # rect through pixel centres 40 x 10, unclip d = 400 * 1.6 / 100 = 6.4
    assert (a.x0, a.y0, a.x1, a.y1) == (4.0, 4.0, 56.0, 26.0)
    assert a.score == pytest.approx(0.9 * 400 / 451, rel=1e-3)  # the dilated rim is 0
    assert b.x0 < 60 < 90 < b.x1 and b.y0 < 40 < 50 < b.y1
    # mapped back through a scale (input = page * 0.5) and clipped to the page
    small = ocr.db_postprocess(prob, scale=0.5, dest_hw=(128, 150))
    assert (small[0].x0, small[0].y0, small[0].x1, small[0].y1) == (7.0, 7.0, 113.0, 53.0)
    assert small[1].x1 <= 150
    assert ocr.db_postprocess(np.zeros((32, 32), np.float32)) == []


def test_box_matching_and_f1():
    B = ocr.Box
    ref = [B(0, 0, 10, 10), B(20, 0, 30, 10), B(40, 0, 50, 10)]
    pred = [B(1, 0, 11, 10), B(20, 0, 30, 10), B(60, 0, 70, 10), B(0, 0, 10, 9)]
    assert ocr.iou(ref[0], ref[0]) == 1.0
    assert ocr.iou(ref[0], ref[1]) == 0.0
    assert ocr.iou(B(0, 0, 10, 10), B(5, 0, 15, 10)) == pytest.approx(50 / 150)
    matched, n_pred, n_ref = ocr.match_boxes(pred, ref)
    assert (matched, n_pred, n_ref) == (2, 4, 3)  # one-to-one: the duplicate does not count
    m = ocr.prf(matched, n_pred, n_ref)
    assert m["precision"] == 0.5 and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert ocr.match_boxes([B(0, 0, 10, 10)], [B(6, 0, 16, 10)]) == (0, 1, 1)
    assert ocr.prf(0, 0, 0)["f1"] == 1.0 and ocr.prf(0, 2, 0)["f1"] == 0.0


def test_text_metrics():
    assert ocr.edit_distance("kitten", "sitting") == 3
    assert ocr.edit_distance("", "abc") == 3
    assert ocr.edit_distance("中文字", "中字") == 1
    assert ocr.normalise_text(" ab  c：1 ") == "abc:1"
    assert ocr.normalise_text("ＡＢ１２") == "AB12"


def test_preprocessing_shapes_and_ranges():
    from PIL import Image

    line = Image.new("RGB", (500, 40), (255, 255, 255))  # aspect 12.5 > 320/48: squeezed
    x = ocr.rec_preprocess(line)
    assert x.shape == ocr.REC_SHAPE and x.dtype == np.float32
    assert x.max() == pytest.approx(1.0) and x.min() >= -1.0
    short = ocr.cls_preprocess(Image.new("RGB", (48, 48), (0, 0, 0)))
    assert short.shape == ocr.CLS_SHAPE
    assert (short[..., :48] == -1).all() and (short[..., 48:] == 0).all()  # zero padding
    page, scale = ocr.det_preprocess(Image.new("RGB", (1280, 640), (255, 0, 0)))
    assert page.shape == ocr.DET_SHAPE and scale == 0.5
    assert page[0, 2, 0, 0] == pytest.approx(1.0)  # BGR: red is the last channel
    assert page[0, 0, 0, 0] == pytest.approx(-1.0) and (page[0, :, 320:, :] == 0).all()


def test_gb2312_level1():
    chars = render.gb2312_level1()
    assert len(chars) == 3755 and chars[0] == "啊" and chars[-1] == "座"


@needs_font
def test_rendering_is_deterministic_for_a_seed():
    dictionary = [*"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-:/.%,()+$¥",
                  *render.gb2312_level1()[:300]]
    cs = render.Charset.build(dictionary)
    assert len(cs.hanzi) >= 290 and cs.digits == "0123456789"
    a, b = render.render_line(7, 3, cs), render.render_line(7, 3, cs)
    assert a.text == b.text and render.image_digest(a.image) == render.image_digest(b.image)
    assert set(a.text) <= cs.all_chars() | {" "}
    others = {render.image_digest(render.render_line(s, 3, cs).image) for s in (8, 9)}
    assert render.image_digest(a.image) not in others
    p, q = render.render_page(7, 0, cs), render.render_page(7, 0, cs)
    assert p.image.size == render.PAGE_SIZE and p.boxes and p.boxes == q.boxes
    assert render.image_digest(p.image) == render.image_digest(q.image)
    for x0, y0, x1, y1 in p.boxes:
        assert 0 <= x0 < x1 <= p.image.width and 0 <= y0 < y1 <= p.image.height


@needs_font
@pytest.mark.skipif(not REC_MODEL.exists(), reason="models/real not fetched (make models)")
def test_real_recogniser_reads_a_rendered_line():
    import onnxruntime as ort
    from PIL import Image, ImageDraw, ImageFont

    chars = ocr.load_character_list(REC_MODEL)
    assert len(chars) == 6623
    img = Image.new("RGB", (260, 48), (255, 255, 255))
    ImageDraw.Draw(img).text((6, 4), "2024年价格128", font=ImageFont.truetype(
        str(render.FONT_PATH), 34), fill=(0, 0, 0))
    sess = ort.InferenceSession(str(REC_MODEL), providers=["CPUExecutionProvider"])
    probs = sess.run(None, {"x": ocr.rec_preprocess(img)})[0]
    assert probs.shape[-1] == len(ocr.ctc_labels(chars))  # 6625 classes
    assert ocr.ctc_greedy_decode(probs, ocr.ctc_labels(chars))[0][0] == "2024年价格128"
