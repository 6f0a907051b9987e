"""The run folder as the unit of work: one type reloads it, the API and the CLI use it alike."""

import json

import numpy as np
import pytest
from conftest import invoke

import edgekeras as ek
from edgekeras.errors import InputError
from edgekeras.run_folder import RunFolder

# The CLI runs in-process (`invoke`): the console script's own process boundary is tested in
# tests/cli (test_cli.py, test_cli_errors.py); a subprocess here only re-imports TensorFlow.


def test_run_folder_reloads_recipe_data_and_model(digits_run):
    run = RunFolder.open(digits_run.path)
    assert run.name == digits_run.recipe.name and run.load_recipe().name == digits_run.recipe.name
    data = run.load_data()
    np.testing.assert_array_equal(data.test.x, digits_run.data.test.x)  # same split, same encoding
    np.testing.assert_array_equal(data.test.y, digits_run.data.test.y)
    assert run.load_model().model.count_params() == digits_run.model.count_params()
    assert sorted(p.name for p in run.find_artifacts()) == sorted(a.path.name for a in digits_run.artifacts)


def test_open_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(InputError, match="Expected a run folder"):
        RunFolder.open(tmp_path)


def test_api_converts_a_run_folder_to_int8_like_the_cli(digits_run, tmp_path):
    api = ek.convert(digits_run.path, formats=["tflite"], precisions=["int8"], out=tmp_path / "api")
    r = invoke("convert", digits_run.path, "--format", "tflite", "--precision", "int8", "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.describe()
    cli = json.loads(next((tmp_path / "cli").glob("*.json")).read_text())
    for manifest in (api[0].manifest, cli):
        v = manifest["validation"]
        assert v["passed"] and v["samples"] == len(digits_run.data.test) and v["data"] == "labelled data"
        assert manifest["calibration_samples"] >= 10
    assert api[0].path.name == next((tmp_path / "cli").glob("*.tflite")).name == "digits-cnn-tflite-int8.tflite"


def test_data_command_writes_the_split_validate_reads(digits_run, tmp_path):
    out = tmp_path / "test.npz"
    r = invoke("data", digits_run.path, "--split", "test", "--out", out)
    assert r.exit_code == 0, r.describe()
    with np.load(out, allow_pickle=False) as f:
        assert sorted(f.files) == ["input", "y"]
        np.testing.assert_array_equal(f["y"], digits_run.data.test.y)
    artifact = next(a for a in digits_run.artifacts if a.format == "onnx" and a.precision == "fp32")
    r = invoke("validate", artifact.path, "--reference", digits_run.path, "--data", out, "--json")
    assert r.exit_code == 0, r.describe()
    assert r.json()["samples"] == len(digits_run.data.test)
    again = invoke("data", digits_run.path, "--out", out)
    assert again.exit_code == 2 and "--force" in again.stderr


def test_bad_data_is_refused_before_any_conversion_and_leaves_no_folder(digits_run, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, input=np.zeros((5, 3), np.float32))
    out = tmp_path / "never"
    r = invoke("convert", digits_run.path, "--data", bad, "--out", out)
    assert r.exit_code == 2 and "validation data" in r.stderr
    assert not out.exists()


def test_without_labels_a_held_out_part_of_the_calibration_validates(digits_run, tmp_path):
    x = digits_run.data.train.x[:100]
    arts = ek.convert(digits_run.model, formats=["onnx"], precisions=["int8"], calibration=x, out=tmp_path)
    v = arts[0].manifest["validation"]
    assert v["samples"] == 20 and v["passed"]  # 20 % held out; the other 80 calibrated
    assert arts[0].manifest["calibration_samples"] == 80
