"""Recurrent models at TFLite int8: a free sequence length fixed from the calibration data (or
`input_lengths` / `--input-length`), the growth of the unrolled artifact said in a notice and
the manifest, and `inspect --layers` comparing the unrolled recurrent layer tensor by tensor.
Real TensorFlow, TFLite converter, LiteRT; an Embedding+LSTM model with `(None, None)` int32
token inputs, trained for a few epochs on generated sequences of length 20."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import invoke

import edgekeras as ek

LENGTH = 20


def _stderr_of(call):
    """(result of `call()`, the messages it logged): notices are `logging` records of edgekeras."""
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("edgekeras")
    handler, level = Keep(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        result = call()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return result, "\n".join(records)


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    """(model, its .keras path, tokens, labels): tokens of free length in the model."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 50, (240, LENGTH)).astype("int32")
    y = (x[:, :10].mean(axis=1) > 25).astype("int32")
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8, name="embedding")(tokens)
    h = keras.layers.LSTM(16, name="lstm")(h)
    model = keras.Model(tokens, keras.layers.Dense(2, name="logits")(h), name="tagger")
    model.compile(
        optimizer=keras.optimizers.Adam(0.02), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("tagger") / "tagger.keras"
    model.save(path)
    return model, path, x, y


@pytest.fixture(scope="module")
def converted(tagger, tmp_path_factory):
    """{precision: Artifact} of TFLite fp32 then int8 (calibration of length 20), and the notices."""
    model, _, x, y = tagger
    out = tmp_path_factory.mktemp("converted")
    arts, notices = _stderr_of(
        lambda: ek.convert(
            model,
            formats=["tflite"],
            precisions=["fp32", "int8"],
            calibration=x[:100],
            data={"tokens": x[100:164], "y": y[100:164]},
            out=out,
        )
    )
    return {a.precision: a for a in arts}, notices


def test_free_length_is_fixed_from_the_calibration_data(converted):
    arts, notices = converted
    int8, fp32 = arts["int8"], arts["fp32"]
    assert int8.manifest["sequence_lengths"] == {"tokens": {"length": LENGTH, "source": "calibration"}}
    assert "sequence_lengths" not in fp32.manifest  # the loop keeps the free length
    assert f"input 'tokens' has a free sequence length; fixed to {LENGTH}" in notices
    [tokens] = ek.inspect(int8.path).inputs
    assert (tokens.name, tokens.shape, tokens.dtype) == ("tokens", (1, LENGTH), "int32")
    assert ek.inspect(fp32.path).inputs[0].shape == (1, None)
    assert int8.manifest["validation"]["passed"] and int8.manifest["validation"]["outputs"][0]["cosine"] > 0.99


def test_the_lstm_converts_with_a_fixed_batch_and_unrolled_for_int8(converted):
    """What every recurrent TFLite conversion does (test_precisions.py's recurrent families):
    batch 1, the loop kept at fp32 with parity, unrolled at int8."""
    arts, _ = converted
    fp32, int8 = arts["fp32"], arts["int8"]
    assert fp32.manifest["fixed_batch"] == 1 and int8.manifest["fixed_batch"] == 1
    assert fp32.manifest["route"] == "fixed batch"
    assert int8.manifest["route"] == "fixed batch, unrolled recurrent layers"
    assert int8.manifest["recurrent_layers"] == ["lstm"]
    assert fp32.manifest["validation"]["max_abs_error"] < 1e-4


def test_unrolled_growth_is_said_and_recorded(converted):
    arts, notices = converted
    int8, fp32 = arts["int8"], arts["fp32"]
    grown = int8.manifest["unrolled"]
    info = ek.inspect(int8.path)
    assert grown["steps"] == {"lstm": LENGTH}
    assert grown["ops"] == sum(info.ops.values()) and "WHILE" not in info.ops and "WHILE" in ek.inspect(fp32.path).ops
    assert grown["size_bytes"] == int8.path.stat().st_size
    assert grown["fp32_size_bytes"] == fp32.path.stat().st_size
    assert grown["fp32_size_source"] == "the fp32 TFLite artifact of this conversion"
    assert grown["growth"] == pytest.approx(grown["size_bytes"] / grown["fp32_size_bytes"], abs=1e-3)
    assert grown["growth"] > 1 and "unrolled" in grown["reason"]
    assert f"lstm ({LENGTH} steps) were unrolled" in notices and f"{grown['growth']:.1f}x the fp32 size" in notices
    assert " KB" not in notices and "KiB" in notices  # sizes in the one unit rule (edgekeras.units)
    assert "unrolled" not in fp32.manifest
    res = invoke("inspect", int8.path)
    assert res.exit_code == 0 and f"recurrent    lstm over {LENGTH} steps unrolled: {grown['ops']} ops" in res.output


def test_input_length_option(tagger, tmp_path):
    _, path, x, y = tagger
    np.savez(tmp_path / "calibration.npz", tokens=x[:60])
    np.savez(tmp_path / "data.npz", tokens=x[100:132], y=y[100:132])
    base = ["convert", str(path), "--format", "tflite", "--precision", "int8", "--out", str(tmp_path / "out")]
    base += ["--calibration", str(tmp_path / "calibration.npz"), "--data", str(tmp_path / "data.npz")]
    res = invoke(*base, "--input-length", f"tokens={LENGTH}", "--json")
    assert res.exit_code == 0, res.describe()
    [art] = res.json()["artifacts"]
    assert art["sequence_lengths"] == {"tokens": {"length": LENGTH, "source": "input_lengths"}}
    assert art["validation"]["passed"]

    for option, expect in (
        ("tokens", "Expected --input-length NAME=LEN"),
        ("tokens=abc", "Received: 'tokens=abc'"),
        ("words=20", "Received: 'words'"),
        ("tokens=0", "positive integer length for input 'tokens'"),
        (f"tokens={LENGTH + 5}", f"calibration data of sequence length {LENGTH + 5}"),
    ):
        res = invoke(*base, "--input-length", option, "--force")
        assert res.exit_code == 2, res.describe()
        assert expect in res.output and "Traceback" not in res.output
        if option == "words=20":
            assert "tokens: (None, None) int32" in res.output  # the model's inputs are listed
    import keras

    inp = keras.Input((LENGTH, 3), name="steps")
    fixed = keras.Model(inp, keras.layers.Dense(1)(inp))
    with pytest.raises(ek.InputError, match="the model fixes the sequence length of input 'steps'"):
        ek.convert(fixed, formats=["tflite"], input_lengths={"steps": 7}, out=tmp_path / "fixed")
    assert not (tmp_path / "fixed").exists() or not any((tmp_path / "fixed").iterdir())


# --------------------------------------------------------------------------- inspect --layers


def test_layers_pair_the_unrolled_lstm(converted, tagger, tmp_path):
    """The float baseline is unrolled like the artifact, so every step of the LSTM is compared,
    its output included, and the table fits the terminal."""
    arts, _ = converted
    _, path, x, _ = tagger
    report = ek.inspect(arts["int8"].path, reference=path, data={"tokens": x[164:196]}).layers
    assert report.keras_layers_matched == ["embedding", "lstm", "logits"] and report.keras_layers_unmatched == []
    assert report.unmatched_artifact == [] and report.unmatched_reference == []
    lstm = [r for r in report.activations if r.layer == "lstm"]
    assert len(lstm) > 10 * LENGTH  # every step's gates, states and outputs
    assert all(r.cosine > 0.95 for r in report.activations)

    np.savez(tmp_path / "data.npz", tokens=x[164:180])
    for width in (80, 132):
        res = invoke(
            "inspect",
            arts["int8"].path,
            "--layers",
            "--reference",
            path,
            "--data",
            tmp_path / "data.npz",
            env={"COLUMNS": str(width)},
        )
        assert res.exit_code == 0, res.describe()
        table = res.stdout[res.stdout.index("Per-tensor error") :].splitlines()
        assert max(len(line) for line in table) <= width
        assert "lstm_cell" in res.output and "Keras layers: 3 compared, 0 fused into a compared tensor" in res.output
    doc = invoke("inspect", arts["int8"].path, "--layers", "--reference", path, "--top", "2", "--json")
    longest = max(len(r["tensor"]) for r in doc.json()["layers"]["activations"])
    assert doc.exit_code == 0 and longest > 20  # full names in --json


def test_layers_on_a_rolled_loop_say_what_is_not_compared(converted, tagger):
    """fp32 keeps the WHILE loop: the LSTM's output is compared and a note says its steps are not."""
    arts, _ = converted
    _, path, x, _ = tagger
    report = ek.inspect(arts["fp32"].path, reference=path, data={"tokens": x[164:180]}).layers
    assert "lstm" in report.keras_layers_matched
    assert "loop body" in report.keras_layer_notes["lstm"] and "per-step" in report.keras_layer_notes["lstm"]
    assert max(r.max_abs_error for r in report.activations) < 1e-4


def test_unmatched_layers_are_counted_when_nothing_pairs(converted, tagger, tmp_path):
    """An artifact whose tensor names carry no Keras scope: nothing but the named output pairs,
    and the report says so instead of 0 unmatched."""
    arts, _ = converted
    _, path, x, _ = tagger
    buf = arts["int8"].path.read_bytes()
    for layer in ("embedding", "lstm", "logits"):
        buf = buf.replace(f"/{layer}_1/".encode(), b"/" + b"z" * len(layer) + b"_1/")
    renamed = tmp_path / "renamed.tflite"
    renamed.write_bytes(buf)
    report = ek.inspect(renamed, reference=path, data={"tokens": x[164:180]}).layers
    assert {"embedding", "lstm"} <= set(report.keras_layers_unmatched)
    assert len(report.unmatched_artifact) > 100 and report.unmatched_reference
    compared = {r.layer for r in report.activations}
    assert set(report.keras_layers_matched) <= compared
    assert all(report.keras_layer_notes[x] for x in report.keras_layers_unmatched)
