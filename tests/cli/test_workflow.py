"""The whole pair workflow through the CLI only, the way agents run it: every command after
`create` is taken from what the previous command printed and run verbatim through `bash -c`
(heredocs included), and every step is checked twice, in the output and through the API.

    user:     auth login --guest; create; send (request 1)
    builder:  the wait command `create` printed           -> delivery of request 1
    builder:  the printed task-started line (new_feature) -> prints the handoff to reviewer
    user:     send (request 2)                            -> QUEUED behind the running chain
    builder:  the question's heredoc (to user), by mistake -> REFUSED, nothing sent, a fix printed
    builder:  the printed fix (to reviewer)               -> handed off; prints the wait command
    builder:  that wait command                           (blocks: the baton is elsewhere)
    reviewer: the wait command `create` printed           -> delivery of the builder's handoff
    reviewer: the printed heredoc, --next-role swapped to "user" as "Also allowed" says
    builder:  its wait prints request 2 (promoted from the queue)
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path
from typing import Any

from tests.cli.support import (
    REPO_ROOT,
    TERMINATOR,
    Cli,
    Result,
    Running,
    heredoc,
    parse_delivery,
    until_waiting,
)
from tests.support.gql_client import gql_http
from tests.support.server import LiveServer

REQUEST_1 = "Add a `--verbose` flag to the export command.\nKeep the default output unchanged."
REQUEST_2 = "Then update the changelog for the export command."
BUILDER_REPORT_TO_USER = "Added --verbose to export; tests pass. (This should go to the reviewer.)"
BUILDER_HANDOFF = (
    "Added `--verbose` to `export` (src/export.py).\n"
    "Checked: pytest tests/test_export.py -> 12 passed; default output is byte-identical.\n"
    "Please review the flag's help text & the <details> block."
)
REVIEWER_REPORT = (
    "Reviewed the --verbose flag: behaviour and tests are fine.\n"
    "One nit fixed upstream in the help text. Ready for you."
)

TASKS = (
    "query($c: ID!) { tasks(chatroomId: $c) { id status createdBy assignedTo queuePosition"
    " attempt originMessage { id } sourceMessage { id senderRole type } } }"
)
MESSAGES = (
    "query($c: ID!) { messages(chatroomId: $c, first: 100) { nodes { id seq senderRole"
    " targetRole content type classification task { id status assignedTo } } } }"
)
PARTICIPANTS = "query($c: ID!) { chatroom(id: $c) { participants { role status lastSeenAt } } }"


# --- helpers ----------------------------------------------------------------------------------


async def bash_start(cli: Cli, script: str) -> Running:
    """`bash -c script` in the background, as an agent's harness runs a blocking command."""
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli.env(),
        cwd=REPO_ROOT,
    )
    return Running(("bash", "-c", script), proc, asyncio.ensure_future(proc.communicate()))


async def api(server: LiveServer, token: str, doc: str, **variables: Any) -> dict[str, Any]:
    async with gql_http(server, token) as session:
        return await session.execute(doc, **variables)


async def tasks_by_id(server: LiveServer, token: str, room: str) -> dict[str, dict[str, Any]]:
    data = await api(server, token, TASKS, c=room)
    return {t["id"]: t for t in data["tasks"]}


async def feed(server: LiveServer, token: str, room: str) -> list[dict[str, Any]]:
    """The room's messages that people and agents wrote (join notices left out)."""
    nodes = (await api(server, token, MESSAGES, c=room))["messages"]["nodes"]
    return [m for m in nodes if m["type"] in ("MESSAGE", "HANDOFF")]


async def last_seen(server: LiveServer, token: str, room: str, role: str) -> str | None:
    parts = (await api(server, token, PARTICIPANTS, c=room))["chatroom"]["participants"]
    seen = next(p["lastSeenAt"] for p in parts if p["role"] == role)
    assert seen is None or isinstance(seen, str)
    return seen


async def until_registered(
    server: LiveServer, token: str, room: str, role: str, before: str | None
) -> None:
    """Until a new waiter for the role is registered. A handoff leaves its sender WAITING with
    no waiter open, so the status alone proves nothing here; registering also stamps
    lastSeenAt (a handoff does not)."""
    deadline = asyncio.get_running_loop().time() + 15
    while await last_seen(server, token, room, role) == before:
        assert asyncio.get_running_loop().time() < deadline, f"no waiter for {role}"
        await asyncio.sleep(0.05)
    await until_waiting(server, token, room, role)


def ok(result: Result) -> Result:
    assert "Traceback" not in result.err, str(result)
    return result.ok()


# --- the workflow -----------------------------------------------------------------------------


async def test_pair_workflow_through_the_cli_only(live_server: LiveServer, tmp_path: Path) -> None:
    user = Cli(live_server.base_url, tmp_path / "config")
    login = ok(await user.run("auth", "login", "--guest", "--name", "Dana"))
    assert login.out.startswith(f"Logged in to {live_server.base_url} as Dana (guest user ")
    token = user.token()

    # --- create: the room id and one wait command per role, ready to run ---------------------
    created = ok(await user.run("create", "--name", "export flags"))
    lines = created.out_lines
    found = re.match(r'Created room "([0-9a-f-]{36})" \(export flags\): team pair', lines[0])
    assert found, created.out
    room = found.group(1)
    waits = {
        re.search(r'--role="([a-z-]+)"', line).group(1): line  # type: ignore[union-attr]
        for line in lines
        if line.startswith("chatroom wait-for-message ")
    }
    assert waits == {
        "builder": f'chatroom wait-for-message "{room}" --role="builder"',
        "reviewer": f'chatroom wait-for-message "{room}" --role="reviewer"',
    }
    assert lines[-1] == f'Then send the first request: chatroom send "{room}" --message="..."'

    # --- both agents start waiting, each with the line exactly as printed --------------------
    builder = await bash_start(user, waits["builder"])
    reviewer = await bash_start(user, waits["reviewer"])
    await until_waiting(live_server, token, room, "builder")
    await until_waiting(live_server, token, room, "reviewer")

    # --- the user's first request: the builder's wait prints it --------------------------------
    sent = (await user.run("send", room, "--message", REQUEST_1)).ok()
    found = re.match(r'Message "([0-9a-f-]{36})" sent; task "([0-9a-f-]{36})" is pending', sent.out)
    assert found, sent.out
    request_1, task_1 = found.groups()

    got = ok(await builder.finish())
    assert got.err_lines == [
        f"waiting as builder in {room} ... (this call blocks until a task arrives; a newer "
        "waiter for the same role takes over and ends this one)"
    ]
    d = parse_delivery(got.out)
    assert d.intro[0].startswith("# You are the builder of the Pair team")  # the first wait
    assert d.head[0].endswith(f'TASK RECEIVED as "builder" in room "{room}"')
    assert d.identity == {"task": task_1, "from": "user", "resumed": "no", "message": request_1}
    assert d.body == REQUEST_1
    assert "No request is queued behind this chain." in d.head[2]
    tasks = await tasks_by_id(live_server, token, room)
    assert (tasks[task_1]["status"], tasks[task_1]["assignedTo"]) == ("IN_PROGRESS", "builder")
    assert tasks[task_1]["attempt"] == 1

    # --- classify: the printed new_feature line, verbatim (its trailing `# ...` is a comment) -
    assert list(d.classify) == ["question", "new_feature"], d.text  # nothing to follow up
    new_feature = next(line for line in d.rest if '--classification="new_feature"' in line)
    classified = ok(await user.bash(new_feature))
    assert classified.out_lines[0] == f'Request "{request_1}" classified as new_feature.'
    # ... and it prints the handoff that applies now: the one the delivery showed for it.
    assert classified.out_lines[2] == d.handoffs["new_feature"]
    assert '--next-role="reviewer"' in d.handoffs["new_feature"]
    msgs = await feed(live_server, token, room)
    assert [(m["id"], m["classification"]) for m in msgs] == [(request_1, "NEW_FEATURE")]

    # --- meanwhile the user sends a second request: it queues behind the running chain --------
    queued = await user.json("send", room, "--message", REQUEST_2)
    assert (queued["task_status"], queued["queue_position"]) == ("queued", 1)
    task_2, request_2 = queued["task_id"], queued["message_id"]
    backlog = await user.json("backlog", "list", room)
    assert backlog == {"room_id": room, "tasks": []}  # queued is not backlog
    tasks = await tasks_by_id(live_server, token, room)
    assert tasks[task_2]["status"] == "QUEUED"
    assert tasks[task_2]["queuePosition"] == 1
    assert tasks[task_2]["assignedTo"] is None

    # --- the question's heredoc (to "user"), run by mistake, is refused: nothing is sent -------
    head = d.handoffs["question"]
    assert head == (
        f'chatroom task-complete "{room}" --role="builder" --next-role="user" << \'{TERMINATOR}\''
    )
    feed_before = await feed(live_server, token, room)
    refused = await user.bash(heredoc(head, BUILDER_REPORT_TO_USER))
    assert refused.rc == 1, str(refused)
    assert refused.out == ""
    err = refused.err_lines
    assert err[0].startswith("chatroom: HANDOFF_NOT_ALLOWED: "), refused.err
    assert err[0].endswith("Nothing was sent."), refused.err
    assert "reviewer" in err[0]
    assert err[1] == 'Valid targets for "builder": "reviewer", "user".'
    assert err[2] == "Run this instead:"
    fix = err[3:]
    assert fix == [
        f'chatroom task-complete "{room}" --role="builder" --next-role="reviewer" << '
        f"'{TERMINATOR}'",
        *BUILDER_REPORT_TO_USER.rstrip("\n").split("\n"),  # the refused message itself
        TERMINATOR,
    ]
    assert await feed(live_server, token, room) == feed_before
    tasks = await tasks_by_id(live_server, token, room)
    assert tasks[task_1]["status"] == "IN_PROGRESS"
    assert tasks[task_2]["status"] == "QUEUED"

    # --- the printed fix, with a fuller report for the reviewer in place of the refused one ----
    handed = ok(await user.bash("\n".join([fix[0], BUILDER_HANDOFF, fix[-1]]) + "\n"))
    out = handed.out_lines
    assert len(out) <= 5, handed.out
    found = re.match(
        rf'Task "{task_1}" handed off to "reviewer" \(message "([0-9a-f-]{{36}})", 3 lines\)\.',
        out[0],
    )
    assert found, handed.out
    handoff_1 = found.group(1)
    assert out[-1] == waits["builder"]  # the last line: the exact wait command
    assert "your session is not" in out[-2]

    # The builder runs that last line at once; it blocks (the baton is with the reviewer).
    before = await last_seen(live_server, token, room, "builder")
    builder_again = await bash_start(user, out[-1])
    await until_registered(live_server, token, room, "builder", before)

    # --- the reviewer's wait (running since the start) prints the handoff ---------------------
    got = ok(await reviewer.finish())
    d = parse_delivery(got.out)
    assert d.head[0].endswith(f'TASK RECEIVED as "reviewer" in room "{room}"')
    assert (d.identity["from"], d.identity["resumed"]) == ("builder", "no")
    task_r = d.identity["task"]
    assert d.body == BUILDER_HANDOFF  # as written: `&`, `<details>` and `->` unescaped
    assert d.identity["message"] == handoff_1
    assert "1 more request is queued behind this chain." in d.head[2]
    assert d.classify == {}  # not a request from the user
    assert d.wait == waits["reviewer"]
    tasks = await tasks_by_id(live_server, token, room)
    assert tasks[task_1]["status"] == "COMPLETED"
    assert (tasks[task_r]["status"], tasks[task_r]["assignedTo"]) == ("IN_PROGRESS", "reviewer")
    assert tasks[task_r]["originMessage"]["id"] == request_1
    assert tasks[task_r]["sourceMessage"] == {
        "id": handoff_1,
        "senderRole": "builder",
        "type": "HANDOFF",
    }
    assert tasks[task_2]["status"] == "QUEUED"

    # The default target is the sender (builder); "Also allowed" offers "user" by swapping
    # --next-role, which is what the reviewer does.
    head = d.handoffs[None]
    assert '--next-role="builder"' in head
    assert d.others == ["user"]
    to_user = head.replace('--next-role="builder"', '--next-role="user"')
    done = ok(await user.bash(heredoc(to_user, REVIEWER_REPORT)))
    out = done.out_lines
    assert len(out) <= 5, done.out
    assert out[0].startswith(f'Task "{task_r}" handed off to "user" (message "'), done.out
    handoff_2 = re.search(r'\(message "([0-9a-f-]{36})"', out[0]).group(1)  # type: ignore[union-attr]
    assert out[-1] == waits["reviewer"]
    before = await last_seen(live_server, token, room, "reviewer")
    reviewer_again = await bash_start(user, out[-1])

    # --- the queued request becomes the builder's next delivery (its wait was already open) ---
    got = ok(await builder_again.finish())
    d = parse_delivery(got.out)
    assert d.intro == []  # shown once per role and config dir
    assert d.head[0].endswith(f'TASK RECEIVED as "builder" in room "{room}"')
    assert d.identity == {"task": task_2, "from": "user", "resumed": "no", "message": request_2}
    assert d.body == REQUEST_2
    # A follow_up of request 1 is offered now; it keeps request 1's kind (new_feature).
    assert list(d.classify) == ["question", "new_feature", "follow_up"]
    assert d.handoffs["question"].endswith(f"--next-role=\"user\" << '{TERMINATOR}'")
    assert d.handoffs["follow_up"] == d.handoffs["new_feature"]

    # --- the end state, through the API ---------------------------------------------------------
    tasks = await tasks_by_id(live_server, token, room)
    assert {tid: t["status"] for tid, t in tasks.items()} == {
        task_1: "COMPLETED",
        task_r: "COMPLETED",
        task_2: "IN_PROGRESS",
    }
    assert tasks[task_2]["assignedTo"] == "builder"
    assert tasks[task_2]["originMessage"]["id"] != request_1
    msgs = await feed(live_server, token, room)
    assert [(m["senderRole"], m["targetRole"], m["type"], m["content"]) for m in msgs] == [
        ("user", "builder", "MESSAGE", REQUEST_1),
        ("user", "builder", "MESSAGE", REQUEST_2),
        ("builder", "reviewer", "HANDOFF", BUILDER_HANDOFF),
        ("reviewer", "user", "HANDOFF", REVIEWER_REPORT),
    ]
    assert [m["id"] for m in msgs][2:] == [handoff_1, handoff_2]
    assert msgs[0]["classification"] == "NEW_FEATURE"
    assert msgs[1]["task"]["id"] == task_2
    assert msgs[2]["task"]["id"] == task_r
    assert msgs[3]["task"] is None  # a handoff to the user creates no task
    # The reviewer's wait is still blocking (nothing for it); a signal ends it calmly.
    await until_registered(live_server, token, room, "reviewer", before)
    parts = (await api(live_server, token, PARTICIPANTS, c=room))["chatroom"]["participants"]
    states = {p["role"]: p["status"] for p in parts}
    assert states == {"builder": "ACTIVE", "reviewer": "WAITING"}
    # `bash -c` with one simple command execs it, so the signal reaches the CLI itself.
    reviewer_again.signal(signal.SIGTERM)
    stopped = ok(await reviewer_again.finish())
    assert stopped.out_lines[0].startswith("[EVENT: signal] "), stopped.out
    assert stopped.out_lines[-1] == waits["reviewer"]


# --- what an agent gets when it copies a refusal's fix as it is ------------------------------


async def test_a_refusals_fix_run_verbatim_never_sends_a_placeholder(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """The refusal prints "a corrected command" (SPEC §7), and agents run printed commands as
    they are (ergonomics §b15). Run verbatim, it must not hand off the literal line
    `<the same message>`: either it carries the refused message, or it is refused locally
    (exit 2, nothing sent) like the delivery's own placeholder line."""
    user = Cli(live_server.base_url, tmp_path / "config")
    ok(await user.run("auth", "login", "--guest"))
    token = user.token()
    room = (await user.json("create"))["room_id"]
    await user.send(room, "Add the export flag.")
    got = ok(await user.run("wait-for-message", room, "--role", "builder"))
    d = parse_delivery(got.out)
    ok(await user.bash(d.classify["new_feature"]))
    report = "Added the flag; 12 tests pass."
    refused = await user.bash(heredoc(d.handoffs["question"], report))
    assert refused.rc == 1 and refused.err_lines[2] == "Run this instead:", str(refused)
    fix = "\n".join(refused.err_lines[3:]) + "\n"

    verbatim = await user.bash(fix)
    handoffs = [m for m in await feed(live_server, token, room) if m["type"] == "HANDOFF"]
    sent = [m["content"] for m in handoffs]
    assert sent in ([], [report]), (
        f"the printed fix, run as printed, handed off {sent!r} (exit {verbatim.rc})"
    )
    if not sent:
        assert verbatim.rc == 2, str(verbatim)


async def test_handing_off_before_claiming_does_not_blame_a_lapsed_claim(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """An agent that runs task-complete before its wait (the task is pending for it, never
    claimed) is told to claim it; the reason must not say a claim lapsed (none was made)."""
    user = Cli(live_server.base_url, tmp_path / "config")
    ok(await user.run("auth", "login", "--guest"))
    room = (await user.json("create"))["room_id"]
    await user.send(room, "Build it.")
    ok(await user.run("wait-for-message", room, "--role", "builder"))
    ok(await user.run("task-complete", room, "--role", "builder", "--next-role", "reviewer",
                      "--message", "Built; please review."))  # fmt: skip
    early = await user.run(
        "task-complete", room, "--role", "reviewer", "--next-role", "user", "--message", "LGTM"
    )
    assert early.rc == 1, str(early)
    assert early.err_lines[0].startswith("chatroom: NOT_TASK_HOLDER: "), early.err
    assert early.err_lines[-1] == f'chatroom wait-for-message "{room}" --role="reviewer"'
    assert "lapsed" not in early.err_lines[0], early.err_lines[0]
