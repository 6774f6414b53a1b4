"""Makes this process's clocks run ``$TURNSTILE_CHAOS_CLOCK_RATE`` times as fast as real time.

Put on ``PYTHONPATH`` of one node only, for the clock-skew scenario: Python imports
``sitecustomize`` at start-up, before Turnstile or pysyncobj read a clock, so the node's
election timer, heartbeats, session expiry and log time all run fast. libfaketime cannot do
this for a Python process: under ``FAKETIME="+0 x3"`` a ``threading.Event.wait(1.0)`` never
returns (libfaketime 0.9.10, Debian 12), which hangs every thread that waits with a timeout.
Waits here still take real time; every clock a wait is measured against runs fast, as on a
machine whose timer runs fast.
"""

import os
import time

_RATE = float(os.environ["TURNSTILE_CHAOS_CLOCK_RATE"])
_real_clock_gettime = time.clock_gettime
_real_monotonic = time.monotonic
_real_time = time.time
_origin = {
    clock: _real_clock_gettime(clock)
    for clock in (time.CLOCK_MONOTONIC, time.CLOCK_MONOTONIC_RAW, time.CLOCK_REALTIME)
}
_mono_origin = _real_monotonic()
_wall_origin = _real_time()


def _fast(origin: float, real: float) -> float:
    return origin + (real - origin) * _RATE


def clock_gettime(clock: int) -> float:
    real = _real_clock_gettime(clock)
    return _fast(_origin[clock], real) if clock in _origin else real


def monotonic() -> float:
    return _fast(_mono_origin, _real_monotonic())


def wall() -> float:
    return _fast(_wall_origin, _real_time())


time.clock_gettime = clock_gettime
time.monotonic = monotonic
time.time = wall
time.monotonic_ns = lambda: int(monotonic() * 1e9)
time.time_ns = lambda: int(wall() * 1e9)
