"""The simulator's state: the behaviour each model follows, and counters tests read through `/sim/stats`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from triage.sim._config import SimBehaviour, SimConfig

__all__ = ["SimState"]


@dataclass(slots=True)
class _Counts:
    requests: int = 0
    completed: int = 0
    cancelled: int = 0
    errors: int = 0


class SimState:
    """Behaviours and counters of one simulator app (`app.state.sim`). Touched only from the app's event loop."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.behaviours: dict[str, SimBehaviour] = dict(config.models)
        # `active` is a gauge of live responses, so a reset leaves it alone; `epoch` tells a response that outlived
        # a reset not to count its outcome in the fresh counters.
        self.active = 0
        self.epoch = 0
        self.reset()

    def reset(self, *, behaviours: bool = False) -> None:
        if behaviours:
            self.behaviours = dict(self.config.models)
        self.epoch += 1
        self.totals = _Counts()
        self.by_model: dict[str, _Counts] = {}
        self.last_request: dict[str, dict[str, Any]] = {}
        # Requests seen per model since its behaviour was set: `fail_first` counts against this.
        self.seen: dict[str, int] = {}

    def behaviour(self, model: str) -> SimBehaviour:
        return self.behaviours.get(model, self.config.default)

    def set_behaviour(self, model: str, behaviour: SimBehaviour) -> None:
        self.behaviours[model] = behaviour
        self.seen.pop(model, None)

    def begin(self, model: str, body: dict[str, Any]) -> None:
        self.by_model.setdefault(model, _Counts()).requests += 1
        self.last_request[model] = body
        self.seen[model] = self.seen.get(model, 0) + 1

    def end(self, model: str, outcome: str, epoch: int | None = None) -> None:
        """`outcome`: "completed", "cancelled" (the client went away) or "errors"."""
        if epoch is not None and epoch != self.epoch:
            return
        for counts in (self.totals, self.by_model.setdefault(model, _Counts())):
            setattr(counts, outcome, getattr(counts, outcome) + 1)

    def should_fail(self, model: str, behaviour: SimBehaviour) -> int | None:
        if behaviour.fail_first:
            return (behaviour.status or 500) if self.seen.get(model, 0) <= behaviour.fail_first else None
        return behaviour.status

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.totals.requests,
            "active": self.active,
            "completed": self.totals.completed,
            "cancelled": self.totals.cancelled,
            "errors": self.totals.errors,
            "by_model": {model: asdict(counts) for model, counts in self.by_model.items()},
        }
