"""The agent's loop: `wait-for-message`, `task-complete`, and `task-started` (classification)."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from chatroom.cli import config
from chatroom.cli.client import LONG_RETRY_SECONDS, Api
from chatroom.cli.common import (
    JsonOpt,
    MessageFileOpt,
    MessageOpt,
    RoleOpt,
    RoomArg,
    ServerOpt,
    WithContentOpt,
    api,
    role_name,
    setup,
)
from chatroom.cli.durations import parse_duration
from chatroom.cli.errors import LocalInputError, ServerRefused, Unreachable
from chatroom.cli.message_input import Body, read_body
from chatroom.cli.output import (
    TERMINATOR,
    classify_cmd,
    commands,
    complete_cmd,
    echo,
    echo_err,
    emit_json,
    q,
    single_quoted,
    wait_cmd,
)
from chatroom.cli.render import (
    CLASSIFICATIONS,
    Chain,
    calm_block,
    delivery_json,
    delivery_text,
    handoff_lines,
    team_of,
    wait_json,
)
from chatroom.guidance import USER, route

TimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        "--duration",
        help="Stop waiting after this long (90s, 30m, 2h); default: wait until work arrives. "
        "task-complete, task-started and prompt repeat it in the wait command they print.",
        show_default=False,
    ),
]


# --- wait-for-message -----------------------------------------------------------------------


def wait_for_message(
    room_id: RoomArg,
    role: RoleOpt,
    timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
    server: ServerOpt = None,
    with_content: WithContentOpt = False,
) -> None:
    """Wait for your next task: blocks until one arrives, claims it, prints it, exits."""
    options = setup(json_out, server, with_content)
    role = role_name(role)
    seconds = parse_duration(timeout) if timeout else None
    until = f", or for {timeout}" if timeout else ""
    echo_err(
        f"waiting as {role} in {room_id} ... (this call blocks until a task arrives{until}; "
        "a newer waiter for the same role takes over and ends this one)"
    )
    from chatroom.cli.live import Waiter, run_wait

    client = Api(options.target, retry_default=LONG_RETRY_SECONDS)
    waiter = Waiter(client, room_id, role)
    outcome = run_wait(waiter, seconds)
    role = waiter.role
    if outcome.event == "task" and outcome.delivery is not None and waiter.info is not None:
        facts = outcome.context or client.call(
            "DeliveryContext", {"chatroomId": room_id, "role": role}
        )
        team = team_of(room_id, facts["chatroom"])
        chain = Chain.of(facts)
        style = commands(timeout)
        if options.json:
            emit_json(
                delivery_json(
                    team,
                    role,
                    outcome.delivery,
                    chain,
                    style,
                    with_content=options.with_content,
                )
            )
            return
        base = options.target.base_url
        first = not config.seen_marker(base, room_id, role).exists()
        echo(delivery_text(team, role, outcome.delivery, chain, style, intro=first))
        if first:
            config.mark_seen(base, room_id, role)
        return
    message = (outcome.delivery or {}).get("message")
    if options.json:
        emit_json(
            wait_json(
                outcome.event,
                room_id,
                role,
                info=waiter.info,
                message=message,
                with_content=options.with_content,
                timeout=timeout,
            )
        )
        return
    echo(
        calm_block(
            outcome.event,
            room_id,
            role,
            detail=outcome.detail,
            message=message,
            timeout=timeout,
        )
    )


# --- task-complete --------------------------------------------------------------------------

NextRoleOpt = Annotated[
    str,
    typer.Option(
        "--next-role", help="Who receives the work next (a team role, or user).", show_default=False
    ),
]


def _retry_command(
    room_id: str, role: str, target: str, body: Body, timeout: str | None
) -> list[str]:
    head = commands(timeout).complete_head(room_id, role, target)
    if body.source == "flag":
        return [f"{head} --message={single_quoted(body.text)}"]
    if body.source == "file" and body.path:
        return [f"{head} --message-file={q(body.path)}"]
    # The real body, so the printed fix can be run as it is (a body holding the terminator line
    # was already refused, so the heredoc is safe).
    return [f"{head} << '{TERMINATOR}'", *body.text.split("\n"), TERMINATOR]


def _valid_targets(client: Api, room_id: str, role: str, exc: ServerRefused) -> list[str]:
    try:
        info = client.call("RolePrompt", {"chatroomId": room_id, "role": role}, budget=2.0)[
            "rolePrompt"
        ]
        return list(info["allowedTargets"])
    except Exception:
        allowed = exc.extensions.get("allowed")
        return [a for a in allowed if a != role] if isinstance(allowed, list) else []


def _refusal(
    client: Api,
    exc: ServerRefused,
    room_id: str,
    role: str,
    target: str,
    body: Body,
    timeout: str | None,
) -> ServerRefused:
    """Turn a refused handoff into: what failed, "Nothing was sent." (a refusal changes
    nothing), and where it helps the valid targets and a corrected command."""
    field_name = exc.extensions.get("field")
    lines: list[str] = []
    targets: list[str] | None = None
    retry: list[str] = []
    if exc.code == "NOT_TASK_HOLDER":
        retry = [wait_cmd(room_id, role, timeout)]
        lines.append(
            f"You hold no task to hand off as {q(role)}. Get your task (back) first; run this "
            "now, in the foreground:"
        )
    elif exc.code == "BAD_USER_INPUT" and field_name == "senderRole":
        allowed = exc.extensions.get("allowed") or []
        if allowed:
            lines.append(
                f"Team roles: {', '.join(q(a) for a in allowed)}. Use your own role in --role."
            )
    elif exc.code == "HANDOFF_NOT_ALLOWED" or (
        exc.code == "BAD_USER_INPUT" and field_name == "targetRole"
    ):
        targets = _valid_targets(client, room_id, role, exc)
        suggested = exc.extensions.get("suggestedTarget")
        if not isinstance(suggested, str) or suggested not in targets:
            suggested = next((t for t in targets if t != target), None)
        if targets:
            lines.append(f"Valid targets for {q(role)}: {', '.join(q(t) for t in targets)}.")
        if suggested:
            lines.append("Run this instead:")
            retry = _retry_command(room_id, role, suggested, body, timeout)
    exc.message = f"{exc.message} Nothing was sent."
    exc.lines = lines + retry
    exc.details = {"valid_targets": targets, "retry_cmd": "\n".join(retry) or None}
    return exc


def task_complete(
    room_id: RoomArg,
    role: RoleOpt,
    next_role: NextRoleOpt,
    message: MessageOpt = None,
    message_file: MessageFileOpt = None,
    timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
    server: ServerOpt = None,
) -> None:
    """Finish your task and hand it off with a message (from a heredoc on stdin, --message-file
    or --message). Never waits: it ends by printing the wait command to run next."""
    options = setup(json_out, server)
    role = role_name(role)
    target = role_name(next_role)
    body = read_body(
        message,
        message_file,
        example=[
            complete_cmd(room_id, role, target, timeout),
            "<your handoff message>",
            TERMINATOR,
        ],
    )
    client = api(LONG_RETRY_SECONDS)
    key = f"cli-handoff-{uuid.uuid4()}"  # one per invocation: every retry reuses it
    try:
        result = client.call(
            "SendHandoff",
            {
                "input": {
                    "chatroomId": room_id,
                    "senderRole": role,
                    "content": body.text,
                    "targetRole": target,
                    "idempotencyKey": key,
                }
            },
            retry="safe",
        )["sendHandoff"]
    except ServerRefused as exc:
        raise _refusal(client, exc, room_id, role, target, body, timeout) from None
    except Unreachable as exc:
        exc.message += (
            " The handoff may not have reached it: run the same command again when the server is "
            "back (a handoff that did go through is refused the second time, never sent twice)."
        )
        raise
    done = result["completedTasks"][0]["id"] if result["completedTasks"] else None
    sent = result["message"]
    new_task = result.get("newTask") or {}
    wait = wait_cmd(room_id, role, timeout)
    if options.json:
        emit_json(
            {
                "event": "handed_off",
                "room_id": room_id,
                "role": role,
                "task_id": done,
                "handoff_message_id": sent["id"],
                "target": target,
                "new_task_id": new_task.get("id"),
                "lines": body.lines,
                "chars": body.chars,
                "wait_cmd": wait,
            }
        )
        return
    echo(
        f"Task {q(done or '-')} handed off to {q(target)} "
        f"(message {q(sent['id'])}, {body.lines} line{'s' if body.lines != 1 else ''})."
    )
    echo(
        "The task is finished, your session is not: run this now, in the foreground, to wait "
        "for your next task:"
    )
    echo(wait)


# --- task-started ---------------------------------------------------------------------------

ClassificationOpt = Annotated[
    str,
    typer.Option(
        "--classification",
        help="question, new_feature or follow_up.",
        show_default=False,
    ),
]


def task_started(
    room_id: RoomArg,
    role: RoleOpt,
    classification: ClassificationOpt,
    timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
    server: ServerOpt = None,
) -> None:
    """Classify the user's request behind your task (the entry point does this once); prints
    the handoff command that applies now."""
    options = setup(json_out, server)
    role = role_name(role)
    kind = classification.strip().lower().replace("-", "_").replace(" ", "_")
    if kind not in CLASSIFICATIONS:
        raise LocalInputError(
            f"--classification {classification!r} is not one of question, new_feature, follow_up.",
            lines=[classify_cmd(room_id, role, k, timeout) for k in CLASSIFICATIONS],
        )
    client = api()
    result = client.call(
        "ClassifyTask",
        {"input": {"chatroomId": room_id, "role": role, "classification": kind.upper()}},
    )["classifyTask"]
    effective = (result.get("effectiveClassification") or kind).lower()
    facts = client.call("DeliveryContext", {"chatroomId": room_id, "role": role})
    team = team_of(room_id, facts["chatroom"])
    # Only the user's own request is classified (the server refuses any other task), so the
    # task in hand is the chain's first, from the user.
    way = route(team, role, USER, effective, Chain.of(facts).reviewed)
    target = way.target
    style = commands(timeout)
    if options.json:
        emit_json(
            {
                "room_id": room_id,
                "role": role,
                "message_id": result["id"],
                "classification": (result.get("classification") or kind).lower(),
                "effective_classification": effective,
                "target": target,
                "complete_cmd": style.complete(room_id, role, target),
                "wait_cmd": style.wait(room_id, role),
            }
        )
        return
    inherited = (
        f" (it inherits {effective} from the request it follows)" if effective != kind else ""
    )
    echo(f"Request {q(result['id'])} classified as {kind}{inherited}.")
    echo(
        f"Do the work, then hand off to {q(target)} ({way.reason}) with this command; replace "
        f"the middle line with your message, the last line is exactly {TERMINATOR}:"
    )
    for line in handoff_lines(style, room_id, role, target):
        echo(line)
