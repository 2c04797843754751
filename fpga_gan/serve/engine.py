"""The server's accelerators: opened once, one batch at a time each, behind a bounded queue.

A board runs one batch at a time, and so does a Verilator simulation; ONNX Runtime would run
several, but a page that is served by the cpu backend should behave like the board it stands in
for. Each model has one lock; a request waits for it in a worker thread (the event loop stays
free for other requests), and when more than ``max_waiting`` requests already wait, the next one
is refused with 503 rather than queued behind minutes of work.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import anyio.to_thread

from ..runtime import Accelerator

__all__ = ["Busy", "Engine", "MODELS"]

#: Zoo model of each page feature.
MODELS = {"tryon": "tryon", "editor": "editor", "designer": "designer"}

T = TypeVar("T")


class Busy(RuntimeError):
    """Too many requests already wait for this accelerator."""


class _Slot:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accelerator: Accelerator | None = None
        self.waiting = 0
        self.runs = 0


class Engine:
    """Accelerators by model name, opened on first use from ``artifacts/<model>`` (or the zoo)."""

    def __init__(self, backend: str = "auto", artifacts: Path | None = None, max_waiting: int = 8) -> None:
        self.backend, self.artifacts, self.max_waiting = backend, artifacts, max_waiting
        self._slots = {name: _Slot() for name in MODELS}
        self._count_lock = threading.Lock()

    def artifact_dir(self, model: str) -> Path:
        if self.artifacts is not None:
            return self.artifacts / MODELS[model]
        from ..artifacts import zoo_artifact         # exports the zoo model if needed (torch)

        return zoo_artifact(MODELS[model])

    def _accelerator(self, model: str) -> Accelerator:
        slot = self._slots[model]
        if slot.accelerator is None:
            slot.accelerator = Accelerator.open(self.artifact_dir(model), backend=self.backend)
        return slot.accelerator

    def open_all(self) -> None:
        """Open every model now (at start-up), so the first request does not pay for it."""
        for model in MODELS:
            with self._slots[model].lock:
                self._accelerator(model)

    async def run(self, model: str, job: Callable[[Accelerator], T]) -> tuple[T, float]:
        """``job(accelerator)`` in a worker thread once the model's accelerator is free; returns
        its result and the seconds it held the accelerator."""
        slot = self._slots[model]
        with self._count_lock:
            if slot.waiting >= self.max_waiting:
                raise Busy(f"{slot.waiting} requests already wait for the {model} accelerator; try again shortly")
            slot.waiting += 1

        def locked() -> tuple[T, float]:
            with slot.lock:
                with self._count_lock:
                    slot.waiting -= 1
                started = time.perf_counter()
                result = job(self._accelerator(model))
                slot.runs += 1
                return result, time.perf_counter() - started

        # Not cancellable: the thread always takes the lock and so always leaves the queue.
        return await anyio.to_thread.run_sync(locked)

    def health(self) -> dict[str, Any]:
        models = {}
        for name, slot in self._slots.items():
            acc = slot.accelerator
            models[name] = {"loaded": acc is not None, "runs": slot.runs, "waiting": slot.waiting,
                            **({"backend": acc.backend_name, "input": list(acc.input_spec.shape),
                                "artifact": str(acc.artifact.path)} if acc is not None else {})}
        return {"backend": self.backend, "models": models}

    def close(self) -> None:
        for slot in self._slots.values():
            with slot.lock:
                if slot.accelerator is not None:
                    slot.accelerator.close()
                    slot.accelerator = None
