"""A process's graceful stop: SIGTERM or SIGINT begins it, work in flight gets
`SHUTDOWN_GRACE_SECONDS` to finish, then what is still running is cut cleanly (rolled back and
answered 503, or put back on the queue) instead of dying with the process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any, TypeVar

from ekimo.errors import Unavailable

# After the grace, work being cut gets this long to roll back and answer before the server
# cancels what is left (an unanswered request is worse than a late 503).
CUT_MARGIN_SECONDS = 5.0
T = TypeVar("T")

STOPPING_MESSAGE = (
    "ekimo was stopping and could not finish this request in time; nothing was written: "
    "send it again"
)


class StoppedBeforeFinishing(Unavailable):
    """The process stopped while the work ran: it was rolled back."""

    def __init__(self) -> None:
        super().__init__(STOPPING_MESSAGE)


class Shutdown:
    """One per process (the container holds it). `begin` may be called from a signal handler
    running on the event loop's thread, or from the loop; it is idempotent."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self._deadline: float | None = None
        self._begun = asyncio.Event()
        self._cut = asyncio.Event()

    @property
    def begun(self) -> bool:
        return self._deadline is not None

    def begin(self) -> None:
        if self._deadline is not None:
            return
        self._deadline = time.monotonic() + self.grace_seconds
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop yet (a signal during start-up): nothing runs to cut
            return
        # A signal handler may run between any two steps of the loop: schedule, don't act.
        loop.call_soon_threadsafe(self._arm, loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._begun.set()
        loop.call_later(self.remaining(), self._cut.set)

    def remaining(self) -> float:
        """Seconds of grace left (all of it before the stop begins)."""
        if self._deadline is None:
            return self.grace_seconds
        return max(0.0, self._deadline - time.monotonic())

    async def wait_begun(self) -> None:
        await self._begun.wait()

    async def cut_at_deadline(self, work: Awaitable[T]) -> T:
        """Run `work`; if the grace ends first, cancel it, let it roll back, and raise
        `StoppedBeforeFinishing` (503)."""
        task = asyncio.ensure_future(work)
        cut = asyncio.ensure_future(self._cut.wait())
        try:
            await asyncio.wait({task, cut}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cut.cancel()
            if not task.done():
                task.cancel()
                # The answer waits for the rollback: nothing is half-written when it leaves.
                await asyncio.wait({task})
        if task.cancelled() or (cut.done() and not cut.cancelled() and task.exception()):
            raise StoppedBeforeFinishing() from None
        return task.result()


def exit_zero_when_stopped_by(*signums: int) -> None:
    """Make `signums` end the process with status 0: servers stop gracefully on them, then
    re-raise the signal to die of it (uvicorn does); a clean stop is not a failure."""

    def exit_cleanly(_signum: int, _frame: FrameType | None) -> Any:
        sys.exit(0)  # SystemExit unwinds normally: `atexit` (the embedded server's stop) runs

    for signum in signums:
        with contextlib.suppress(ValueError):  # not the main thread: the caller's signals stay
            signal.signal(signum, exit_cleanly)


def also_on_stop_signals(callback: Callable[[], None]) -> None:
    """Call `callback`, then the handler already set (a server's own), on SIGTERM and SIGINT.

    For code running inside a server that handles the signals itself (uvicorn): called from
    the app's start-up, when the server's handlers are in place."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def chained(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
            callback()
            if callable(previous):
                previous(sig, frame)
            else:  # no server handler: what the signal would have done
                signal.signal(sig, previous)
                signal.raise_signal(sig)

        with contextlib.suppress(ValueError):  # not the main thread (a test's app): left alone
            signal.signal(signum, chained)


def on_stop_signals(callback: Callable[[], None]) -> None:
    """Call `callback` on SIGTERM or SIGINT, on the running loop; a second Ctrl+C then
    interrupts at once (KeyboardInterrupt), as with uvicorn."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        loop.remove_signal_handler(signal.SIGINT)
        callback()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
