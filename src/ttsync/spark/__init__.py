"""ttsync on Apache Spark: the `spark` source kind and identity, report and diff on the executors.

Needs the optional extra `pip install 'ttsync[spark]'` (pyspark) and a Java runtime. See docs/scale.md.

- `session.spark_session`: one SparkSession per process (quiet logs, no UI, temp files in a private folder).
- `source.SparkSource`: Spark SQL over tables (or Parquet files registered as tables) as a ttsync `Source`.
- `prepare.prepare_with_spark`: the identity rules with the same `Preparer`, per partition (`mapInArrow`).
- `plan.diff_in_spark`: the audience diff by digest words, adds and removes streamed to the driver.
"""
