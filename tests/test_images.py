"""Page decoding: colour modes, bit depths, size limits, corrupt files and the reduced JPEG path."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from kuzu_lightning.data.images import PageDecodeError, decode_page, read_image_size


def test_rgb_channel_order(tmp_path):
    bgr = np.zeros((20, 30, 3), np.uint8)
    bgr[:, :, 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    image = decode_page(tmp_path / "red.png")
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    assert image[..., 0].min() == 200 and image[..., 1:].max() == 0


def test_grayscale_becomes_rgb(tmp_path):
    Image.fromarray(np.full((10, 12), 77, np.uint8), "L").save(tmp_path / "gray.jpg", quality=100)
    image = decode_page(tmp_path / "gray.jpg")
    assert image.shape == (10, 12, 3)
    assert abs(int(image.mean()) - 77) <= 1 and (image[..., 0] == image[..., 2]).all()


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (0, 0, 255, 255)  # opaque blue on the left
    rgba[:, 4:] = (0, 0, 0, 0)  # transparent black on the right
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    image = decode_page(tmp_path / "rgba.png")
    assert image.shape == (8, 8, 3)
    assert image[0, 0].tolist() == [0, 0, 255] and image[0, 7].tolist() == [255, 255, 255]


def test_16_bit_is_scaled_to_8_bit(tmp_path):
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((6, 6, 3), 257 * 100, np.uint16))
    image = decode_page(tmp_path / "deep.png")
    assert image.dtype == np.uint8 and image.max() == 100 and image.min() == 100


def test_palette_image(tmp_path):
    palette = Image.fromarray(np.full((5, 5, 3), (10, 200, 30), np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert palette.mode == "P"
    palette.save(tmp_path / "palette.png")
    image = decode_page(tmp_path / "palette.png")
    assert image.shape == (5, 5, 3) and image[0, 0].tolist() == [10, 200, 30]


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    cv2.imwrite(str(tmp_path / "big.jpg"), np.zeros((100, 200, 3), np.uint8))
    assert read_image_size(tmp_path / "big.jpg") == (200, 100)
    with pytest.raises(PageDecodeError, match=r"big.jpg: refused, 200 x 100 = 20000 pixels is above the limit of 19999"):
        decode_page(tmp_path / "big.jpg", max_pixels=19_999)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width x height`` pixels: a decompression bomb's calling card."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bombs_are_refused(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_declaring(50_000, 50_000))
    with pytest.raises(PageDecodeError, match="bomb.png: refused"):
        decode_page(tmp_path / "bomb.png")
    (tmp_path / "large.png").write_bytes(png_declaring(12_000, 9_000))  # 108 Mpx: under PIL's own limit, over ours
    with pytest.raises(PageDecodeError, match="large.png: refused, 12000 x 9000"):
        read_image_size(tmp_path / "large.png")


def test_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(PageDecodeError, match="nope.jpg: no such image file"):
        decode_page(tmp_path / "nope.jpg")
    ok, data = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    (tmp_path / "cut.jpg").write_bytes(data.tobytes()[:200])
    with pytest.raises(PageDecodeError, match="cut.jpg"):
        decode_page(tmp_path / "cut.jpg")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(PageDecodeError, match="text.jpg: not a readable image"):
        decode_page(tmp_path / "text.jpg")


def test_longest_side_resizes_exactly_and_the_reduced_jpeg_path_matches_a_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    smooth = cv2.resize(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8), (1000, 1500), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(tmp_path / "page.jpg"), smooth, [cv2.IMWRITE_JPEG_QUALITY, 95])
    # 1/2, 1/4 and 1/8 decodes; the 1/8 one keeps only each 8x8 block's mean colour, hence coarser
    for side, tolerance in ((700, 1.0), (300, 1.5), (150, 5.0)):
        fast = decode_page(tmp_path / "page.jpg", longest_side=side)
        assert fast.shape == (side, round(1000 * side / 1500), 3)
        slow = cv2.resize(decode_page(tmp_path / "page.jpg"), fast.shape[1::-1], interpolation=cv2.INTER_AREA)
        assert np.abs(fast.astype(int) - slow).mean() < tolerance
    assert decode_page(tmp_path / "page.jpg", longest_side=3000).shape == (3000, 2000, 3)
