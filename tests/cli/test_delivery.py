"""What an agent reads when work arrives: the full delivery, per role, as a snapshot (ids and
times normalised), plus the structural rules every delivery keeps (ergonomics §c)."""

from __future__ import annotations

from tests.cli.support import TERMINATOR, Cli, normalize, section

# Enough to exercise escaping and control-character stripping, on several lines.
REQUEST = 'Add a <b>bold</b> "mode" & more\n\tindented\x1b[31m red\x1b[0m\x07\nlast line'
REQUEST_PRINTED = 'Add a &lt;b&gt;bold&lt;/b&gt; "mode" &amp; more\n\tindented red\nlast line'
MAX_OVERHEAD = 80

PAIR_BUILDER = """\
[<TS>] TASK RECEIVED as "builder" in room "<ROOM>"
task="<TASK>" from="user" resumed="no"
<task task-id="<TASK>" message-id="<MSG>" sender="user">
<message>
Add a &lt;b&gt;bold&lt;/b&gt; "mode" &amp; more
\tindented red
last line
</message>
</task>
<next-steps>
1. Do the work the message asks for (these steps are the usual pattern, not a script).
2. Classify this request from the user once, now: run the one line that fits.
chatroom task-started "<ROOM>" --role="builder" --classification="question"  # answer it directly
chatroom task-started "<ROOM>" --role="builder" --classification="new_feature"  # something gets built
chatroom task-started "<ROOM>" --role="builder" --classification="follow_up"  # it continues the previous request
3. When the work is done, hand off to "user" (the default: this request came from the user, so your answer goes back to them). A new_feature reaches the user only after "reviewer" has completed a task in this chain.
Run it as one command; only the message body reaches the recipient, so make it stand on its own. The closing line is exactly CHATROOM_MESSAGE_END, alone at column 0 (not EOF):
chatroom task-complete "<ROOM>" --role="builder" --next-role="user" << 'CHATROOM_MESSAGE_END'
<your handoff message: what you did, how you checked it, what is left for them>
CHATROOM_MESSAGE_END
4. Then run this now, in the foreground (it blocks until your next task):
chatroom wait-for-message "<ROOM>" --role="builder"
</next-steps>
<handoffs>
Also allowed: "reviewer". To hand off to one of them instead, swap the --next-role value in step 3.
</handoffs>
Only the task-complete message body reaches the recipient; nothing else you write is seen by anyone.
After task-complete, run `chatroom wait-for-message "<ROOM>" --role="builder"` in the foreground: a finished task is not a finished session.
Lost your context? `chatroom prompt "<ROOM>" --role="builder"` prints your role guidance again.
"""  # noqa: E501

PAIR_REVIEWER = """\
[<TS>] TASK RECEIVED as "reviewer" in room "<ROOM>"
task="<TASK>" from="builder" resumed="no"
<task task-id="<TASK>" message-id="<MSG>" sender="builder">
<message>
Built it: see `src/x.py`; run $(make test) &amp; check &lt;b&gt;.
</message>
</task>
<next-steps>
1. Do the work the message asks for (these steps are the usual pattern, not a script).
2. When the work is done, hand off to "builder" (the default: "builder" sent you this work, so the result goes back to them).
Run it as one command; only the message body reaches the recipient, so make it stand on its own. The closing line is exactly CHATROOM_MESSAGE_END, alone at column 0 (not EOF):
chatroom task-complete "<ROOM>" --role="reviewer" --next-role="builder" << 'CHATROOM_MESSAGE_END'
<your handoff message: what you did, how you checked it, what is left for them>
CHATROOM_MESSAGE_END
3. Then run this now, in the foreground (it blocks until your next task):
chatroom wait-for-message "<ROOM>" --role="reviewer"
</next-steps>
<handoffs>
Also allowed: "user". To hand off to one of them instead, swap the --next-role value in step 2.
</handoffs>
Only the task-complete message body reaches the recipient; nothing else you write is seen by anyone.
After task-complete, run `chatroom wait-for-message "<ROOM>" --role="reviewer"` in the foreground: a finished task is not a finished session.
Lost your context? `chatroom prompt "<ROOM>" --role="reviewer"` prints your role guidance again.
"""  # noqa: E501

SQUAD_MANAGER_HANDOFFS = (
    'Also allowed: "architect", "builder", "frontend-designer", "reviewer", "tester". To hand '
    "off to one of them instead, swap the --next-role value in step 3."
)


def check_structure(text: str, *, room: str, role: str, target: str, body: str) -> None:
    """The rules every delivery keeps, whatever the role."""
    lines = text.splitlines()
    assert lines[0].endswith(f'TASK RECEIVED as "{role}" in room "{room}"')
    assert lines[1].startswith("task=") and 'resumed="' in lines[1]
    # The message, escaped, between its delimiters, never truncated.
    assert "\n".join(section(lines, "<message>", "</message>")) == body
    steps = section(lines, "<next-steps>", "</next-steps>")
    # The heredoc: command, one placeholder line, the terminator, all at column 0.
    head = (
        f'chatroom task-complete "{room}" --role="{role}" --next-role="{target}"'
        f" << '{TERMINATOR}'"
    )
    at = steps.index(head)
    assert steps[at + 2] == TERMINATOR
    assert not steps[at + 1].startswith(" ")
    # The wait command is the last line of the next steps, after "run this now".
    assert steps[-1] == f'chatroom wait-for-message "{room}" --role="{role}"'
    assert "Then run this now, in the foreground" in steps[-2]
    # Every printed command is at column 0 and quotes its values.
    for line in lines:
        if "chatroom " in line and line.lstrip().startswith("chatroom "):
            assert line.startswith("chatroom "), line
            assert f'"{room}"' in line and f'--role="{role}"' in line, line
    # Footer: three lines, last one the recovery command.
    assert lines[-3].startswith("Only the task-complete message body reaches the recipient")
    assert lines[-2].startswith("After task-complete, run `chatroom wait-for-message")
    assert lines[-1] == (
        f'Lost your context? `chatroom prompt "{room}" --role="{role}"` prints your role '
        "guidance again."
    )
    overhead = len(lines) - len(body.splitlines())
    assert overhead <= MAX_OVERHEAD, f"{overhead} lines of fixed overhead"


async def test_pair_builder_gets_a_user_request(cli: Cli) -> None:
    room = await cli.create_room("--team", "pair")
    sent = await cli.send(room, REQUEST)
    # The first wait of the role in this config dir shows the full guidance, once.
    first = (await cli.run("wait-for-message", room, "--role", "builder", "--timeout", "30s")).ok()
    assert first.out.startswith("<role-guidance")
    guidance = section(first.out_lines, "<role-guidance", "</role-guidance>")
    assert guidance[0].startswith("# You are the builder")
    delivery = first.out.split("</role-guidance>\n", 1)[1]
    assert first.err_lines == [
        f"waiting as builder in {room} ... (one waiter per role; this call blocks until a task "
        "arrives, or for 30s)"
    ]
    names = {room: "ROOM", sent["task_id"]: "TASK", sent["message_id"]: "MSG"}
    assert normalize(delivery, names) == PAIR_BUILDER
    check_structure(delivery, room=room, role="builder", target="user", body=REQUEST_PRINTED)

    # Waiting again as the same role hands the same task back, resumed, without the guidance.
    again = (await cli.run("wait-for-message", room, "--role", "builder")).ok()
    assert not again.out.startswith("<role-guidance")
    assert f'task="{sent["task_id"]}" from="user" resumed="yes"' in again.out_lines[1]
    assert again.out_lines[2].startswith("You already started this task")
    check_structure(again.out, room=room, role="builder", target="user", body=REQUEST_PRINTED)


async def test_pair_reviewer_gets_the_builders_handoff(cli: Cli) -> None:
    room = await cli.create_room()
    await cli.send(room, "Please build it.")
    await cli.run("prompt", room, "--role", "builder")  # guidance seen: not printed again
    (await cli.run("wait-for-message", room, "--role", "builder")).ok()
    handoff = "Built it: see `src/x.py`; run $(make test) & check <b>."
    done = await cli.json(
        "task-complete", room, "--role", "builder", "--next-role", "reviewer",
        "--message-file", "-", stdin=handoff.encode(),
    )  # fmt: skip
    await cli.run("prompt", room, "--role", "reviewer")
    result = (await cli.run("wait-for-message", room, "--role", "reviewer")).ok()
    names = {room: "ROOM", done["new_task_id"]: "TASK", done["handoff_message_id"]: "MSG"}
    assert normalize(result.out, names) == PAIR_REVIEWER
    printed = "Built it: see `src/x.py`; run $(make test) &amp; check &lt;b&gt;."
    check_structure(result.out, room=room, role="reviewer", target="builder", body=printed)


async def test_squad_manager_gets_a_user_request(cli: Cli) -> None:
    room = await cli.create_room("--team", "squad")
    await cli.run("prompt", room, "--role", "manager")
    await cli.send(room, REQUEST)
    result = (await cli.run("wait-for-message", room, "--role", "manager")).ok()
    check_structure(result.out, room=room, role="manager", target="user", body=REQUEST_PRINTED)
    lines = result.out_lines
    handoffs = section(lines, "<handoffs>", "</handoffs>")
    assert handoffs == [SQUAD_MANAGER_HANDOFFS]
    steps = section(lines, "<next-steps>", "</next-steps>")
    classify = [s for s in steps if s.startswith("chatroom task-started")]
    assert [c.split("--classification=")[1].split()[0] for c in classify] == [
        '"question"',
        '"new_feature"',
        '"follow_up"',
    ]


async def test_a_non_entry_role_is_not_asked_to_classify(cli: Cli) -> None:
    room = await cli.create_room("--team", "squad")
    await cli.send(room, "Plan it.")
    (await cli.run("wait-for-message", room, "--role", "manager")).ok()
    (
        await cli.run(
            "task-complete", room, "--role", "manager", "--next-role", "architect",
            "--message", "Design the module.",
        )
    ).ok()  # fmt: skip
    result = (await cli.run("wait-for-message", room, "--role", "architect")).ok()
    assert "task-started" not in result.out
    check_structure(
        result.out.split("</role-guidance>\n", 1)[1],
        room=room,
        role="architect",
        target="manager",
        body="Design the module.",
    )
