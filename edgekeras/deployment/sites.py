"""Where `deploy` measures: a target on a device (this machine or an ssh:// one), one worker each.

A `Site` is a target paired with the machine that runs it. Every device gets one worker
thread, so two benchmarks never share a device while different devices measure in parallel.
This machine is also where conversion (TensorFlow) runs: its worker and the converter take
turns (`host_lock`), so a local benchmark never runs beside a conversion, and the host's
share of a device validation (the Keras reference outputs) never runs beside one either.
"""

from __future__ import annotations

import platform
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from edgekeras.errors import InputError
from edgekeras.remote import SSHDevice
from edgekeras.targets import Target

LOCAL = "local"


@dataclass(frozen=True)
class Site:
    """A deployment target measured on one device (None: this machine)."""

    target: Target
    device: SSHDevice | None = None

    @property
    def device_name(self) -> str:
        """'local', or the device's ssh:// URL."""
        return self.device.url if self.device is not None else LOCAL

    @property
    def name(self) -> str:
        """'x86-64-litert', or 'rpi4-arm64 on ssh://pi@board'."""
        return self.target.name if self.device is None else f"{self.target.name} on {self.device.url}"

    @property
    def slug(self) -> str:
        """A file-name-safe name: 'x86-64-litert', 'rpi4-arm64@pi@board-22'."""
        if self.device is None:
            return self.target.name
        where = f"{self.device.destination}-{self.device.port}" if self.device.port else self.device.destination
        return f"{self.target.name}@" + re.sub(r"[^A-Za-z0-9._@-]+", "-", where)

    @property
    def host(self) -> str:
        """What identifies the machine in the cache: the device URL, or this machine's name and CPU."""
        return self.device.url if self.device is not None else f"{platform.node()}/{platform.machine()}"

    def bench_options(self) -> dict[str, Any]:
        """runtime, threads and runtime options (provider, delegate, xnnpack) the target sets."""
        return self.target.bench_options()


def pair_sites(targets: Sequence[Target], devices: Sequence[SSHDevice]) -> list[Site]:
    """Sites for `--target`s and `--device`s: no device measures every target here; one
    device measures every target; one target is measured on every device (a fleet); as many
    devices as targets pair in order (the i-th target on the i-th device)."""
    if not devices:
        return [Site(t) for t in targets]
    if len(devices) == 1:
        return [Site(t, devices[0]) for t in targets]
    if len(targets) == 1:
        return [Site(targets[0], d) for d in devices]
    if len(devices) == len(targets):
        return [Site(t, d) for t, d in zip(targets, devices)]
    raise InputError(
        f"Expected one --device, one --target measured on several devices, or one --device per --target "
        f"(paired in order). Received: {len(targets)} targets and {len(devices)} devices."
    )


@dataclass
class DeviceWorkers:
    """One single-thread worker per device: jobs for a device run one after another."""

    # re-entrant: the converter loads a model under it, then converts under it
    host_lock: threading.RLock = field(default_factory=threading.RLock)
    _pools: dict[str, ThreadPoolExecutor] = field(default_factory=dict)

    def submit(self, site: Site, job: Callable[..., Any], *args: Any) -> Future:
        """Queues `job(*args)` on `site`'s device (jobs take `host_lock` for their work here)."""
        key = site.device_name
        if key not in self._pools:
            self._pools[key] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"deploy-{key}")
        return self._pools[key].submit(job, *args)

    def close(self, cancel: bool = False) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=cancel)

    def __enter__(self) -> DeviceWorkers:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(cancel=exc_type is not None)
