"""Destinations: everything specific to one ad platform. Today one: `ttsync.destinations.tiktok`.

The neutral engine (`sync`, `events`, `identity`, `workflows`, `sources`) never imports a destination; a
destination imports the engine. A second platform is a sibling package here.
"""
