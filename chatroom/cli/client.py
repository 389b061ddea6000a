"""Every call to the server. Documents live in `operations/<Name>.graphql`, one operation per
file, loaded by name and sent as their file text (which the server knows as trusted documents);
no query text is written in Python.

HTTP (queries, mutations) is one JSON POST through httpx, the same attempt for the synchronous
`call` and the async `acall`: gql would add ~250 ms of imports (graphql-core, its parser) to
every one-shot command and parse a document the server parses anyway. Subscriptions use gql's
websockets transport with the graphql-transport-ws subprotocol named explicitly (gql's default
list would negotiate the legacy protocol) and the token in `connection_init`.

Failures are mapped once, here: a GraphQL error becomes `ServerRefused` (its `extensions.code`);
a network failure is retried with backoff and then becomes `Unreachable` (exit 4). gql, httpx and
websockets are imported inside the functions that use them, so `--help` and local errors never
pay for them.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from chatroom.cli.config import Target, is_loopback
from chatroom.cli.errors import CliError, NotLoggedIn, ServerRefused, Unreachable
from chatroom.documents import document_text

if TYPE_CHECKING:
    import ssl

    from gql.client import AsyncClientSession

OPERATIONS_DIR = Path(__file__).parent / "operations"
ENV_RETRY_SECONDS = "CHATROOM_RETRY_SECONDS"
# How long a one-shot command keeps retrying an unreachable server (task-complete and the
# waits use LONG_RETRY_SECONDS). CHATROOM_RETRY_SECONDS overrides both.
SHORT_RETRY_SECONDS = 10.0
LONG_RETRY_SECONDS = 60.0
HTTP_TIMEOUT = 60.0
CONNECT_TIMEOUT = 5.0
USER_AGENT = "chatroom-cli"

# "safe": the call may be repeated (a read, or a mutation with an idempotency key): retry any
# network failure. "connect": retry only when nothing reached the server (connection refused).
RetryMode = Literal["safe", "connect"]


@cache
def operation(name: str) -> str:
    """The text of `operations/<name>.graphql`, then the fragments it spreads (from
    `operations/fragments/`): composed as the trusted-document registry composes it."""
    path = OPERATIONS_DIR / f"{name}.graphql"
    try:
        return document_text(path)
    except FileNotFoundError as exc:  # a packaging mistake, not a user error
        missing = Path(str(exc.filename)).name if exc.filename else path.name
        raise CliError(f"The CLI is missing its operation file {missing}; reinstall it.") from None


@cache
def tls_context() -> ssl.SSLContext:
    """One TLS context per process, as httpx would build it (the CA bundle, SSL_CERT_FILE and
    SSL_CERT_DIR honoured). Left to httpx, every client builds its own, loading the CA bundle
    again: 10 ms a call on an idle machine, 100 ms on a busy one, paid by every call of a
    long-lived process (the daemon's reports and claims, a wait's calls)."""
    import httpx

    return httpx.create_ssl_context()


def retry_budget(default: float) -> float:
    raw = os.environ.get(ENV_RETRY_SECONDS)
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
    return default


class Backoff:
    """Delays of 0.2 s doubling to 5 s (with jitter) until `budget` seconds have passed."""

    def __init__(self, budget: float) -> None:
        self.deadline = time.monotonic() + budget
        self.delay = 0.2
        self.attempts = 0

    def next_delay(self) -> float | None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            return None
        delay = min(self.delay * random.uniform(0.8, 1.2), left)
        self.delay = min(self.delay * 2, 5.0)
        self.attempts += 1
        return delay

    def reset(self, budget: float) -> None:
        self.deadline = time.monotonic() + budget
        self.delay = 0.2
        self.attempts = 0


class RetryableError(Exception):
    """A network failure worth retrying; `reason` is one short human phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refusal_from(exc: Any) -> ServerRefused:
    """GraphQL errors (QueryRefused, or gql's TransportQueryError over websockets) ->
    ServerRefused with the first error's code and message."""
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    extensions = first.get("extensions") or {}
    code = str(extensions.get("code") or "INTERNAL")
    message = str(first.get("message") or exc)
    return ServerRefused(code, message, extensions)


class QueryRefused(Exception):
    """The server answered with GraphQL errors (`errors`: the response's list)."""

    def __init__(self, errors: list[Any]) -> None:
        super().__init__(
            str(errors[0].get("message")) if errors and isinstance(errors[0], dict) else ""
        )
        self.errors = errors


class HttpStatus(Exception):
    """The server answered an HTTP error status without GraphQL errors."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}" if text else f"HTTP {status}")
        self.status = status


class NotGraphQL(Exception):
    """A 2xx answer that is not a GraphQL response (another program on the port)."""


def answer(status: int, body: bytes) -> dict[str, Any]:
    """The `data` of one HTTP answer, or the exception that says what it was instead."""
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("errors"):
        raise QueryRefused(list(payload["errors"]))
    if status >= 400:
        raise HttpStatus(status, " ".join(body[:200].decode("utf-8", "replace").split()))
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise NotGraphQL(f"HTTP {status}, {len(body)} bytes that are not a GraphQL response")
    return data


def classify_failure(exc: BaseException, mode: RetryMode) -> RetryableError | None:
    """A network-level failure -> RetryableError if retrying is allowed in `mode`, else None
    (the caller re-raises it as Unreachable)."""
    import httpx

    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return RetryableError("connection refused")
    if isinstance(exc, httpx.TimeoutException):
        return RetryableError("no answer in time") if mode == "safe" else None
    if isinstance(exc, httpx.TransportError):
        return RetryableError("the connection broke") if mode == "safe" else None
    if isinstance(exc, HttpStatus):
        status = exc.status
        if status >= 500 or status == 429:
            return RetryableError(f"HTTP {status}") if mode == "safe" or status == 503 else None
        return None
    if isinstance(exc, OSError):
        return RetryableError("connection refused")
    return None


class Api:
    """The server, as seen by one CLI invocation."""

    def __init__(self, target: Target, *, retry_default: float = SHORT_RETRY_SECONDS) -> None:
        self.target = target
        self.retry_default = retry_default
        self.on_retry: Callable[[str, float], None] | None = None
        self._async_http: Any = None  # the open `async_session`'s client, if any

    # --- plumbing -----------------------------------------------------------------------

    def _headers(self, auth: bool) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.require_token()}"
        return headers

    def require_token(self) -> str:
        if not self.target.token:
            raise NotLoggedIn(
                f"Not logged in to {self.target.base_url}: run `chatroom auth login` (or "
                "`chatroom auth login --guest`), or set CHATROOM_TOKEN."
            )
        return self.target.token

    def _httpx_args(self) -> dict[str, Any]:
        import httpx

        return {
            "timeout": httpx.Timeout(HTTP_TIMEOUT, connect=CONNECT_TIMEOUT),
            # A proxy from the environment must never see loopback traffic (or its token).
            "trust_env": not is_loopback(self.target.base_url),
            # Plain HTTP needs no TLS context: building one loads the CA bundle (~50 ms).
            "verify": tls_context() if self.target.http_url.startswith("https:") else False,
        }

    def unreachable(self, reason: str, waited: float) -> Unreachable:
        return Unreachable(
            f"Cannot reach the chatroom server at {self.target.base_url} ({reason}; retried for "
            f"{waited:.0f} s). Start it with `chatroom serve`, or point to it with --server or "
            "CHATROOM_SERVER."
        )

    def refused(self, exc: Any) -> ServerRefused:
        refusal = refusal_from(exc)
        if refusal.code == "UNAUTHENTICATED":
            source = (
                " (the token comes from CHATROOM_TOKEN)"
                if self.target.token_source == "env"
                else ""
            )
            refusal.message = (
                f"The server refused the token{source}: {refusal.message}"
                if self.target.token
                else refusal.message
            )
        return refusal

    @staticmethod
    def _request(name: str, variables: dict[str, Any] | None) -> Any:
        """A gql request, for subscriptions (the websocket transport takes these)."""
        from gql import GraphQLRequest

        return GraphQLRequest(operation(name), variable_values=variables or None)

    @staticmethod
    def _body(name: str, variables: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"query": operation(name), "operationName": name}
        if variables:
            body["variables"] = variables
        return body

    def note_retry(self, reason: str, delay: float) -> None:
        if self.on_retry is not None:
            self.on_retry(reason, delay)

    # --- HTTP -------------------------------------------------------------------------

    def _retrier(self, mode: RetryMode, budget: float | None) -> _Retrier:
        return _Retrier(self, mode, retry_budget(self.retry_default if budget is None else budget))

    def call(
        self,
        name: str,
        variables: dict[str, Any] | None = None,
        *,
        auth: bool = True,
        retry: RetryMode = "safe",
        budget: float | None = None,
    ) -> dict[str, Any]:
        """Run one query or mutation over HTTP (synchronously) and return its `data`."""
        import httpx

        body = self._body(name, variables)
        retrier = self._retrier(retry, budget)
        with httpx.Client(headers=self._headers(auth), **self._httpx_args()) as http:
            while True:
                try:
                    response = http.post(self.target.http_url, json=body)
                    return answer(response.status_code, response.content)
                except Exception as exc:
                    delay = retrier.after(exc)
                time.sleep(delay)

    async def acall(
        self,
        name: str,
        variables: dict[str, Any] | None = None,
        *,
        auth: bool = True,
        retry: RetryMode = "safe",
        budget: float | None = None,
    ) -> dict[str, Any]:
        """`call`, for code that runs in an event loop (the waits). Inside `async_session`
        the calls share its client (and its kept-alive connection)."""
        import asyncio

        body = self._body(name, variables)
        headers = self._headers(auth)
        retrier = self._retrier(retry, budget)
        async with AsyncExitStack() as stack:
            http = self._async_http
            if http is None:
                http = await stack.enter_async_context(self._async_client())
            while True:
                try:
                    response = await http.post(self.target.http_url, json=body, headers=headers)
                    return answer(response.status_code, response.content)
                except Exception as exc:
                    delay = retrier.after(exc)
                await asyncio.sleep(delay)

    def _async_client(self) -> Any:
        import httpx

        return httpx.AsyncClient(**self._httpx_args())

    @asynccontextmanager
    async def async_session(self) -> AsyncIterator[None]:
        """One HTTP client for every `acall` made inside (in this event loop): a wait's calls
        (its role prompt, the claim, the delivery's context) then reuse one connection
        instead of building a client and connecting for each, on the delivery's path."""
        if self._async_http is not None:
            yield
            return
        async with self._async_client() as http:
            self._async_http = http
            try:
                yield
            finally:
                self._async_http = None

    # --- websockets ---------------------------------------------------------------------

    @asynccontextmanager
    async def websocket(self, *, auth: bool = True) -> AsyncIterator[AsyncClientSession]:
        """One graphql-transport-ws connection. Connection failures propagate as they are
        (the caller decides whether to reconnect: see `is_connection_error`)."""
        from gql import Client
        from gql.transport.websockets import WebsocketsTransport

        init_payload = {"authorization": f"Bearer {self.require_token()}"} if auth else None
        connect_args: dict[str, Any] = {"user_agent_header": USER_AGENT}
        if is_loopback(self.target.base_url):
            connect_args["proxy"] = None
        transport = WebsocketsTransport(
            url=self.target.ws_url,
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],  # graphql-transport-ws
            init_payload=init_payload,
            ssl=self.target.ws_url.startswith("wss://"),
            connect_timeout=CONNECT_TIMEOUT * 2,
            close_timeout=2,
            ack_timeout=CONNECT_TIMEOUT * 2,
            # Application-level pings find a dead connection (a killed server, a dropped
            # network) in under a minute even when TCP says nothing.
            ping_interval=20,
            pong_timeout=20,
            connect_args=connect_args,
        )
        async with Client(transport=transport, execute_timeout=None) as session:
            yield session

    async def subscribe(
        self, session: AsyncClientSession, name: str, variables: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Results of one subscription; a GraphQL error ends it as ServerRefused."""
        from gql.transport.exceptions import TransportQueryError

        try:
            async for result in session.subscribe(self._request(name, variables)):
                assert isinstance(result, dict)
                yield result
        except TransportQueryError as exc:
            raise self.refused(exc) from None


class _Retrier:
    """Decides, after each failed attempt, whether to wait and retry or to give up."""

    def __init__(self, api: Api, mode: RetryMode, budget: float) -> None:
        self.api = api
        self.mode = mode
        self.started = time.monotonic()
        self.backoff = Backoff(budget)

    def after(self, exc: Exception) -> float:
        """The delay before the next attempt; raises the error to report when it is over."""
        give_up: CliError
        if isinstance(exc, QueryRefused):
            refusal = self.api.refused(exc)
            if refusal.code != "RATE_LIMITED":
                raise refusal from None
            reason, give_up = "rate limited", refusal
        else:
            failure = classify_failure(exc, self.mode)
            if failure is None:
                base = self.api.target.base_url
                if isinstance(exc, HttpStatus) and exc.status < 500:
                    raise CliError(
                        f"The server at {base} answered HTTP {exc.status}: {_describe(exc)}."
                    ) from None
                if isinstance(exc, NotGraphQL):
                    raise Unreachable(
                        f"The server at {base} did not answer like a chatroom server "
                        f"({_describe(exc)}). Check --server or CHATROOM_SERVER."
                    ) from None
                raise Unreachable(
                    f"The server at {base} failed mid-request ({_describe(exc)}). Not retried: "
                    "the change may have been applied; check before running it again."
                ) from None
            reason = failure.reason
            give_up = self.api.unreachable(reason, 0)
        delay = self.backoff.next_delay()
        if delay is None:
            if isinstance(give_up, Unreachable):
                raise self.api.unreachable(reason, time.monotonic() - self.started) from None
            raise give_up from None
        self.api.note_retry(reason, delay)
        return delay


def is_connection_error(exc: BaseException) -> bool:
    """A dropped or refused websocket (worth reconnecting), as opposed to a refusal."""
    from gql.transport.exceptions import TransportError, TransportQueryError

    if isinstance(exc, TransportQueryError):
        return False
    if isinstance(exc, TransportError | OSError | TimeoutError | EOFError):
        return True
    try:
        from websockets.exceptions import WebSocketException
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, WebSocketException)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
