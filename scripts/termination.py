"""SIGTERM and SIGHUP unwind like Ctrl-C, so the code that removes what a run made (clones, their
volumes and overlays, budget cgroups, weakened containers, a half-written results file) runs.

Python's default for both is to die on the spot: `kill`, `timeout`, a cancelled CI job or a
dropped SSH session would leave clones running and overlays in the stack's pool (on which
`pulumi destroy` then fails). The first signal raises `Terminated` in the main thread; a second
one kills at once, as the default would. A signal the caller ignores (`nohup`) stays ignored.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM or SIGHUP. A KeyboardInterrupt, so whatever already cleans up after
    Ctrl-C (every `finally`, `except KeyboardInterrupt`, subprocess killing its child) does so
    here too, and `except Exception` does not swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's code for death by this signal."""
        return 128 + self.signum


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    for each in SIGNALS:
        signal.signal(each, signal.SIG_DFL)
    raise Terminated(signum)


def unwind_on_termination() -> None:
    """Install the handlers. Python runs handlers in the main thread only, so elsewhere this
    does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return
    for each in SIGNALS:
        if signal.getsignal(each) is not signal.SIG_IGN:
            signal.signal(each, _raise_terminated)


def run_main(main: Callable[[], int]) -> int:
    """`sys.exit(run_main(main))` for a command line: the handlers, then main; a termination
    ends with the shell's code for it (143 for SIGTERM) after the clean-up has run."""
    unwind_on_termination()
    try:
        return main()
    except Terminated as terminated:
        print(f"stopped by {terminated}, after removing what this run had made", file=sys.stderr)
        return terminated.exit_code
