"""A scripted agent program for `--harness=command`: it reads its prompt (the file named in its
argument; the same text is on stdin) and runs the commands it finds there, as a real agent's
shell tool would. AGENT_MODE picks a behaviour, for the fault tests:

  ok         classify (when asked) and hand off, routed by AGENT_ROUTE ("builder=reviewer,...")
  fail-once  exit 1 on the first run of a task, then behave like ok
  lazy       exit 0 without handing off
  hang       never end (until the runner stops it)
  crash      exit 3 every time
  crash-five exit 3 on the first five runs of a task, then behave like ok
  block-once on the first run of a task print "AGENT BLOCKING" and wait forever; then ok

Every run appends a line to runs.log in the working directory: `<task id> <first prompt line>`,
and one to tokens.log: `<pid> <CHATROOM_TOKEN>` (the tests check that a stop ends the process and
revokes the token).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.scripted_model import ScriptedModel


def main() -> int:
    prompt = Path(sys.argv[1]).read_text(encoding="utf-8")
    assert sys.stdin.read() == prompt, "the prompt on stdin differs from the prompt file"
    task = os.environ["CHATROOM_TASK"]
    for name in ("CHATROOM_SERVER", "CHATROOM_ROOM", "CHATROOM_ROLE", "CHATROOM_TOKEN"):
        assert os.environ.get(name), f"{name} is not set"
    log = Path("runs.log")
    earlier = (
        [line for line in log.read_text().splitlines() if line.startswith(task)]
        if log.exists()
        else []
    )
    with log.open("a") as out:
        out.write(f"{task} {os.environ['CHATROOM_ROLE']} {prompt.splitlines()[0]}\n")
    with Path("tokens.log").open("a") as out:
        out.write(f"{os.getpid()} {os.environ['CHATROOM_TOKEN']}\n")
    mode = os.environ.get("AGENT_MODE", "ok")
    if mode == "crash" or (mode == "crash-five" and len(earlier) < 5):
        print("agent: crashing on purpose", flush=True)
        return 3
    if mode == "lazy":
        print("agent: ending without a handoff", flush=True)
        return 0
    if mode == "hang" or (mode == "block-once" and not earlier):
        print("AGENT BLOCKING", flush=True)
        while True:
            time.sleep(3600)
    if mode == "fail-once" and not earlier:
        print("agent: failing the first run", flush=True)
        return 1
    route = dict(
        pair.split("=", 1) for pair in os.environ.get("AGENT_ROUTE", "").split(",") if pair
    )
    for command in ScriptedModel(route=route).plan(prompt).commands:
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
        print(done.stdout + done.stderr, flush=True)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
