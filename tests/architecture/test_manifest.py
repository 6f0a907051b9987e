"""The manifest type: the one writer of NAME.json, its sections and its shipped schema."""

import json

import pytest

from edgekeras.errors import InputError
from edgekeras.manifest import SCHEMA_PATH, SCHEMA_VERSION, Manifest, check, schema

SHA = "0" * 64


def _fields(**extra):
    return {
        "format": "tflite",
        "precision": "fp32",
        "artifact_sha256": SHA,
        "size_bytes": 10,
        "source_sha256": SHA,
        "inputs": [{"name": "input", "shape": [None, 8], "dtype": "float32"}],
        "outputs": [{"name": "out", "shape": [None, 2], "dtype": "float32"}],
        "runtime": "litert",
        "tool_versions": {"keras": "3.15.1"},
        "warnings": [],
        **extra,
    }


@pytest.fixture
def manifest(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"x")
    return Manifest.create(tmp_path / "m.tflite", _fields())


def test_create_writes_a_versioned_manifest_that_follows_the_schema(manifest):
    data = json.loads(manifest.path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION and manifest["format"] == "tflite"
    check(data)
    assert SCHEMA_PATH.parent.name == "schemas" and schema()["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_it_reads_like_a_mapping_and_cannot_be_assigned(manifest):
    assert dict(manifest)["precision"] == "fp32" and "runtime" in manifest and len(manifest) > 5
    with pytest.raises(TypeError):
        manifest["precision"] = "int8"


def test_record_benchmark_replaces_the_same_setting_only(manifest):
    one = {"runtime": "litert", "threads": 2, "latency_ms": {"p50": 1.0}}
    manifest.record_benchmark(one)
    manifest.record_benchmark({**one, "latency_ms": {"p50": 0.5}})
    manifest.record_benchmark({**one, "threads": 1})
    saved = Manifest.read(manifest.path.with_suffix(".tflite"))
    assert [(b["threads"], b["latency_ms"]["p50"]) for b in saved["benchmarks"]] == [(2, 0.5), (1, 1.0)]


def test_record_constraints_merges_per_target(manifest):
    manifest.record_constraints("a", [{"name": "max_size_kb", "value": 1, "limit": 2, "passed": True}])
    manifest.record_constraints("a", [{"name": "max_p50_ms", "value": 3, "limit": 2, "passed": False}])
    assert [c["name"] for c in manifest["constraints"]] == ["max_size_kb", "max_p50_ms"]
    manifest.record_constraints("b", [{"name": "int8_only", "value": False, "limit": True, "passed": False}])
    assert manifest["target"] == "b" and [c["name"] for c in manifest["constraints"]] == ["int8_only"]


def test_validation_sections_and_forget(manifest):
    manifest.record_validation_skipped("needs select ops")
    assert manifest["validation"] == {"status": "skipped", "reason": "needs select ops", "passed": None}
    manifest.forget("validation")
    assert "validation" not in Manifest.read(manifest.path.with_suffix(".tflite"))
    with pytest.raises(InputError, match="Expected sections"):
        manifest.forget("format")


def test_the_schema_refuses_unknown_keys_and_wrong_types():
    with pytest.raises(ValueError, match="surprise"):
        check({"schema_version": SCHEMA_VERSION, **_fields(), "surprise": 1})
    with pytest.raises(ValueError, match="size_bytes"):
        check({"schema_version": SCHEMA_VERSION, **_fields(size_bytes="big")})


def test_a_corrupt_manifest_is_bad_input(tmp_path):
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(InputError, match="Expected the manifest"):
        Manifest.read(tmp_path / "m.tflite")


def test_a_users_file_without_manifest_gets_none_written(tmp_path):
    m = Manifest.read(tmp_path / "theirs.tflite")
    m.record_validation({"passed": True})
    assert not m.exists and m["validation"]["passed"] is True


def test_every_manifest_of_a_trained_run_follows_the_schema(digits_run):
    paths = sorted((digits_run.path / "artifacts").glob("*.json"))
    assert paths
    for path in paths:
        check(json.loads(path.read_text()), str(path))
