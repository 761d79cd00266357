"""pytest plugin (entry point ``pytest11``): a running Kie emulator for your DAG tests.

``kie_emulator`` gives a :class:`~airflow_provider_kie.emulator.KieEmulator` on 127.0.0.1, reset for
the test, with the Airflow connection ``kie_default`` pointing at it (through
``AIRFLOW_CONN_KIE_DEFAULT``), and Kie's doc pages read from it too (``KIE_DOCS_URL``, with a page cache
of the test's own in ``KIE_CACHE_DIR``), so no test reaches the internet::

    def test_my_dag(kie_emulator):
        kie_emulator.config.generating_seconds = 0.1
        ...  # run code that uses KieHook / the operators
        assert kie_emulator.count("createTask") == 1
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from airflow_provider_kie.emulator import KieEmulator

EMULATOR_API_KEY = "emulator-test-key-0123456789abcdef"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for servers, or a refused connection)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def kie_emulator_server() -> Iterator[KieEmulator]:
    """One emulator for the whole session; prefer ``kie_emulator``, which resets it per test."""
    with KieEmulator() as emulator:
        yield emulator


@pytest.fixture
def kie_emulator(
    kie_emulator_server: KieEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> KieEmulator:
    """The emulator, reset, with connection ``kie_default`` and Kie's doc pages pointing at it."""
    from airflow_provider_kie import pages

    kie_emulator_server.reset()
    monkeypatch.setenv("AIRFLOW_CONN_KIE_DEFAULT", kie_emulator_server.connection_uri(EMULATOR_API_KEY))
    monkeypatch.setenv(pages.DOCS_URL_ENV, kie_emulator_server.url)
    monkeypatch.setenv(pages.CACHE_DIR_ENV, str(tmp_path_factory.mktemp("kie-cache")))
    pages.forget()
    return kie_emulator_server
