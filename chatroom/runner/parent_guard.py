"""Run a program that dies with the runner: `python -m chatroom.runner.parent_guard PID ARGV...`.

The parent-death signal (PR_SET_PDEATHSIG) must be set in the child between fork and exec.
Setting it from a `preexec_fn` runs Python (ctypes, and dlopen inside it) in a child forked from
the multi-threaded runner, which can deadlock before exec when another thread held a lock at
fork time: the harness then never starts and the slot waits on it for ever (seen under load).
This guard instead starts as a fresh single-threaded process, sets the signal, checks that the
runner (PID) has not already gone, and execs the program in place, so the harness keeps this
process's pid, session and environment.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
# The codes a shell uses for a program it cannot run (126) or find (127).
CANNOT_EXECUTE = 126
NOT_FOUND = 127


def main(argv: list[str]) -> int:
    parent, program = int(argv[0]), argv[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        return 0  # the runner died before the signal was armed: nobody waits for this run
    try:
        os.execvp(program[0], program)
    except OSError as exc:
        sys.stderr.write(f"{program[0]}: {exc.strerror}\n")
        return NOT_FOUND if exc.errno == errno.ENOENT else CANNOT_EXECUTE
    return CANNOT_EXECUTE  # unreachable: execvp returns only by raising


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
