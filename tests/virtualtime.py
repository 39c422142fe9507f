"""A virtual-time asyncio loop for the emulator's tests (made by us): ``loop.time()`` is virtual and jumps to
the next timer whenever nothing else can run, so a 5 s idle timeout passes in microseconds — with the
emulator's and the client's real code, since both read time from the loop.

Work handed to threads (``asyncio.to_thread``) is real: while any is in flight the loop waits for it in real
time and does not jump, so a jump can never overtake a thread's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import httpx

from harness import RunPodClient
from harness.core.clock import LoopClock
from harness.emulator import load_config
from harness.emulator.app import create_app

T = TypeVar("T")


class _JumpSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._loop.threads:  # a thread's result is on its way: wait for it for real, do not jump
            return super().select(0.01 if timeout is None else min(timeout, 0.01))
        events = super().select(0)
        if not events and timeout is not None and timeout > 0:
            # Nothing to do until the next timer: go there at once (1 ns past it, so float rounding can never
            # leave the clock a hair short of the timer, with the loop spinning on ever smaller jumps).
            self._loop.virtual += timeout + 1e-9
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.virtual = 0.0
        self.threads = 0
        super().__init__(_JumpSelector(self))

    def time(self) -> float:
        return self.virtual

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:
        self.threads += 1
        future = super().run_in_executor(executor, func, *args)
        future.add_done_callback(lambda _: setattr(self, "threads", self.threads - 1))
        return future


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)


@contextlib.asynccontextmanager
async def in_process(**overrides: Any) -> AsyncIterator[RunPodClient]:
    """The emulator app (EmulatorConfig keys as overrides) in this loop — no server, no thread — and a client on
    the loop's clock."""
    cfg = load_config(None, **overrides).with_key()
    app = create_app(cfg)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with RunPodClient(
            cfg.endpoint_id, cfg.api_key, base_url="http://emulator/v2", transport=transport, clock=LoopClock()
        ) as rp:
            yield rp
