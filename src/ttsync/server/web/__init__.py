"""The web UI: server-rendered pages (Jinja2) over the same app layer, sessions, CSRF and role checks as the
API. Forms post with the session's CSRF token as a hidden field; only live progress uses JavaScript."""
