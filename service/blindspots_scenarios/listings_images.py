"""Small synthetic PNG "photos" for the listings scenario, so that reports have
thumbnails to show. Off by default: the demo writes them with ``--images``.

Each image is a 32 x 32 tile: the class colour as background, a 4 x 4 block
texture drawn from the sample's embedding (so neighbours look alike), much
darker for the hidden ``dark`` condition, and a white diagonal stroke for the
hidden ``watermark`` condition. Encoded with zlib alone (no imaging library).
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np

from .listings import Scenario, Split

# One saturated colour per class (apartment, house, studio, villa, loft).
CLASS_COLOURS = np.array([[52, 120, 220], [230, 120, 30], [40, 170, 80], [200, 50, 160], [150, 110, 60]],
                         dtype=np.float64)
DARK_FACTOR = 0.3
TEXTURE_CELLS = 4


def render_listing(embedding: np.ndarray, label: int, dark: bool, watermark: bool, size: int = 32) -> np.ndarray:
    """One sample's image as a size x size x 3 uint8 array."""
    base = CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]
    cells = np.tanh(np.asarray(embedding[:TEXTURE_CELLS ** 2], dtype=np.float64))
    cells = np.resize(cells, TEXTURE_CELLS ** 2).reshape(TEXTURE_CELLS, TEXTURE_CELLS)
    texture = np.kron(cells, np.ones((size // TEXTURE_CELLS, size // TEXTURE_CELLS)))
    img = base[None, None, :] * (0.75 + 0.25 * texture[..., None])
    if dark:
        img = img * DARK_FACTOR
    if watermark:
        i = np.arange(size)
        for w in (-1, 0, 1):
            j = np.clip(i + w, 0, size - 1)
            img[i, j] = 255.0
    return np.clip(img, 0, 255).astype(np.uint8)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an H x W x 3 uint8 array (8-bit RGB, no filtering)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def write_split_images(split: Split, directory: Path, size: int = 32) -> None:
    """Write one PNG per row of ``split`` under ``directory`` and point its uris at them."""
    directory.mkdir(parents=True, exist_ok=True)
    dark = split.conditions["dark"].to_numpy()
    watermark = split.conditions["watermark"].to_numpy()
    uris = []
    for i, sample_id in enumerate(split.ids):
        path = directory / f"{sample_id}.png"
        rgb = render_listing(split.embeddings[i], split.true_labels[i], dark[i], watermark[i], size)
        path.write_bytes(encode_png(rgb))
        uris.append(path.resolve().as_uri())
    split.uris = np.asarray(uris)


def attach_images(scenario: Scenario, directory: str | Path, splits: Iterable[str] = ("test", "pool")) -> None:
    """Render images for the named splits of ``scenario`` into ``directory``/<split>/."""
    root = Path(directory)
    for name in splits:
        write_split_images(getattr(scenario, name), root / name)
