"""Audience snapshots kept with Spark's own file system: any Hadoop-compatible URI (`file://`, `hdfs://`,
`s3a://`, `abfss://`, `gs://`; credentials and endpoints come from the cluster's Hadoop configuration).

A snapshot holds what `ttsync.sync.snapshot` holds (id_schema and the digest words, hashes only), as Parquet
written by the executors. Object stores have no atomic rename, so a snapshot is a series of versions:

    <snapshot_uri>/<destination>__<orchestration>/<audience_id>/v000001/part-*.parquet, _SUCCESS
                                                               /v000002/...

The current snapshot is the highest version whose `_SUCCESS` marker exists (Spark writes it last, once every
part is in place). `commit` writes the next version only after TikTok confirmed every batch (the workflow's
`commit` task), then removes versions older than the one before it: a crash at any point leaves a complete
snapshot as the current one, and a re-run converges as with a local snapshot. Needs a classic SparkSession
(the driver's JVM reaches the file system); Spark Connect sessions keep local snapshots.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ttsync.identity.digests import KEY_COLUMNS
from ttsync.spark.plan import read_words
from ttsync.sync.plan import AudiencePlan, SyncMode

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_VERSION: Final = re.compile(r"^v(\d{6,})$")
_DONE: Final = "_SUCCESS"


def snapshot_uri(base: str, destination: str, audience_id: str) -> str:
    """The folder of one audience's snapshot versions under the source's `snapshot_uri`."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in destination)
    return f"{base.rstrip('/')}/{safe}/{audience_id}"


class SparkSnapshot:
    """The versions of one audience's snapshot at `uri`, read and written through `session`."""

    def __init__(self, session: SparkSession, uri: str) -> None:
        self.session = session
        self.uri = uri.rstrip("/")
        jvm = session._jvm  # the Hadoop FileSystem of the URI's scheme, with the cluster's configuration
        if jvm is None:
            raise ValueError("snapshots on Hadoop URIs need a classic SparkSession (not Spark Connect)")
        self._jvm: Any = jvm
        self._conf: Any = session._jsc.hadoopConfiguration()

    def _path(self, uri: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(uri)

    def _fs(self) -> Any:
        return self._path(self.uri).getFileSystem(self._conf)

    def versions(self) -> list[int]:
        """Committed versions (with their `_SUCCESS` marker), oldest first."""
        fs, root = self._fs(), self._path(self.uri)
        if not fs.exists(root):
            return []
        found = []
        for status in fs.listStatus(root):
            match = _VERSION.match(status.getPath().getName())
            if match and fs.exists(self._path(f"{self.uri}/{match.group(0)}/{_DONE}")):
                found.append(int(match.group(1)))
        return sorted(found)

    def current(self) -> str | None:
        """URI of the current snapshot, or None before the first commit."""
        versions = self.versions()
        return self._version_uri(versions[-1]) if versions else None

    def _version_uri(self, version: int) -> str:
        return f"{self.uri}/v{version:06d}"

    def distinct_ids(self, id_schemas: tuple[str, ...] | None = None) -> int:
        """Distinct identifiers (of `id_schemas`, default all) in the current snapshot; 0 without one."""
        from pyspark.sql import functions as F

        current = self.current()
        if current is None:
            return 0
        words = read_words(self.session, current)
        if id_schemas is not None:
            words = words.where(F.col("id_schema").isin(list(id_schemas)))
        return int(words.distinct().count())

    def commit(self, plan: AudiencePlan) -> int:
        """Write the snapshot TikTok now holds as the next version (call only once every batch of `plan` is
        confirmed), then drop versions before the previous one. Returns the new snapshot's identifiers."""
        versions = self.versions()
        new = read_words(self.session, _local_uri(plan.current_ids_path))
        if plan.mode is SyncMode.APPEND and not plan.full_upload and versions:
            new = new.unionByName(read_words(self.session, self._version_uri(versions[-1])))
        target = self._version_uri((versions[-1] if versions else 0) + 1)
        # Distinct words, as the local commit keeps them; Spark writes `_SUCCESS` last, after every part.
        new.select("id_schema", *KEY_COLUMNS).distinct().write.mode("overwrite").parquet(target)
        fs = self._fs()
        for old in versions[:-1]:
            fs.delete(self._path(self._version_uri(old)), True)
        return int(self.session.read.parquet(target).count())

    def delete(self) -> None:
        """Forget every version (the audience they described no longer exists in TikTok)."""
        fs = self._fs()
        if fs.exists(self._path(self.uri)):
            fs.delete(self._path(self.uri), True)


def _local_uri(path: Path) -> str:
    """A run-folder file as a URI Spark reads with its local file system (not the cluster's default one)."""
    return path.resolve().as_uri()
