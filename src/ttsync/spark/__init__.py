"""ttsync on Apache Spark: identity, report, diff and offline events on the executors (the engine parts).

Needs the optional extra `pip install 'ttsync[spark]'` (pyspark) and a Java runtime. See docs/scale.md. The
`spark` source kind itself (Spark SQL as a ttsync `Source`, and the process's one SparkSession) lives with
the other source kinds: `ttsync.sources.spark_source` and `ttsync.sources.spark_session`.

- `prepare.prepare_with_spark`: the identity rules with the same `Preparer`, per partition (`mapInArrow`).
- `plan.plan_in_spark`: the audience diff by digest words, adds and removes streamed to the driver.
- `events.stage_events_on_spark`: offline events validated, grouped and filtered by the ledger on the executors.
"""
