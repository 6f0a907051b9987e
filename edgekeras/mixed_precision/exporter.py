"""The "auto" exporters: the search run with a format's int8 exporter.

`register_auto()` registers ("FORMAT", "auto") for every format whose exporter module offers
`MIXED_PRECISION` (`export.MixedPrecision`: how to find each Keras layer's ops in its graph, and
the `Revert`s: builds of an int8 artifact with chosen layers raised to float32 or int16x8). The
quantize recipe's `revert_to` picks the revert (None: the format's default, its first).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edgekeras.errors import InputError
from edgekeras.export import EXPORTERS, MixedPrecision, mixed_precisions, register
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


def register_auto() -> None:
    """Registers the auto exporter of every format offering mixed precision (once)."""
    for format, support in mixed_precisions().items():
        if (format, "auto") not in EXPORTERS:
            register(format, "auto", support.description, options=support.options)(auto_exporter(format, support))


def reverts_of(format: str) -> list[str]:
    """What `format`'s auto mix can revert layers to, its default first ([] without a mix)."""
    support = mixed_precisions().get(format)
    return support.precisions if support else []


def check_revert_to(format: str, revert_to: str | None) -> None:
    """Refuses a `revert_to` that `format`'s auto mix has no route for."""
    reverts = reverts_of(format)
    if revert_to is None or revert_to in reverts:
        return
    others = [f for f in mixed_precisions() if revert_to in reverts_of(f)]
    raise InputError(
        f"Expected --revert-to {' or '.join(reverts)} for --format {format} (edgekeras has no {revert_to} route "
        f"for {format}{'; ' + ', '.join(others) + ' has one' if others else ''}). Received: --revert-to "
        f"{revert_to}. Use --revert-to {reverts[0]}, or convert {format} in a separate call."
    )


def auto_exporter(format: str, support: MixedPrecision):
    """The `build(context, path, recipe)` of `format`'s auto exporter."""

    def build(context: ExportContext, path: Path, recipe: QuantRecipe) -> dict[str, Any]:
        return export_auto(format, context, path, recipe, support)

    return build


def export_auto(
    format: str, context: ExportContext, path: Path, recipe: QuantRecipe, support: MixedPrecision
) -> dict[str, Any]:
    """Searches the mix (`search.search`), writes the best one to `path`, returns its notes."""
    check_revert_to(format, recipe.revert_to)
    revert = support.revert(recipe.revert_to)
    label = f"{format} auto"
    tolerance = get_precision("auto").tolerance.merged(recipe.tolerance)
    judge = Judge(context.keras_model, context.validation, context.validation_source, tolerance)
    layers = [layer.name for layer in context.model.layers if type(layer).__name__ != "InputLayer"]
    nodes = support.layer_nodes(context, layers)
    groups = present_groups(layer_groups(context.model), lambda names: {n: nodes.get(n, ()) for n in names})
    base = set(recipe.keep_float["layers"])
    notes_of: dict[Path, dict] = {}

    def build(raised: list[str], candidate: Path) -> None:
        notes_of[candidate] = revert.build(context, candidate, recipe, raised) or {}

    def open_candidate(candidate: Path):
        return open_session(candidate, **(notes_of[candidate].get("runtime_options") or {}))

    workdir = context.workdir / f"auto-{format}-{revert.precision}"
    workdir.mkdir(exist_ok=True)
    result = search(
        groups,
        build,
        open_candidate,
        judge,
        workdir,
        f"{label}, reverts to {revert.precision}",
        get_format(format).suffix,
        base_float=sorted(base),
        reverted_to=revert.precision,
    )
    shutil.copyfile(result.path, path)
    notes = dict(notes_of[result.path])
    mix = notes.pop("mix", {})
    section = _section(result, tolerance.to_dict(), judge.samples, nodes, revert.precision, revert.route, base)
    notes["mixed_precision"] = {**section, **mix}
    if not result.met:
        best = result.best
        notes.setdefault("warnings", []).append(
            f"{label}: no mix met the budget; the best one found is written (step {best.number}: "
            f"{_reverted_text(result.reverted_layers, revert.precision)}; "
            f"{'; '.join(best.measure.to_dict()['failures'])})."
        )
    return notes


def _reverted_text(layers: Sequence[str], precision: str) -> str:
    return f"layers kept in {precision}: {', '.join(layers)}" if layers else "every layer int8"


def _section(
    result: MixResult,
    criterion: dict,
    samples: int,
    nodes: Mapping[str, Sequence[str]],
    reverted_to: str,
    route: str,
    base: set[str],
) -> dict:
    """The manifest's `mixed_precision` section; `layers` as planned (a format's build may
    replace it with what it read back from the artifact)."""
    best = result.best
    raised = set(result.reverted_layers)

    def precision(name):
        return "float32" if name in base else reverted_to if name in raised else "int8"

    return {
        "criterion": criterion,
        "reverted_to": reverted_to,
        "route": route,
        "validation_samples": samples,
        "ranking_samples": result.ranking_samples,
        "groups": [list(g.layers) for g in result.groups],
        "ranking": [{"layers": list(r.group.layers), "recovery": r.recovery, "bytes": r.bytes} for r in result.ranking],
        "steps": [step.to_dict() for step in result.steps],
        "layers": {name: precision(name) for name, found in nodes.items() if found},
        "final": {
            "step": best.number,
            "reverted_layers": list(result.reverted_layers),
            "size_bytes": best.size_bytes,
            **best.measure.to_dict(),
            "met": result.met,
        },
    }
