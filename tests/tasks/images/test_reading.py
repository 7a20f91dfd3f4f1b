"""Huge and hostile images: a pixel limit of our own, and bounded memory for any one image.

The memory is the peak resident size of a fresh interpreter that preprocesses one file:
``VmHWM`` of ``/proc/self/status``, which starts anew at ``exec`` (Linux's ``ru_maxrss``
keeps the high-water mark of the forking test process), else ``ru_maxrss``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tasks.errors import ImageError
from tasks.images.prepare import preprocess_file
from tasks.images.reading import MAX_PIXELS, WORK_SIDE, decode_grayscale, load_grayscale

PEAK_LIMIT_MB = 500

_MEASURE = """
import json, resource, sys
from tasks.errors import ImageError
from tasks.images.prepare import preprocess_file
try:
    result = {"ink": int(preprocess_file(sys.argv[1]).astype(int).sum())}
except ImageError as exc:
    result = {"error": str(exc)}
try:
    with open("/proc/self/status") as status:
        (line,) = [line for line in status if line.startswith("VmHWM:")]
    result["peak_mb"] = int(line.split()[1]) / 1024
except OSError:
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def measure(path: Path) -> dict:
    """Preprocess ``path`` in a fresh interpreter: its result or error, and its peak memory."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)


def one(path: Path, mode: str, size: tuple[int, int], paper, ink, **save) -> Path:
    """A picture of a "1": one slanted stroke on a plain background."""
    img = Image.new(mode, size, paper)
    w, h = size
    ImageDraw.Draw(img).line([(w * 0.45, h * 0.2), (w * 0.55, h * 0.8)], fill=ink, width=w // 40)
    img.save(path, **save)
    return path


@pytest.mark.slow
def test_a_small_file_of_144_megapixels_is_refused_without_decoding(tmp_path):
    """The issue's case: a PNG of a few hundred KB, 12000x12000 pixels (used 5.8 GB)."""
    path = one(tmp_path / "big.png", "L", (12000, 12000), 255, 0)
    assert path.stat().st_size < 1_000_000
    result = measure(path)
    assert result["error"] == (
        f"{path}: image of 12000x12000 = 144.0 Mpx is larger than the 40 Mpx limit; "
        "scale it down first"
    )
    assert result["peak_mb"] < 150  # the header only


@pytest.mark.slow
def test_the_largest_allowed_image_stays_under_500_mb(tmp_path):
    """40 Mpx RGBA, the costliest mode Pillow decodes: scored, under the memory bound."""
    side = int(MAX_PIXELS**0.5)
    path = one(tmp_path / "rgba.png", "RGBA", (side, side), (255,) * 4, (0, 0, 0, 255))
    result = measure(path)
    assert "error" not in result, result
    assert result["ink"] > 2000  # a stroke made it into the 28x28 digit
    assert result["peak_mb"] < PEAK_LIMIT_MB, result


@pytest.mark.slow
def test_a_large_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    """80 Mpx of JPEG is over the limit at full size, but decodes at 1/8 scale."""
    path = one(tmp_path / "photo.jpg", "RGB", (10000, 8000), (255,) * 3, (0, 0, 0), quality=80)
    result = measure(path)
    assert "error" not in result and result["ink"] > 2000, result
    assert result["peak_mb"] < 200, result


def test_pillows_decompression_bomb_error_becomes_ours(tmp_path, monkeypatch):
    """Past twice Pillow's own limit, Pillow refuses at open: the same one line as ours."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # a bomb is then 20,001 pixels
    path = one(tmp_path / "bomb.png", "L", (200, 200), 255, 0)
    with pytest.raises(ImageError, match=r"bomb\.png: image of 0\.0 Mpx is larger than the 40"):
        preprocess_file(path)


def test_big_images_are_reduced_before_anything_turns_to_float(tmp_path):
    path = one(tmp_path / "wide.png", "P", (3000, 1500), 0, 1)
    gray = load_grayscale(path)
    assert max(gray.shape) <= WORK_SIDE and gray.shape == (500, 1000)
    assert np.isclose(gray.max(), 1.0) or np.isclose(gray.min(), 0.0)


@pytest.mark.parametrize(
    ("mode", "paper", "ink", "suffix"),
    [
        ("L", 255, 0, ".png"),
        ("RGBA", (0, 0, 0, 0), (0, 0, 0, 255), ".png"),
        ("RGB", (250, 245, 230), (20, 30, 90), ".jpg"),
        ("P", (255, 255, 255), (0, 0, 0), ".gif"),
    ],
)
def test_bytes_in_memory_read_as_the_same_file_does(tmp_path, mode, paper, ink, suffix):
    path = one(tmp_path / f"one{suffix}", mode, (120, 90), paper, ink)
    from_file = load_grayscale(path)
    assert from_file.std() > 0.1  # a stroke on paper, not a blank
    np.testing.assert_array_equal(decode_grayscale(path.read_bytes()), from_file)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "upload: empty file"), (b"not an image", "upload: not an image Pillow can read")],
)
def test_bytes_that_are_no_image_are_refused_under_their_name(data, message):
    with pytest.raises(ImageError, match=f"^{message}"):
        decode_grayscale(data, name="upload")
