"""Search spaces in a recipe and the `tune:` section: grammar, checks and errors (no training)."""

import socket

import pytest
import yaml
from conftest import assert_bad_input, invoke

from edgekeras.errors import InputError
from edgekeras.recipe.spaces import find_spaces, substitute
from edgekeras.tuning.settings import check_tune_section, parse_objective


def spaced_recipe(units=None, **tune):
    return {
        "name": "spaced",
        "data": {"source": "digits", "flatten": True},
        "model": {
            "type": "sequential",
            "input_shape": [64],
            "layers": [
                {"Dense": {"units": units if units is not None else {"choice": [8, 16]}, "activation": "relu"}},
                {"Dense": {"units": 10, "activation": "softmax"}},
            ],
        },
        "compile": {
            "optimizer": {"Adam": {"learning_rate": {"float": {"min": 1e-3, "max": 1e-2, "sampling": "log"}}}},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 1, "shuffle": {"boolean": {}}},
        "tune": tune or {"max_trials": 2},
    }


def test_spaces_are_named_by_their_recipe_path_and_substituted_in_place():
    spaces = find_spaces(spaced_recipe())
    assert [(s.path, s.kind) for s in spaces] == [
        ("model.layers[0].Dense.units", "choice"),
        ("compile.optimizer.Adam.learning_rate", "float"),
        ("fit.shuffle", "boolean"),
    ]
    concrete = substitute(
        spaced_recipe(),
        {"model.layers[0].Dense.units": 16, **{s.path: 0.005 for s in spaces[1:2]}, "fit.shuffle": False},
    )
    assert concrete["model"]["layers"][0]["Dense"]["units"] == 16
    assert concrete["compile"]["optimizer"]["Adam"]["learning_rate"] == 0.005 and concrete["fit"]["shuffle"] is False


def test_choices_of_mappings_reach_the_tuner_as_json_and_come_back():
    (space,) = find_spaces({"compile": {"optimizer": {"choice": [{"Adam": {}}, "sgd"]}}})
    assert space.options == ['{"Adam": {}}', '"sgd"']
    assert space.value_of(space.options[0]) == {"Adam": {}}


@pytest.mark.parametrize(
    "space, fragment",
    [
        ({"choice": []}, "non-empty list"),
        ({"choice": [8, 8]}, "different values"),
        ({"int": {"min": 64, "max": 8}}, "min 64 > max 8"),
        ({"int": {"min": 8, "max": 64, "stepp": 8}}, "Did you mean 'step'?"),
        ({"int": {"min": 8}}, "Missing required key"),
        ({"float": {"min": 0, "max": 1, "sampling": "log"}}, "> 0 for log sampling"),
        ({"boolean": {"default": True}}, "no settings"),
        ({"choice": [8], "int": {"min": 1, "max": 2}}, "one key"),
    ],
)
def test_malformed_spaces_name_their_key_path(space, fragment):
    with pytest.raises(InputError) as e:
        find_spaces(spaced_recipe(units=space))
    assert "model.layers[0].Dense.units" in str(e.value) and fragment in str(e.value)


def test_train_refuses_a_recipe_with_search_spaces(ws):
    path = ws / "spaced.yaml"
    path.write_text(yaml.safe_dump(spaced_recipe()))
    assert_bad_input(invoke("train", path), "compile.optimizer.Adam.learning_rate", "edgekeras tune")
    assert not (ws / "runs").exists()


def test_tune_exits_2_on_a_malformed_space_before_any_trial(ws):
    path = ws / "spaced.yaml"
    path.write_text(yaml.safe_dump(spaced_recipe(units={"int": {"min": 64, "max": 8}})))
    assert_bad_input(invoke("tune", path, "--out", ws / "t"), "model.layers[0].Dense.units.int.min")
    assert not (ws / "t").exists()


@pytest.mark.parametrize(
    "tune, fragment",
    [
        ({"tuner": "hyperband", "max_trials": 4}, "no 'tune.max_trials' with tuner 'hyperband'"),
        ({"tuner": "bayesain"}, "Did you mean 'bayesian'?"),
        ({"objective": "val_f2_custom"}, "Expected 'tune.direction'"),
        ({"objective": {"artifact": {"format": "tflite", "precision": "int8", "metric": "acuracy"}}}, "'accuracy'"),
        ({"objective": {"artifact": {"format": "tflite"}}}, "tune.objective.artifact.precision"),
        ({"objective": {"artifact": {"target": "x86-64-litert"}, "constraints": {"max_p50": 1}}}, "max_p50_ms"),
        ({"options": {"factor": 3}}, "Unknown key 'tune.options.factor'"),
    ],
)
def test_bad_tune_sections_are_input_errors(tune, fragment):
    with pytest.raises(InputError, match=fragment.replace("(", r"\(")):
        check_tune_section(tune)


def test_objectives_infer_their_direction_and_an_artifact_objective_its_latency():
    assert parse_objective("val_loss", None).direction == "min"
    assert parse_objective("val_accuracy", None).direction == "max"
    edge = parse_objective(
        {"artifact": {"target": "x86-64-litert", "metric": "accuracy"}, "constraints": {"max_p50_ms": 2}}, None
    )
    assert (edge.name, edge.direction) == ("tflite_int8_accuracy", "max")
    assert edge.bench is not None and edge.constraints["max_p50_ms"] == 2  # latency measured: it is constrained
    assert edge.constraints["no_select_ops"] is True  # the target's own constraints apply too


def test_workers_zero_and_a_busy_port_exit_2(ws):
    path = ws / "spaced.yaml"
    path.write_text(yaml.safe_dump(spaced_recipe()))
    assert_bad_input(invoke("tune", path, "--workers", 0, "--out", ws / "a"), "--workers", "0")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_bad_input(invoke("tune", path, "--workers", 2, "--port", port, "--out", ws / "b"), str(port), "in use")
