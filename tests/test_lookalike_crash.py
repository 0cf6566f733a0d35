"""A campaign run killed after TikTok created the lookalike but before ttsync recorded its id (issue 14): the
retry adopts that lookalike instead of creating a second one. The CLI as a process, the emulator over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from audience_env import Env
from test_campaigns import DEST, LAUNCH, apply, campaign
from ttsync.workflows.crashpoints import CRASH_ENV


def test_lookalike_is_created_once_across_a_crash_after_the_create(env: Env) -> None:
    spec = {"min_people": 100, "audience_size": "BROAD", "location_ids": ["6252001"]}
    apply(
        env,
        campaign(sub_audiences=[{"name": "a", "percent": 90}], destinations=[DEST[0] | {"lookalike": spec}]),
    )
    cmd = [sys.executable, "-m", "ttsync", "campaigns", "run", "spring", "--workspace", str(env.workspace.root),
           "--today", LAUNCH.isoformat(), "--json"]  # fmt: skip
    environ = {**os.environ, CRASH_ENV: "lookalike:created"}
    killed = subprocess.run(cmd, env=environ, capture_output=True, text=True, check=False, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    named = [a for a in env.emulator.admin.state()["audiences"] if a["name"] == "spring - a - lookalike"]
    assert len(named) == 1  # TikTok made it; ttsync died before writing its id down

    environ.pop(CRASH_ENV)
    again = subprocess.run(cmd, env=environ, capture_output=True, text=True, check=False, timeout=120)
    assert again.returncode == 0, again.stderr
    (delivery,) = json.loads(again.stdout)["deliveries"]
    assert delivery["lookalike_id"] == named[0]["audience_id"]
    after = [a for a in env.emulator.admin.state()["audiences"] if a["name"] == "spring - a - lookalike"]
    assert len(after) == 1
    assert not list((env.workspace.state_dir / "campaigns").glob("*intent*"))  # cleared once recorded
