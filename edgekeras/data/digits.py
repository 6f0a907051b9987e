"""`source: digits` — scikit-learn's embedded 8x8 handwritten digits (1797 samples, no download)."""

from edgekeras.data.bundle import Loaded
from edgekeras.recipe.schema import Field

FIELDS = {
    "flatten": Field("bool", False, doc="Give 64-vectors instead of 8x8x1 images."),
}


def load(section, seed=0, fitted=None):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")
    x = x.reshape(len(x), 64) if section.get("flatten") else x[..., None]
    return Loaded(x, digits.target.astype("int32"), metadata={"class_names": [str(i) for i in range(10)]})
