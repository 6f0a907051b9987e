"""Writes the small generated data sets the example recipes read (nothing is downloaded).

    python examples/make_data.py              # into examples/data/ (what the recipes refer to)
    python examples/make_data.py --out DIR    # elsewhere; run `edgekeras train` from DIR's parent

The recipes name their files relative to their own folder (`data/shapes`, `data/digits.npz`),
and edgekeras looks a relative path up in the current folder first, then in the recipe's folder.

What it writes (all seeded, so every run gives the same files):
  shapes/{circle,cross,square}/*.png   16x16 RGB images of three shapes (image_dir)
  reviews/{neg,pos}/*.txt              short review-like texts (text_dir)
  digits.npz                           scikit-learn's embedded digits as arrays: images (N,8,8,1),
                                       pixels (N,64), labels, onehot, row/column stats, large (>=5)
  volumes.npz                          8x8x8 volumes with a bright cube in the upper or lower half
  sequences.npz                        zero-padded sequences of varying length, 3 trend classes
  sine.csv                             a noisy sine/cosine series (timeseries)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORDS = {
    "pos": ["good", "great", "love", "wonderful", "fine", "happy", "excellent", "nice", "superb", "enjoyable"],
    "neg": ["bad", "awful", "hate", "terrible", "poor", "sad", "boring", "ugly", "dull", "annoying"],
}
FILLER = ["the", "a", "movie", "film", "plot", "actors", "was", "really", "quite", "and"]


def shapes(root, per_class=40, size=16, seed=0):
    """Three classes of noisy shapes at random positions and colours."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for name in ("circle", "cross", "square"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cy, cx = rng.integers(5, size - 5, 2)
            r = rng.integers(3, 5)
            if name == "circle":
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            elif name == "cross":
                mask = ((abs(yy - cy) <= 1) & (abs(xx - cx) <= r)) | ((abs(xx - cx) <= 1) & (abs(yy - cy) <= r))
            else:
                mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
            image = rng.normal(40, 15, (size, size, 3))
            image[mask] = rng.uniform(150, 255, 3)
            Image.fromarray(np.clip(image, 0, 255).astype("uint8")).save(root / name / f"{i:03d}.png")


def reviews(root, per_class=60, seed=0):
    rng = np.random.default_rng(seed)
    for name, words in WORDS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            n = rng.integers(3, 7)
            text = list(rng.choice(words, n)) + list(rng.choice(FILLER, rng.integers(2, 8)))
            (root / name / f"{i:03d}.txt").write_text(" ".join(rng.permutation(text)).capitalize() + ".\n")


def digits(path):
    """The embedded digits in the shapes the npz examples need (single and multi input/output)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images / 16.0).astype("float32")[..., None]
    labels = d.target.astype("int32")
    stats = np.concatenate([images.mean(axis=1)[..., 0], images.mean(axis=2)[..., 0]], axis=1)
    np.savez(
        path,
        images=images,
        pixels=images.reshape(len(images), 64),
        labels=labels,
        onehot=np.eye(10, dtype="float32")[labels],
        stats=stats.astype("float32"),
        large=(labels >= 5).astype("float32"),
    )


def volumes(path, n=240, size=8, seed=0):
    """Label 1 when the bright 3x3x3 cube sits in the upper half of the depth axis."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.1, 0.05, (n, size, size, size, 1)).astype("float32")
    y = rng.integers(0, 2, n).astype("float32")
    for i in range(n):
        z = rng.integers(0, size // 2 - 2) + (size // 2 if y[i] else 0)
        r, c = rng.integers(0, size - 2, 2)
        x[i, z : z + 3, r : r + 3, c : c + 3] += 0.8
    np.savez(path, x=x, y=y)


def sequences(path, n=300, steps=12, seed=0):
    """Two features per step; class = the trend of feature 0 (falling, flat, rising).
    Each sequence has 4..12 valid steps followed by zeros (the Masking layer's mask_value)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, steps, 2), "float32")
    y = rng.integers(0, 3, n).astype("int32")
    for i in range(n):
        length = rng.integers(4, steps + 1)
        t = np.arange(length)
        slope = (int(y[i]) - 1) * 0.3
        x[i, :length, 0] = 0.5 + slope * t / steps * 4 + rng.normal(0, 0.1, length)
        x[i, :length, 1] = (t + 1) / steps  # never 0, so valid steps are never masked
    np.savez(path, x=x, y=y)


def sine(path, steps=600, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    value = np.sin(t / 10) + rng.normal(0, 0.05, steps)
    other = np.cos(t / 10) + rng.normal(0, 0.05, steps)
    rows = [f"{i},{v:.5f},{o:.5f}" for i, v, o in zip(t, value, other)]
    path.write_text("step,value,other\n" + "\n".join(rows) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "data", help="folder to write (default: examples/data)")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    shapes(out / "shapes")
    reviews(out / "reviews")
    digits(out / "digits.npz")
    volumes(out / "volumes.npz")
    sequences(out / "sequences.npz")
    sine(out / "sine.csv")
    print(f"wrote the example data to {out}")


if __name__ == "__main__":
    main()
