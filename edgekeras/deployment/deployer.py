"""`deploy`: the fastest artifact within an accuracy budget on each target, measured there.

    dep = ek.deploy("runs/digits", targets=["x86-64-litert", "x86-64-onnxruntime"],
                    accuracy_budget=0.5, out="deploy/")
    dep.results[0].chosen.artifact, dep.results[0].chosen.p50

The steps: plan every target's candidates (`candidates`, no TensorFlow) and check the input;
pair targets with devices (`sites`); convert each candidate here, one at a time, while each
device's worker validates and benchmarks what is ready (`measure`); judge each site's rows
(`verdict`); write the table (deploy.json, report.md, report.html), every candidate's
manifest, and the chosen artifact beside them. The command line's `edgekeras deploy` is this.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekeras.atomic import write_text
from edgekeras.conversion import tool_versions
from edgekeras.conversion_inputs import conversion_inputs
from edgekeras.conversion_plan import ConversionJob, ConversionPlan
from edgekeras.data.labels import check_labels
from edgekeras.deployment.cache import DeployCache, arrays_digest
from edgekeras.deployment.candidates import MODEL, QAT
from edgekeras.deployment.measure import Converter, Measuring, Row, measure
from edgekeras.deployment.plan import DOCUMENT, make_folder, no_labels, plan_deploy
from edgekeras.deployment.sites import DeviceWorkers, Site
from edgekeras.deployment.verdict import Budget, best_effort, judge
from edgekeras.errors import BudgetNotMet, EdgekerasError, InputError
from edgekeras.export import artifact_suffixes, get_exporter
from edgekeras.heads import keras_heads
from edgekeras.keras_model import predict
from edgekeras.manifest import Manifest
from edgekeras.quiet import quiet_tensorflow
from edgekeras.remote import SSHDevice
from edgekeras.reporting.deploy import deploy_tables, write_deploy_report
from edgekeras.sources import ModelSource, open_model

if TYPE_CHECKING:
    from edgekeras.data.coerce import DataLike
    from edgekeras.hints import Architecture, JSONDict, PathLike
    from edgekeras.keras_model import KerasModel
    from edgekeras.sources import ModelLike

log = logging.getLogger(__name__)


@dataclass
class SiteResult:
    """One target on one device: every candidate's row, the chosen one, the closest otherwise."""

    site: Site
    rows: list[Row]
    refused: list[Any] = field(default_factory=list)  # candidates.Refused
    chosen: Row | None = None
    best: Row | None = None  # the chosen one, else the closest to the budget
    artifact: Path | None = None  # the chosen artifact's copy in the deploy folder

    def to_dict(self) -> JSONDict:
        return {
            "target": self.site.target.name,
            "device": self.site.device.url if self.site.device else None,
            "site": self.site.name,
            "runtime": self.site.target.runtime,
            "threads": self.site.target.threads,
            "chosen": self.chosen.candidate.label if self.chosen else None,
            "chosen_artifact": str(self.artifact) if self.artifact else None,
            "best": self.best.candidate.label if self.best else None,
            "rows": [r.to_dict() for r in self.rows],
            "refused": [{"candidate": r.label, "reason": r.reason} for r in self.refused],
        }


@dataclass
class Deployment:
    """What `deploy` measured and chose, and where it wrote it."""

    out: Path
    name: str  # the model's (a run's recipe name, else the model's own)
    source: str
    budget: Budget
    results: list[SiteResult]
    wall_s: float = 0.0
    markdown: Path | None = None
    html: Path | None = None

    @property
    def passed(self) -> bool:
        """Whether every site has a candidate within the budget and its constraints."""
        return all(r.chosen is not None for r in self.results)

    @property
    def cache_summary(self) -> dict[str, int]:
        rows = [row for r in self.results for row in r.rows]
        return {
            "candidates": len(rows),
            "measured_now": sum(1 for row in rows if row.measured and not row.cached),
            "measured_before": sum(1 for row in rows if row.cached),
            "converted_before": sum(1 for row in rows if row.converted_from_cache),
        }

    def to_dict(self) -> JSONDict:
        return {
            "out": str(self.out),
            "name": self.name,
            "source": self.source,
            "accuracy_budget": self.budget.accuracy,
            "min_cosine": self.budget.min_cosine,
            "passed": self.passed,
            "wall_s": self.wall_s,
            "cache": self.cache_summary,
            "sites": [r.to_dict() for r in self.results],
            "report": {"markdown": str(self.markdown), "html": str(self.html)} if self.markdown else None,
        }

    def table(self) -> str:
        """Every site's candidate table and the summary, as aligned text."""
        return deploy_tables(self.to_dict())


def deploy(
    model: ModelLike,
    targets: str | Sequence[str],
    accuracy_budget: float | str | None = None,
    min_cosine: float | str | None = None,
    data: DataLike | None = None,
    calibration: DataLike | None = None,
    devices: Iterable[str | SSHDevice] = (),
    out: PathLike = "deploy",
    max_candidates: int | None = None,
    time_budget: float | None = None,
    runs: int = 100,
    warmup: int = 10,
    force: bool = False,
    safe_mode: bool = True,
    custom_objects: Iterable[str] | None = (),
    architecture: Architecture | None = None,
) -> Deployment:
    """Finds, for each target, the fastest artifact within `accuracy_budget` and its constraints.

    Args:
        model: a run folder (its test split validates, its training split calibrates, its
            `model-qat.keras` adds quantization-aware candidates), a model file, a `keras.Model`
            or a training `Run`.
        targets: target names or YAML paths (`edgekeras targets`); each allows the candidates
            of its format and constraints (`deploy.candidates`).
        accuracy_budget: the largest accuracy drop accepted, in points of the main metric
            (the first labelled classifier output) against the Keras model. Needs labels.
        min_cosine: the lowest output cosine accepted (works without labels); with a budget, both hold.
        data: labelled data (`.npz`, {name: array}, (x, y), ...) instead of the run's test split.
        calibration: representative inputs for quantized candidates (default: a run's training split).
        devices: `ssh://user@host[:port]` URLs or `SSHDevice`s: candidates are validated (the
            outputs computed there, compared here) and benchmarked on them. One device
            measures every target; one target is measured on every device; as many devices
            as targets pair in order.
        out: the deploy folder: per site a folder of candidate artifacts with manifests, the
            chosen artifact of each site (`chosen: true`), deploy.json, report.md/.html and
            the cache a later run into the same folder reuses.
        max_candidates: measure at most this many candidates per site (in priority order:
            the target's own choice, fp32, then the rest).
        time_budget: start no new candidate after this many seconds (each site's first one,
            the target's own choice, is always measured).
        runs, warmup: timed and untimed runs per benchmark.
        force: write into an existing folder that is not a deploy folder.
        safe_mode, custom_objects, architecture: how a model file loads (see `convert`).

    Returns:
        The `Deployment`. Raises `BudgetNotMet` (exit 1; after writing everything) when a site
        has no candidate within the budget and constraints, naming the closest; `InputError`
        (exit 2) for bad input before any work.
    """
    start = time.perf_counter()
    plan = plan_deploy(
        model, targets, accuracy_budget, min_cosine, data, calibration, devices, out, force,
        max_candidates, time_budget, runs, warmup,
    )  # fmt: skip
    for url, device in {s.device.url: s.device for s in plan.sites if s.device is not None}.items():
        device.check_ready(sorted({s.target.runtime for s in plan.sites if s.device_name == url}))
    out = make_folder(plan.out, force)
    budget, sites, proposals = plan.budget, plan.sites, plan.proposals

    quiet_tensorflow()
    source = open_model(model, safe_mode=safe_mode, custom_objects=custom_objects, architecture=architecture)
    candidates = [c for p in proposals for c in p.candidates]
    jobs = ConversionPlan(tuple(ConversionJob(get_exporter(c.format, c.precision), c.recipe) for c in candidates))
    inputs = conversion_inputs(jobs, source, calibration, data)
    if inputs.validation is None:
        raise InputError(
            "Expected data to validate the candidates on. Received: none. Pass --data FILE.npz (labelled), "
            "or deploy a run folder (its test split validates)."
        )
    feeds, labels = _check_data(budget, source.keras_model, inputs.validation)
    stem = source.name or getattr(source.keras_model.model, "name", None) or "model"
    cache = DeployCache(out)
    workers = DeviceWorkers()
    converter = Converter(
        out,
        stem,
        _loaders(source, safe_mode, custom_objects),
        inputs.calibration,
        cache,
        tool_versions(),
        workers.host_lock,
        inputs.validation,
        inputs.validation_source,
    )
    results = [SiteResult(site, [Row(c, site) for c in p.candidates], p.refused) for site, p in zip(sites, proposals)]
    with tempfile.TemporaryDirectory(prefix="edgekeras-deploy-") as tmp:
        bench_inputs = Path(tmp) / "inputs.npz"
        first: dict[str, Any] = {k: np.asarray(v)[:1] for k, v in feeds.items()}
        np.savez(bench_inputs, **first)
        how = Measuring(
            reference=source.keras_model,
            reference_outputs=predict(source.keras_model.model, feeds),
            data=inputs.validation,
            data_source=inputs.validation_source,
            data_digest=arrays_digest({**feeds, **{f"labels:{k}": v for k, v in labels.items()}}),
            bench_inputs=bench_inputs,
            runs=runs,
            warmup=warmup,
            cache=cache,
            host_lock=workers.host_lock,
        )
        try:
            _run(results, converter, workers, how, max_candidates, time_budget, start)
        finally:
            converter.close()
            cache.save()
    deployment = Deployment(out, stem, str(source.keras_model.path or "a model in memory"), budget, results)
    for result in results:
        _settle(result, budget, out, stem)
    deployment.wall_s = time.perf_counter() - start
    deployment.markdown, deployment.html = write_deploy_report(deployment.to_dict(), out)
    write_text(out / DOCUMENT, json.dumps(deployment.to_dict(), indent=2, default=str) + "\n", force=True)
    if not deployment.passed:
        raise BudgetNotMet(_not_met(deployment), deployment)
    return deployment


def _run(
    results: list[SiteResult],
    converter: Converter,
    workers: DeviceWorkers,
    how: Measuring,
    max_candidates: int | None,
    time_budget: float | None,
    start: float,
) -> None:
    """Converts candidates in priority order, round-robin over the sites, and hands each to its
    device's worker as soon as it is ready; waits for every measurement."""
    depth = max(len(r.rows) for r in results)
    limit = depth if max_candidates is None else max_candidates
    for result in results:
        for row in result.rows[limit:]:
            row.reason = f"not measured: --max-candidates {max_candidates}"
    order = [r.rows[i] for i in range(min(depth, limit)) for r in results if i < len(r.rows)]
    futures = []
    with workers:
        for count, row in enumerate(order, 1):
            # every site measures at least its first candidate (the target's own choice)
            if count > len(results) and time_budget is not None and time.perf_counter() - start > time_budget:
                row.reason = f"not measured: --time-budget {time_budget:g} s reached"
                continue
            log.info(f"[{count}/{len(order)}] {row.site.name}: {row.candidate.label}")
            try:
                row.artifact, row.converted_from_cache = converter.artifact(row.candidate, row.site)
            except EdgekerasError as e:
                row.error = f"conversion failed: {e}"
                log.info(f"  {row.site.name}: {row.candidate.label}: {row.error}")
                continue
            futures.append(workers.submit(row.site, _measured, row, how))
        for future in futures:
            future.result()


def _measured(row: Row, how: Measuring) -> None:
    measure(row, how)
    if row.error is not None:
        log.info(f"  {row.site.name}: {row.candidate.label}: {row.error}")
        return
    delta = "" if row.accuracy_delta is None else f", accuracy {row.accuracy_delta:+.2f} pts"
    cosine = "" if row.cosine is None else f", cosine {row.cosine:.5f}"
    where = "" if row.site.device is None else f" on {row.site.device.host}"
    cached = " (cached: measured by an earlier run)" if row.cached else ""
    log.info(f"  {row.site.name}: {row.candidate.label}: p50 {row.p50:.3f} ms{where}{delta}{cosine}{cached}")


def _settle(result: SiteResult, budget: Budget, out: Path, stem: str) -> None:
    """Judges a site, records the verdict in every manifest, copies the chosen artifact to `out`."""
    result.chosen = judge(result.rows, budget)
    result.best = result.chosen or best_effort(result.rows, budget)
    for row in result.rows:
        if row.artifact is not None and row.artifact.exists():
            Manifest.read(row.artifact).record_deployment(row is result.chosen, _deployment_facts(row, budget))
    for suffix in artifact_suffixes():  # an earlier run's choice for this site
        for stale in (out / f"{stem}-{result.site.slug}{suffix}", out / f"{stem}-{result.site.slug}.json"):
            stale.unlink(missing_ok=True)
    if result.chosen is not None and result.chosen.artifact is not None:
        chosen = result.chosen.artifact
        result.artifact = out / f"{stem}-{result.site.slug}{chosen.suffix}"
        shutil.copyfile(chosen, result.artifact)
        shutil.copyfile(chosen.with_suffix(".json"), result.artifact.with_suffix(".json"))


def _deployment_facts(row: Row, budget: Budget) -> JSONDict:
    return {
        "target": row.site.target.name,
        "device": row.site.device.url if row.site.device else None,
        "candidate": row.candidate.label,
        "kind": row.candidate.kind,
        "status": row.status,
        "reason": row.reason,
        "accuracy_budget": budget.accuracy,
        "min_cosine": budget.min_cosine,
        "cached": row.cached,
    }


def _not_met(deployment: Deployment) -> str:
    lines = []
    for result in deployment.results:
        if result.chosen is not None:
            continue
        best = result.best
        if best is None:
            first = next((r.error for r in result.rows if r.error), "nothing was measured")
            lines.append(f"  - {result.site.name}: no candidate could be measured ({first}).")
            continue
        lines.append(
            f"  - {result.site.name}: the closest is {best.candidate.label} ({best.reason}; p50 "
            f"{best.p50:.3f} ms): {best.artifact}"
        )
    return (
        "No candidate is within the budget and the target's constraints on:\n"
        + "\n".join(lines)
        + f"\nEvery candidate is in {deployment.out / 'report.md'}. Try a larger --accuracy-budget, "
        "quantization-aware training (recipe `qat:`), or a target that allows more precisions."
    )


def _check_data(budget: Budget, keras_model: KerasModel, split: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The validation (feeds, labels); an accuracy budget requires labels of a classifier output."""
    labelled = check_labels(keras_model, split, what="validation data")
    feeds = labelled.split.feeds(keras_model.inputs, what="validation data")
    if budget.accuracy is None:
        return feeds, dict(labelled.labels)
    if not labelled.labels:
        raise no_labels("inputs without labels")
    heads = keras_heads(keras_model)
    if not any(heads[name].quality == "accuracy" for name in labelled.labels):
        kinds = ", ".join(f"'{n}' ({heads[n].kind})" for n in labelled.labels)
        raise InputError(
            f"Expected a labelled classifier output for --accuracy-budget (points of accuracy). Received: "
            f"labels for {kinds} only. Use --min-cosine X to judge such outputs by parity."
        )
    return feeds, dict(labelled.labels)


def _loaders(source: ModelSource, safe_mode: bool, custom_objects: Iterable[str] | None) -> dict[str, Any]:
    """{model name: () -> KerasModel} for the models candidates are exported from."""
    run = source.run

    def qat() -> KerasModel:
        if run is None:
            raise InputError("Expected a run folder with model-qat.keras. Received: none.")
        return run.load_model(safe_mode=safe_mode, custom_objects=list(custom_objects or []), qat=True)

    return {MODEL: lambda: source.keras_model, QAT: qat}
