"""ttsync.identity: turn warehouse values into the hashed identifiers TikTok matches.

Scalar: normalize / hash_identifier (InvalidIdentifier.reason says why a value is rejected).
Vectorized: Preparer(specs).process(record_batch) -> PreparedBatch(ids, rejects); report().
Rules and test vectors: docs/identity.md. Facts: reference §6.
"""

from ttsync.identity.prepare import PreparedBatch, Preparer, prepare_value
from ttsync.identity.reasons import InvalidIdentifier, Reason
from ttsync.identity.report import AutoDecision, MatchReport, TypeStats
from ttsync.identity.scalar import hash_identifier, normalize
from ttsync.identity.spec import ColumnSpec, id_schema_for

__all__ = [
    "AutoDecision",
    "ColumnSpec",
    "InvalidIdentifier",
    "MatchReport",
    "PreparedBatch",
    "Preparer",
    "Reason",
    "TypeStats",
    "hash_identifier",
    "id_schema_for",
    "normalize",
    "prepare_value",
]
