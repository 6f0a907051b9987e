"""Which folder a report is about: a run folder (`run.json`) or a folder of artifacts.

Only manifests and files are read here (never TensorFlow), so a report can be written on a
machine that has just the artifacts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekeras.errors import InputError
from edgekeras.run_folder import STATE_FILE, RunFolder, find_artifacts

if TYPE_CHECKING:
    from edgekeras.hints import PathLike


@dataclass
class ReportFolder:
    """Where a report's inputs are and where it is written."""

    root: Path
    artifacts: list[Path] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # run.json; {} for a folder of artifacts
    is_run: bool = True

    @property
    def name(self) -> str:
        return self.state.get("name") or self.root.name

    @property
    def pruned_from(self) -> RunFolder | None:
        """The run this one was pruned from (`edgekeras prune RUN_DIR`), while it still exists."""
        source = self.state.get("pruned_from")
        if not source or not RunFolder.is_run_folder(Path(source)):
            return None
        return RunFolder(Path(source))

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def curves(self) -> Path:
        return self.root / "training_curves.png"

    @property
    def markdown(self) -> Path:
        return self.root / "report.md"

    @property
    def html(self) -> Path:
        return self.root / "report.html"


def open_report_folder(path: PathLike) -> ReportFolder:
    """The `ReportFolder` for `path`, or an `InputError` saying what a report needs."""
    root = Path(path)
    if not root.exists():
        raise InputError(f"Expected a run folder. Received: '{root}', which does not exist.")
    if not root.is_dir():
        raise InputError(
            f"Expected a run folder (the folder `edgekeras train` writes). Received: the file '{root}'. "
            f"Pass its folder instead: `edgekeras report {root.parent}`."
        )
    run = RunFolder(root)
    if run.state_path.exists():
        return ReportFolder(root, run.find_artifacts(), run.state, is_run=True)
    artifacts = find_artifacts(root)
    if artifacts:  # `edgekeras convert --out DIR` writes such a folder
        return ReportFolder(root, artifacts, {}, is_run=False)
    raise InputError(
        f"Expected a run folder (one with {STATE_FILE}, written by `edgekeras train`) or a folder of "
        f"artifacts with their .json manifests (written by `edgekeras convert --out`). Received: '{root}', "
        "which has neither. Check the path."
    )
