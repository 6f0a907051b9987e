import os

import pytest

os.environ.setdefault("EDGEKERAS_PROGRESS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("EDGEKERAS_CHECK_MANIFESTS", "1")  # every manifest written is checked against its schema


def digits_recipe(**overrides):
    """The shipped demo recipe with fewer epochs, as a dict."""
    from edgekeras.recipe import load_recipe

    recipe = load_recipe("digits-cnn").to_dict()
    recipe["fit"]["epochs"] = 12
    for section, values in overrides.items():
        if isinstance(values, dict):
            recipe[section].update(values)
        else:
            recipe[section] = values
    return recipe


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One trained digits run with TFLite and ONNX artifacts at fp32 and int8, shared by tests."""
    import edgekeras as ek

    out = tmp_path_factory.mktemp("digits") / "run"
    return ek.train(digits_recipe(), out=out)
