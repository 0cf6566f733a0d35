"""Offline events on the Spark executors: validation, hashing, grouping into events and the ledger anti-join.

Each step runs the local path's own code, so reason codes, hashes and each event's JSON text are the local
ones (docs/events.md):

1. **validate** (`mapInArrow`): one `RowValidator` per partition, its rows kept with their hashes
   (`events.grouping.attach_hashes`: hashes, never raw emails or phones). Sequence numbers follow the query
   order across partitions, so "first value in query order" means the same thing as on one machine; the
   `auto` email and phone columns are decided once on the driver for every partition.
2. **group**: a row key used twice gets `duplicate_row_key` (a Spark window over the whole set); the rows are
   then shuffled by event (`event`, `event_id`; a row missing either is an event of its own), sorted by event
   and query order within each partition, and grouped by the local `events.grouping.EventGrouper`. An
   event's rows are thus always adjacent, so each event is whole even where the query scattered its rows
   (locally those would make separate events, docs/events.md), and a row key used twice anywhere is caught.
3. **ledger**: events TikTok already accepted are marked `in_ledger` by a join with the ledger's keys (the
   driver exports them to Parquet once, streaming: it never holds them all).

The driver then streams the events, row group by row group, into the usual delivery
(`destinations.tiktok.events.deliver_staged`, `SparkStagedEvents` being its `GroupedEvents`): rejected events are recorded, marked ones skipped without a
ledger lookup, the rest looked up once more (a run that recorded them meanwhile) and sent in batches, each
recorded in the ledger right after TikTok confirmed it: exactly once, as on the local path.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pyarrow as pa
import pyarrow.parquet as pq

from ttsync.events.columns import ColumnPlan
from ttsync.events.grouping import EVENT_COLUMNS, ID_SCHEMAS, EventGrouper, attach_hashes
from ttsync.events.ledger import Ledger
from ttsync.events.reasons import RejectReason
from ttsync.events.validate import IDENTIFIER_DELIMITER, PREPARED_SCHEMA, EventRules, RowValidator
from ttsync.identity import ColumnSpec, MatchReport
from ttsync.identity.report import AutoDecision
from ttsync.identity.rowkeys import KeyHasher
from ttsync.spark.prepare import PARTS_ROW_GROUP_BYTES, decide_auto, row_groups

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# Validated rows with their hashes (`attach_hashes`); what step 1 writes adds one last row per partition with its rows
# count and match report.
ROWS_SCHEMA: Final = pa.schema([*PREPARED_SCHEMA, ("emails", pa.string()), ("phones", pa.string())])
STAGED_SCHEMA: Final = ROWS_SCHEMA.append(pa.field("report", pa.string()))
# What step 3 writes: one row per event.
EVENTS_SCHEMA: Final = pa.schema(
    [
        ("event", pa.string()),
        ("event_id", pa.string()),
        ("row_keys", pa.list_(pa.string())),
        ("reason", pa.string()),
        ("json", pa.string()),
    ]
)
# Rows of a partition: its place in the query order is partition << 40 (a trillion rows each), unless row keys
# are positions, which must be the local path's ("#0", "#1", ...): then partitions are counted first.
_PARTITION_SHIFT: Final = 40
WORK_DIR: Final = "spark_events"


def _spark_schema(schema: pa.Schema) -> str:
    from pyspark.sql.pandas.types import from_arrow_schema

    return str(from_arrow_schema(schema).simpleString()).removeprefix("struct<").removesuffix(">")


def _validate_partitions(
    plan: ColumnPlan,
    rules: EventRules,
    *,
    key_column: str | None,
    now: datetime,
    key_hasher: KeyHasher,
    decided: Sequence[AutoDecision],
    offsets: dict[int, int] | None,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Step 1's `mapInArrow` function: one `RowValidator` per partition (the local path's validation)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        first = offsets[partition] if offsets is not None else partition << _PARTITION_SHIFT
        validator = RowValidator(
            plan,
            rules,
            key_column=key_column,
            now=now,
            key_hasher=key_hasher,
            first_seq=first,
            decided=decided,
        )
        rows = 0
        for batch in batches:
            staged = attach_hashes(validator.process(batch))
            rows += batch.num_rows
            if staged.num_rows:
                yield from staged.append_column("report", pa.nulls(staged.num_rows, pa.string())).to_batches()
        summary = json.dumps({"rows": rows, "report": validator.report().to_dict()})
        yield pa.record_batch(
            [pa.nulls(1, f.type) if f.name != "report" else pa.array([summary]) for f in STAGED_SCHEMA],
            schema=STAGED_SCHEMA,
        )

    return run


def _count_partitions(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    from pyspark import TaskContext

    context = TaskContext.get()
    rows = sum(batch.num_rows for batch in batches)
    partition = context.partitionId() if context is not None else 0
    yield pa.record_batch(
        {"partition": pa.array([partition], pa.int64()), "rows": pa.array([rows], pa.int64())}
    )


def _group_partitions(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Step 2's `mapInArrow` function: the local grouping (`EventGrouper`) over one partition's rows, which
    hold every row of their events, each event's rows adjacent (sorted by event, then query order)."""
    grouper = EventGrouper()
    for batch in batches:
        if (events := grouper.add_rows(pa.Table.from_batches([batch]).cast(ROWS_SCHEMA))) is not None:
            yield events.cast(EVENTS_SCHEMA)
    if (events := grouper.finish()) is not None:
        yield events.cast(EVENTS_SCHEMA)


def _export_ledger(ledger: Ledger, namespace: str, path: Path) -> int:
    """The namespace's accepted keys as Parquet (for Spark's join), streamed; returns how many."""
    schema = pa.schema([("event", pa.string()), ("event_id", pa.string())])
    count = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as out:
        for keys in ledger.keys(namespace):
            events, ids = zip(*keys, strict=True)
            out.write_table(pa.table([pa.array(events), pa.array(ids)], schema=schema))
            count += len(keys)
    return count


@dataclass
class SparkStagedEvents:
    """Events grouped by Spark's executors (the `GroupedEvents` of `destinations.tiktok.events`)."""

    work_dir: Path
    rows: int
    ignored: tuple[str, ...]
    match_report: MatchReport

    def chunks(self) -> Iterator[pa.RecordBatch]:
        """One row per event and `in_ledger`, streamed from the executors' files one row group at a time."""
        for table in row_groups(self.work_dir / "events", [*EVENT_COLUMNS, "in_ledger"]):
            yield from table.to_batches(max_chunksize=25_000)

    def group(self, chunk: pa.RecordBatch) -> pa.RecordBatch:
        """Grouped already: the chunk as it is."""
        return chunk

    def finish(self) -> None:
        """Nothing is carried over."""

    def report(self) -> MatchReport:
        """Identity's match report: the partitions' reports summed, duplicates counted over the whole set."""
        return self.match_report

    def cleanup(self) -> None:
        """Delete the executors' files (hashes and event fields)."""
        shutil.rmtree(self.work_dir, ignore_errors=True)


def stage_events_on_spark(
    frame: DataFrame,
    *,
    plan: ColumnPlan,
    rules: EventRules,
    key_column: str | None,
    run_dir: Path,
    ledger: Ledger,
    namespace: str,
    key_hasher: KeyHasher,
    now: datetime,
) -> SparkStagedEvents:
    """Validate, group and filter the query's events on the executors (steps 1-3 of the module docstring).

    The executors write into `run_dir/spark_events/` (on a cluster, a folder the driver and the executors
    share, like the audience path's); `key_hasher` (the workspace's) travels inside the tasks and hashes row
    keys and event ids exactly as the local path does."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    session = frame.sparkSession
    work = run_dir / WORK_DIR
    shutil.rmtree(work, ignore_errors=True)  # an earlier attempt of this run: the ledger is the memory
    work.mkdir(parents=True)
    specs = [
        ColumnSpec(c, "email", hash_state="auto", delimiter=IDENTIFIER_DELIMITER) for c in plan.emails
    ] + [ColumnSpec(c, "phone", hash_state="auto", delimiter=IDENTIFIER_DELIMITER) for c in plan.phones]
    decided = decide_auto(frame, specs, key_column)
    offsets = None
    if key_column is None:
        counts = sorted(frame.mapInArrow(_count_partitions, "partition long, rows long").collect())
        offsets, total = {}, 0
        for row in counts:
            offsets[int(row["partition"])] = total
            total += int(row["rows"])
    validate = _validate_partitions(
        plan, rules, key_column=key_column, now=now, key_hasher=key_hasher, decided=decided, offsets=offsets
    )
    frame.mapInArrow(validate, _spark_schema(STAGED_SCHEMA)).write.parquet(str(work / "staged"))
    staged = session.read.parquet(str(work / "staged"))
    reports, rows = [], 0
    for row in staged.where(F.col("report").isNotNull()).select("report").collect():  # one per partition
        summary = json.loads(row["report"])
        rows += int(summary["rows"])
        reports.append(MatchReport.model_validate(summary["report"]))
    staged = staged.where(F.col("report").isNull()).drop("report")
    match_report = MatchReport.merge(reports, duplicates=_duplicates(staged))

    # Step 2: duplicate row keys over the whole set, then one partition per event.
    duplicate = RejectReason.DUPLICATE_ROW_KEY.value
    uses = F.count(F.lit(1)).over(Window.partitionBy("row_key"))
    keyed = staged.withColumn(
        "reason", F.when(F.col("reason").isNull() & (uses > 1), F.lit(duplicate)).otherwise(F.col("reason"))
    )
    blank = (F.coalesce(F.col("event"), F.lit("")) == "") | (F.coalesce(F.col("event_id"), F.lit("")) == "")
    solo = F.when(blank, F.col("seq"))
    events = (
        keyed.repartition("event", "event_id", solo)
        .sortWithinPartitions("event", "event_id", "seq")
        .mapInArrow(_group_partitions, _spark_schema(EVENTS_SCHEMA))
    )

    # Step 3: mark what the ledger holds (only events to send can be skipped; rejected ones stay rejected).
    ready = F.col("reason").isNull()
    if _export_ledger(ledger, namespace, work / "ledger.parquet"):
        done = session.read.parquet(str(work / "ledger.parquet")).withColumn("found", F.lit(True))
        events = events.join(done, on=["event", "event_id"], how="left")
        in_ledger = ready & F.coalesce(F.col("found"), F.lit(False))
    else:
        in_ledger = F.lit(False)
    marked = events.withColumn("in_ledger", in_ledger).select(
        "event",
        "event_id",
        "row_keys",
        "reason",
        F.when(F.col("in_ledger"), None).otherwise(F.col("json")).alias("json"),  # not needed on the driver
        "in_ledger",
    )
    # Small row groups: the driver reads one at a time, so its memory does not grow with the input.
    marked.write.option("parquet.block.size", PARTS_ROW_GROUP_BYTES).parquet(str(work / "events"))
    return SparkStagedEvents(work_dir=work, rows=rows, ignored=plan.ignored, match_report=match_report)


def _duplicates(staged: DataFrame) -> dict[str, int]:
    """Valid identifiers whose digest appears earlier in the whole set, per id schema (the local count: by
    the digest's first 8 bytes), counted by Spark over every partition."""
    from pyspark.sql import functions as F

    # One job for both columns: each hash tagged with its column, counted per column.
    hashes = [
        staged.select(F.lit(column).alias("c"), F.explode(F.split(F.col(column), ",")).alias("h"))
        for column in ID_SCHEMAS
    ]
    union = hashes[0].unionByName(hashes[1]).where(F.col("h").isNotNull())
    rows = union.groupBy("c").agg(
        F.count("h").alias("n"), F.countDistinct(F.substring("h", 1, 16)).alias("d")
    )
    found = {row["c"]: int(row["n"] - row["d"]) for row in rows.collect() if row["n"]}
    return {id_schema: found[column] for column, id_schema in ID_SCHEMAS.items() if column in found}
