"""Participants: who is in a room and what they are doing."""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatroom.db.models import Participant
from chatroom.resolvers.teams import role_priority


async def participants_by_room(
    tx: AsyncSession, room_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Participant]]:
    rows = await tx.exec(select(Participant).where(col(Participant.chatroom_id).in_(room_ids)))
    grouped: dict[uuid.UUID, list[Participant]] = defaultdict(list)
    for row in rows.all():
        grouped[row.chatroom_id].append(row)
    for members in grouped.values():
        members.sort(key=lambda p: role_priority(p.role))
    return grouped
