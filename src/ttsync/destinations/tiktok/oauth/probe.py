"""The write-permission probe. Reads succeed for Analysts, so only a write tells whether the user may change
audiences (scope 31, ref §2.3). The probe sends `segment/mapping/` with `action: "delete"`, one
`EMAIL_SHA256` value that is the SHA-256 of 32 fresh random bytes (it matches no person and carries no PII),
for audience id `"0"`, which no audience has. It cannot change anything: a delete never adds, the hash is
nobody, and the audience does not exist. TikTok checks the advertiser permission (40001 for an Analyst or an
unapproved account) before it looks at the audience, then refuses the unknown audience (40002): so 40001 means
"no write permission", and 40002/40007 mean "allowed to write". If TikTok ever validated the audience first,
an Analyst would also get 40002 and the probe would report "not denied" rather than a false failure; the
check's detail says which answer it saw.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

from ttsync.destinations.tiktok.client import (
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    TikTokClient,
    TikTokError,
)
from ttsync.destinations.tiktok.oauth.report import Check, error_key, problem

PROBE_AUDIENCE_ID: Final = "0"


def probe_write_permission(client: TikTokClient, advertiser_id: str, *, credential_name: str) -> Check:
    """Ask TikTok whether this token may change audiences of `advertiser_id`, changing nothing (see module doc)."""
    subject = f"advertiser {advertiser_id}"
    nobody = hashlib.sha256(secrets.token_bytes(32)).hexdigest()  # matches no person; not PII
    try:
        client.remove_segment_members([advertiser_id], [PROBE_AUDIENCE_ID], ["EMAIL_SHA256"], [[nobody]])
    except PermissionDeniedError as exc:
        key = error_key(exc)
        return problem(
            subject, "write_permission",
            f"advertiser {advertiser_id}: the user behind the token may not change audiences or send events "
            f"(TikTok answered {exc.code}: {exc.message})", key, credential_name,
        )  # fmt: skip
    except (InvalidRequestError, NotFoundError) as exc:
        # Past the permission gate, refused only because audience "0" does not exist: writing is allowed.
        return Check(subject, "write_permission", "ok",
                     f"advertiser {advertiser_id}: write allowed (probe refused as expected with {exc.code})")  # fmt: skip
    except TikTokError as exc:
        return Check(subject, "write_permission", "warning",
                     f"advertiser {advertiser_id}: write permission could not be checked: {exc}")  # fmt: skip
    return Check(subject, "write_permission", "ok", f"advertiser {advertiser_id}: write allowed")
