"""Older name of `edgekeras.run_folder` (training code still imports it from here)."""

from edgekeras.run_folder import STATE_FILE, RunFolder
from edgekeras.run_folder import prepare_run_folder as prepare_run_dir

RunDir = RunFolder

__all__ = ["STATE_FILE", "RunDir", "prepare_run_dir"]
