"""An asyncio event loop running in a thread of its own, for asyncio clients.

Broker clients such as nats-py only speak asyncio, while the engine calls
sources and sinks from plain threads: a source's thread reads, the engine's
thread commits positions and closes. A loop that ran only inside the
source's thread would stop turning whenever that thread waits for the
engine, so acknowledgements would sit unsent and a close from another
thread would race with it. :class:`LoopThread` keeps one loop turning in a
daemon thread and lets any thread run a coroutine on it, with a deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """Owns an event loop and the daemon thread that runs it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"asyncio-{name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coroutine`` on the loop; safe to call from any thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run ``coroutine`` on the loop and wait for its result.

        Raises ``TimeoutError`` (and cancels the coroutine) when it takes
        longer than ``timeout_s`` seconds; its own exceptions pass through.
        """
        future = self.submit(coroutine)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"gave up after {timeout_s:g}s") from None

    def stop(self, timeout_s: float = 2.0) -> None:
        """Cancel what is still running, stop the loop and close it."""
        if self.loop.is_closed():
            return
        if self._thread.is_alive():
            with contextlib.suppress(TimeoutError):
                self.run(_cancel_others(), timeout_s)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self.loop.close()


async def _cancel_others() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
