"""The neutral audience engine: prepare (identity to hashed Parquet), plan (diff against the snapshot), snapshot.

It names no destination; `ttsync.destinations.tiktok.audience` delivers a plan to TikTok."""
