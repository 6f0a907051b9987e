"""`model.png`: the model's graph drawn by `keras.utils.plot_model` (pydot + Graphviz)."""

from __future__ import annotations

from edgekeras.atomic import atomic_path
from edgekeras.progress import notice


def write_model_png(model, path):
    """Draws `model` with its shapes into `path` (atomically). Without pydot or Graphviz's
    `dot`, or for a graph Keras cannot draw, prints one notice on stderr and returns None."""
    import keras

    try:
        with atomic_path(path, force=True, suffix=".png") as tmp:
            keras.utils.plot_model(model, to_file=str(tmp), show_shapes=True, show_layer_names=True)
            if not tmp.exists():
                raise RuntimeError("plot_model wrote nothing")
    except ImportError:
        notice(
            f"Note: skipped {path.name}: keras.utils.plot_model needs pydot and Graphviz's 'dot' "
            "program (apt-get install graphviz)."
        )
        return None
    except Exception as e:  # a graph pydot cannot lay out must not fail a finished training run
        notice(
            f"Note: skipped {path.name}: keras.utils.plot_model failed ({type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})."
        )
        return None
    return path
