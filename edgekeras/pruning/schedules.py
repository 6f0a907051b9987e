"""Pruning schedules: at which training steps the masks are recomputed, and to what sparsity.

A schedule is called with the step (batches trained since pruning began) and answers
`(should_update, sparsity)`. Masks are updated every `frequency` steps from `begin_step`
through `end_step` (the end step always updates, so the final sparsity is reached there);
outside that window nothing changes. Schedules serialize like Keras objects
(`get_config` / `from_config`, `serialize` / `deserialize`).
"""

from __future__ import annotations

from typing import Any

from edgekeras.errors import InputError, expected_one_of


def check_sparsity(value: Any, what: str = "sparsity") -> float:
    """`value` as a float in [0, 1), else an InputError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise InputError(
            f"Expected {what} to be a number in [0, 1) (the fraction of weights set to zero). Received: {value!r}."
        )
    return float(value)


class PruningSchedule:
    """Base class: the update window and frequency shared by every schedule."""

    def __init__(self, begin_step: int = 0, end_step: int = 0, frequency: int = 100):
        for name, value in (("begin_step", begin_step), ("end_step", end_step), ("frequency", frequency)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "frequency" else 0):
                low = "a positive integer" if name == "frequency" else "an integer >= 0"
                raise InputError(f"Expected {name} to be {low}. Received: {value!r}.")
        if end_step < begin_step:
            raise InputError(
                f"Expected end_step >= begin_step. Received: begin_step={begin_step}, end_step={end_step}."
            )
        self.begin_step, self.end_step, self.frequency = begin_step, end_step, frequency

    def should_update(self, step: int) -> bool:
        if step < self.begin_step or step > self.end_step:
            return False
        return step == self.end_step or (step - self.begin_step) % self.frequency == 0

    def sparsity(self, step: int) -> float:
        raise NotImplementedError

    @property
    def final_sparsity(self) -> float:
        return self.sparsity(self.end_step)

    def __call__(self, step: int) -> tuple[bool, float]:
        return self.should_update(step), self.sparsity(step)

    def get_config(self) -> dict:
        return {"begin_step": self.begin_step, "end_step": self.end_step, "frequency": self.frequency}

    @classmethod
    def from_config(cls, config: dict) -> PruningSchedule:
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ConstantSparsity(PruningSchedule):
    """The same `target` sparsity at every update."""

    def __init__(self, target: float, begin_step: int = 0, end_step: int = 0, frequency: int = 100):
        super().__init__(begin_step, end_step, frequency)
        self.target = check_sparsity(target, "target")

    def sparsity(self, step: int) -> float:
        return self.target

    def get_config(self) -> dict:
        return {"target": self.target, **super().get_config()}


class PolynomialDecay(PruningSchedule):
    """Sparsity rising from `initial` at `begin_step` to `final` at `end_step`, fast at first:
    final + (initial - final) * (1 - progress) ** power (Zhu & Gupta 2017; tfmot's schedule)."""

    def __init__(
        self,
        initial: float,
        final: float,
        begin_step: int = 0,
        end_step: int = 0,
        power: float = 3,
        frequency: int = 100,
    ):
        super().__init__(begin_step, end_step, frequency)
        self.initial = check_sparsity(initial, "initial sparsity")
        self.final = check_sparsity(final, "final sparsity")
        if isinstance(power, bool) or not isinstance(power, (int, float)) or power <= 0:
            raise InputError(f"Expected power to be a positive number. Received: {power!r}.")
        self.power = float(power)

    def sparsity(self, step: int) -> float:
        span = self.end_step - self.begin_step
        progress = 1.0 if span == 0 else min(max((step - self.begin_step) / span, 0.0), 1.0)
        return self.final + (self.initial - self.final) * (1.0 - progress) ** self.power

    def get_config(self) -> dict:
        return {"initial": self.initial, "final": self.final, "power": self.power, **super().get_config()}


SCHEDULES: dict[str, type[PruningSchedule]] = {"constant": ConstantSparsity, "polynomial": PolynomialDecay}
_CLASSES = {cls.__name__: cls for cls in SCHEDULES.values()}


def serialize(schedule: PruningSchedule) -> dict:
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict) -> PruningSchedule:
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in _CLASSES:
        raise InputError(f"Expected a schedule {{class_name: {' | '.join(_CLASSES)}, config}}. Received: {config!r}.")
    return _CLASSES[name].from_config(config.get("config") or {})


def make_schedule(
    kind: str, sparsity: float, begin_step: int, end_step: int, frequency: int, initial: float = 0.0
) -> PruningSchedule:
    """The schedule named `kind` ('polynomial' or 'constant') reaching `sparsity` at `end_step`."""
    if kind not in SCHEDULES:
        raise expected_one_of("schedule", kind, SCHEDULES)
    args: dict[str, Any] = {"begin_step": begin_step, "end_step": end_step, "frequency": frequency}
    if kind == "constant":
        return ConstantSparsity(sparsity, **args)
    return PolynomialDecay(initial, sparsity, **args)
