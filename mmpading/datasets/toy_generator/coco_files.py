"""COCO-format encodings and files of the toy set: PNG, panoptic ids as RGB,
RLE masks, boxes, compact JSON. PNG and JSON carry no timestamps, so the
same content writes the same bytes."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image


def save_png(array: np.ndarray, path: str) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array as PNG (fixed compression)."""
    Image.fromarray(array).save(path, format='PNG', compress_level=6)


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """COCO panoptic encoding of ids (H, W): (H, W, 3) uint8 with
    id = R + 256 G + 256^2 B."""
    rgb = np.zeros(ids.shape + (3, ), dtype=np.uint8)
    rgb[..., 0] = ids % 256
    rgb[..., 1] = ids // 256 % 256
    rgb[..., 2] = ids // 256**2 % 256
    return rgb


def encode_rle(mask: np.ndarray) -> dict:
    """COCO RLE of a bool (H, W) mask, ``counts`` as a JSON string."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': [int(v) for v in rle['size']],
            'counts': rle['counts'].decode('ascii')}


def write_json(content: dict, path: str) -> None:
    """Compact JSON (no spaces), one trailing newline."""
    with open(path, 'w', encoding='utf-8') as file:
        json.dump(content, file, separators=(',', ':'))
        file.write('\n')


def mask_bbox(mask: np.ndarray) -> list[float]:
    """COCO box ``[x, y, w, h]`` of a non-empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return [
        float(cols[0]),
        float(rows[0]),
        float(cols[-1] - cols[0] + 1),
        float(rows[-1] - rows[0] + 1)
    ]
