"""`chatroom agents run --harness=command`: the pair flow served by one runner, with a scripted
agent program doing what its prompt says."""

from __future__ import annotations

from pathlib import Path

from tests.cli.support import Cli
from tests.runner.support import agent_command, feed, handoffs, start_runner, tasks, until
from tests.support.server import LiveServer

ROUTE = {"AGENT_ROUTE": "builder=reviewer,reviewer=user"}


async def test_two_queued_requests_complete_the_pair_flow(
    live_server: LiveServer, cli: Cli, workdir: Path
) -> None:
    room = await cli.create_room()
    token = cli.token()
    runner = await start_runner(
        cli,
        room,
        "--harness=command",
        f"--command={agent_command()}",
        f"--workdir={workdir}",
        env=ROUTE,
    )
    try:
        await cli.send(room, "First: add a greeting.")
        await cli.send(room, "Second: add a farewell.")

        async def both_done() -> bool:
            return handoffs(await feed(live_server, token, room)).count(("reviewer", "user")) == 2

        await until(both_done, "both requests handed back to the user")
        assert handoffs(await feed(live_server, token, room)) == [
            ("builder", "reviewer"),
            ("reviewer", "user"),
            ("builder", "reviewer"),
            ("reviewer", "user"),
        ]
        statuses = {t["status"] for t in await tasks(live_server, token, room)}
        assert statuses == {"COMPLETED"}
        # Each task was run once, by the role it was for, in the slot's working directory.
        runs = (workdir / "runs.log").read_text().splitlines()
        assert [r.split()[1] for r in runs] == ["builder", "reviewer", "builder", "reviewer"]
        assert len({r.split()[0] for r in runs}) == 4
    finally:
        rc = await runner.stop()
    assert rc == 0, runner.out
    assert "[runner] stopped" in runner.out
