"""`chatroom auth login | logout | status`."""

from __future__ import annotations

import socket
import sys
from typing import Annotated, Any

import typer

from chatroom.cli import config
from chatroom.cli.common import JsonOpt, ServerOpt, api, setup
from chatroom.cli.errors import CliError, NotLoggedIn, ServerRefused
from chatroom.cli.output import OPTIONS, echo, echo_err, emit_json

auth_app = typer.Typer(
    name="auth",
    help="Sign in (device login or --guest), sign out, show who you are.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _device_name() -> str:
    try:
        host = socket.gethostname()
    except OSError:  # pragma: no cover
        host = ""
    return f"chatroom CLI on {host}"[:100] if host else "chatroom CLI"


def _logged_in(user: dict[str, Any], path: Any, *, guest: bool) -> None:
    base = OPTIONS.target.base_url
    if OPTIONS.json:
        emit_json(
            {
                "server": base,
                "user_id": user["id"],
                "display_name": user["displayName"],
                "guest": guest,
                "login_file": str(path),
            }
        )
        return
    kind = "guest user" if guest else "user"
    echo(
        f"Logged in to {base} as {user['displayName']} ({kind} {user['id']}); the token is saved "
        f"in {path} (readable only by you)."
    )


@auth_app.command("login")
def login(
    guest: Annotated[
        bool, typer.Option("--guest", help="Create a guest account instead (no browser needed).")
    ] = False,
    name: Annotated[
        str | None,
        typer.Option("--name", help="With --guest: your display name.", show_default=False),
    ] = None,
    json_out: JsonOpt = False,
    server: ServerOpt = None,
) -> None:
    """Sign in: approve this CLI in the browser (device login), or create a guest account."""
    setup(json_out, server)
    client = api()
    base = OPTIONS.target.base_url
    if guest:
        data = client.call(
            "CreateGuestSession", {"displayName": name}, auth=False, retry="connect"
        )["createGuestSession"]
        path = config.save_login(base, data["token"], data["user"], guest=True)
        _logged_in(data["user"], path, guest=True)
        return
    if name is not None:
        raise CliError(
            "--name goes with --guest; a device login uses the name of the account that "
            "approves it."
        )
    request = client.call(
        "RequestCliLogin", {"deviceName": _device_name()}, auth=False, retry="connect"
    )["requestCliLogin"]
    url = base + request["verificationPath"]
    show = echo_err if OPTIONS.json else echo
    show("To sign in, open this page in a browser where you are signed in to chatroom,")
    show(f"and check that it shows the code {request['userCode']}:")
    show(url)
    show("Waiting for the approval (the code expires in 10 minutes; Ctrl-C to stop)...")
    sys.stdout.flush()
    from chatroom.cli.live import await_login

    result = await_login(client, request["requestId"])
    status = result["status"]
    if status in ("APPROVED", "COLLECTED") and result.get("token"):
        path = config.save_login(base, result["token"], result["user"], guest=False)
        _logged_in(result["user"], path, guest=False)
        return
    if status == "DENIED":
        raise NotLoggedIn(
            "The login was denied in the browser; you are not logged in. Run `chatroom auth "
            "login` again if that was a mistake.",
            code="LOGIN_DENIED",
        )
    if status == "EXPIRED":
        raise NotLoggedIn(
            "The login code expired before it was approved. Run `chatroom auth login` again.",
            code="LOGIN_EXPIRED",
        )
    raise NotLoggedIn(
        "This login was already used by another process (it carries no token now). Run "
        "`chatroom auth login` again.",
        code="LOGIN_USED",
    )


@auth_app.command("logout")
def logout(json_out: JsonOpt = False, server: ServerOpt = None) -> None:
    """Sign out: revoke this token on the server, then delete it from the login file."""
    setup(json_out, server)
    target = OPTIONS.target
    revoked = False
    session_id = None
    if target.token:
        try:
            data = api().call("RevokeSession")["revokeSession"]
            revoked = True
            session_id = data["id"]
        except ServerRefused as exc:
            if exc.code != "UNAUTHENTICATED":
                raise
            # Already revoked or expired: nothing left to revoke; still forget it locally.
    removed = False
    stored = config.read_login_file().get("servers", {}).get(target.base_url) or {}
    if target.token_source == "login_file" or (
        target.token and stored.get("token") == target.token
    ):
        removed = config.forget_login(target.base_url)
    if OPTIONS.json:
        emit_json(
            {
                "server": target.base_url,
                "revoked": revoked,
                "session_id": session_id,
                "login_file_removed": removed,
            }
        )
        return
    if not target.token:
        echo(f"Not logged in to {target.base_url}; nothing to do.")
    elif revoked:
        where = f" and removed from {config.login_path()}" if removed else ""
        echo(f"Logged out of {target.base_url}: the token is revoked on the server{where}.")
    else:
        echo(f"The token was no longer valid on {target.base_url}; it is removed locally.")
    if target.token_source == "env":
        echo("The token came from CHATROOM_TOKEN: unset it in your environment too.")


@auth_app.command("status")
def status(json_out: JsonOpt = False, server: ServerOpt = None) -> None:
    """Show who you are signed in as, on which server."""
    setup(json_out, server)
    target = OPTIONS.target
    me = api().call("Me")["me"]
    source = "CHATROOM_TOKEN" if target.token_source == "env" else str(config.login_path())
    if OPTIONS.json:
        emit_json(
            {
                "server": target.base_url,
                "user_id": me["id"],
                "display_name": me["displayName"],
                "token_source": target.token_source,
            }
        )
        return
    echo(
        f"Logged in to {target.base_url} as {me['displayName']} (user {me['id']}); the token "
        f"comes from {source}."
    )
