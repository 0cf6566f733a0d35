"""The workspace on disk: discovery and layout (`layout`), `ttsync init` (`init`) and `ttsync apply` (`apply`).

The models these read and write are in `ttsync.config`; the store they write to is `ttsync.store`.
"""
