"""Background jobs: network work in a thread, its result handed back to Blender's main thread.

``submit(label, work, on_done)`` starts ``work()`` in a daemon thread and returns at once, so the UI
never waits on the network. ``work`` must not touch bpy (Blender's data is not thread-safe); it
gets plain values captured by the caller. A bpy.app.timers callback (``tick``) polls for finished
jobs and runs ``on_done(result)`` / ``on_error(exc)`` on the main thread, where bpy may be used.

In background mode (``blender -b``) timers never fire while a script runs: the script calls
``wait_all()``, which waits for the threads and runs the same completions.

The outcome of the last job is kept as a status (text + level) on ``WindowManager.cgchat`` and
drawn in the status bar; errors never escape as tracebacks.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import bpy

POLL_S = 0.1
_jobs: list[Job] = []
_lock = threading.Lock()


class Job:
    def __init__(
        self,
        label: str,
        work: Callable[[], Any],
        on_done: Callable[[Any], None] | None,
        on_error: Callable[[BaseException], None] | None,
        quiet: bool,
    ) -> None:
        self.label = label
        self.work = work
        self.on_done = on_done
        self.on_error = on_error
        self.quiet = quiet  # no "working..." status (thumbnail downloads)
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"cgchat: {label}", daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, reported there
            self.error = exc
        finally:
            self.finished.set()


# ---------------------------------------------------------------------- status


def _state():
    wm = getattr(bpy.context, "window_manager", None) or next(iter(bpy.data.window_managers), None)
    return getattr(wm, "cgchat", None)


def set_status(text: str, level: str = "INFO") -> None:
    """Show ``text`` in the sidebar and the status bar; level INFO, WARNING or ERROR."""
    state = _state()
    if state is not None:
        state.status = text[:1000]
        state.status_level = level
        state.busy = busy()
    if level == "ERROR" or bpy.app.background:
        print(f"cgchat: {level.lower()}: {text}")
    redraw()


def redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", ()):
        screen = window.screen
        for area in getattr(screen, "areas", ()):
            if area.type in ("VIEW_3D", "STATUSBAR", "PREFERENCES"):
                area.tag_redraw()


# ---------------------------------------------------------------------- jobs


def busy() -> bool:
    with _lock:
        return any(not job.quiet for job in _jobs)


def submit(
    label: str,
    work: Callable[[], Any],
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    quiet: bool = False,
    busy_text: str = "",
) -> Job:
    """Start ``work`` in a thread. While it runs the status reads ``busy_text`` (default: the label);
    a failure without ``on_error`` reads "<label> failed: <why>"."""
    job = Job(label, work, on_done, on_error, quiet)
    with _lock:
        _jobs.append(job)
    job.thread.start()
    if not quiet:
        set_status(f"{busy_text or label}...", "INFO")
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=POLL_S, persistent=True)
    return job


def process_finished() -> int:
    """Run the completions of the jobs that are done (main thread only). Returns how many ran."""
    with _lock:
        done = [job for job in _jobs if job.finished.is_set()]
        for job in done:
            _jobs.remove(job)
    for job in done:
        _complete(job)
    if done:
        state = _state()
        if state is not None:
            state.busy = busy()
        redraw()
    return len(done)


def _complete(job: Job) -> None:
    try:
        if job.error is not None:
            if job.on_error is not None:
                job.on_error(job.error)
            else:
                set_status(f"{job.label} failed: {describe(job.error)}", "ERROR")
        elif job.on_done is not None:
            job.on_done(job.result)
    except Exception as exc:  # noqa: BLE001 - a bug in a completion must not kill the timer
        traceback.print_exc()
        set_status(f"{job.label} failed: {describe(exc)}", "ERROR")


def describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message if type(exc).__name__ == "ApiError" else f"{type(exc).__name__}: {message}"


def tick() -> float | None:
    """The bpy.app.timers callback: seconds to the next poll, or None (unregister) when idle."""
    process_finished()
    with _lock:
        return POLL_S if _jobs else None


def wait_all(timeout: float = 60.0) -> bool:
    """Wait for every job, including the ones completions start, and run the completions here.
    For background mode and tests; True when all finished in time."""
    deadline = time.monotonic() + timeout
    while True:
        with _lock:
            pending = list(_jobs)
        if not pending:
            return True
        for job in pending:
            if not job.finished.wait(max(0.0, deadline - time.monotonic())):
                return False
        process_finished()


def pending() -> int:
    with _lock:
        return len(_jobs)


def unregister() -> None:
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    with _lock:
        _jobs.clear()  # threads are daemons; their results are dropped
