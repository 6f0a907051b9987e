"""The "auto" exporters: the search run with a format's int8 exporter.

`register_auto()` registers ("FORMAT", "auto") for every format whose exporter module offers a
`FLOAT_FALLBACK` (`export.FloatFallback`: its int8 build, which honours a recipe's keep_float
layers, and how to find each Keras layer's ops in its graph). Every candidate is written by that
int8 exporter, so an auto artifact is exactly an int8 artifact with some layers kept in float.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edgekeras.export import EXPORTERS, float_fallbacks, register
from edgekeras.formats import get_format
from edgekeras.mixed_precision.groups import layer_groups, present_groups
from edgekeras.mixed_precision.judge import Judge
from edgekeras.mixed_precision.search import MixResult, search
from edgekeras.precisions import get_precision
from edgekeras.runtimes import open_session

if TYPE_CHECKING:
    from pathlib import Path

    from edgekeras.export.context import ExportContext
    from edgekeras.quantize_recipes import QuantRecipe

Build = Callable[["ExportContext", "Path", "QuantRecipe"], dict | None]
NodesOf = Callable[["ExportContext", list[str]], Mapping[str, Sequence[str]]]


def register_auto() -> None:
    """Registers the auto exporter of every format offering a float fallback (once)."""
    for format, fallback in float_fallbacks().items():
        if (format, "auto") not in EXPORTERS:
            build = auto_exporter(format, fallback.build, fallback.layer_nodes, fallback.route)
            register(format, "auto", fallback.description, options=fallback.options)(build)


def auto_exporter(format: str, int8_build: Build, nodes_of: NodesOf, route: str) -> Build:
    """The `build(context, path, recipe)` of `format`'s auto exporter. `route` says in the
    manifest how that format keeps a layer in float."""

    def build(context: ExportContext, path: Path, recipe: QuantRecipe) -> dict[str, Any]:
        return export_auto(format, context, path, recipe, int8_build, nodes_of, route)

    return build


def export_auto(
    format: str,
    context: ExportContext,
    path: Path,
    recipe: QuantRecipe,
    int8_build: Build,
    nodes_of: NodesOf,
    route: str,
) -> dict[str, Any]:
    """Searches the mix (`search.search`), writes the best one to `path`, returns its notes."""
    label = f"{format} auto"
    tolerance = get_precision("auto").tolerance.merged(recipe.tolerance)
    judge = Judge(context.keras_model, context.validation, context.validation_source, tolerance)
    layers = [layer.name for layer in context.model.layers if type(layer).__name__ != "InputLayer"]
    nodes = nodes_of(context, layers)
    groups = present_groups(layer_groups(context.model), lambda names: {n: nodes.get(n, ()) for n in names})
    notes_of: dict[Path, dict] = {}

    def build(float_layers: list[str], candidate: Path) -> None:
        kept = recipe.with_options(keep_float={"layers": float_layers, "ops": recipe.keep_float["ops"]})
        notes_of[candidate] = int8_build(context, candidate, kept) or {}

    def open_candidate(candidate: Path):
        return open_session(candidate, **(notes_of[candidate].get("runtime_options") or {}))

    workdir = context.workdir / f"auto-{format}"
    workdir.mkdir(exist_ok=True)
    result = search(
        groups,
        build,
        open_candidate,
        judge,
        workdir,
        label,
        get_format(format).suffix,
        base_float=recipe.keep_float["layers"],
    )
    shutil.copyfile(result.path, path)
    notes = dict(notes_of[result.path])
    notes["mixed_precision"] = _section(result, tolerance.to_dict(), judge.samples, nodes, route)
    if not result.met:
        best = result.best
        notes.setdefault("warnings", []).append(
            f"{label}: no mix met the budget; the best one found is written (step {best.number}: "
            f"{_float_text(result.float_layers)}; {'; '.join(best.measure.to_dict()['failures'])})."
        )
    return notes


def _float_text(layers: Sequence[str]) -> str:
    return f"layers kept in float: {', '.join(layers)}" if layers else "every layer int8"


def _section(result: MixResult, criterion: dict, samples: int, nodes: Mapping[str, Sequence[str]], route: str) -> dict:
    """The manifest's `mixed_precision` section."""
    best = result.best
    floats = set(result.float_layers)
    return {
        "criterion": criterion,
        "reverted_to": "float32",
        "route": route,
        "validation_samples": samples,
        "ranking_samples": result.ranking_samples,
        "groups": [list(g.layers) for g in result.groups],
        "ranking": [{"layers": list(g.layers), "recovery": recovery} for g, recovery in result.ranking],
        "steps": [step.to_dict() for step in result.steps],
        "layers": {name: ("float32" if name in floats else "int8") for name, found in nodes.items() if found},
        "final": {
            "step": best.number,
            "float_layers": list(result.float_layers),
            "size_bytes": best.size_bytes,
            **best.measure.to_dict(),
            "met": result.met,
        },
    }
