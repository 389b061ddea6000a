"""What an agent reads when work arrives: the full delivery, per role, as a snapshot (ids, times
and the per-delivery boundary normalised), plus the rules every delivery keeps (SPEC §9)."""

from __future__ import annotations

from tests.cli.support import TERMINATOR, Cli, Delivery, normalize, parse_delivery

# Markup, quotes, a tab and terminal control sequences, on several lines.
REQUEST = 'Add a <b>bold</b> "mode" & more\n\tindented\x1b[31m red\x1b[0m\x07\nlast line'
REQUEST_PRINTED = 'Add a <b>bold</b> "mode" & more\n\tindented\\x1b[31m red\\x1b[0m\\x07\nlast line'
MAX_OVERHEAD = 40  # lines besides the body (issue 11; SPEC §7 allows 80)
# Said once in every delivery (SPEC §9): each rule, and "chain" defined where first used.
ONCE = (
    "A chain is the user's request and every handoff that followed from it",
    "Only the message body of task-complete reaches the recipient",
    "The loop never ends on its own",
    "One waiter per role: a second wait-for-message for",
    f"the last line is exactly {TERMINATOR}",
    "Lost your context?",
)

PAIR_BUILDER = """\
# You are the builder of the Pair team in chatroom 'Pair room'
You make the change: write the code and its tests, run them, and fix what fails. Hand off with what you changed, how you verified it, and anything left open.
Team, in order: builder, reviewer; builder takes the user's requests. The human is "user".
[<TS>] TASK RECEIVED as "builder" in room "<ROOM>"
task="<TASK>" from="user" resumed="no" message="<MSG>"
A chain is the user's request and every handoff that followed from it; this task starts one with the user's request below. No request is queued behind this chain.
The message, byte for byte, between the two <B> lines:
<B>
Add a <b>bold</b> "mode" & more
\tindented\\x1b[31m red\\x1b[0m\\x07
last line
<B>
Next steps:
1. Classify this request once, now; its kind decides your handoff:
chatroom task-started "<ROOM>" --role="builder" --classification="question"  # answer it directly: then hand off to "user"
chatroom task-started "<ROOM>" --role="builder" --classification="new_feature"  # something gets built: then hand off to "reviewer"
2. Do the work, then hand off with the command for its kind (task-started prints it too), as one command.
Only the message body of task-complete reaches the recipient, so make it stand on its own: what you did, how you checked it, what is left. Replace the middle line with your message, any number of lines; the last line is exactly CHATROOM_MESSAGE_END, alone at column 0.
For question:
chatroom task-complete "<ROOM>" --role="builder" --next-role="user" << 'CHATROOM_MESSAGE_END'
<your handoff message: what you did, how you checked it, what is left for them>
CHATROOM_MESSAGE_END
For new_feature:
chatroom task-complete "<ROOM>" --role="builder" --next-role="reviewer" << 'CHATROOM_MESSAGE_END'
<your handoff message: what you did, how you checked it, what is left for them>
CHATROOM_MESSAGE_END
3. Right after the handoff, run this in the foreground; it blocks until your next task:
chatroom wait-for-message "<ROOM>" --role="builder"
The loop never ends on its own: after every handoff, and after a wait that timed out, run the wait command again, until the user ends the session.
One waiter per role: a second wait-for-message for "builder" receives the role's tasks from then on, and the first one ends with a superseded notice (do not start it again).
Lost your context? `chatroom prompt "<ROOM>" --role="builder"` prints your role guidance again.
"""  # noqa: E501

PAIR_REVIEWER = """\
[<TS>] TASK RECEIVED as "reviewer" in room "<ROOM>"
task="<TASK>" from="builder" resumed="no" message="<MSG>"
A chain is the user's request and every handoff that followed from it; this task continues one with "builder"'s handoff below. 1 more request is queued behind this chain.
The message, byte for byte, between the two <B> lines:
<B>
Built it: see `src/x.py`; run $(make test) && check <b> -> ok.
<B>
Next steps:
1. Do the work, then hand off to "builder" ("builder" sent you this work, so the result goes back to them), as one command.
Only the message body of task-complete reaches the recipient, so make it stand on its own: what you did, how you checked it, what is left. Replace the middle line with your message, any number of lines; the last line is exactly CHATROOM_MESSAGE_END, alone at column 0.
chatroom task-complete "<ROOM>" --role="reviewer" --next-role="builder" << 'CHATROOM_MESSAGE_END'
<your handoff message: what you did, how you checked it, what is left for them>
CHATROOM_MESSAGE_END
2. Right after the handoff, run this in the foreground; it blocks until your next task:
chatroom wait-for-message "<ROOM>" --role="reviewer"
Also allowed: "user" (swap the --next-role value).
The loop never ends on its own: after every handoff, and after a wait that timed out, run the wait command again, until the user ends the session.
One waiter per role: a second wait-for-message for "reviewer" receives the role's tasks from then on, and the first one ends with a superseded notice (do not start it again).
Lost your context? `chatroom prompt "<ROOM>" --role="reviewer"` prints your role guidance again.
"""  # noqa: E501


def check_rules(d: Delivery, *, room: str, role: str) -> None:
    """What every delivery keeps, whatever the role."""
    assert d.head[0].endswith(f'TASK RECEIVED as "{role}" in room "{room}"')
    assert set(d.identity) == {"task", "from", "resumed", "message"}
    for sentence in ONCE:
        assert d.text.count(sentence) == 1, (sentence, d.text)
    assert "queued behind this chain" in d.head[2]
    # The wait command follows the handoff commands; the recovery line is the last.
    assert d.wait == f'chatroom wait-for-message "{room}" --role="{role}"'
    assert d.rest[-1].startswith("Lost your context? `chatroom prompt ")
    # Every printed command is at column 0 and quotes its values.
    for line in d.rest:
        if "chatroom " in line and line.lstrip().startswith("chatroom "):
            assert line.startswith("chatroom "), line
            assert f'"{room}"' in line and f'--role="{role}"' in line, line
    assert d.overhead - len(d.intro) <= MAX_OVERHEAD, d.text


def names(d: Delivery, room: str) -> dict[str, str]:
    return {room: "ROOM", d.identity["task"]: "TASK", d.identity["message"]: "MSG", d.boundary: "B"}


async def test_pair_builder_gets_a_user_request(cli: Cli) -> None:
    room = await cli.create_room("--team", "pair", "--name", "Pair room")
    sent = await cli.send(room, REQUEST)
    # The first wait of the role in this config dir says who the agent is, once.
    first = (await cli.run("wait-for-message", room, "--role", "builder", "--timeout", "30s")).ok()
    assert first.err_lines == [
        f"waiting as builder in {room} ... (this call blocks until a task arrives, or for 30s; "
        "a newer waiter for the same role takes over and ends this one)"
    ]
    d = parse_delivery(first.out)
    assert (d.identity["task"], d.identity["message"]) == (sent["task_id"], sent["message_id"])
    snapshot = normalize(first.out, names(d, room)).replace(' --timeout="30s"', "")
    assert snapshot == PAIR_BUILDER
    assert d.body == REQUEST_PRINTED
    assert list(d.classify) == ["question", "new_feature"]  # nothing to follow up yet
    assert d.handoffs == {
        "question": f'chatroom task-complete "{room}" --role="builder" --next-role="user" '
        f"--timeout=\"30s\" << '{TERMINATOR}'",
        "new_feature": f'chatroom task-complete "{room}" --role="builder" '
        f'--next-role="reviewer" --timeout="30s" << \'{TERMINATOR}\'',
    }
    assert len(d.intro) == 3
    check_rules(
        parse_delivery(first.out.replace(' --timeout="30s"', "")), room=room, role="builder"
    )

    # Waiting again as the same role hands the same task back, resumed, without the intro.
    again = parse_delivery((await cli.run("wait-for-message", room, "--role", "builder")).ok().out)
    assert again.intro == []
    assert again.identity["resumed"] == "yes"
    assert again.head[3].startswith("You already started this task")
    check_rules(again, room=room, role="builder")


async def test_pair_reviewer_gets_the_builders_handoff(cli: Cli) -> None:
    room = await cli.create_room()
    await cli.send(room, "Please build it.")
    await cli.run("prompt", room, "--role", "builder")  # intro seen: not printed again
    (await cli.run("wait-for-message", room, "--role", "builder")).ok()
    (
        await cli.run("task-started", room, "--role", "builder", "--classification", "new_feature")
    ).ok()
    await cli.send(room, "And then the docs.")  # queues behind the chain
    handoff = "Built it: see `src/x.py`; run $(make test) && check <b> -> ok."
    await cli.json(
        "task-complete", room, "--role", "builder", "--next-role", "reviewer",
        "--message-file", "-", stdin=handoff.encode(),
    )  # fmt: skip
    await cli.run("prompt", room, "--role", "reviewer")
    result = (await cli.run("wait-for-message", room, "--role", "reviewer")).ok()
    d = parse_delivery(result.out)
    assert normalize(result.out, names(d, room)) == PAIR_REVIEWER
    assert d.body == handoff
    check_rules(d, room=room, role="reviewer")


async def test_squad_manager_gets_a_user_request(cli: Cli) -> None:
    room = await cli.create_room("--team", "squad")
    await cli.run("prompt", room, "--role", "manager")
    await cli.send(room, REQUEST)
    d = parse_delivery((await cli.run("wait-for-message", room, "--role", "manager")).ok().out)
    check_rules(d, room=room, role="manager")
    assert list(d.classify) == ["question", "new_feature"]
    targets = {k: v.split("--next-role=")[1].split()[0] for k, v in d.handoffs.items()}
    assert targets == {"question": '"user"', "new_feature": '"builder"'}
    assert d.others == ["architect", "frontend-designer", "reviewer", "tester"]


async def test_a_handoff_is_not_classified(cli: Cli) -> None:
    room = await cli.create_room("--team", "squad")
    await cli.send(room, "Plan it.")
    (await cli.run("wait-for-message", room, "--role", "manager")).ok()
    (
        await cli.run(
            "task-complete", room, "--role", "manager", "--next-role", "architect",
            "--message", "Design the module.",
        )
    ).ok()  # fmt: skip
    out = (await cli.run("wait-for-message", room, "--role", "architect")).ok().out
    d = parse_delivery(out)
    assert "task-started" not in out
    assert d.classify == {}
    assert list(d.handoffs) == [None]
    assert '--next-role="manager"' in d.handoffs[None]
    assert d.intro[0] == "# You are the architect of the Squad team in chatroom 'Squad'"
    check_rules(d, room=room, role="architect")
