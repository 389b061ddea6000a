"""The harnesses this computer can run, as a machine reports them: each agent CLI found on PATH
with the first line of its `--version` (a short time limit: a CLI that hangs or fails still
counts as found, without a version). `command` runs any program, so it is always there."""

from __future__ import annotations

import asyncio
import contextlib
import shutil

from chatroom.runner.harnesses import NAMES, make

VERSION_TIMEOUT_SECONDS = 5.0
VERSION_WIDTH = 100


async def version_of(executable: str) -> str | None:
    try:
        proc = await asyncio.create_subprocess_exec(
            executable,
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), VERSION_TIMEOUT_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    lines = [line.strip() for line in out.decode(errors="replace").splitlines() if line.strip()]
    return lines[0][:VERSION_WIDTH] if proc.returncode == 0 and lines else None


async def detect() -> list[dict[str, str | None]]:
    """[{name, version}] for every harness this computer can run, in NAMES order."""
    found: list[tuple[str, str]] = []
    for name in NAMES:
        if name == "command":
            continue
        path = shutil.which(make(name).executable)
        if path:
            found.append((name, path))
    versions = await asyncio.gather(*(version_of(path) for _, path in found))
    harnesses: list[dict[str, str | None]] = [
        {"name": name, "version": version}
        for (name, _), version in zip(found, versions, strict=True)
    ]
    harnesses.append({"name": "command", "version": None})
    return harnesses
