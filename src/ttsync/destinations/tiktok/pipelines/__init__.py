"""The TikTok runs as declared task lists: the audience workflow (`audience`) and the events workflow
(`events`); `base` holds what both share (the run's objects, its client, its options)."""
