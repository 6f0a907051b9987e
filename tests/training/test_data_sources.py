"""Data sources (`data.source`): each with data generated here, loaded, split, trained on.

Small image folders (PNG via PIL), text folders, CSV tables and a sine-wave series are
written into tmp folders; nothing is downloaded. Two tests export to TFLite + ONNX with
parity checked (text: token-id inputs; images: augmentation kept out of the model); the
others train one epoch without export.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import invoke

from edgekeras.errors import InputError

NO_EXPORT = {"formats": [], "precisions": ["fp32"]}
COLORS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
WORDS = {
    "pos": ["good", "great", "love", "wonderful", "fine", "happy", "excellent", "nice"],
    "neg": ["bad", "awful", "hate", "terrible", "poor", "sad", "boring", "ugly"],
}


# --- generated data ------------------------------------------------------------------------


def write_images(root, per_class=10, size=16, seed=0, classes=COLORS):
    """A class-per-folder PNG set: each class a noisy colour, so a tiny CNN can learn it."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, color in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(color) + rng.normal(0, 25, (size, size, 3)), 0, 255)
            pixels[: size // 2, : size // 4] = 255  # an asymmetric patch, so flips change the image
            Image.fromarray(pixels.astype("uint8")).save(root / name / f"img{i:02d}.png")
    return root


def write_texts(root, per_class=20, seed=0, classes=("neg", "pos")):
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            words = list(rng.choice(WORDS[name], 5)) + list(rng.choice(["the", "a", "movie", "film"], 2))
            (root / name / f"{i:02d}.txt").write_text(" ".join(rng.permutation(words)).capitalize() + "!")
    return root


def write_csv(path, n=60, seed=0):
    rng = np.random.default_rng(seed)
    species = rng.choice(["setosa", "virginica"], n)
    lines = ["age,height,color,species"]
    for i in range(n):
        big = species[i] == "virginica"
        lines.append(
            f"{rng.integers(1, 9)},{rng.normal(5 if big else 2, 0.5):.3f},"
            f"{rng.choice(['red', 'blue', 'white'])},{species[i]}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def write_series(path, steps=200):
    t = np.arange(steps)
    rows = [f"{i},{np.sin(i / 8):.6f},{np.cos(i / 8):.6f},x{i}" for i in t]
    path.write_text("step,value,other,label\n" + "\n".join(rows) + "\n")
    return path


def recipe(data, model, epochs=1, export=NO_EXPORT, loss="sparse_categorical_crossentropy", name="data-test"):
    return {
        "name": name,
        "seed": 3,
        "data": data,
        "model": model,
        "compile": {"optimizer": {"Adam": {"learning_rate": 0.01}}, "loss": loss, "metrics": ["accuracy"]},
        "fit": {"epochs": epochs},
        "export": export,
    }


def load(data, seed=3):
    from edgekeras.data import check_data_section, load_data

    return load_data(check_data_section(data), seed=seed)


def rows(split):
    """Every sample of a split as bytes, to compare splits for overlap."""
    x = split.x
    return {np.ascontiguousarray(v).tobytes() for v in x}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("images") / "train")


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    return write_texts(tmp_path_factory.mktemp("texts") / "reviews")


# --- image_dir -----------------------------------------------------------------------------


def test_image_dir_splits_every_file_once_with_class_names(images):
    bundle = load(
        {
            "source": "image_dir",
            "path": str(images),
            "image_size": [16, 16],
            "validation_split": 0.1,
            "test_split": 0.2,
            "batch_size": 8,
        }
    )
    assert (len(bundle.train), len(bundle.validation), len(bundle.test)) == (21, 3, 6)
    assert bundle.metadata["class_names"] == ["blue", "green", "red"]
    assert bundle.train.x.shape == (21, 16, 16, 3) and bundle.train.x.dtype == np.float32
    assert set(bundle.test.y.tolist()) <= {0, 1, 2} and bundle.test.y.dtype == np.int32
    parts = [rows(bundle.train), rows(bundle.validation), rows(bundle.test)]
    assert sum(map(len, parts)) == 30 and len(set.union(*parts)) == 30  # disjoint, complete
    again = load({"source": "image_dir", "path": str(images), "image_size": [16, 16], "batch_size": 8})
    assert rows(again.test) == parts[2]  # the same seed gives the same split
    batch_x, batch_y = next(iter(bundle.tf_dataset(bundle.validation)))
    assert tuple(batch_x.shape) == (3, 16, 16, 3) and tuple(batch_y.shape) == (3,)
    gray = load({"source": "image_dir", "path": str(images), "image_size": [8, 12], "color_mode": "grayscale"})
    assert gray.calibration(5).x.shape == (5, 8, 12, 1)


def test_image_dir_explicit_validation_folder(images, tmp_path):
    val = write_images(tmp_path / "val", per_class=2, seed=1)
    bundle = load(
        {
            "source": "image_dir",
            "path": str(images),
            "image_size": [16, 16],
            "test_split": 0.2,
            "validation": {"path": str(val)},
        }
    )
    assert len(bundle.validation) == 6 and len(bundle.test) == 6 and len(bundle.train) == 24
    assert sorted(bundle.validation.y.tolist()) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(InputError, match=r"data\.validation.*data\.validation_split"):
        load({"source": "image_dir", "path": str(images), "validation_split": 0.2, "validation": {"path": str(val)}})


def test_augment_applies_to_training_batches_only(images):
    # digits: an ordered numpy train split, so two epochs differ only by augmentation
    bundle = load({"source": "digits", "batch_size": 64, "augment": [{"RandomFlip": {"mode": "horizontal"}}]})
    raw = bundle.train.x
    epoch1, epoch2 = (
        np.concatenate([x for x, _ in bundle.tf_dataset(bundle.train).as_numpy_iterator()]) for _ in range(2)
    )
    flipped = np.all(np.isclose(epoch1, raw[:, :, ::-1]), axis=(1, 2, 3))
    kept = np.all(np.isclose(epoch1, raw), axis=(1, 2, 3))
    assert (flipped | kept).all() and 0.3 < flipped.mean() < 0.7  # each image flipped or not, at random
    assert not np.allclose(epoch1, epoch2)  # new draws each epoch
    test = np.concatenate([x for x, _ in bundle.tf_dataset(bundle.test).as_numpy_iterator()])
    np.testing.assert_array_equal(test, bundle.test.x)  # evaluation data is never augmented
    np.testing.assert_array_equal(bundle.calibration(50).x, bundle.train.take(50, seed=bundle.seed).x)

    folder = load(
        {
            "source": "image_dir",
            "path": str(images),
            "image_size": [16, 16],
            "augment": [{"RandomFlip": {"mode": "horizontal", "seed": 1}}, {"RandomRotation": {"factor": 0.1}}],
        }
    )
    assert [type(layer).__name__ for layer in folder.augment] == ["RandomFlip", "RandomRotation"]
    val = np.concatenate([x for x, _ in folder.tf_dataset(folder.validation).as_numpy_iterator()])
    np.testing.assert_array_equal(val, folder.validation.x)


def test_image_dir_trains_exports_and_keeps_augmentation_out_of_the_model(images, tmp_path):
    import edgekeras as ek

    data = {
        "source": "image_dir",
        "path": str(images),
        "image_size": [16, 16],
        "batch_size": 8,
        "cache": True,
        "augment": [{"RandomFlip": {"mode": "horizontal"}}],
    }
    model = {
        "type": "sequential",
        "input_shape": [16, 16, 3],
        "layers": [
            {"Rescaling": {"scale": 0.00392156862745098, "offset": 0.0}},
            {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
            {"GlobalAveragePooling2D": {}},
            {"Dense": {"units": 3, "activation": "softmax"}},
        ],
    }
    run = ek.train(
        recipe(data, model, epochs=2, export={"formats": ["tflite", "onnx"], "precisions": ["fp32"]}),
        out=tmp_path / "run",
    )
    assert len(run.artifacts) == 2
    for art in run.artifacts:
        validation = art.manifest["validation"]
        assert validation["passed"] and validation["data"] == "labelled data" and validation["samples"] == 6
    assert not any(type(layer).__name__.startswith("Random") for layer in run.model.layers)
    saved = ek.load_model(run.path / "model.keras")
    model_obj = getattr(saved, "model", saved)
    assert not any(type(layer).__name__.startswith("Random") for layer in model_obj.layers)
    info = json.loads((run.path / "data.json").read_text())
    assert info["class_names"] == ["blue", "green", "red"] and info["samples"] == {
        "train": 21,
        "validation": 3,
        "test": 6,
    }


# --- text_dir ------------------------------------------------------------------------------

TEXT_MODEL = {
    "type": "sequential",
    "input_shape": [12],
    "input_dtype": "int32",
    "layers": [
        {"Embedding": {"input_dim": 64, "output_dim": 8}},
        {"GlobalAveragePooling1D": {}},
        {"Dense": {"units": 2, "activation": "softmax"}},
    ],
}


def test_text_dir_vectorizes_to_padded_token_ids(texts):
    bundle = load({"source": "text_dir", "path": str(texts), "max_tokens": 64, "sequence_length": 12})
    assert (len(bundle.train), len(bundle.validation), len(bundle.test)) == (28, 4, 8)
    assert bundle.train.x.shape == (28, 12) and bundle.train.x.dtype == np.int32
    assert bundle.metadata["class_names"] == ["neg", "pos"]
    assert (bundle.train.x[:, 7:] == 0).all() and (bundle.train.x[:, 0] > 1).all()  # 7 words, then padding
    vocab = json.loads(bundle.assets["vectorizer.json"])["vocabulary"]
    assert vocab[:2] == ["", "[UNK]"] and "great" in vocab and "Great" not in vocab  # standardized


def test_text_dir_explicit_validation_uses_the_training_vocabulary(texts, tmp_path):
    val = tmp_path / "val"
    for name, text in (("neg", "zebra quokka awful"), ("pos", "Great axolotl")):
        (val / name).mkdir(parents=True)
        (val / name / "1.txt").write_text(text)
    bundle = load(
        {
            "source": "text_dir",
            "path": str(texts),
            "sequence_length": 4,
            "test_split": 0.0,
            "validation": {"path": str(val)},
        }
    )
    vocab = json.loads(bundle.assets["vectorizer.json"])["vocabulary"]
    ids = dict(zip(bundle.validation.y.tolist(), bundle.validation.x.tolist()))
    assert ids == {0: [1, 1, vocab.index("awful"), 0], 1: [vocab.index("great"), 1, 0, 0]}


def test_text_dir_trains_and_exports_token_id_models(texts, tmp_path):
    import edgekeras as ek
    from edgekeras.data import check_data_section, load_data
    from edgekeras.data.vectorizer import vectorize

    data = {"source": "text_dir", "path": str(texts), "max_tokens": 64, "sequence_length": 12, "batch_size": 8}
    run = ek.train(
        recipe(data, TEXT_MODEL, epochs=3, export={"formats": ["tflite", "onnx"], "precisions": ["fp32"]}),
        out=tmp_path / "run",
    )
    assert len(run.artifacts) == 2
    for art in run.artifacts:
        assert art.manifest["inputs"][0]["dtype"] == "int32" and art.manifest["inputs"][0]["shape"] == [None, 12]
        assert art.manifest["validation"]["passed"] and art.manifest["validation"]["samples"] == 8
    assert (run.path / "vectorizer.json").exists()
    # raw text -> the same token ids the run trained on, from the saved asset alone
    saved = json.loads((run.path / "vectorizer.json").read_text())["vocabulary"]
    ids = vectorize(["Great film, great!", "an unseen word"], run.path)
    assert ids.shape == (2, 12) and ids.dtype == np.int32
    assert ids[0, :3].tolist() == [saved.index("great"), saved.index("film"), saved.index("great")]
    assert ids[1].tolist() == [1, 1, 1] + [0] * 9  # unknown words, then padding
    # a finished run's data reloads with its own vocabulary
    reloaded = load_data(check_data_section(data), seed=3, run_folder=run.path)
    np.testing.assert_array_equal(reloaded.test.x, run.data.test.x)
    probs = run.model.predict(ids, verbose=0)
    assert probs.shape == (2, 2)


# --- csv -----------------------------------------------------------------------------------


def test_csv_features_labels_and_categories(tmp_path):
    path = write_csv(tmp_path / "table.csv")
    bundle = load(
        {
            "source": "csv",
            "path": str(path),
            "features": ["age", "height", "color"],
            "label": "species",
            "test_split": 0.0,
            "validation_split": 0.25,
        }
    )
    assert bundle.train.x.shape == (45, 5) and bundle.train.x.dtype == np.float32  # 2 numbers + 3 colours
    assert bundle.metadata["features"] == ["age", "height", "color=blue", "color=red", "color=white"]
    assert bundle.metadata["class_names"] == ["setosa", "virginica"]
    assert set(bundle.train.y.tolist()) == {0, 1} and bundle.test is None
    onehot = bundle.train.x[:, 2:]
    assert (onehot.sum(axis=1) == 1).all()
    grouped = load(
        {
            "source": "csv",
            "path": str(path),
            "features": {"size": ["height"], "meta": ["age", "color"]},
            "label": "species",
        }
    )
    assert grouped.train.x["size"].shape[1:] == (1,) and grouped.train.x["meta"].shape[1:] == (4,)
    # an explicit validation table is encoded with the training categories and classes
    (tmp_path / "val.csv").write_text("age,height,color,species\n3,2.0,green,setosa\n4,5.0,red,virginica\n")
    checked = load(
        {"source": "csv", "path": str(path), "label": "species", "validation": {"path": str(tmp_path / "val.csv")}}
    )
    np.testing.assert_array_equal(checked.validation.x, [[3, 2, 0, 0, 0], [4, 5, 0, 1, 0]])  # unseen colour: zeros
    np.testing.assert_array_equal(checked.validation.y, [0, 1])
    (tmp_path / "bad.csv").write_text("age,height,color,species\n3,2.0,red,rose\n")
    with pytest.raises(InputError, match=r"classes seen in training \['setosa', 'virginica'\]. Received: \['rose'\]"):
        load(
            {"source": "csv", "path": str(path), "label": "species", "validation": {"path": str(tmp_path / "bad.csv")}}
        )


def test_csv_trains_one_epoch(tmp_path):
    import edgekeras as ek

    path = write_csv(tmp_path / "table.csv")
    data = {"source": "csv", "path": str(path), "features": ["age", "height", "color"], "label": "species"}
    model = {"type": "sequential", "input_shape": [5], "layers": [{"Dense": {"units": 2, "activation": "softmax"}}]}
    run = ek.train(recipe(data, model), out=tmp_path / "run")
    assert len(run.history["loss"]) == 1 and run.artifacts == []
    info = json.loads((run.path / "data.json").read_text())
    assert info["source"] == "csv" and info["categories"] == {"color": ["blue", "red", "white"]}


# --- npz: several inputs and outputs -------------------------------------------------------


def test_npz_multi_input_multi_output_trains_by_name(tmp_path):
    import keras

    import edgekeras as ek

    rng = np.random.default_rng(0)
    n = 64
    np.savez(
        tmp_path / "multi.npz",
        pixels=rng.random((n, 4, 4, 1), dtype="float32"),
        extra=rng.random((n, 3), dtype="float32"),
        kind=rng.integers(0, 3, n).astype("int32"),
        score=rng.random((n, 1), dtype="float32"),
    )
    image = keras.Input((4, 4, 1), name="image")
    meta = keras.Input((3,), name="meta")
    h = keras.layers.Concatenate()([keras.layers.Flatten()(image), meta])
    model = keras.Model(
        [image, meta],
        {
            "cls": keras.layers.Dense(3, activation="softmax", name="cls")(h),
            "reg": keras.layers.Dense(1, name="reg")(h),
        },
    )
    data = {
        "source": "npz",
        "path": str(tmp_path / "multi.npz"),
        "x": ["pixels", "extra"],
        "inputs": ["image", "meta"],
        "y": ["kind", "score"],
        "outputs": ["cls", "reg"],
    }
    bundle = load(data)
    assert set(bundle.train.x) == {"image", "meta"} and set(bundle.train.y) == {"cls", "reg"}
    run = ek.train(
        model,
        recipe={
            "name": "multi",
            "data": data,
            "fit": {"epochs": 1},
            "export": NO_EXPORT,
            "compile": {"optimizer": "adam", "loss": {"cls": "sparse_categorical_crossentropy", "reg": "mse"}},
        },
        out=tmp_path / "run",
    )
    assert {"cls_loss", "reg_loss"} <= set(run.history) and set(run.test_metrics)
    with pytest.raises(InputError, match=r"data\.outputs"):
        load({**data, "outputs": ["cls"]})


# --- timeseries ----------------------------------------------------------------------------


def test_timeseries_windows_split_in_time_order(tmp_path):
    path = write_series(tmp_path / "series.csv")
    bundle = load(
        {
            "source": "timeseries",
            "path": str(path),
            "features": ["value", "other"],
            "target_column": "value",
            "sequence_length": 20,
            "target_offset": 1,
        }
    )
    # 200 steps, windows of 20 with the next value as target: 180 windows, split by target time
    sizes = (len(bundle.train), len(bundle.validation), len(bundle.test))
    assert sum(sizes) == 180 and sizes == (120, 20, 40)
    x, y = bundle.train.x, bundle.train.y
    assert x.shape == (120, 20, 2) and x.dtype == np.float32 and y.shape == (120,)
    steps = np.arange(200)
    np.testing.assert_allclose(x[5, :, 0], np.sin(steps[5:25] / 8), atol=1e-5)
    np.testing.assert_allclose(y[5], np.sin(25 / 8), atol=1e-5)  # the step right after the window
    np.testing.assert_allclose(bundle.test.y[0], np.sin(160 / 8), atol=1e-5)  # test = the last 20%
    assert bundle.metadata["features"] == ["value", "other"]
    default = load(
        {
            "source": "timeseries",
            "path": str(path),
            "target_column": "value",
            "sequence_length": 10,
            "sequence_stride": 5,
            "target_offset": 0,
        }
    )
    assert default.metadata["features"] == ["step", "value", "other"]  # numeric columns only
    cal = default.calibration(4)
    assert cal.x.shape == (4, 10, 3)


def test_timeseries_trains_one_epoch(tmp_path):
    import edgekeras as ek

    path = write_series(tmp_path / "series.csv")
    np.savez(tmp_path / "series.npz", value=np.sin(np.arange(120) / 8).astype("float32"))
    data = {
        "source": "timeseries",
        "path": str(path),
        "features": ["value"],
        "target_column": "value",
        "sequence_length": 16,
        "validation": {"path": str(tmp_path / "series.npz")},
    }
    model = {"type": "sequential", "input_shape": [16, 1], "layers": [{"Flatten": {}}, {"Dense": {"units": 1}}]}
    r = recipe(data, model, loss="mse")
    r["compile"]["metrics"] = ["mae"]
    run = ek.train(r, out=tmp_path / "run")
    assert len(run.data.validation) == 120 - 16 and "val_loss" in run.history


# --- pipeline options ----------------------------------------------------------------------


def test_cache_to_files_and_prefetch_off(images, tmp_path):
    cache = tmp_path / "cache"
    bundle = load(
        {"source": "image_dir", "path": str(images), "image_size": [16, 16], "cache": str(cache), "prefetch": False}
    )
    first = np.concatenate([x for x, _ in bundle.tf_dataset(bundle.test).as_numpy_iterator()])
    files = sorted(p.name for p in cache.iterdir())
    assert files and all(name.startswith(f"test-{bundle.fingerprint}") for name in files)
    second = np.concatenate([x for x, _ in bundle.tf_dataset(bundle.test).as_numpy_iterator()])
    np.testing.assert_array_equal(first, second)
    assert type(bundle.tf_dataset(bundle.test)).__name__ != "PrefetchDataset"


# --- bad input -----------------------------------------------------------------------------


def _bad_cases(tmp_path, images):
    csv_path = write_csv(tmp_path / "t.csv")
    one_class = tmp_path / "one"
    write_texts(one_class, per_class=3, classes=("pos",))
    series = write_series(tmp_path / "s.csv", steps=40)
    return {
        "missing path": ({"source": "image_dir", "path": str(tmp_path / "nope")}, r"'data\.path'.*does not exist"),
        "missing csv column": (
            {"source": "csv", "path": str(csv_path), "features": ["age", "height", "colour"], "label": "species"},
            r"column named 'colour' \(data\.features\[2\]\).*Did you mean 'color'\?",
        ),
        "image_size not a pair": (
            {"source": "image_dir", "path": str(images), "image_size": [16]},
            r"'data\.image_size' to be a pair \[height, width\]",
        ),
        "unknown augment layer": (
            {
                "source": "image_dir",
                "path": str(images),
                "image_size": [16, 16],
                "augment": [{"RandomFlp": {"mode": "horizontal"}}],
            },
            r"'RandomFlp' at 'data\.augment\[0\]'.*Did you mean 'RandomFlip'\?",
        ),
        "one class folder": (
            {"source": "text_dir", "path": str(one_class), "sequence_length": 8},
            r"at least two class sub-folders.*\(data\.path\)",
        ),
        "series too short": (
            {"source": "timeseries", "path": str(series), "target_column": "value", "sequence_length": 50},
            r"'data\.sequence_length' \(50 steps.*a series of 40 steps",
        ),
        "validation without path": (
            {"source": "npz", "path": "x.npz", "validation": {"x": "a"}},
            r"'data\.validation\.path'",
        ),
        "bad cache": ({"source": "digits", "cache": 3}, r"'data\.cache'"),
    }


def test_bad_input_is_a_clear_input_error(tmp_path, images):
    for name, (data, pattern) in _bad_cases(tmp_path, images).items():
        with pytest.raises(InputError, match=pattern) as info:
            load(data)
        assert "Traceback" not in str(info.value), name
        assert str(info.value).startswith(("Expected", "Unknown", "Missing", "Could not")), (name, str(info.value))


def test_bad_data_leaves_no_run_folder_and_cli_exits_2(tmp_path, images):
    import yaml

    import edgekeras as ek

    data = {"source": "image_dir", "path": str(images), "image_size": [16, 16], "augment": [{"RandomFlp": {}}]}
    model = {"type": "sequential", "input_shape": [16, 16, 3], "layers": [{"Flatten": {}}, {"Dense": {"units": 3}}]}
    with pytest.raises(InputError, match="RandomFlip"):
        ek.train(recipe(data, model), out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe({**data, "augment": [], "image_size": 16}, model)))
    res = invoke("train", recipe_file, "--out", tmp_path / "cli-run")
    assert res.exit_code == 2 and "data.image_size" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "cli-run").exists()
