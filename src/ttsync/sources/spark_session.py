"""One SparkSession per process, configured for ttsync: quiet, no web UI, private temporary files."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ttsync.sources.base import SOURCE_CONFIGURATION, SourceError

if TYPE_CHECKING:  # pyspark is an optional extra
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[*]"
_LOCK = threading.Lock()
# Log4j 2 configuration: errors only (Spark's INFO/WARN lines would drown a run's output). The REPL logger at
# the root's level too: pyspark counts as an interactive shell, and Spark prints "Setting default log level
# to WARN" (two lines on stderr) when that logger's level differs from the root's.
_LOG4J = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = error
"""
# The driver JVM's stderr (its own warnings, such as "Using incubator modules", log4j's errors, and the
# executors' Python workers' stderr in local mode) goes to this file in `spark.local.dir`, not to the
# terminal: a Spark run prints what a local run prints. Failures still reach ttsync as exceptions.
JVM_LOG = "spark-jvm.log"


def missing_requirement() -> str | None:
    """Why Spark cannot start here (no pyspark, no Java), or None."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed: pip install 'ttsync[spark]'"
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and (Path(java_home) / "bin" / "java").exists()):
        return (
            "Spark needs a Java runtime (17 or later) and none was found: install one "
            "(apt-get install default-jre-headless) or set JAVA_HOME"
        )
    return None


def spark_session(
    master: str | None = None, conf: Mapping[str, str] | None = None, *, name: str = "ttsync"
) -> SparkSession:
    """The process's SparkSession, started on first use with `master` (default `local[*]`) and `conf`.

    Later calls return the same session (Spark allows one per process; settings that only apply at start are
    taken from the first call). Raises `SourceError` (configuration_error) when pyspark or Java is missing."""
    reason = missing_requirement()
    if reason:
        raise SourceError(reason, resolution_key=SOURCE_CONFIGURATION)
    from pyspark.sql import SparkSession

    master = master or DEFAULT_MASTER
    with _LOCK:
        if master.startswith("sc://"):
            # Spark Connect: a gRPC client (pyspark's `connect` extra), no JVM here; the server owns every
            # setting, and its Python workers must have ttsync installed (docs/scale.md).
            try:
                return SparkSession.builder.remote(master).getOrCreate()
            except ImportError as exc:  # the client's gRPC packages are an extra of their own
                raise SourceError(
                    f"Spark Connect ({master}) needs pyspark's client packages: pip install "
                    f"'ttsync[spark-connect]' ({exc})",
                    resolution_key=SOURCE_CONFIGURATION,
                ) from None
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        settings = dict(conf or {})
        local_dir = settings.get("spark.local.dir") or tempfile.mkdtemp(prefix="ttsync-spark-")
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        log4j = Path(local_dir) / "log4j2.properties"
        log4j.write_text(_LOG4J, encoding="utf-8")
        java_options = f"-Dlog4j2.configurationFile={log4j} -Djava.io.tmpdir={local_dir}"
        defaults = {
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.local.dir": local_dir,
            "spark.driver.extraJavaOptions": java_options,
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.sql.session.timeZone": "UTC",
            # Executors run the same interpreter (and so the same ttsync) as the driver in local mode.
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
        }
        if master.startswith("local"):
            defaults |= {
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                # One machine: a few shuffle partitions, not Spark's cluster default of 200 tiny tasks.
                "spark.sql.shuffle.partitions": str(max(4, 2 * (os.cpu_count() or 1))),
            }
            # Python workers start from the environment, not from the settings above, in local mode.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        session = _start(master, name, defaults | settings, Path(local_dir) / JVM_LOG)
        session.sparkContext.setLogLevel("ERROR")
        if "spark.local.dir" not in settings:
            atexit.register(shutil.rmtree, local_dir, True)
        atexit.register(session.stop)
        return session


def _start(master: str, name: str, settings: Mapping[str, str], jvm_log: Path) -> SparkSession:
    """Start the driver JVM with its stderr in `jvm_log` (pyspark's `popen_kwargs` hook for exactly this),
    then the session on it."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    conf = SparkConf().setMaster(master).setAppName(name).setAll(list(settings.items()))
    fd = os.open(jvm_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with os.fdopen(fd, "ab") as log:  # the JVM keeps its own copy of the descriptor
            gateway = launch_gateway(conf, popen_kwargs={"stderr": log})  # type: ignore[no-untyped-call]
    except Exception as exc:  # pyspark raises its own classes; the reason is in the JVM's log
        raise SourceError(
            f"Spark could not start its driver JVM ({exc}); its log: {jvm_log}",
            resolution_key=SOURCE_CONFIGURATION,
        ) from None
    return SparkSession(SparkContext(conf=conf, gateway=gateway))
