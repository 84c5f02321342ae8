"""A canary for the urllib3 internals http/transport.py overrides (pyproject caps urllib3 below 3 for them).

The transport swaps the connection pools through ``PoolManager.pool_classes_by_scheme``, wraps the socket
``HTTPConnection._new_conn`` opens (so that its reads carry the kernel's receive times) and, in insecure mode,
replaces ``HTTPSConnectionPool._validate_conn`` to skip urllib3's per-request warning. If urllib3 moves any of
them, the deadline watchdog, the arrival times or the insecure mode would stop working without an error: these
tests say so first.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

from pytest_llmbench.http.transport import Transport


def test_urllib3_is_the_major_version_the_overrides_were_written_for() -> None:
    assert version("urllib3").split(".")[0] == "2", "check http/transport.py's overrides, then lift the cap"


def test_pool_managers_still_choose_their_pool_class_from_pool_classes_by_scheme() -> None:
    manager = PoolManager()
    assert set(manager.pool_classes_by_scheme) == {"http", "https"}
    assert "self.pool_classes_by_scheme[" in inspect.getsource(PoolManager._new_pool)


def test_https_pools_still_validate_each_connection_through_validate_conn() -> None:
    """Our insecure pool's _validate_conn connects a closed connection and skips the rest: still all urllib3's
    does, apart from the unverified-request warning, and still called before every request."""
    assert list(inspect.signature(HTTPSConnectionPool._validate_conn).parameters) == ["self", "conn"]
    assert "self._validate_conn(conn)" in inspect.getsource(HTTPConnectionPool._make_request)
    https = inspect.getsource(HTTPSConnectionPool._validate_conn)
    assert "if conn.is_closed:" in https and "conn.connect()" in https and "InsecureRequestWarning" in https
    base = inspect.getsource(HTTPConnectionPool._validate_conn)
    assert base.rstrip().endswith('"""') or base.rstrip().endswith("pass")  # nothing our override skips


def test_connections_still_open_their_socket_through_new_conn() -> None:
    for connection in (HTTPConnection, HTTPSConnection):
        assert "self._new_conn()" in inspect.getsource(connection.connect)
    assert list(inspect.signature(HTTPConnection._new_conn).parameters) == ["self"]


def test_the_transport_installs_its_watched_pools(v1: str) -> None:
    for verify in (True, False):
        transport = Transport({}, v1, verify)
        try:
            adapter = transport._session.get_adapter(v1)
            assert isinstance(adapter, HTTPAdapter)
            manager = adapter.poolmanager
            pool = manager.connection_from_url(v1)
            assert type(pool).__module__ == "pytest_llmbench.http.watchdog"
            https = manager.connection_from_url(v1.replace("http://", "https://"))
            assert ("_validate_conn" in vars(type(https))) is (verify is False)  # overridden only when insecure
        finally:
            transport.close()
