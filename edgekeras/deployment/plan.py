"""What `deploy` will do, decided before any model is loaded: every check of its input.

A budget that is not a number, a target that allows no candidate (each refusal named), an
accuracy budget without labelled data, an output folder that is someone else's: refused here
in a fraction of a second, before TensorFlow is imported. `deployer.deploy` then executes the plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgekeras.deployment.cache import FILE as CACHE_FILE
from edgekeras.deployment.candidates import MODEL, QAT, Proposal, Sources, propose
from edgekeras.deployment.sites import Site, pair_sites
from edgekeras.deployment.verdict import Budget
from edgekeras.errors import InputError, OutputExistsError
from edgekeras.remote import SSHDevice, as_device
from edgekeras.run_folder import RunFolder
from edgekeras.sources import ModelSource
from edgekeras.targets import Target, get_target

if TYPE_CHECKING:
    from edgekeras.data.coerce import DataLike
    from edgekeras.hints import PathLike
    from edgekeras.sources import ModelLike

DOCUMENT = "deploy.json"


@dataclass
class DeployPlan:
    """What `deploy` will measure, decided before any model is loaded (no TensorFlow)."""

    budget: Budget
    sites: list[Site]
    proposals: list[Proposal]  # one per site
    out: Path


def plan_deploy(
    model: ModelLike,
    targets: str | Sequence[str],
    accuracy_budget: float | str | None = None,
    min_cosine: float | str | None = None,
    data: DataLike | None = None,
    calibration: DataLike | None = None,
    devices: Iterable[str | SSHDevice] = (),
    out: PathLike = "deploy",
    force: bool = False,
    max_candidates: int | None = None,
    time_budget: float | None = None,
    runs: int = 100,
    warmup: int = 10,
) -> DeployPlan:
    """Checks `deploy`'s options and plans every site's candidates; `InputError` names what is wrong."""
    budget = Budget(_number(accuracy_budget, "--accuracy-budget", 0, 100), _number(min_cosine, "--min-cosine", -1, 1))
    if budget.accuracy is None and budget.min_cosine is None:
        raise InputError(
            "Expected --accuracy-budget POINTS (the largest accuracy drop accepted, e.g. 0.5) or "
            "--min-cosine X (output parity, no labels needed). Received: neither."
        )
    _check_counts(max_candidates, time_budget, runs, warmup)
    sites = pair_sites(_targets(targets), [d for d in map(as_device, devices) if d is not None])
    run = _run_folder(model)
    sources = _sources(run, calibration, model, budget)
    proposals = [propose(site.target, sources) for site in sites]
    for site, proposal in zip(sites, proposals):
        _check_proposal(site, proposal)
    if budget.accuracy is not None and data is None and (run is None or not run.has_recipe_data):
        raise no_labels("no --data, and the model is not a run folder with a test split")
    _check_out(Path(out), force)
    return DeployPlan(budget, sites, proposals, Path(out))


def _number(value: float | str | None, option: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number) or not low <= number <= high:
        raise InputError(f"Expected {option} to be a number from {low:g} to {high:g}. Received: {value!r}.")
    return number


def _check_counts(max_candidates: int | None, time_budget: float | None, runs: int, warmup: int) -> None:
    for option, value, low in (("--max-candidates", max_candidates, 1), ("--runs", runs, 1), ("--warmup", warmup, 0)):
        if value is None and option == "--max-candidates":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InputError(f"Expected {option} to be an integer >= {low}. Received: {value!r}.")
    if time_budget is not None and _number(time_budget, "--time-budget", 0, math.inf) == 0:
        raise InputError(f"Expected --time-budget to be a number of seconds > 0. Received: {time_budget!r}.")


def _targets(targets: str | Sequence[str]) -> list[Target]:
    names = [targets] if isinstance(targets, str) else list(targets or [])
    if not names:
        raise InputError("Expected at least one --target (see `edgekeras targets`). Received: none.")
    return [get_target(n) for n in dict.fromkeys(names)]


def _run_folder(model: ModelLike) -> RunFolder | None:
    """The run folder `model` is or belongs to, found without loading anything."""
    if isinstance(model, ModelSource):
        return model.run
    if isinstance(model, (str, Path)):
        return RunFolder(Path(model)) if RunFolder.is_run_folder(model) else None
    run_dir = getattr(model, "run_dir", None)  # a training Run
    return RunFolder(run_dir.root) if run_dir is not None else None


def _sources(run: RunFolder | None, calibration: DataLike | None, model: ModelLike, budget: Budget) -> Sources:
    models = (MODEL, QAT) if run is not None and run.qat_model.exists() else (MODEL,)
    in_memory = getattr(model, "data", None) is not None and hasattr(model, "run_dir")
    has_calibration = calibration is not None or in_memory or (run is not None and run.has_recipe_data)
    limits = {"max_accuracy_drop": budget.accuracy, "min_cosine": budget.min_cosine}
    return Sources(models, has_calibration, tuple((k, v) for k, v in limits.items() if v is not None))


def _check_proposal(site: Site, proposal: Proposal) -> None:
    if proposal.candidates:
        return
    reasons = "; ".join(f"{r.label}: {r.reason}" for r in proposal.refused) or "its format has no exporter"
    raise InputError(
        f"Expected a target that allows at least one candidate. Received: target '{site.target.name}', "
        f"which allows none ({reasons}). Choose another target or pass what it needs."
    )


def _check_out(root: Path, force: bool) -> None:
    """`root` must be new or empty, an earlier deploy folder (reused: its cache), or any folder with `force`."""
    if root.exists() and not root.is_dir():
        raise InputError(f"Expected --out to be a folder. Received: '{root}', which is a file.")
    earlier = (root / CACHE_FILE).exists() or (root / DOCUMENT).exists()
    if root.is_dir() and any(root.iterdir()) and not earlier and not force:
        raise OutputExistsError(root)


def make_folder(root: Path, force: bool) -> Path:
    """Creates the deploy folder (checked again: the device checks may have taken a while)."""
    _check_out(root, force)
    root.mkdir(parents=True, exist_ok=True)
    return root


def no_labels(received: str) -> InputError:
    """The error for an accuracy budget without labelled data, offering --min-cosine."""
    return InputError(
        "Expected labelled data for --accuracy-budget: accuracy needs --data FILE.npz with labels "
        f"(y, or y_<output>) or a run folder's test split. Received: {received}. Or judge by output "
        "parity alone with --min-cosine X (e.g. 0.99), which needs no labels."
    )
