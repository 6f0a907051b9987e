"""`edgekeras deploy` / `ek.deploy`: the fastest artifact within an accuracy budget on each target.

Modules: `candidates` (what a target allows: a registry of candidate kinds), `sites` (targets
paired with devices, one worker per device), `measure` (convert here, validate and benchmark
on the site), `cache` (what an earlier run into the same folder measured), `verdict`
(budget, constraints, fastest), `deployer` (`deploy` itself and its result).
"""

from edgekeras.deployment.deployer import Deployment, SiteResult, deploy

__all__ = ["Deployment", "SiteResult", "deploy"]
