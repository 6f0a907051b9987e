"""One family's cells: build its model, convert it with `edgekeras.conversion.convert`, and
classify every (format, precision) artifact as pass, fail, unsupported or error.

The pairs of one format go through one `convert` call, so the SavedModel (TFLite) or the
fp32 graph (ONNX) is built once and shared; when that call raises, its pairs are converted
one at a time, so one refused pair cannot hide the others' results. A converted artifact
counts as "pass" only when its manifest holds a passed validation; an artifact that converted
and then failed parity is "fail", never "pass".

`python -m edgekeras.coverage.cell JOB_DIR` runs one family in a child process (what
`matrix.py` does), so a converter that kills its process takes down one cell, not the table.
The child reads JOB_DIR/job.json and appends one JSON line per event to JOB_DIR/events.jsonl.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekeras import quiet
from edgekeras.conversion import ValidationFailed, convert
from edgekeras.coverage.families import get_family, make_model
from edgekeras.errors import ConversionError, InputError
from edgekeras.model_io import input_specs, outputs_by_name
from edgekeras.validation import compare, relative_error

CALIBRATION_SAMPLES = 100
VALIDATION_SAMPLES = 256  # top-1 agreement moves in steps of 1/256, not 1/64
MIN_OUTPUT_STD = 1e-2  # below this the reference output is degenerate: parity would mean little
STATUSES = ("pass", "fail", "unsupported", "error", "memory")  # memory: stopped above the runner's limit
FLOOR_FACTOR = 3  # an fp32 artifact within this many times the reference's own float32 noise floor passes
FLOOR_METRICS = ("max_abs_error", "relative_error", "cosine")  # what that floor can excuse; never top-1
FAILURE = re.compile(r"output '(.*)': (\w+) = (\S+), expected (<=|>=) (\S+)$")  # errors.OutputMismatch


def pair_key(format, precision):
    """The column key of a (format, precision) pair, e.g. 'tflite int8'."""
    return f"{format} {precision}"


def one_line(text, limit=600):
    """`text` on one line, at most `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def family_data(family):
    """(model, calibration feeds, validation feeds) for `family`, all from its fixed seed."""
    model = make_model(family)
    rng = np.random.default_rng(family.seed + 1)
    calibration = family.inputs(rng, CALIBRATION_SAMPLES)
    validation = family.inputs(rng, VALIDATION_SAMPLES)
    if family.prepare is not None:
        family.prepare(model, calibration)
    return model, calibration, validation


def output_spread(model, feeds):
    """{output name: standard deviation of the Keras model's output on `feeds`} (positional
    names for a subclassed model, which has no output names of its own)."""
    x = feeds if len(feeds) > 1 else next(iter(feeds.values()))
    outputs = model.predict(x, batch_size=256, verbose=0)
    if not isinstance(outputs, dict):
        try:
            outputs = outputs_by_name(model, outputs)
        except (AttributeError, ValueError):
            flat = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            outputs = {f"output_{i}": v for i, v in enumerate(flat)}
    return {name: float(np.std(np.asarray(value))) for name, value in outputs.items()}


class DegenerateOutput(Exception):
    """The family's random-weight model gives (near-)constant outputs: a bug in its builder."""


def _entry(format, precision, status, **fields):
    entry = {
        "format": format,
        "precision": precision,
        "status": status,
        "max_abs_error": None,
        "cosine": None,
        "reason": None,
    }
    entry.update(fields)
    return entry


def classify_artifact(artifact):
    """The cell entry for one converted artifact, from the validation in its manifest."""
    manifest = artifact.manifest
    fmt, precision = manifest["format"], manifest["precision"]
    facts = {
        "quantized": manifest.get("quantized"),
        "runtime_options": manifest.get("runtime_options") or None,
        "fixed_batch": manifest.get("fixed_batch"),
        "warnings": list(manifest.get("warnings") or []),
        "size_bytes": manifest.get("size_bytes"),
    }
    validation = manifest.get("validation")
    if not validation:
        return _entry(fmt, precision, "error", reason="the artifact was not validated", **facts)
    if validation.get("status") == "skipped":
        return _entry(
            fmt, precision, "unsupported", reason=one_line(validation.get("reason", "cannot validate")), **facts
        )
    outputs = validation.get("outputs") or []
    if not outputs:
        return _entry(fmt, precision, "error", reason="validation compared no outputs", **facts)
    numbers = {"max_abs_error": max(o["max_abs_error"] for o in outputs), "cosine": min(o["cosine"] for o in outputs)}
    if validation.get("passed"):
        return _entry(fmt, precision, "pass", **numbers, **facts)
    failures = list(validation.get("failures") or [])
    return _entry(
        fmt,
        precision,
        "fail",
        **numbers,
        failed_checks=[_parse_failure(f) for f in failures],
        failures=failures,
        **facts,
    )


def _parse_failure(text):
    """{"output", "metric", "value", "limit", "comparison"} from an `OutputMismatch` string."""
    match = FAILURE.match(text)
    if not match:
        return {"output": None, "metric": "other", "value": None, "limit": None, "comparison": None}
    output, metric, value, comparison, limit = match.groups()
    return {"output": output, "metric": metric, "value": float(value), "limit": float(limit), "comparison": comparison}


def classify_exception(format, precision, exc):
    """The cell entry for a conversion that raised `exc`."""
    if isinstance(exc, (InputError, ConversionError)):  # edgekeras or the converter refused
        return _entry(format, precision, "unsupported", reason=one_line(exc))
    return _entry(format, precision, "error", reason=one_line(f"{type(exc).__name__}: {exc}"))


def _convert(model, pairs, calibration, validation, workdir):
    """Entries for `pairs` (all of one format) from one `convert` call; raises what it raises."""
    fmt = pairs[0][0]
    precisions = [p for _, p in pairs]
    with tempfile.TemporaryDirectory(prefix="cell-", dir=workdir) as out:
        try:
            artifacts = convert(
                model,
                formats=[fmt],
                precisions=precisions,
                calibration=calibration,
                data=validation,
                out=out,
                force=True,
                validate=True,
                name="model",
            )
        except ValidationFailed as e:
            artifacts = e.artifacts
        return [classify_artifact(a) for a in artifacts]


def run_family(family, pairs, emit, workdir, one_at_a_time=False):
    """Converts `family`'s model to every (format, precision) in `pairs`; calls `emit(event)`
    with {"event": "family"|"start"|"cell", ...} as it goes (a "start" before each `convert`
    call, naming its pairs, so a crash can be pinned on them)."""
    try:
        model, calibration, validation = family_data(family)
        spread = output_spread(model, validation)
        flat = {k: v for k, v in spread.items() if not v > MIN_OUTPUT_STD}
        if flat:
            raise DegenerateOutput(
                f"the reference model's outputs {sorted(flat)} are constant (std "
                f"{', '.join(f'{v:.2g}' for v in flat.values())}); parity would mean nothing"
            )
    except Exception as e:  # a family that cannot be built is an error in every cell, not a dead table
        emit({"event": "family", "output_std": None, "error": one_line(f"{type(e).__name__}: {e}")})
        for fmt, precision in pairs:
            emit(
                {
                    "event": "cell",
                    **_entry(
                        fmt, precision, "error", reason=one_line(f"building the model failed: {type(e).__name__}: {e}")
                    ),
                }
            )
        return
    emit(
        {
            "event": "family",
            "output_std": spread,
            "inputs": [s.to_dict() for s in input_specs(model)] if _has_inputs(model) else None,
            "params": int(model.count_params()),
        }
    )
    formats = list(dict.fromkeys(fmt for fmt, _ in pairs))
    groups = [[p] for p in pairs] if one_at_a_time else [[p for p in pairs if p[0] == f] for f in formats]
    for group in groups:
        emit({"event": "start", "pairs": group})
        t0 = time.perf_counter()
        try:
            entries = _convert(model, group, calibration, validation, workdir)
        except Exception as e:
            if len(group) > 1:  # find out which pair it was: one call per pair
                for pair in group:
                    emit({"event": "start", "pairs": [pair]})
                    t1 = time.perf_counter()
                    try:
                        entries = _convert(model, [pair], calibration, validation, workdir)
                    except Exception as e1:
                        entries = [classify_exception(*pair, e1)]
                    judge_by_floor(entries, lambda: float_noise_floor(model, validation))
                    _emit_cells(emit, entries, time.perf_counter() - t1)
                continue
            entries = [classify_exception(*group[0], e)]
        judge_by_floor(entries, lambda: float_noise_floor(model, validation))
        _emit_cells(emit, entries, time.perf_counter() - t0)


def float_noise_floor(model, feeds):
    """{metric: value} the Keras model shows against itself in float32: its outputs on `feeds`
    computed eagerly and compiled by XLA (another fusion and summation order, both correct),
    compared as validation compares an artifact (max abs error, relative error; worst output).

    Deep random-weight networks can be chaotic in float32 -- EfficientNetB3 here: Keras and
    Keras+XLA differ by 1.8 % of the output range -- and no artifact can be held closer to the
    reference than the reference is to itself.
    """
    import tensorflow as tf

    x = feeds if len(feeds) > 1 else next(iter(feeds.values()))
    eager = model.predict(x, batch_size=64, verbose=0)
    compiled = tf.function(lambda t: model(t, training=False), jit_compile=True)
    n = len(next(iter(feeds.values())))
    chunks = [compiled(_take(x, i, i + 64)) for i in range(0, n, 64)]
    xla = [
        np.concatenate([np.asarray(c[j] if isinstance(c, (list, tuple)) else c) for c in chunks])
        for j in range(len(chunks[0]) if isinstance(chunks[0], (list, tuple)) else 1)
    ]
    eager = eager if isinstance(eager, (list, tuple)) else [eager]
    return {
        "max_abs_error": max(float(np.abs(np.asarray(a) - b).max()) for a, b in zip(eager, xla)),
        "relative_error": max(relative_error(np.asarray(a), b) for a, b in zip(eager, xla)),
        "cosine": min(compare("floor", np.asarray(a), b).cosine for a, b in zip(eager, xla)),
    }


def _take(x, start, stop):
    return {k: v[start:stop] for k, v in x.items()} if isinstance(x, dict) else x[start:stop]


def judge_by_floor(entries, floor_of):
    """fp32 entries that failed only on error size, by no more than FLOOR_FACTOR x the reference's
    float32 noise floor (`floor_of()`, computed once, on demand), pass with the floor recorded."""
    floor = None
    for entry in entries:
        checks = entry.get("failed_checks") or []
        if entry["status"] != "fail" or entry["precision"] != "fp32" or not checks:
            continue
        if any(c["metric"] not in FLOOR_METRICS for c in checks):
            continue
        floor = floor if floor is not None else floor_of()
        entry["reference_floor"] = floor
        if all(_within_floor(c, floor) for c in checks):
            entry.update(status="pass", passed_at_floor=True)
    return entries


def _within_floor(check, floor):
    """An error no bigger than FLOOR_FACTOR x the floor's; a cosine no further from 1."""
    if check["metric"] == "cosine":
        return 1.0 - check["value"] <= FLOOR_FACTOR * (1.0 - floor["cosine"])
    return check["value"] <= FLOOR_FACTOR * floor[check["metric"]]


def _emit_cells(emit, entries, seconds):
    for entry in entries:
        emit({"event": "cell", **entry, "seconds": round(seconds / len(entries), 1)})


def _has_inputs(model):
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def main(job_dir):
    """Child entry point: JOB_DIR/job.json -> JOB_DIR/events.jsonl (one JSON object a line)."""
    quiet.quiet_tensorflow()
    job_dir = Path(job_dir)
    job = json.loads((job_dir / "job.json").read_text())
    family = get_family(job["family"])
    pairs = [tuple(p) for p in job["pairs"]]
    with open(job_dir / "events.jsonl", "a", encoding="utf-8") as events:

        def emit(event):
            events.write(json.dumps(event, default=_jsonable) + "\n")
            events.flush()

        with quiet.captured_output():  # Keras/TensorFlow chatter outside the converters' own captures
            run_family(family, pairs, emit, job_dir, one_at_a_time=job.get("one_at_a_time", False))
    return 0


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
