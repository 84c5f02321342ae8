"""Fixtures shared by the test files. Keep each one small and documented here; helpers go in modules.

- ``fault_server``: a started ``faultserver.FaultServer`` on 127.0.0.1 (plain HTTP), stopped after the
  test. Script it with ``fault_server.reply(Reply(...))`` / ``.always(...)`` and read
  ``fault_server.received``. See tests/faultserver.py for the TLS and refused-connection helpers.
- ``v1``: that server's ``/v1`` base URL, the endpoint a client is given.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faultserver import FaultServer


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture
def v1(fault_server: FaultServer) -> str:
    return fault_server.url_for("/v1")
