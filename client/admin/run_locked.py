"""``turnstile lock NAME [--max-hold S] [--wait S] -- COMMAND...``: like ``flock(1)``.

The command runs while the lock is held, with ``TURNSTILE_LOCK_TOKEN`` (the fencing token) in
its environment. Exit status: the command's own; 7 if the lock was not acquired within
``--wait``; 8 if the lock was lost while the command ran (session lost or max-hold reached),
in which case the command was sent SIGTERM (then SIGKILL after ``--kill-after``), or before it
started (the max-hold, counted from the request, ran out during the wait).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from types import FrameType
from typing import TypeAlias

from turnstile.client.admin.context import Context
from turnstile.client.admin.printer import EXIT_LOCK_LOST, EXIT_NOT_ACQUIRED
from turnstile.client.errors import LockLostError

#: The command could not be started (as a shell says for a missing command).
EXIT_CANNOT_RUN = 127

#: How often the lock's validity is re-checked locally while the command runs.
_CHECK_INTERVAL = 0.1

#: What ``signal.signal`` returns and takes back: a function, SIG_DFL or SIG_IGN, or None (a
#: handler not installed from Python).
_SignalHandler: TypeAlias = Callable[[int, FrameType | None], object] | int | None


def run(ctx: Context, args: argparse.Namespace) -> int:
    command: list[str] = args.command
    lock = ctx.client.lock(args.name, max_hold=args.max_hold)
    try:
        acquired = lock.acquire(timeout=args.wait) if args.wait is not None else lock.acquire()
    except LockLostError as error:
        ctx.printer.error(f"turnstile: {error}; the command was not started")
        return EXIT_LOCK_LOST
    if not acquired:
        ctx.printer.error(f"turnstile: lock {args.name!r} not acquired within {args.wait}s")
        return EXIT_NOT_ACQUIRED
    session = ctx.client.session()
    try:
        child = subprocess.Popen(
            command, env={**os.environ, "TURNSTILE_LOCK_TOKEN": str(lock.token)}
        )
    except OSError as error:
        lock.release()
        ctx.printer.error(f"turnstile: cannot run {command[0]!r}: {error.strerror}")
        return EXIT_CANNOT_RUN
    forwarded = _forward_signals(child)
    lost = threading.Event()
    try:
        while child.poll() is None:
            if not lock.locked():
                lost.set()
                why = "max-hold reached" if session.alive() else "session lost"
                ctx.printer.error(
                    f"turnstile: lock {args.name!r} lost ({why}); stopping the command"
                )
                _stop(child, args.kill_after)
                break
            session.lost.wait(_CHECK_INTERVAL)
    finally:
        for signum, previous in forwarded.items():
            signal.signal(signum, previous)
    code = child.wait()
    try:
        lock.release()
    except LockLostError:
        lost.set()
    if lost.is_set():
        return EXIT_LOCK_LOST
    return code if code >= 0 else 128 - code


def _stop(child: subprocess.Popen[bytes], kill_after: float) -> None:
    child.terminate()
    try:
        child.wait(kill_after)
    except subprocess.TimeoutExpired:
        child.kill()


def _forward_signals(child: subprocess.Popen[bytes]) -> dict[signal.Signals, _SignalHandler]:
    """SIGINT/SIGTERM to us go to the command; we release the lock once it exits."""
    previous: dict[signal.Signals, _SignalHandler] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda n, _f: child.send_signal(n))
    return previous
