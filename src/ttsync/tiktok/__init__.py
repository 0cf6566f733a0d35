"""Short re-export of the TikTok client, kept for one release: import `ttsync.destinations.tiktok.client`.

    from ttsync.tiktok import TikTokClient

Nothing inside ttsync imports this module (an import-linter contract says so). It re-exports the client's own
`__all__`, so the two public lists cannot drift apart.
"""

from ttsync.destinations.tiktok.client import *  # noqa: F403
from ttsync.destinations.tiktok.client import __all__ as __all__
