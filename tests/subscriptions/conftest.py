"""Fixtures of the live-delivery tests: every subscription test runs on both websocket
subprotocols (Strawberry's legacy ``graphql-ws`` carries subscriptions only, so mutations and
queries always go over HTTP)."""

from __future__ import annotations

import pytest

from tests.subscriptions.common import PROTOCOLS
from tests.support.gql_client import Subprotocol


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> Subprotocol:
    value: Subprotocol = request.param
    return value
