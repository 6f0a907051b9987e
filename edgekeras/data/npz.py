"""`source: npz` — arrays from a `.npz` file (loaded with allow_pickle=False).

One input: `x: images` (the array name). Several inputs: `x: [a, b]` gives {a: ..., b: ...},
matched to the model's inputs by name; `inputs: [image, meta]` renames them to the model's
input names. Several outputs likewise: `y: [y_a, y_b]` with `outputs: [out_a, out_b]`
(the Keras output names; default the array names).
"""

from edgekeras.data import key_path, source_path
from edgekeras.data.files import read_npz
from edgekeras.errors import InputError, suggest
from edgekeras.recipe.schema import Field

FIELDS = {
    "path": Field("str", doc="Give 'data.path: file.npz'."),
    "x": Field("any", "x", doc="Array name of the inputs, or a list of names (one per input)."),
    "y": Field("any", "y", doc="Array name of the labels, or a list of names (one per output)."),
    "inputs": Field("strlist", None, doc="Model input names for the arrays in 'x' (same order)."),
    "outputs": Field("strlist", None, doc="Model output names for the arrays in 'y' (same order)."),
}


def _names(value, key, path):
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise InputError(f"Expected '{path}.{key}' to be an array name or a list of array names. Received: {value!r}.")


def check(section, path="data"):
    for key, rename in (("x", "inputs"), ("y", "outputs")):
        names = _names(section[key], key, path)
        if section[rename] is not None and (not isinstance(section[key], list) or len(section[rename]) != len(names)):
            raise InputError(
                f"Expected '{path}.{rename}' to name one model {rename[:-1]} per array in "
                f"'{path}.{key}' (a list). Received: {section[rename]} for {section[key]!r}."
            )


def _pick(arrays, section, key, rename, path):
    names = _names(section[key], key, "data")
    for i, name in enumerate(names):
        if name not in arrays:
            where = key_path(section, f"{key}[{i}]" if isinstance(section[key], list) else key)
            raise InputError(
                f"Expected an array named '{name}' ({where}) in '{path}'. Received: arrays "
                f"{sorted(arrays)}.{suggest(name, arrays)}"
            )
    if not isinstance(section[key], list):
        return arrays[names[0]]
    return {new: arrays[name] for new, name in zip(section[rename] or names, names)}


def load(section, seed=0, fitted=None):
    path = source_path(section, suffixes=(".npz",))
    arrays = read_npz(path)
    x = _pick(arrays, section, "x", "inputs", path)
    y = _pick(arrays, section, "y", "outputs", path)
    lengths = {}
    for key, part in (("x", x), ("y", y)):
        items = part.items() if isinstance(part, dict) else [(section[key], part)]
        lengths.update({name: len(a) for name, a in items})
    if len(set(lengths.values())) > 1:
        raise InputError(f"Expected every array in '{path}' to hold the same number of samples. Received: {lengths}.")
    return x, y
