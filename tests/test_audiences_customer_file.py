"""Customer-file delivery against the emulator over loopback HTTP, with real Parquet plans and CSV files."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttsync.destinations.tiktok.audience.customer_file import (
    CustomerFileOptions,
    CustomerFileResult,
    calculate_type_for,
    deliver_customer_file,
    delivery_steps,
    plan_calls,
    single_calculate_type,
)
from ttsync.destinations.tiktok.audience.customer_file_ready import landed_at_zero
from ttsync.destinations.tiktok.client import AsyncTikTokClient, PermissionDeniedError
from ttsync.destinations.tiktok.client.models.dmp import AudienceDetails
from ttsync.emulator.embedded import EmulatorServer
from ttsync.errors import ConfigError, ResolvableError
from ttsync.sync.plan import AudiencePlan, SyncMode, commit_plan_snapshot, connect, plan_audience
from ttsync.sync.prepare import ids_batch

EMAIL = "EMAIL_SHA256"
# Small parts and short waits so a few thousand people exercise splitting, batching and timeouts.
FAST = CustomerFileOptions(part_rows=600, ready_timeout_seconds=0.3, poll_seconds=0.1)


def h(n: int) -> str:
    """A deterministic SHA-256-shaped hash for person n."""
    return hashlib.sha256(f"person-{n}@example.com".encode()).hexdigest()


def hashes(people: Iterable[int]) -> set[str]:
    return {h(n) for n in people}


class Crash(Exception):
    """Stands in for the process dying right after a checkpoint was saved."""


@dataclass
class Destination:
    """One orchestration's customer-file audience: plans with a snapshot, deliveries, saved checkpoints."""

    emu: EmulatorServer
    root: Path
    mode: SyncMode
    schema: str = EMAIL
    advertiser_ids: list[str] = field(default_factory=list)
    audience_id: str | None = None
    retention_in_days: int | None = None
    runs: int = 0
    saved: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.advertiser_ids:
            self.advertiser_ids = [self.emu.seed.advertiser_ids[0]]

    @property
    def snapshot(self) -> Path:
        return self.root / "snapshot.parquet"

    def plan(self, people: Iterable[int]) -> tuple[duckdb.DuckDBPyConnection, AudiencePlan]:
        """Write the prepared ids of `people` and plan them against the snapshot."""
        self.runs += 1
        run = self.root / f"run{self.runs}"
        ids = list(people)
        (run / "prepared").mkdir(parents=True)
        table = pa.table(
            {
                "row_key": [str(n) for n in ids],
                "id_schema": [self.schema] * len(ids),
                "hash": [h(n) for n in ids],
            }
        )
        pq.write_table(pa.Table.from_batches([ids_batch(table)]), run / "prepared" / "ids.parquet")
        con = connect(run / "plan")
        plan = plan_audience(
            con,
            prepared_glob=str(run / "prepared" / "*.parquet"),
            snapshot=self.snapshot,
            id_schemas=[self.schema],
            mode=self.mode,
            work_dir=run / "plan",
        )
        return con, plan

    def deliver(
        self,
        con: duckdb.DuckDBPyConnection,
        plan: AudiencePlan,
        *,
        checkpoint: dict[str, Any] | None = None,
        options: CustomerFileOptions = FAST,
        crash_after_saves: int | None = None,
    ) -> CustomerFileResult:
        """One delivery attempt; commits the snapshot when it succeeds (as the workflow's commit task does)."""
        self.saved.clear()

        def save(cp: dict[str, Any]) -> None:
            self.saved.append(cp)
            if crash_after_saves is not None and len(self.saved) >= crash_after_saves:
                raise Crash

        async def go() -> CustomerFileResult:
            async with AsyncTikTokClient(
                access_token=self.emu.seed.operator_token,
                app_id=self.emu.seed.app_id,
                app_secret=self.emu.seed.app_secret,
                base_url=self.emu.base_url,
            ) as client:
                return await deliver_customer_file(
                    client,
                    con,
                    plan,
                    advertiser_ids=self.advertiser_ids,
                    audience_id=self.audience_id,
                    audience_name="ttsync customer file test",
                    retention_in_days=self.retention_in_days,
                    work_dir=plan.add_rows_path.parent / "files",
                    checkpoint=checkpoint,
                    save_checkpoint=save,
                    options=options,
                )

        result = asyncio.run(go())
        self.audience_id = result.audience_id
        commit_plan_snapshot(plan, self.snapshot, self.snapshot.parent / "commit")
        return result

    def sync(self, people: Iterable[int], **kwargs: Any) -> CustomerFileResult:
        con, plan = self.plan(people)
        try:
            return self.deliver(con, plan, **kwargs)
        finally:
            con.close()

    def members(self) -> set[str]:
        assert self.audience_id is not None
        got = self.emu.admin.audience_members(self.audience_id)
        schema = "AAID_SHA256" if self.schema == "AAID_SHA256" else self.schema
        assert set(got) <= {schema}, f"members under unexpected schemas: {sorted(got)}"
        return got.get(schema, set())

    def update_actions(self) -> list[str]:
        assert self.audience_id is not None
        history = self.emu.admin.audience(self.audience_id)["history"]
        return [str(e.get("action_detail")) for e in history if e.get("action") == "update"]


def uploads(emu: EmulatorServer) -> int:
    return len(emu.admin.state()["uploads"])


# -- id types -------------------------------------------------------------------------------------------


def test_calculate_type_per_id_schema() -> None:
    assert calculate_type_for("EMAIL_SHA256") == "EMAIL_SHA256"
    assert calculate_type_for("PHONE_SHA256") == "PHONE_SHA256"
    assert calculate_type_for("IDFA_SHA256") == "IDFA_SHA256"
    assert calculate_type_for("IDFA_MD5") == "IDFA_MD5"
    # the file flow says GAID where the mapping API says AAID (ref §2.4)
    assert calculate_type_for("AAID_SHA256") == "GAID_SHA256"
    assert calculate_type_for("AAID_MD5") == "GAID_MD5"
    with pytest.raises(ConfigError, match="cannot be sent in a customer file"):
        calculate_type_for("EXTERNAL_ID_SHA256")


def test_several_id_types_are_a_config_error_that_names_the_way_out() -> None:
    assert single_calculate_type(["PHONE_SHA256"]) == "PHONE_SHA256"
    with pytest.raises(ConfigError) as info:
        single_calculate_type(["EMAIL_SHA256", "PHONE_SHA256"])
    message = str(info.value)
    assert "EMAIL_SHA256, PHONE_SHA256" in message
    assert "delivery 'partner'" in message
    assert "one customer-file destination per user id type" in message


# -- create ---------------------------------------------------------------------------------------------


def test_create_uploads_hashed_parts_and_sets_retention(emulator: EmulatorServer, tmp_path: Path) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.CREATE, retention_in_days=30)
    result = dest.sync(range(1500))

    assert result.created
    assert result.calls == ["0:CREATE"]
    assert (result.files_uploaded, result.rows_uploaded) == (3, 1500)  # 600 + 600 + 300
    assert dest.members() == hashes(range(1500))
    details = emulator.admin.audience(result.audience_id)
    assert details["calculate_type"] == "EMAIL_SHA256"
    created = datetime.fromisoformat(details["create_time"])
    expires = datetime.fromisoformat(details["expired_time"])
    assert (expires - created).days == 30

    # The files: a header, then one lowercase hash per line, sorted; the checkpoint's MD5 is the file's.
    parts = result.checkpoint["parts"]["full"]
    files_dir = tmp_path / "run1" / "plan" / "files"
    seen: list[str] = []
    for part in parts:
        raw = (files_dir / part["name"]).read_bytes()
        assert hashlib.md5(raw, usedforsecurity=False).hexdigest() == part["md5"]
        assert part["file_path"], "every part was uploaded and its TikTok path kept"
        lines = raw.decode().splitlines()
        assert lines[0] == "EMAIL_SHA256"
        assert len(lines) - 1 == part["rows"] <= 600
        seen.extend(lines[1:])
    assert seen == sorted(hashes(range(1500)))


def test_create_mode_makes_a_new_audience_per_delivery(emulator: EmulatorServer, tmp_path: Path) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.CREATE)
    first = dest.sync(range(1200))
    second = dest.sync(range(100, 1300))
    assert second.created
    assert second.audience_id != first.audience_id
    assert dest.members() == hashes(range(100, 1300))
    assert emulator.admin.audience_members(first.audience_id)[EMAIL] == hashes(range(1200))


def test_create_below_1000_warns(emulator: EmulatorServer, tmp_path: Path) -> None:
    result = Destination(emulator, tmp_path, SyncMode.CREATE).sync(range(400))
    assert result.created
    assert any("cannot be used in an ad group" in w for w in result.warnings)
    assert emulator.admin.audience(result.audience_id)["cover_num"] == 0


def test_nobody_to_create_is_a_clear_error(emulator: EmulatorServer, tmp_path: Path) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.MIRROR)
    with pytest.raises(ResolvableError, match="cannot create an empty customer-file audience"):
        dest.sync([])
    assert uploads(emulator) == 0


def test_more_parts_than_one_call_takes_create_then_append(emulator: EmulatorServer, tmp_path: Path) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.MIRROR)
    options = CustomerFileOptions(part_rows=250, paths_per_call=4, ready_timeout_seconds=1, poll_seconds=0.1)
    result = dest.sync(range(2100), options=options)  # 9 parts -> create(4) + append(4) + append(1)
    assert result.calls == ["0:CREATE", "1:APPEND", "2:APPEND"]
    assert result.rows_by_action == {"CREATE": 1000, "APPEND": 1100}
    assert dest.members() == hashes(range(2100))
    assert dest.update_actions() == ["APPEND", "APPEND"]
    with pytest.raises(ValueError, match="at least 1,000"):
        CustomerFileOptions(part_rows=300, paths_per_call=3)  # a first chunk of 900 would land at size 0


def test_mobile_ids_go_as_gaid_files(emulator: EmulatorServer, tmp_path: Path) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.MIRROR, schema="AAID_SHA256")
    result = dest.sync(range(1100))
    assert result.calculate_type == "GAID_SHA256"
    assert emulator.admin.audience(result.audience_id)["calculate_type"] == "GAID_SHA256"
    assert dest.members() == hashes(range(1100))
    first_part = tmp_path / "run1" / "plan" / "files" / result.checkpoint["parts"]["full"][0]["name"]
    assert first_part.read_text().splitlines()[0] == "MAID_SHA256"  # ref §6.3 MAID headers


# -- updates --------------------------------------------------------------------------------------------


def test_mirror_second_delivery_removes_then_appends(emulator: EmulatorServer, tmp_path: Path) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.MIRROR)
    first = dest.sync(range(1500))
    assert first.created
    assert first.calls == ["0:CREATE"]

    second = dest.sync(range(300, 1700))  # 300 leave, 200 join
    assert not second.created
    assert second.audience_id == first.audience_id
    assert second.rows_by_action == {"REMOVE": 300, "APPEND": 200}
    assert second.calls == ["0:REMOVE", "1:APPEND"]
    assert dest.update_actions() == ["REMOVE", "APPEND"]
    assert dest.members() == hashes(range(300, 1700))

    third = dest.sync(range(300, 1700))  # nothing changed: nothing sent
    assert third.calls == []
    assert third.files_uploaded == 0
    assert dest.update_actions() == ["REMOVE", "APPEND"]


def test_mirror_appends_first_when_removing_first_would_dip_under_1000(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.MIRROR)
    dest.sync(range(1200))
    result = dest.sync(range(400, 1800))  # REMOVE first would leave 800 for a moment
    assert result.calls == ["0:APPEND", "1:REMOVE"]
    assert dest.members() == hashes(range(400, 1800))


def test_append_only_adds(emulator: EmulatorServer, tmp_path: Path) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.APPEND)
    dest.sync(range(1200))
    result = dest.sync(range(1000, 1500))  # 0..999 are gone from the query but stay in the audience
    assert result.calls == ["0:APPEND"]
    assert result.rows_by_action == {"APPEND": 300}
    assert dest.update_actions() == ["APPEND"]
    assert dest.members() == hashes(range(1500))


def test_replace_swaps_the_whole_set(emulator: EmulatorServer, tmp_path: Path) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.REPLACE)
    first = dest.sync(range(1500))
    assert first.calls == ["0:CREATE"]
    second = dest.sync(range(5000, 6100))
    assert second.calls == ["0:REPLACE"]
    assert second.rows_by_action == {"REPLACE": 1100}
    assert dest.update_actions() == ["REPLACE"]
    assert dest.members() == hashes(range(5000, 6100))


def test_update_below_1000_is_audience_not_editable(emulator: EmulatorServer, tmp_path: Path) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.MIRROR)
    dest.sync(range(1500))
    con, plan = dest.plan(range(900))
    try:
        with pytest.raises(ResolvableError) as info:
            dest.deliver(con, plan)
    finally:
        con.close()
    assert info.value.resolution_key == "audience_not_editable"
    message = str(info.value)
    assert "fewer than 1,000" in message
    assert "900 identifiers" in message
    assert "partner" in message
    assert dest.members() == hashes(range(1500))  # nothing changed


@pytest.mark.parametrize(
    ("variant", "resolution"),
    [(None, "audience_not_editable"), ("file-zero-null-error", "audience_too_small")],
)
def test_landed_at_zero_audience_is_not_editable(
    emulator: EmulatorServer, tmp_path: Path, variant: str | None, resolution: str
) -> None:
    # With TikTok's error_msg null (the variant), the size-0 audience must not read as "still processing"
    # forever: ttsync concludes "too small or no matches" from its own snapshot size at once.
    if variant:
        emulator.admin.set_variants([variant])
    dest = Destination(emulator, tmp_path, SyncMode.APPEND)
    dest.sync(range(500))  # created below 1,000: TikTok keeps it at size 0
    con, plan = dest.plan(range(2000))
    try:
        with pytest.raises(ResolvableError) as info:
            dest.deliver(con, plan)
    finally:
        con.close()
    assert info.value.resolution_key == resolution
    assert "mode 'create'" in str(info.value)
    assert dest.members() == hashes(range(500))


def test_size_zero_without_error_message_is_concluded_after_the_build_window() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    details = AudienceDetails(
        audience_id="1", is_valid=False, cover_num=0, error_msg=None, create_time="2026-01-01 00:00:00"
    )
    assert not landed_at_zero(details, held=None, now=created + timedelta(hours=47))
    assert landed_at_zero(details, held=None, now=created + timedelta(hours=49))
    assert landed_at_zero(details, held=900, now=created)  # ttsync itself sent fewer than 1,000
    assert not landed_at_zero(details, held=5_000, now=created)  # big enough: still processing
    ready = details.model_copy(update={"is_valid": True, "cover_num": 5_000})
    assert not landed_at_zero(ready, held=900, now=created + timedelta(days=9))


# -- processing, crashes and resume ---------------------------------------------------------------------


def test_processing_audience_then_resume_skips_uploads_and_confirmed_steps(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.MIRROR)
    dest.sync(range(1500))
    emulator.admin.set_processing_delay(600)  # every update now keeps the audience busy for 10 minutes
    uploads_before = uploads(emulator)

    con, plan = dest.plan(range(200, 1700))
    try:
        with pytest.raises(ResolvableError) as info:
            dest.deliver(con, plan)  # REMOVE goes through, then the audience is processing
        assert info.value.resolution_key == "replace_in_progress"
        checkpoint = dest.saved[-1]
        assert checkpoint["confirmed"] == ["0:REMOVE"]
        assert all(p["file_path"] for parts in checkpoint["parts"].values() for p in parts)
        uploads_done = uploads(emulator)
        assert uploads_done == uploads_before + 2  # one remove part, one add part

        emulator.admin.advance_clock(601)
        resumed = dest.deliver(con, plan, checkpoint=checkpoint)
    finally:
        con.close()
    assert resumed.calls == ["1:APPEND"]
    assert resumed.files_uploaded == 0
    assert uploads(emulator) == uploads_done
    assert dest.update_actions() == ["REMOVE", "APPEND"]  # REMOVE was not applied twice
    assert dest.members() == hashes(range(200, 1700))


def test_crash_mid_upload_with_files_gone_uploads_only_the_rest(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.MIRROR)
    one_at_a_time = CustomerFileOptions(part_rows=600, upload_concurrency=1, ready_timeout_seconds=0.3)
    con, plan = dest.plan(range(1500))
    try:
        with pytest.raises(Crash):
            dest.deliver(con, plan, options=one_at_a_time, crash_after_saves=1)  # dies after 1 upload
        checkpoint = dest.saved[-1]
        assert [bool(p["file_path"]) for p in checkpoint["parts"]["full"]] == [True, False, False]
        assert uploads(emulator) == 1
        shutil.rmtree(plan.add_rows_path.parent / "files")  # a new machine: the parts must be rewritten

        result = dest.deliver(con, plan, checkpoint=checkpoint, options=one_at_a_time)
    finally:
        con.close()
    assert result.files_uploaded == 2
    assert uploads(emulator) == 3
    assert dest.members() == hashes(range(1500))


def test_failed_create_resumes_without_uploading_again(emulator: EmulatorServer, tmp_path: Path) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.MIRROR)
    emulator.admin.set_faults(rate=1.0, codes=[40001], paths=["dmp/custom_audience/create/"])
    con, plan = dest.plan(range(1300))
    try:
        with pytest.raises(PermissionDeniedError):
            dest.deliver(con, plan)
        checkpoint = dest.saved[-1]
        assert checkpoint["confirmed"] == []
        assert checkpoint["audience_id"] is None
        emulator.admin.clear_faults()
        result = dest.deliver(con, plan, checkpoint=checkpoint)
    finally:
        con.close()
    assert result.files_uploaded == 0
    assert uploads(emulator) == 3
    assert result.calls == ["0:CREATE"]
    owner = emulator.seed.advertiser_ids[0]
    mine = [a for a in emulator.admin.state()["audiences"] if a["owner_id"] == owner]
    assert [a["audience_id"] for a in mine] == [result.audience_id]  # exactly one audience
    assert dest.members() == hashes(range(1300))


def test_crash_after_create_reuses_the_created_audience(emulator: EmulatorServer, tmp_path: Path) -> None:
    dest = Destination(emulator, tmp_path, SyncMode.MIRROR)
    con, plan = dest.plan(range(1300))
    try:
        with pytest.raises(Crash):
            dest.deliver(con, plan, crash_after_saves=4)  # 3 uploads, then the create's save
        checkpoint = dest.saved[-1]
        assert checkpoint["audience_id"]
        assert checkpoint["confirmed"] == ["0:CREATE"]
        result = dest.deliver(con, plan, checkpoint=checkpoint)
    finally:
        con.close()
    assert result.audience_id == checkpoint["audience_id"]
    assert result.calls == []
    owner = emulator.seed.advertiser_ids[0]
    assert sum(1 for a in emulator.admin.state()["audiences"] if a["owner_id"] == owner) == 1


# -- sharing --------------------------------------------------------------------------------------------


def test_created_audience_is_shared_with_the_other_advertisers(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    owner, other = emulator.seed.advertiser_ids[:2]
    dest = Destination(emulator, tmp_path, SyncMode.MIRROR, advertiser_ids=[owner, other])
    result = dest.sync(range(1100))
    assert result.shared_with == [other]
    assert result.checkpoint["shared"] is True
    details = emulator.admin.audience(result.audience_id)
    assert details["shared_with"] == [other]

    async def seen_by_other() -> tuple[bool | None, bool | None]:
        async with AsyncTikTokClient(
            access_token=emulator.seed.operator_token, base_url=emulator.base_url
        ) as client:
            got = await client.get_custom_audiences(other, [result.audience_id])
        d = got.audiences[0].audience_details
        return d.is_creator, d.shared

    assert asyncio.run(seen_by_other()) == (False, True)
    # A later delivery updates; it does not share again.
    dest.sync(range(1200))
    history = emulator.admin.audience(result.audience_id)["history"]
    assert [e["action"] for e in history].count("share") == 1


# -- call planning (pure) -------------------------------------------------------------------------------


def _plan(mode: SyncMode, *, previous: int, removes: int, current: int, full: bool = False) -> AudiencePlan:
    p = Path("unused")
    return AudiencePlan(
        mode=mode,
        id_schemas=(EMAIL,),
        add_rows_path=p,
        remove_ids_path=p,
        current_ids_path=p,
        current_ids=current,
        current_people=current,
        previous_ids=previous,
        add_ids=0,
        add_rows=0,
        remove_ids=removes,
        full_upload=full,
    )


def test_delivery_steps_per_mode() -> None:
    mirror = _plan(SyncMode.MIRROR, previous=5000, removes=100, current=5200)
    assert delivery_steps(mirror, creating=True) == [("CREATE", "full")]
    assert delivery_steps(mirror, creating=False) == [("REMOVE", "remove"), ("APPEND", "add")]
    lost_snapshot = _plan(SyncMode.MIRROR, previous=0, removes=0, current=5200, full=True)
    assert delivery_steps(lost_snapshot, creating=False) == [("REPLACE", "full")]
    append = _plan(SyncMode.APPEND, previous=5000, removes=0, current=5200)
    assert delivery_steps(append, creating=False) == [("APPEND", "add")]
    replace = _plan(SyncMode.REPLACE, previous=0, removes=0, current=5200, full=True)
    assert delivery_steps(replace, creating=False) == [("REPLACE", "full")]


def test_calls_respect_paths_per_call_and_skip_empty_phases() -> None:
    plan = _plan(SyncMode.REPLACE, previous=0, removes=0, current=10**6, full=True)
    calls = plan_calls(plan, creating=False, part_counts={"full": 120}, paths_per_call=49)
    assert [(c.key, len(c.parts)) for c in calls] == [("0:REPLACE", 49), ("1:APPEND", 49), ("2:APPEND", 22)]
    assert calls[2].parts[-1] == 119
    mirror = _plan(SyncMode.MIRROR, previous=5000, removes=0, current=5100)
    only_adds = plan_calls(mirror, creating=False, part_counts={"remove": 0, "add": 1}, paths_per_call=49)
    assert [c.key for c in only_adds] == ["0:APPEND"]
