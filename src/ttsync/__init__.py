"""ttsync: send first-party warehouse data to TikTok Ads Manager (custom audiences, offline events)."""

__version__ = "0.1.0"
