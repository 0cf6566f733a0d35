"""What a customer-file delivery sends: the calculate_type of its id type, its options, and its create/update
calls in order (see the table in customer_file.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from ttsync.destinations.tiktok.audience.audience import (
    MIN_USABLE_SIZE,
)
from ttsync.destinations.tiktok.audience.customer_file_parts import DEFAULT_PART_ROWS
from ttsync.destinations.tiktok.client.models.common import CalculateType
from ttsync.destinations.tiktok.schemas import CALCULATE_TYPES
from ttsync.errors import ConfigError
from ttsync.sync.plan import AudiencePlan, SyncMode

MAX_PATHS_PER_CALL: Final = 500  # file_paths maxItems of create and update (ref §2.4 step 2)
RECOMMENDED_PATHS_PER_CALL: Final = 49  # "fewer than 50 per request is recommended" (ref §2.4 step 2)

Phase = Literal["full", "add", "remove"]
CallAction = Literal["CREATE", "APPEND", "REMOVE", "REPLACE"]


def calculate_type_for(id_schema: str) -> CalculateType:
    """The customer-file calculate_type that carries `id_schema` (e.g. AAID_SHA256 -> GAID_SHA256)."""
    try:
        return CALCULATE_TYPES[id_schema.upper()]
    except KeyError:
        raise ConfigError(
            f"user id type {id_schema} cannot be sent in a customer file; customer files take "
            f"{', '.join(CALCULATE_TYPES)}"
        ) from None


def single_calculate_type(id_schemas: Sequence[str]) -> CalculateType:
    """The one calculate_type of a customer-file destination; ConfigError for none or several types."""
    if len(id_schemas) != 1:
        listed = ", ".join(id_schemas) or "none"
        raise ConfigError(
            f"a customer-file destination takes exactly one user id type (TikTok sets one calculate_type per "
            f"customer-file audience), but this one has {listed}. Use delivery 'partner', which sends several "
            "types in one audience, or make one customer-file destination per user id type"
        )
    return calculate_type_for(id_schemas[0])


@dataclass(frozen=True)
class CustomerFileOptions:
    """Knobs of a customer-file delivery (defaults suit production; tests turn them down)."""

    part_rows: int = DEFAULT_PART_ROWS  # hashes per uploaded file
    paths_per_call: int = RECOMMENDED_PATHS_PER_CALL  # file paths per create/update call (<= 500)
    upload_concurrency: int = 2  # uploads in flight (they share the app's `default` rate-limit group)
    ready_timeout_seconds: float = 60.0  # wait this long for a processing audience before giving up
    poll_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.paths_per_call <= MAX_PATHS_PER_CALL:
            raise ValueError(f"paths_per_call must be between 1 and {MAX_PATHS_PER_CALL}")
        if self.part_rows < 1 or self.upload_concurrency < 1:
            raise ValueError("part_rows and upload_concurrency must be at least 1")
        if self.part_rows * self.paths_per_call < MIN_USABLE_SIZE:
            # The first call of a large set creates (or replaces) with one chunk of parts; a chunk under
            # 1,000 people would land the audience at size 0, after which TikTok refuses every update.
            raise ValueError(f"part_rows x paths_per_call must be at least {MIN_USABLE_SIZE:,}")


@dataclass(frozen=True)
class Call:
    """One create or update call: its action, the phase whose parts it sends, which parts."""

    key: str  # stable across attempts: index and action, e.g. "1:APPEND"
    action: CallAction
    phase: Phase
    parts: tuple[int, ...]


def plan_calls(
    plan: AudiencePlan, *, creating: bool, part_counts: Mapping[str, int], paths_per_call: int
) -> list[Call]:
    """The create/update calls of one delivery, in order; each sends at most `paths_per_call` parts.

    `part_counts` maps a phase ("full", "add", "remove") to its number of parts; a phase without parts
    sends nothing.
    """
    calls: list[Call] = []
    for action, phase in delivery_steps(plan, creating=creating):
        count = int(part_counts.get(phase, 0))
        for start in range(0, count, paths_per_call):
            # More parts than one call takes: the first call creates (or replaces), the others append.
            step: CallAction = action if start == 0 or action in ("REMOVE", "APPEND") else "APPEND"
            parts = tuple(range(start, min(start + paths_per_call, count)))
            calls.append(Call(f"{len(calls)}:{step}", step, phase, parts))
    return calls


def delivery_steps(plan: AudiencePlan, *, creating: bool) -> list[tuple[CallAction, Phase]]:
    """Which action sends which set of hashes, in order (see the table in the module docstring)."""
    if creating:
        return [("CREATE", "full")]
    if plan.mode is SyncMode.REPLACE or (plan.mode is SyncMode.MIRROR and plan.full_upload):
        # A mirror without a snapshot (lost, or the last delivery never committed) cannot know whom to
        # remove: REPLACE makes the audience equal to the query anyway.
        return [("REPLACE", "full")]
    if plan.mode is SyncMode.APPEND:
        return [("APPEND", "add")]
    steps: list[tuple[CallAction, Phase]] = [("REMOVE", "remove"), ("APPEND", "add")]
    # Removes go first, like the partner path, except when the audience would dip under 1,000 people between
    # the two calls while ending above: TikTok refuses an update that leaves fewer than 1,000 (ref §2.4 step
    # 3), so then the adds go first. Adds and removes of one plan are disjoint: the order does not change
    # the result.
    if plan.previous_ids - plan.remove_ids < MIN_USABLE_SIZE <= plan.current_ids:
        steps.reverse()
    return steps


# -- internals -------------------------------------------------------------------------------------------
