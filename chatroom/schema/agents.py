"""GraphQL for machines and agent slots (SPEC §10): the types, and the Query, Mutation and
Subscription fields merged into the roots (chatroom/schema/query.py, mutation.py,
subscription.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from typing import Any

import strawberry

from chatroom.db import models
from chatroom.resolvers import agents, machine_feed, machines
from chatroom.resolvers.agents import SlotView
from chatroom.resolvers.live import Line
from chatroom.schema.context import AppInfo
from chatroom.schema.session import in_read, in_transaction

# The db enums are the GraphQL enums (their member names are the UPPER_CASE values).
strawberry.enum(models.AgentDesiredState)
strawberry.enum(models.AgentState)
AgentDesiredState = models.AgentDesiredState
AgentState = models.AgentState


def _id(value: uuid.UUID | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None


@strawberry.type
class HarnessInfo:
    name: str
    version: str | None


@strawberry.type
class AgentSlot:
    """One role's agent in a room: where and how it runs, what is desired, and what its
    daemon last reported."""

    id: strawberry.ID
    chatroom_id: strawberry.ID
    role: str
    machine_id: strawberry.ID
    machine_name: str
    harness: str = strawberry.field(description="claude, codex, opencode or command.")
    workdir: str
    model: str | None
    command: str | None
    fresh_session: bool
    task_timeout_seconds: int | None
    desired_state: AgentDesiredState
    generation: int = strawberry.field(
        description="Bumped when the daemon must start the slot afresh (restart, new config, "
        "start after stop); claimAgentSlot names the generation it starts."
    )
    state: AgentState = strawberry.field(description="As its daemon last reported it.")
    activity: str | None
    last_error: str | None
    task_id: strawberry.ID | None
    daemon_id: strawberry.ID | None = strawberry.field(
        description="The daemon that claimed the slot last (newest claim wins)."
    )
    updated_at: datetime
    reported_at: datetime | None

    @classmethod
    def of(cls, view: SlotView) -> AgentSlot:
        row = view.slot
        return cls(
            id=strawberry.ID(str(row.id)),
            chatroom_id=strawberry.ID(str(row.chatroom_id)),
            role=row.role,
            machine_id=strawberry.ID(str(row.machine_id)),
            machine_name=view.machine_name,
            harness=row.harness,
            workdir=row.workdir,
            model=row.model,
            command=row.command,
            fresh_session=row.fresh_session,
            task_timeout_seconds=row.task_timeout_seconds,
            desired_state=models.AgentDesiredState(row.desired_state),
            generation=row.generation,
            state=models.AgentState(row.state),
            activity=row.activity,
            last_error=row.last_error,
            task_id=_id(row.task_id),
            daemon_id=_id(row.daemon_id),
            updated_at=row.updated_at,
            reported_at=row.reported_at,
        )

    @classmethod
    def of_payload(cls, payload: dict[str, Any]) -> AgentSlot:
        """From an AGENT_UPDATED event's `agent` (the slot as that change left it)."""
        row = models.AgentSlot.model_validate(payload)
        return cls.of(SlotView(row, payload["machine_name"]))


def _views(views: list[SlotView]) -> list[AgentSlot]:
    return [AgentSlot.of(v) for v in views]


@strawberry.type
class Machine:
    """A computer where agents run; yours alone."""

    id: strawberry.ID
    name: str
    harnesses: list[HarnessInfo] = strawberry.field(
        description="What its daemon found on its PATH when it registered."
    )
    online: bool = strawberry.field(description="Its daemon heartbeat less than 30 s ago.")
    last_seen_at: datetime
    created_at: datetime
    slots: strawberry.Private[list[SlotView] | None] = None

    @strawberry.field(description="Its slots in rooms you may run agents in.")
    async def agents(self, info: AppInfo) -> list[AgentSlot]:
        if self.slots is not None:
            return _views(self.slots)
        _, views = await in_read(
            info, lambda tx, c: agents.machine_agents(tx, c, machine_id=self.id)
        )
        return _views(views)

    @classmethod
    def of(cls, row: models.Machine, slots: list[SlotView] | None = None) -> Machine:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            harnesses=[
                HarnessInfo(name=h["name"], version=h.get("version")) for h in row.harnesses
            ],
            online=machines.is_online(row),
            last_seen_at=row.last_seen_at,
            created_at=row.created_at,
            slots=slots,
        )


@strawberry.type
class MachineAgents:
    machine: Machine
    agents: list[AgentSlot]


@strawberry.type
class ClaimAgentSlotResult:
    slot: AgentSlot
    token: str = strawberry.field(
        description="Shown once: the harness's CHATROOM_TOKEN, acting only as the slot's role "
        "in its room. Revoked when the slot stops, is claimed again or reports STOPPED."
    )


@strawberry.input
class HarnessInfoInput:
    name: str
    version: str | None = None


@strawberry.input
class RegisterMachineInput:
    machine_id: strawberry.ID | None = strawberry.field(
        default=None, description="Yours, to update it; leave it out to register a new machine."
    )
    name: str
    harnesses: list[HarnessInfoInput]
    daemon_id: strawberry.ID = strawberry.field(description="A new uuid each daemon start.")


@strawberry.input
class MachineHeartbeatInput:
    machine_id: strawberry.ID
    daemon_id: strawberry.ID


@strawberry.input
class StartAgentsInput:
    chatroom_id: strawberry.ID
    roles: list[str] | None = strawberry.field(
        default=None, description="Default (null or empty): every role of the team."
    )
    machine_id: strawberry.ID
    harness: str = strawberry.field(description="claude, codex, opencode or command.")
    workdir: str = strawberry.field(description="An absolute path on the machine.")
    model: str | None = None
    command: str | None = strawberry.field(
        default=None, description="With harness command (only): the program template."
    )
    fresh_session: bool = False
    task_timeout_seconds: int | None = None


@strawberry.input
class AgentsInput:
    chatroom_id: strawberry.ID
    roles: list[str] | None = strawberry.field(
        default=None, description="Default: every slot of the room you may manage."
    )


@strawberry.input
class ClaimAgentSlotInput:
    slot_id: strawberry.ID
    daemon_id: strawberry.ID
    generation: int


@strawberry.input
class ReportAgentStateInput:
    slot_id: strawberry.ID
    daemon_id: strawberry.ID
    generation: int = strawberry.field(
        description="The generation the daemon claimed (claimAgentSlot's slot.generation): a "
        "report about an older claim is refused with CONFLICT."
    )
    state: AgentState
    activity: str | None = strawberry.field(
        default=None, description="Cut to 200 characters (with an ellipsis)."
    )
    last_error: str | None = strawberry.field(
        default=None, description="Cut to 2000 characters (with an ellipsis)."
    )
    task_id: strawberry.ID | None = None


@strawberry.type
class AgentsQuery:
    @strawberry.field(description="Your machines, oldest first.")
    async def machines(self, info: AppInfo) -> list[Machine]:
        rows = await in_read(info, lambda tx, c: machines.list_machines(tx, c))
        return [Machine.of(r) for r in rows]

    @strawberry.field(description="One of your machines (null if it is not yours).")
    async def machine(self, info: AppInfo, id: strawberry.ID) -> Machine | None:
        row = await in_read(info, lambda tx, c: machines.find_machine(tx, c, machine_id=id))
        return Machine.of(row) if row else None


@strawberry.type
class AgentsMutation:
    @strawberry.mutation(
        description="A daemon registers its computer (or, with machineId, updates it)."
    )
    async def register_machine(self, info: AppInfo, input: RegisterMachineInput) -> Machine:
        found = [machines.HarnessInfo(h.name, h.version) for h in input.harnesses]
        row = await in_transaction(
            info,
            lambda tx, c: machines.register_machine(
                tx,
                c,
                machine_id=input.machine_id,
                name=input.name,
                harnesses=found,
                daemon=input.daemon_id,
            ),
        )
        return Machine.of(row)

    @strawberry.mutation(description="The daemon is alive (online while it heartbeats).")
    async def machine_heartbeat(self, info: AppInfo, input: MachineHeartbeatInput) -> Machine:
        row = await in_transaction(
            info,
            lambda tx, c: machines.machine_heartbeat(
                tx, c, machine_id=input.machine_id, daemon=input.daemon_id
            ),
        )
        return Machine.of(row)

    @strawberry.mutation(
        description="Run the room's roles (default: all) on your machine. Needs the right to "
        "steer the room (owner or member)."
    )
    async def start_agents(self, info: AppInfo, input: StartAgentsInput) -> list[AgentSlot]:
        views = await in_transaction(
            info,
            lambda tx, c: agents.start_agents(
                tx,
                c,
                chatroom_id=input.chatroom_id,
                roles=input.roles,
                machine_id=input.machine_id,
                harness=input.harness,
                workdir=input.workdir,
                model=input.model,
                command=input.command,
                fresh_session=input.fresh_session,
                task_timeout_seconds=input.task_timeout_seconds,
            ),
        )
        return _views(views)

    @strawberry.mutation(
        description="Stop agents (the room's owner, or the owner of the machine they run on)."
    )
    async def stop_agents(self, info: AppInfo, input: AgentsInput) -> list[AgentSlot]:
        views = await in_transaction(
            info,
            lambda tx, c: agents.stop_agents(
                tx, c, chatroom_id=input.chatroom_id, roles=input.roles
            ),
        )
        return _views(views)

    @strawberry.mutation(
        description="Start agents afresh (a new generation; closes an open circuit)."
    )
    async def restart_agents(self, info: AppInfo, input: AgentsInput) -> list[AgentSlot]:
        views = await in_transaction(
            info,
            lambda tx, c: agents.restart_agents(
                tx, c, chatroom_id=input.chatroom_id, roles=input.roles
            ),
        )
        return _views(views)

    @strawberry.mutation(
        description="A daemon of the slot's machine serves it now (newest claim wins) and "
        "gets the slot's token."
    )
    async def claim_agent_slot(
        self, info: AppInfo, input: ClaimAgentSlotInput
    ) -> ClaimAgentSlotResult:
        claimed = await in_transaction(
            info,
            lambda tx, c: agents.claim_slot(
                tx, c, slot_id=input.slot_id, daemon=input.daemon_id, generation=input.generation
            ),
        )
        return ClaimAgentSlotResult(slot=AgentSlot.of(claimed.view), token=claimed.token)

    @strawberry.mutation(description="The serving daemon reports the slot's state.")
    async def report_agent_state(self, info: AppInfo, input: ReportAgentStateInput) -> AgentSlot:
        view = await in_transaction(
            info,
            lambda tx, c: agents.report_state(
                tx,
                c,
                slot_id=input.slot_id,
                daemon=input.daemon_id,
                generation=input.generation,
                state=models.AgentState(input.state),
                activity=input.activity,
                last_error=input.last_error,
                task_id=input.task_id,
            ),
        )
        return AgentSlot.of(view)


@strawberry.type
class AgentsSubscription:
    @strawberry.subscription(
        description="Your machine and its slots: at once, then after every change to any of "
        "them. Slots of rooms you may no longer steer are left out (stop them)."
    )
    async def machine_agents(
        self, info: AppInfo, machine_id: strawberry.ID
    ) -> AsyncGenerator[MachineAgents, None]:
        c = info.context  # what a live subscription takes from it (as subscription._line)
        line = Line(db=c.db, hub=c.hub, feeds=c.feeds, token=c.token, seen=c.seen)
        follow = machine_feed.follow_machine(line, machine_id=machine_id)
        with c.subscription_slot():
            async with aclosing(follow) as feed:
                async for machine, views in feed:
                    yield MachineAgents(machine=Machine.of(machine, views), agents=_views(views))
