"""Shared pytest fixtures: one emulator server per session, reset to a fresh demo seed for each test.

The suite runs on two pytest-xdist workers (`addopts` in pyproject.toml): most tests wait on subprocesses,
servers and the emulator rather than burn CPU. Session fixtures (emulator, SparkSession) start once per worker.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from audience_env import Env, make_env
from ttsync.emulator.embedded import EmulatorServer, RawApi


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """Without pytest-xdist (`-p no:xdist`) its options in pyproject's `addopts` still parse, and do nothing:
    the suite then runs in this one process, as with `-n 0`."""
    if not pluginmanager.has_plugin("xdist"):
        group = parser.getgroup("xdist (not loaded)")
        # `_addoption`: pytest reserves lowercase short options for itself and plugins; xdist registers `-n` so.
        group._addoption("-n", "--numprocesses", dest="numprocesses", default=None, help="ignored: no xdist")
        group.addoption("--dist", dest="dist", default="no", help="ignored: no xdist")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown (and unused) under `-p no:xdist`
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, except that every file using the session's SparkSession (`spark_local`) joins one
    scope: a single worker then runs the one JVM, while each other file's module fixtures start once.

    (xdist's `loadgroup` would say this with marks, but it cannot rename pytest 9's node ids, so it runs
    every test on its own there.)"""
    if config.getvalue("dist") != "loadfile":
        return None  # the scheduler the user asked for
    from xdist.scheduler import LoadFileScheduling  # type: ignore[import-untyped]

    root = config.rootpath

    class SparkAsOneFile(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            scope: str = super()._split_scope(nodeid)  # the file's path, relative to the rootdir
            return "spark" if _uses_spark(root / scope) else scope

    return SparkAsOneFile(config, log)


@functools.cache
def _uses_spark(path: Path) -> bool:
    """Whether a test file requests the `spark_local` fixture."""
    return path.suffix == ".py" and path.is_file() and "spark_local" in path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """One emulator on a free 127.0.0.1 port for the whole test session."""
    with EmulatorServer(seed="demo") as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> EmulatorServer:
    """The session emulator, reset to a fresh demo seed (also clears faults, limit counters and the clock)."""
    emulator_server.admin.reset("demo")
    return emulator_server


@pytest.fixture
def raw_api(emulator: EmulatorServer) -> Iterator[RawApi]:
    """Raw API access with the demo Operator token."""
    api = RawApi(emulator, emulator.seed.operator_token)
    yield api
    api.close()


@pytest.fixture
def analyst_api(emulator: EmulatorServer) -> Iterator[RawApi]:
    """Raw API access with the demo Analyst token."""
    api = RawApi(emulator, emulator.seed.analyst_token)
    yield api
    api.close()


@pytest.fixture
def api_with(emulator: EmulatorServer) -> Iterator[Callable[[str | None], RawApi]]:
    """Factory of raw API clients for any token (closed after the test)."""
    made: list[RawApi] = []

    def make(token: str | None) -> RawApi:
        api = RawApi(emulator, token)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


@pytest.fixture
def env(emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """A sample workspace (6,000 customers) applied and pointed at the fresh emulator."""
    made = make_env(emulator, tmp_path / "ws", monkeypatch)
    try:
        yield made
    finally:
        made.store.close()


@pytest.fixture(scope="session")
def spark_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The test session's one SparkSession on `local[2]` (a JVM takes seconds to start), its temporary files in
    a pytest folder. Skipped only where Spark cannot run (no Java runtime, or pyspark not installed)."""
    from ttsync.sources.spark_session import missing_requirement, spark_session

    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    local_dir = tmp_path_factory.mktemp("spark")
    with socket.socket() as probe:  # a free port for the Spark Connect server below
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = {
        "spark.local.dir": str(local_dir),
        "spark.sql.shuffle.partitions": "4",
        # The same JVM serves Spark Connect clients too (`sc://`, `spark_connect_url`): tests of the client
        # start no second JVM.
        "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
    }
    session = spark_session("local[2]", settings)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_connect_url(spark_local: Any) -> str:
    """`sc://` URL of the Spark Connect server inside the test session's SparkSession (127.0.0.1 only)."""
    return f"sc://127.0.0.1:{spark_local.conf.get('spark.connect.grpc.binding.port')}"
