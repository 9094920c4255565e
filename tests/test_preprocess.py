"""to_input on a hand-made 1x2 image, against values worked out by hand: a swapped channel order or a
mean/std in the wrong order costs mAP without a single error, so the arithmetic is pinned here."""
from __future__ import annotations

import numpy as np
import pytest

from searchcore.encoding.manifest import Preprocessing
from searchcore.encoding.preprocess import to_input

# one image, one row, two pixels: pure-ish red and a grey-blue
PIXELS = np.array([[[[200, 10, 30], [40, 50, 250]]]], np.uint8)

CAFFE = Preprocessing(size=(224, 224), resize="bilinear", channel_order="BGR", scale=1.0,
                      mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0))
TORCH = Preprocessing(size=(224, 224), resize="bilinear", channel_order="RGB", scale=1 / 255,
                      mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def test_caffe_flips_to_bgr_then_subtracts_the_bgr_mean():
    x = to_input(PIXELS, CAFFE)
    assert x.shape == (1, 1, 2, 3) and x.dtype == np.float32
    # pixel 1 is R=200 G=10 B=30: BGR order is (30, 10, 200), minus (103.939, 116.779, 123.68)
    np.testing.assert_allclose(x[0, 0, 0], [30 - 103.939, 10 - 116.779, 200 - 123.68], atol=1e-4)
    np.testing.assert_allclose(x[0, 0, 1], [250 - 103.939, 50 - 116.779, 40 - 123.68], atol=1e-4)


def test_torch_scales_then_normalises_in_rgb_order():
    x = to_input(PIXELS, TORCH)
    expected = [(200 / 255 - 0.485) / 0.229, (10 / 255 - 0.456) / 0.224, (30 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(x[0, 0, 0], expected, atol=1e-5)
    np.testing.assert_allclose(x[0, 0, 1, 2], (250 / 255 - 0.406) / 0.225, atol=1e-5)


def test_nchw_layout_moves_channels_first():
    nchw = Preprocessing(**{**TORCH.__dict__, "layout": "NCHW"})
    x = to_input(PIXELS, nchw)
    assert x.shape == (1, 3, 1, 2) and x.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(x[0, :, 0, 0], to_input(PIXELS, TORCH)[0, 0, 0], atol=0)
    assert x[0, 0, 0, 0] == pytest.approx((200 / 255 - 0.485) / 0.229, abs=1e-5)  # channel 0 is red
