"""`train` plans first (what to build, compile and fit; nothing built or written), then executes.

A model passed in memory is a field of the plan, not a sentinel in the recipe: the recipe the
run folder keeps names the trained `model.keras` and the model's own compile settings, reloads
as a valid recipe, and says in its header what was passed in memory.
"""

from __future__ import annotations

import pytest
import yaml

from edgekeras.errors import InputError
from edgekeras.recipe import load_recipe
from edgekeras.training import TrainingPlan, _recipe_text, plan_training


def _model(compiled=True):
    import keras

    model = keras.Sequential([keras.Input((4,), name="features"), keras.layers.Dense(3)], name="tiny")
    if compiled:
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    return model


def test_a_recipe_plans_without_building_or_writing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = plan_training("digits-cnn", out=tmp_path / "run")
    assert isinstance(plan, TrainingPlan)
    assert plan.model is None and not plan.own_compile and plan.data is None
    assert plan.epochs == plan.recipe.fit["epochs"] and plan.callbacks == plan.recipe.fit["callbacks"]
    assert plan.export  # the shipped recipe exports
    assert list(tmp_path.iterdir()) == []  # no run folder, no runs/


def test_a_compiled_model_in_memory_keeps_its_own_compile_settings():
    model = _model()
    plan = plan_training(model, data=([[0.0] * 4], [[0.0] * 3]), recipe={"fit": {"epochs": 2}})
    assert plan.model is model and plan.own_compile and plan.epochs == 2
    assert plan.recipe.name == "tiny"
    assert plan.recipe.model["type"] == "file" and plan.recipe.model["path"] == "model.keras"
    compile_section = plan.recipe.compile
    assert compile_section["loss"] == "mse" and compile_section["metrics"] == ["mae"]
    assert compile_section["optimizer"]["class_name"] == "SGD"
    assert abs(compile_section["optimizer"]["config"]["learning_rate"] - 0.05) < 1e-6
    assert "<" not in yaml.safe_dump(plan.recipe.to_dict())  # no sentinel strings

    text = _recipe_text(plan)
    assert text.startswith("# The model was passed to edgekeras.train in memory")
    assert "compiled by its caller" in text and "data was passed in memory" in text
    reloaded = load_recipe(yaml.safe_load(text))  # the run folder's recipe.yaml is a valid recipe
    assert reloaded.model == plan.recipe.model and reloaded.compile == plan.recipe.compile


def test_a_recipe_compile_section_compiles_a_model_in_memory():
    plan = plan_training(_model(compiled=False), recipe={"compile": {"loss": "mae"}})
    assert not plan.own_compile and plan.recipe.compile["loss"] == "mae"
    assert "compiled by its caller" not in _recipe_text(plan)


def test_an_uncompiled_model_without_a_compile_section_is_refused():
    with pytest.raises(InputError, match=r"Expected a compiled keras\.Model or a recipe 'compile' section"):
        plan_training(_model(compiled=False))
