"""`source: npz` — arrays from a `.npz` file (loaded with allow_pickle=False)."""

from edgekeras.recipe.schema import Field

FIELDS = {
    "path": Field("str", doc="Give 'data.path: file.npz'."),
    "x": Field("any", "x", doc="Array name of the inputs, or a list of names (one per input)."),
    "y": Field("str", "y"),
}


def load(section):
    from edgekeras.data.files import read_npz

    arrays = read_npz(section["path"])
    keys = section["x"] if isinstance(section["x"], list) else [section["x"]]
    for key in keys + [section["y"]]:
        if key not in arrays:
            from edgekeras.errors import InputError, suggest

            raise InputError(
                f"Expected an array named '{key}' in '{section['path']}'. Received: arrays "
                f"{sorted(arrays)}.{suggest(key, arrays)}"
            )
    x = {k: arrays[k] for k in keys} if isinstance(section["x"], list) else arrays[keys[0]]
    return x, arrays[section["y"]]
