"""The sample customer-360 warehouse used by the quickstart, docs and tests."""

from ttsync.sample.generator import HIGH_VALUE_THRESHOLD, apply_churn, generate

__all__ = ["HIGH_VALUE_THRESHOLD", "apply_churn", "generate"]
