"""Signals a CLI process unwinds on, so `finally` blocks remove the containers it made.

The default action of SIGTERM/SIGHUP ends the process where it stands and leaves a
running container behind until the next skillyard process collects it. Raising
SystemExit instead unwinds like Ctrl-C. The exit code says how it ended: a command cut
short exits 128 + the signal's number (the shell's convention); a server asked to stop has
done nothing wrong and exits 0.
"""

from __future__ import annotations

import signal
from types import FrameType


def exit_on_signals(
    *, clean: bool = False, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)
) -> None:
    """Turn `signals` into SystemExit (0 if `clean`, else 128 + signum). A handler someone
    else installed is kept unless `clean` (a server replaces the CLI's own)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0 if clean else 128 + signum)

    for sig in signals:
        if clean or signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, handler)
