"""Calibration inputs for quantized precisions: arrays, `.npz`, datasets, or an image folder.

An image folder is read with Pillow (no TensorFlow), every image resized to the model's
input height and width, converted to its channel count, and scaled by the recipe's
`calibration.scale` (default 1/255, values in [0, 1]).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekeras.data.bundle import Split
from edgekeras.data.coerce import as_split
from edgekeras.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MIN_SAMPLES = 10
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def calibration_split(value, specs, samples, scale=None):
    """A `Split` of calibration inputs (an image folder reads at most `samples` images)."""
    if isinstance(value, (str, Path)) and Path(value).is_dir():
        return Split(read_image_folder(Path(value), specs, samples, scale))
    split = as_split(value, "calibration data")
    if split is None:
        raise InputError(
            "Expected calibration data for a quantized precision (int8, int16x8). Received: none. "
            "Pass --calibration FILE.npz or an image folder (calibration=...) with representative inputs."
        )
    return split


def read_image_folder(folder, specs, samples, scale=None):
    """{input: float32 array (n, H, W, C)} from the images under `folder` (recursively)."""
    if len(specs) != 1 or len(specs[0].shape) != 4 or specs[0].shape[3] not in _MODES:
        shapes = [s.describe() for s in specs]
        raise InputError(
            f"Expected a model with one image input (N, height, width, 1|3|4) for an image-folder "
            f"calibration '{folder}'. Received: inputs {shapes}. Pass a .npz with arrays named "
            "after the inputs instead."
        )
    spec = specs[0]
    _, height, width, channels = spec.shape
    if height is None or width is None:
        raise InputError(
            f"Expected a fixed input height and width to resize the images in '{folder}' to. "
            f"Received: input {spec.describe()}. Pass a .npz of already-sized images instead."
        )
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(
            f"Expected image files ({', '.join(IMAGE_SUFFIXES)}) in '{folder}'. Received: none. "
            "Point --calibration at a folder of images or at a .npz file."
        )
    if len(files) > samples:  # evenly spread over the folder (classes are sub-folders)
        files = [files[i] for i in np.linspace(0, len(files) - 1, samples).round().astype(int)]
    factor = 1.0 / 255.0 if scale is None else float(scale)
    images = [_read_image(p, width, height, _MODES[channels]) for p in files]
    array = np.stack(images).astype(np.float32) * factor
    if array.ndim == 3:
        array = array[..., None]
    return {spec.name: array}


def _read_image(path, width, height, mode):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode).resize((width, height), Image.BILINEAR))
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(
            f"Expected readable images in the calibration folder. Received: '{path}', which Pillow "
            f"could not read ({e}). Remove or replace it."
        ) from None
