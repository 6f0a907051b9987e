"""Bad input on the command line: exit code 2, a message that names the culprit, no traceback,
and nothing left behind.

Most cases drive `edgekeras.cli.cli` in-process through click's `CliRunner` (TensorFlow is
imported once); a few run the installed `edgekeras` console script in a subprocess, so the
real process boundary (stderr, exit status, C++ log noise) is covered too. Nothing is mocked:
the models, artifacts and runtimes are real.

Every test works in its own folder (the current directory during the call), snapshots every
file under it (path and content hash) before the command, and checks the snapshot is identical
afterwards: no partial artifact, manifest, run folder or hidden temporary file may appear,
and no existing file may change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_bad_input, assert_unchanged, invoke, run_script, snapshot

MODEL_NAME = "tiny"
INPUT_SHAPE = (8, 8, 1)

# A recipe that would train (briefly) if nothing were wrong with it; each recipe test breaks
# exactly one thing in it.
GOOD_RECIPE = f"""\
name: {MODEL_NAME}
seed: 0
data: {{source: digits, validation_split: 0.1, test_split: 0.2, batch_size: 32}}
model:
  type: sequential
  input_shape: [8, 8, 1]
  layers:
    - Conv2D: {{filters: 4, kernel_size: 3, padding: same, activation: relu}}
    - Flatten: {{}}
    - Dense: {{units: 10, activation: softmax}}
compile:
  optimizer: {{Adam: {{learning_rate: 0.001}}}}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
fit: {{epochs: 1}}
export: {{formats: [tflite], precisions: [fp32], validate: false}}
"""


# --------------------------------------------------------------------------- helpers
# invoke / run_script / assert_bad_input / snapshot / assert_unchanged and the `ws` fixture
# (an empty workspace that is the current directory) are shared, in conftest.py.


def random_bytes(n=4096, seed=0):
    return np.random.default_rng(seed).bytes(n)


def write_recipe(folder, text, name="recipe.yaml"):
    path = Path(folder) / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny compiled Keras classifier saved as .keras, built once for the module."""
    from edgekeras.quiet import quiet_tensorflow

    quiet_tensorflow()
    import keras

    model = keras.Sequential(
        [keras.Input(INPUT_SHAPE, name="input"), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")],
        name=MODEL_NAME,
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    path = tmp_path_factory.mktemp("model") / f"{MODEL_NAME}.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def artifact_dir(model_path, tmp_path_factory):
    """fp32 TFLite and ONNX artifacts (with manifests) of `model_path`, converted once."""
    from edgekeras.conversion import convert

    out = tmp_path_factory.mktemp("artifacts")
    convert(model_path, formats=["tflite", "onnx"], precisions=["fp32"], out=out, validate=False)
    return out


@pytest.fixture
def local_model(ws, model_path):
    """The tiny model copied into the workspace, so the snapshot covers it too."""
    return Path(shutil.copy(model_path, ws / model_path.name))


def copy_artifact(artifact_dir, ws, fmt):
    """Copies the `fmt` artifact and its manifest into `ws`; returns the artifact path."""
    src = artifact_dir / f"{MODEL_NAME}-{fmt}-fp32.{fmt}"
    shutil.copy(src.with_suffix(".json"), ws / src.with_suffix(".json").name)
    return Path(shutil.copy(src, ws / src.name))


# --------------------------------------------------------------------------- 1. convert: bad model files


def test_convert_missing_model_file(ws):
    missing = ws / "no-such-model.keras"
    before = snapshot(ws)
    outcome = run_script("convert", missing, cwd=ws)  # real process: exit status and stderr
    assert_bad_input(outcome, missing, "does not exist")
    assert_unchanged(before, ws)


def assert_not_called_missing(outcome):
    """The file exists: the message must say it is not a Keras archive, not that it is missing."""
    assert "not found" not in outcome.stderr.lower(), (
        f"the message calls an existing (but invalid) file missing:\n{outcome.describe()}"
    )


def test_convert_corrupt_keras_file(ws):
    bad = ws / "corrupt.keras"
    bad.write_bytes(random_bytes())
    before = snapshot(ws)
    outcome = run_script("convert", bad, "--no-validate", cwd=ws)  # real process, real TF import
    assert_bad_input(outcome, bad)
    assert_not_called_missing(outcome)
    assert_unchanged(before, ws)


def test_convert_corrupt_h5_file(ws):
    bad = ws / "corrupt.h5"
    bad.write_bytes(random_bytes(seed=1))
    before = snapshot(ws)
    outcome = invoke("convert", bad, "--no-validate")
    assert_bad_input(outcome, bad)
    assert_unchanged(before, ws)


def test_convert_text_file_renamed_keras(ws):
    bad = ws / "notes.keras"
    bad.write_text("These are my notes, not a model.\n" * 20)
    before = snapshot(ws)
    outcome = invoke("convert", bad, "--no-validate")
    assert_bad_input(outcome, bad)
    assert_not_called_missing(outcome)
    assert_unchanged(before, ws)


# --------------------------------------------------------------------------- 2. validate / bench: bad artifacts


def _bad_artifact(ws, kind):
    if kind == "missing-tflite":
        return ws / "missing.tflite"
    suffix = {"corrupt-tflite": ".tflite", "corrupt-onnx": ".onnx"}[kind]
    path = ws / f"corrupt{suffix}"
    path.write_bytes(random_bytes(seed=2))
    return path


@pytest.mark.parametrize("kind", ["missing-tflite", "corrupt-tflite", "corrupt-onnx"])
def test_validate_bad_artifact(ws, local_model, kind):
    artifact = _bad_artifact(ws, kind)
    before = snapshot(ws)
    outcome = invoke("validate", artifact, "--reference", local_model)
    assert_bad_input(outcome, artifact)
    assert_unchanged(before, ws)


@pytest.mark.parametrize("kind", ["missing-tflite", "corrupt-tflite", "corrupt-onnx"])
def test_bench_bad_artifact(ws, kind):
    artifact = _bad_artifact(ws, kind)
    before = snapshot(ws)
    outcome = invoke("bench", artifact, "--runs", 2, "--warmup", 0)
    assert_bad_input(outcome, artifact)
    assert_unchanged(before, ws)


def test_bench_corrupt_tflite_subprocess(ws):
    """The same through the console script: LiteRT's C++ complaints must not reach the user
    as a traceback, and the exit status must be 2."""
    artifact = _bad_artifact(ws, "corrupt-tflite")
    before = snapshot(ws)
    outcome = run_script("bench", artifact, "--runs", 2, "--warmup", 0, cwd=ws)
    assert_bad_input(outcome, artifact)
    assert_unchanged(before, ws)


# --------------------------------------------------------------------------- 3. train: bad recipes


def test_train_recipe_unknown_top_level_key_epoch(ws):
    """`epoch:` at the top instead of under `fit:`: named, and pointed at fit.epochs."""
    recipe = write_recipe(ws, GOOD_RECIPE.replace("fit: {epochs: 1}", "epoch: 3"))
    before = snapshot(ws)
    outcome = invoke("train", recipe)
    assert_bad_input(outcome, recipe, "'epoch'")
    assert "Did you mean" in outcome.stderr, f"expected a suggestion:\n{outcome.describe()}"
    assert "epochs" in outcome.stderr.split("Did you mean", 1)[-1], (
        f"expected the suggestion to point at fit.epochs:\n{outcome.describe()}"
    )
    assert_unchanged(before, ws)


# (what the recipe gets wrong: replace, with), what the error must name (RECIPE: the file), the suggestion.
RECIPE = object()
RECIPE_MISTAKES = {
    "misspelt top-level key": (("compile:", "complie:"), [RECIPE, "'complie'"], "compile"),
    "unknown key in a section": (("fit: {epochs: 1}", "fit: {epoch: 3}"), [RECIPE, "fit.epoch"], "epochs"),
    "misspelt optimizer": (("{Adam: {learning_rate: 0.001}}", "{Adma: {}}"), ["'Adma'", "compile.optimizer"], "Adam"),
    "misspelt layer": (("- Conv2D:", "- Conv2d:"), ["'Conv2d'", "model.layers[0]"], "Conv2D"),
    "layer config key not taken": (("Dense: {units: 10,", "Dense: {unit: 10,"), ["model.layers[2]", "unit"], "units"),
}


@pytest.mark.parametrize("mistake", RECIPE_MISTAKES)
def test_train_recipe_mistake_is_named_with_a_suggestion(ws, mistake):
    (old, new), names, suggestion = RECIPE_MISTAKES[mistake]
    recipe = write_recipe(ws, GOOD_RECIPE.replace(old, new))
    before = snapshot(ws)
    outcome = invoke("train", recipe)
    assert_bad_input(outcome, *[recipe if n is RECIPE else n for n in names], suggestion=suggestion)
    assert_unchanged(before, ws)  # no run folder for a recipe that never trained


def test_train_recipe_invalid_yaml(ws):
    recipe = write_recipe(ws, GOOD_RECIPE.replace("fit: {epochs: 1}", "fit: {epochs: 1"))
    before = snapshot(ws)
    outcome = run_script("train", recipe, cwd=ws)  # real process
    assert_bad_input(outcome, recipe, "YAML")
    assert_unchanged(before, ws)


def test_train_missing_recipe_file(ws):
    missing = ws / "no-such-recipe.yaml"
    before = snapshot(ws)
    outcome = invoke("train", missing)
    assert_bad_input(outcome, missing, "does not exist")
    assert_unchanged(before, ws)


def test_train_misspelt_shipped_recipe_name(ws):
    """A near miss of a shipped recipe name is answered with that name."""
    before = snapshot(ws)
    outcome = invoke("train", "digits-cnm")
    assert_bad_input(outcome, "digits-cnm", suggestion="digits-cnn")
    assert_unchanged(before, ws)


# --------------------------------------------------------------------------- 4. convert: bad option values


def test_convert_unknown_precision(ws, local_model):
    before = snapshot(ws)
    outcome = invoke("convert", local_model, "--precision", "int9", "--no-validate")
    assert_bad_input(outcome, "--precision", "'int9'", "'fp32'", "'int8'", suggestion="int8")
    assert_unchanged(before, ws)


def test_convert_unknown_format(ws, local_model):
    before = snapshot(ws)
    outcome = invoke("convert", local_model, "--format", "tflight", "--no-validate")
    assert_bad_input(outcome, "--format", "'tflight'", "'onnx'", "'tflite'", suggestion="tflite")
    assert_unchanged(before, ws)


# --------------------------------------------------------------------------- 5. calibration data


def _calibration(ws, array, name="calib.npz"):
    path = ws / name
    np.savez(path, x=array)
    return path


def test_convert_calibration_wrong_shape(ws, local_model):
    calib = _calibration(ws, np.random.default_rng(0).random((50, 4, 4), dtype=np.float32))
    before = snapshot(ws)
    outcome = invoke(
        "convert", local_model, "--format", "tflite", "--precision", "int8", "--calibration", calib, "--no-validate"
    )
    # the offending shape, the expected one, and which file/option it came from
    assert_bad_input(outcome, "(50, 4, 4)", "8, 8, 1")
    assert calib.name in outcome.stderr or "calibration" in outcome.stderr.lower(), (
        f"expected the message to say the calibration data is at fault:\n{outcome.describe()}"
    )
    assert_unchanged(before, ws)


def test_convert_calibration_with_nans(ws, local_model):
    x = np.random.default_rng(0).random((50, *INPUT_SHAPE), dtype=np.float32)
    x[3, 0, 0, 0] = np.nan
    x[7, 1, 2, 0] = np.nan
    calib = _calibration(ws, x)
    before = snapshot(ws)
    outcome = invoke(
        "convert", local_model, "--format", "tflite", "--precision", "int8", "--calibration", calib, "--no-validate"
    )
    assert_bad_input(outcome, "NaN", "2 ")
    assert calib.name in outcome.stderr or "calibration" in outcome.stderr.lower(), (
        f"expected the message to say the calibration data is at fault:\n{outcome.describe()}"
    )
    assert_unchanged(before, ws)


def test_convert_calibration_too_few_samples(ws, local_model):
    calib = _calibration(ws, np.random.default_rng(0).random((5, *INPUT_SHAPE), dtype=np.float32))
    before = snapshot(ws)
    outcome = invoke(
        "convert", local_model, "--format", "tflite", "--precision", "int8", "--calibration", calib, "--no-validate"
    )
    assert_bad_input(outcome, "calibration samples", "Received: 5", "at least 10")
    assert_unchanged(before, ws)


# --------------------------------------------------------------------------- 6. existing outputs


def test_convert_refuses_existing_artifact(ws, local_model):
    """One of the two requested artifacts exists: nothing is written, that file is untouched."""
    out = ws / "out"
    out.mkdir()
    existing = out / f"{MODEL_NAME}-onnx-fp32.onnx"
    existing.write_bytes(b"precious bytes that must survive")
    before = snapshot(ws)
    outcome = invoke("convert", local_model, "--format", "tflite", "--format", "onnx", "--out", out, "--no-validate")
    assert_bad_input(outcome, existing, "--force")
    assert existing.read_bytes() == b"precious bytes that must survive"
    assert_unchanged(before, ws)  # in particular no tiny-tflite-fp32.tflite and no manifest


def test_train_refuses_existing_finished_run(ws):
    recipe = write_recipe(ws, GOOD_RECIPE)
    run = ws / "run"
    run.mkdir()
    (run / "run.json").write_text('{"status": "done", "name": "tiny"}\n')
    (run / "model.keras").write_bytes(b"a finished run's model")
    (run / "recipe.yaml").write_text(GOOD_RECIPE)
    before = snapshot(ws)
    outcome = invoke("train", recipe, "--out", run)
    assert_bad_input(outcome, run, "--force")
    assert_unchanged(before, ws)


# --------------------------------------------------------------------------- 7. bench: runtime options


def test_bench_unknown_runtime(ws, artifact_dir):
    artifact = copy_artifact(artifact_dir, ws, "tflite")
    before = snapshot(ws)
    outcome = invoke("bench", artifact, "--runtime", "nonexistent", "--runs", 2, "--warmup", 0)
    assert_bad_input(outcome, "--runtime", "'nonexistent'", "'litert'", "'onnxruntime'")
    assert_unchanged(before, ws)  # the manifest gets no benchmark entry


def test_bench_unknown_onnx_provider(ws, artifact_dir):
    artifact = copy_artifact(artifact_dir, ws, "onnx")
    before = snapshot(ws)
    outcome = invoke("bench", artifact, "--threads", 1, "--provider", "NoSuchProvider", "--runs", 2, "--warmup", 0)
    assert_bad_input(outcome, "'NoSuchProvider'", "CPUExecutionProvider")
    assert_unchanged(before, ws)
