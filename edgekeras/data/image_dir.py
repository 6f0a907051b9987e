"""`source: image_dir` — a folder of images, one sub-folder per class
(`keras.utils.image_dataset_from_directory`).

    data: {source: image_dir, path: flowers/, image_size: [96, 96], color_mode: rgb}

Images are float32 in [0, 255] of shape (height, width, channels) — put a `Rescaling` layer
in the model; labels are class indices in sorted folder order (`class_names` in data.json).
The splits stay a tf.data pipeline (decoded as read; `cache: true` keeps them decoded).
"""

from __future__ import annotations

from edgekeras.data.assets import read_data_info
from edgekeras.data.bundle import Loaded
from edgekeras.data.folders import FOLDER_FIELDS, folder_splits
from edgekeras.errors import InputError
from edgekeras.recipe.schema import Field

INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")

FIELDS = {
    **FOLDER_FIELDS,
    "image_size": Field("any", [256, 256], doc="Give [height, width], e.g. [96, 96]."),
    "color_mode": Field("str", "rgb", choices=("grayscale", "rgb", "rgba")),
    "interpolation": Field("str", "bilinear", choices=INTERPOLATIONS),
    "crop_to_aspect_ratio": Field("bool", False),
    "pad_to_aspect_ratio": Field("bool", False),
}


def check(section, path="data"):
    size = section["image_size"]
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise InputError(
            f"Expected '{path}.image_size' to be a pair [height, width] of positive integers, "
            f"e.g. [96, 96]. Received: {size!r}."
        )
    if section["crop_to_aspect_ratio"] and section["pad_to_aspect_ratio"]:
        raise InputError(
            f"Expected at most one of '{path}.crop_to_aspect_ratio' and '{path}.pad_to_aspect_ratio'. "
            "Received: both true."
        )


def load(section, seed=0, fitted=None):
    import keras

    splits, class_names = folder_splits(
        keras.utils.image_dataset_from_directory,
        section,
        seed,
        class_names=(fitted or {}).get("class_names"),
        what="images",
        image_size=tuple(section["image_size"]),
        color_mode=section["color_mode"],
        interpolation=section["interpolation"],
        crop_to_aspect_ratio=section["crop_to_aspect_ratio"],
        pad_to_aspect_ratio=section["pad_to_aspect_ratio"],
    )
    metadata = {"class_names": class_names, "image_size": section["image_size"], "color_mode": section["color_mode"]}
    return Loaded(splits=splits, metadata=metadata, fitted={"class_names": class_names})


def restore(run_folder):
    """The class names (label order) a finished run trained with."""
    return {"class_names": read_data_info(run_folder).get("class_names")}
