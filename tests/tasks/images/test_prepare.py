"""MNIST-style preprocessing of image files, checked on real MNIST digits re-rendered to PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nn.errors import ConfigError
from tasks.data.idx import read_idx
from tasks.errors import ImageError, NoInkError
from tasks.images.prepare import MnistStyle, load_grayscale, mnist_style, preprocess_file
from tests.tasks.digit_images import render


@pytest.fixture(scope="module")
def digits(mnist_dir: Path) -> np.ndarray:
    """The first 300 real MNIST test digits, uint8 (300, 28, 28)."""
    return read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[:300]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def save(img: Image.Image | np.ndarray, path: Path) -> Path:
    picture = img if isinstance(img, Image.Image) else Image.fromarray(img)
    picture.save(path)
    return path


def test_mnist_digits_are_left_almost_unchanged(digits):
    out = np.stack([mnist_style(x / 255.0) for x in digits])
    assert out.shape == digits.shape and out.dtype == np.uint8
    exact = (out == digits).all(axis=(1, 2))
    assert exact.mean() >= 0.6
    assert np.median([correlation(o, x) for o, x in zip(out, digits, strict=True)]) > 0.999


def test_rendered_digits_come_back_close_to_the_originals(digits, tmp_path):
    rng = np.random.default_rng(1)
    corr = []
    for i, digit in enumerate(digits[:100]):
        path = save(render(digit, rng), tmp_path / f"{i}.png")
        corr.append(correlation(preprocess_file(path), digit))
    assert np.median(corr) > 0.97
    assert np.mean(corr) > 0.93


def test_output_is_framed_like_mnist(digits, tmp_path):
    from scipy import ndimage  # here: scipy only where a test uses it

    rng = np.random.default_rng(2)
    for i, digit in enumerate(digits[:30]):
        out = preprocess_file(save(render(digit, rng), tmp_path / f"{i}.png")).astype(float)
        rows = np.flatnonzero(out.max(axis=1) > 0)
        cols = np.flatnonzero(out.max(axis=0) > 0)
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 22
        cy, cx = ndimage.center_of_mass(out)
        assert abs(cy - 14) <= 0.5 + 1e-9 and abs(cx - 14) <= 0.5 + 1e-9
        assert out.max() >= 200


def test_polarity_colour_and_alpha_give_the_same_digit(digits, tmp_path):
    big = np.asarray(Image.fromarray(digits[0]).resize((112, 112), Image.Resampling.LANCZOS))
    base = preprocess_file(save(big, tmp_path / "light-on-dark.png"))
    dark_on_light = save(255 - big, tmp_path / "dark-on-light.png")
    rgb = np.stack([255 - big, 255 - big // 2, np.full_like(big, 255)], axis=-1)  # blue-ish ink
    coloured = save(rgb, tmp_path / "coloured.png")
    rgba = np.zeros((112, 112, 4), dtype=np.uint8)  # black ink on a transparent canvas
    rgba[..., 3] = big
    transparent = save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "transparent.png")
    jpeg = save(Image.fromarray(255 - big), tmp_path / "photo.jpg")
    for path in (dark_on_light, transparent):
        assert np.abs(preprocess_file(path).astype(int) - base).max() <= 2
    for path in (coloured, jpeg):
        assert correlation(preprocess_file(path), base) > 0.97


def test_sixteen_bit_and_palette_images(digits, tmp_path):
    big = np.asarray(Image.fromarray(digits[1]).resize((84, 84), Image.Resampling.LANCZOS))
    base = preprocess_file(save(big, tmp_path / "8bit.png"))
    sixteen = Image.fromarray(big.astype(np.uint16) * 257)
    assert sixteen.mode.startswith("I;16")
    out = preprocess_file(save(sixteen, tmp_path / "16bit.png"))
    assert np.abs(out.astype(int) - base).max() <= 2
    gif = save(Image.fromarray(big).convert("P"), tmp_path / "digit.gif")
    assert correlation(preprocess_file(gif), base) > 0.99


def test_exif_orientation_is_applied(digits, tmp_path):
    big = Image.fromarray(digits[2]).resize((56, 56), Image.Resampling.LANCZOS)
    upright = preprocess_file(save(big, tmp_path / "upright.png"))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the viewer turns it 90 degrees clockwise
    big.rotate(90, expand=True).save(tmp_path / "rotated.png", exif=exif)
    assert np.abs(preprocess_file(tmp_path / "rotated.png").astype(int) - upright).max() <= 2


def test_aspect_ratio_is_kept_and_thin_strokes_survive(tmp_path):
    bar = np.zeros((200, 300), dtype=np.uint8)
    bar[50:150, 100:110] = 255  # a "1": 100 px tall, 10 px wide
    out = preprocess_file(save(bar, tmp_path / "one.png")).astype(float)
    rows = np.flatnonzero(out.max(axis=1) > 127)
    cols = np.flatnonzero(out.max(axis=0) > 127)
    assert len(rows) == 20 and len(cols) == 2
    wide = np.zeros((100, 100), dtype=np.uint8)
    wide[48:52, 10:90] = 255  # a dash 80 x 4 -> 20 x 1
    dash = preprocess_file(save(wide, tmp_path / "dash.png")).astype(float)
    assert len(np.flatnonzero(dash.max(axis=0) > 127)) == 20
    assert 1 <= len(np.flatnonzero(dash.max(axis=1) > 127)) <= 2


def test_grey_paper_and_grey_ink_are_stretched(digits, tmp_path):
    big = np.asarray(Image.fromarray(digits[3]).resize((70, 70), Image.Resampling.LANCZOS))
    base = preprocess_file(save(big, tmp_path / "clean.png"))
    faint = (200 - big.astype(float) * 0.4).astype(np.uint8)  # grey pencil on grey paper
    out = preprocess_file(save(faint, tmp_path / "faint.png"))
    assert out.max() >= 250
    assert correlation(out, base) > 0.98


def test_dust_is_ignored(digits, tmp_path):
    paper = 255 - np.asarray(Image.fromarray(digits[4]).resize((90, 90), Image.Resampling.LANCZOS))
    paper = np.pad(paper, 40, constant_values=255)
    base = preprocess_file(save(paper, tmp_path / "clean.png"))
    dusty = paper.copy()
    for r, c in [(5, 5), (160, 12), (8, 150), (150, 160)]:
        dusty[r : r + 2, c : c + 2] = 0  # four black specks in the margins
    path = save(dusty, tmp_path / "dusty.png")
    assert np.array_equal(preprocess_file(path), base)
    kept = mnist_style(load_grayscale(path), MnistStyle(speck_fraction=0.0))
    assert correlation(kept, base) < 0.5  # the specks would frame the whole sheet


@pytest.mark.parametrize("value", [0, 255, 128])
def test_blank_images_say_no_ink_was_found(tmp_path, value):
    path = save(np.full((40, 30), value, dtype=np.uint8), tmp_path / f"blank{value}.png")
    with pytest.raises(NoInkError, match=r"blank\d+\.png: no ink found"):
        preprocess_file(path)


def test_noisy_blank_photo_has_no_ink(tmp_path):
    noise = np.random.default_rng(0).normal(230, 4, (60, 80)).clip(0, 255).astype(np.uint8)
    with pytest.raises(NoInkError, match="no ink found"):
        preprocess_file(save(noise, tmp_path / "paper.png"))


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.png: no such image file"):
        load_grayscale(tmp_path / "nope.png")


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="not a regular file"):
        load_grayscale(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png: empty file \(0 bytes\)"):
        load_grayscale(path)


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture\n")
    with pytest.raises(ImageError, match=r"notes\.png: not an image"):
        load_grayscale(path)


def test_truncated_png_is_reported(digits, tmp_path):
    path = save(digits[0], tmp_path / "whole.png")
    cut = tmp_path / "cut.png"
    cut.write_bytes(path.read_bytes()[:120])
    with pytest.raises(ImageError, match=r"cut\.png: corrupt or truncated PNG"):
        load_grayscale(cut)


def test_array_must_be_two_dimensional():
    with pytest.raises(ImageError, match="2-D"):
        mnist_style(np.zeros((3, 4, 5)))
    with pytest.raises(ImageError, match="2-D"):
        mnist_style(np.zeros((0, 4)))


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("box_size", {"box_size": 0}),
        ("canvas_size", {"box_size": 20, "canvas_size": 19}),
        ("ink_threshold", {"ink_threshold": 1.0}),
        ("min_contrast", {"min_contrast": 0.0}),
        ("speck_fraction", {"speck_fraction": 0.5}),
    ],
)
def test_settings_are_validated(field, kwargs):
    with pytest.raises(ConfigError, match=field):
        MnistStyle(**kwargs)


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [("1", "png"), ("CMYK", "tiff"), ("LAB", "tiff"), ("I", "tiff"), ("F", "tiff"), ("LA", "png")],
)
def test_other_pixel_modes_read_like_grayscale(tmp_path, mode, suffix):
    sheet = np.full((60, 60), 220, dtype=np.uint8)
    sheet[10:50, 22:38] = 30  # a thick dark bar on light grey
    base = preprocess_file(save(sheet, tmp_path / "base.png"))
    image = Image.fromarray(sheet).convert(mode, dither=Image.Dither.NONE)
    if mode == "F":
        image = Image.fromarray(sheet.astype(np.float32), mode="F")  # 0..255 floats
    path = tmp_path / f"bar.{suffix}"
    image.save(path)
    assert Image.open(path).mode == mode
    assert np.abs(preprocess_file(path).astype(int) - base).max() <= 2
