"""The emulator's admin routes by concern: `conditions` (reset, variants, rate limits, faults, clock, limits),
`inspection` (state, audiences, events), `accounts` (advertisers, tokens, auth codes, apps, event sets)."""
