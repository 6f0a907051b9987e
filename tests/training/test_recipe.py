"""The strict recipe loader and Keras object resolution."""

import pytest

from edgekeras.errors import InputError
from edgekeras.recipe import load_recipe, parse_recipe
from edgekeras.recipe.keras_objects import resolve


def base(**changes):
    recipe = {
        "name": "t",
        "model": {"type": "sequential", "input_shape": [4], "layers": [{"Dense": {"units": 2}}]},
        "compile": {"loss": "mse"},
    }
    recipe.update(changes)
    return recipe


def test_defaults_filled_and_round_trip(tmp_path):
    recipe = parse_recipe(base())
    assert recipe.data["source"] == "digits" and recipe.fit["epochs"] == 10
    assert recipe.export["formats"] == ["tflite", "onnx"]
    path = tmp_path / "r.yaml"
    path.write_text(recipe.to_yaml())
    assert load_recipe(path).to_dict() == recipe.to_dict()


def test_shipped_recipe_by_name():
    assert load_recipe("digits-cnn").name == "digits-cnn"


@pytest.mark.parametrize(
    "mapping, fragment",
    [
        (base(fitt={}), "Unknown key 'fitt'"),
        (base(fit={"epoch": 3}), "Did you mean 'epochs'?"),
        (base(data={"source": "digit"}), "Did you mean 'digits'?"),
        (base(data={"validation_split": 1.5}), "data.validation_split"),
        (base(export={"precisions": ["int9"]}), "Did you mean 'int8'?"),
        (base(model={"type": "sequental"}), "Did you mean 'sequential'?"),
        ({"model": base()["model"], "compile": {"loss": "mse"}}, "Missing required key 'name'"),
    ],
)
def test_schema_errors_name_the_key(mapping, fragment):
    with pytest.raises(InputError) as err:
        parse_recipe(mapping)
    assert fragment in str(err.value)


def test_short_form_resolves_nested_schedule():
    import keras

    opt = resolve(
        {"Adam": {"learning_rate": {"CosineDecay": {"initial_learning_rate": 0.01, "decay_steps": 10}}}},
        "optimizers",
        "compile.optimizer",
    )
    assert isinstance(opt, keras.optimizers.Adam)
    assert isinstance(opt._learning_rate, keras.optimizers.schedules.CosineDecay)


def test_layer_with_nested_regularizer_and_callback():
    import keras

    layer = resolve({"Dense": {"units": 3, "kernel_regularizer": {"L2": {"l2": 0.1}}}}, "layers", "model.layers[0]")
    assert isinstance(layer.kernel_regularizer, keras.regularizers.L2)
    cb = resolve({"EarlyStopping": {"patience": 2}}, "callbacks", "fit.callbacks[0]")
    assert cb.patience == 2


@pytest.mark.parametrize(
    "spec, namespace, fragment",
    [
        ({"Adma": {}}, "optimizers", "Did you mean 'Adam'?"),
        ({"Conv2d": {"filters": 2, "kernel_size": 3}}, "layers", "Did you mean 'Conv2D'?"),
        ({"Dense": {"unit": 3}}, "layers", "model.layers[0].Dense.unit"),
        ({"Dense": {}}, "layers", "units"),
        ("sparse_categorical_crossentropyy", "losses", "Did you mean 'sparse_categorical_crossentropy'?"),
        ({"EarlyStoping": {}}, "callbacks", "Did you mean 'EarlyStopping'?"),
        ("nosuchmodule_xyz:Thing", "layers", "importable module"),
    ],
)
def test_resolution_errors(spec, namespace, fragment):
    with pytest.raises(InputError) as err:
        resolve(spec, namespace, "model.layers[0]")
    assert fragment in str(err.value)


def test_custom_object_from_module(tmp_path, monkeypatch):
    (tmp_path / "mylayers.py").write_text(
        "import keras\nclass Doubler(keras.layers.Layer):\n    def call(self, x):\n        return 2 * x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    layer = resolve({"mylayers:Doubler": {}}, "layers", "model.layers[0]")
    assert type(layer).__name__ == "Doubler"


def test_layer_shape_mismatch_names_the_layer():
    from edgekeras.models import build_model, check_model_section

    section = check_model_section(
        {
            "type": "sequential",
            "input_shape": [8],
            "layers": [{"Dense": {"units": 4}}, {"Conv2D": {"filters": 2, "kernel_size": 3}}],
        }
    )
    with pytest.raises(InputError) as err:
        build_model(section)
    assert "model.layers[1]" in str(err.value) and "Conv2D" in str(err.value)


def test_full_keras_form_without_module_resolves_in_the_recipe_namespace():
    """{class_name, config} as Keras serializes it, minus the 'module' key a hand-written recipe
    leaves out, nested schedules included."""
    import keras

    from edgekeras.recipe.keras_objects import resolve

    spec = {
        "class_name": "SGD",
        "config": {
            "momentum": 0.9,
            "learning_rate": {
                "class_name": "ExponentialDecay",
                "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
            },
        },
    }
    optimizer = resolve(spec, "optimizers", "compile.optimizer")
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.momentum == 0.9
    assert isinstance(optimizer._learning_rate, keras.optimizers.schedules.ExponentialDecay)
    with pytest.raises(InputError, match=r"compile\.optimizer.SGD.momentun.*Did you mean 'momentum'"):
        resolve({"class_name": "SGD", "config": {"momentun": 0.9}}, "optimizers", "compile.optimizer")
