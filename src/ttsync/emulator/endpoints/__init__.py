"""Endpoint handlers; importing this package registers them all in ``common.REGISTRY``."""

from ttsync.emulator.endpoints import audiences, dmp, events, lookalike, oauth, offline

__all__ = ["audiences", "dmp", "events", "lookalike", "oauth", "offline"]
