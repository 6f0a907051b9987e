"""`export_split`: a run's train/validation/test split as the `.npz` every command reads.

The file holds one array per model input, named after it (`x` too for a single-input model
would be ambiguous, so only the input's name), and labels as `y` (single-output model) or
`y_<output name>` per output — the documented form `--data` and `--calibration` take. The
split is the one the run trained with, encoded as it trained (`RunFolder.load_data`).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.atomic import check_writable, write_bytes
from edgekeras.errors import InputError, expected_one_of
from edgekeras.model_io import input_specs, output_names
from edgekeras.run_folder import RunFolder

if TYPE_CHECKING:
    import keras

    from edgekeras.hints import Arrays, PathLike

SPLITS = ("train", "validation", "test")


def export_split(
    run: PathLike,
    split: str = "test",
    out: PathLike | None = None,
    force: bool = False,
    safe_mode: bool = True,
    custom_objects: Iterable[str] = (),
) -> Path:
    """Writes split `split` of run folder `run` to `out` (default `RUN/SPLIT.npz`); returns the path.

    The run's model (loaded with `safe_mode` and `custom_objects` besides those the run
    recorded) names the arrays after its inputs and outputs.

    Raises `InputError` for an unknown split, a split the run does not have, an existing `out`
    without `force`, or a run whose data was given in memory.
    """
    if split not in SPLITS:
        raise expected_one_of("--split", split, SPLITS)
    folder = RunFolder.open(run)
    out = Path(out) if out is not None else folder.root / f"{split}.npz"
    if out.suffix != ".npz":
        raise InputError(f"Expected an output path ending in .npz. Received: '{out}'.")
    check_writable(out, force)
    data = getattr(folder.load_data(), split)
    if data is None or len(data) == 0:
        raise InputError(
            f"Expected the run to have a {split} split. Received: '{folder.root}', whose recipe leaves it empty "
            f"(data.{split}_split is 0). Choose another --split."
        )
    model = folder.load_model(safe_mode=safe_mode, custom_objects=custom_objects, compile=False).model
    arrays: dict[str, Any] = _arrays(model, data.x, data.y)  # Any: numpy's stubs type **arrays like allow_pickle
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_bytes(out, buffer.getvalue(), force=force)


def _arrays(model: keras.Model, x: Any, y: Any) -> Arrays:
    """{input name: array, y | y_<output>: labels} for `model`."""
    inputs = [s.name for s in input_specs(model)]
    outputs = output_names(model)
    if isinstance(x, dict) and not (len(inputs) == 1 and len(x) == 1):
        arrays = {name: np.asarray(value) for name, value in x.items()}  # keyed by input name already
    else:
        arrays = {inputs[0]: np.asarray(next(iter(x.values())) if isinstance(x, dict) else x)}
    if y is None:
        return arrays
    if isinstance(y, dict):
        if len(outputs) == 1 and len(y) == 1:
            arrays["y"] = np.asarray(next(iter(y.values())))
        else:
            arrays.update({f"y_{name}": np.asarray(value) for name, value in y.items()})
    elif len(outputs) == 1:
        arrays["y"] = np.asarray(y)
    else:
        raise InputError(
            f"Expected one label array per output {outputs}. Received: one array for a model with {len(outputs)} outputs."
        )
    return arrays
