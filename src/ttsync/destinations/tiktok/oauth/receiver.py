"""The loopback receiver: serves the credential's redirect URI on 127.0.0.1 until TikTok redirects back.

TikTok sends the browser to `redirect_uri?auth_code=...&code=...&state=...` (ref §4.2). The receiver answers
only on the redirect URI's path, hands the parameters to a callback that verifies the state and exchanges the
code, and shows the browser the outcome. It never logs request lines: they carry the single-use auth code.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from ttsync.destinations.tiktok.oauth.errors import CredentialFlowError

LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost"})


@dataclass(frozen=True)
class Callback:
    """The parameters of TikTok's redirect (auth code kept out of repr)."""

    auth_code: str | None
    state: str | None
    error: str | None = None

    def __repr__(self) -> str:
        code = "<set>" if self.auth_code else None
        return f"Callback(auth_code={code}, state={'<set>' if self.state else None}, error={self.error!r})"


def parse_callback(text: str) -> Callback:
    """Read a redirect URL, or just its query string, or a bare auth code (as pasted by a person).

    `auth_code` is read first and `code` is the fallback (ref §4.2: TikTok sends both).
    """
    text = text.strip()
    if not text:
        return Callback(None, None)
    if "=" not in text and "?" not in text:
        return Callback(text, None)  # a bare code
    query = urlsplit(text).query if "://" in text or text.startswith("/") else text.lstrip("?")
    params = parse_qs(query, keep_blank_values=False)

    def first(name: str) -> str | None:
        values = params.get(name)
        return values[0] if values else None

    error = first("error") or first("error_code")
    return Callback(first("auth_code") or first("code"), first("state"), error)


@dataclass(frozen=True)
class ReceiverAddress:
    """Where the receiver listens: host, port and path taken from the redirect URI."""

    host: str
    port: int
    path: str

    @classmethod
    def from_redirect_uri(cls, redirect_uri: str) -> ReceiverAddress:
        """Validate that `redirect_uri` is a loopback http URL with an explicit port."""
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS or parts.port is None:
            raise CredentialFlowError(
                f"redirect_uri {redirect_uri!r} is not a loopback address ttsync can serve "
                "(http://127.0.0.1:PORT/PATH or http://localhost:PORT/PATH): use --paste, or register such "
                "a redirect URI with your TikTok app and set it on the credential",
                resolution_key="configuration_error",
            )
        return cls(host="127.0.0.1", port=parts.port, path=parts.path or "/")


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ttsync</title></head>
<body><h1>{title}</h1><p>{body}</p></body></html>"""

Handle = Callable[[Callback], str]
Check = Callable[[Callback], None]


class LoopbackReceiver:
    """A one-shot HTTP server on 127.0.0.1 for the OAuth redirect.

    `check` vets each callback first: a `CredentialFlowError` it raises (no or bad signed state) answers that
    request with an error page and the receiver keeps waiting, so no other local process can end the flow.
    `handle` then gets the callback and returns the success message shown in the browser; a
    `CredentialFlowError` it raises is shown as the failure. The first vetted callback with a code or an
    error finishes the flow; `wait()` then returns the handler's message or raises its error.
    """

    def __init__(
        self,
        redirect_uri: str,
        handle: Handle,
        *,
        check: Check,
        on_ignored: Callable[[str], None] | None = None,
    ) -> None:
        self.address = ReceiverAddress.from_redirect_uri(redirect_uri)
        self._handle = handle
        self._check = check
        self._on_ignored = on_ignored
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._message: str | None = None
        self._error: CredentialFlowError | None = None
        try:
            self._server = ThreadingHTTPServer((self.address.host, self.address.port), self._handler_class())
        except OSError as exc:
            raise CredentialFlowError(
                f"cannot listen on 127.0.0.1:{self.address.port} ({exc.strerror}): free that port or use "
                "--paste",
                resolution_key="configuration_error",
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1})
        self._thread.daemon = True

    def __enter__(self) -> LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def wait(self, timeout: float) -> str:
        """Block until the redirect arrived and was handled; return the success message."""
        if not self._done.wait(timeout):
            raise CredentialFlowError(
                f"no answer from TikTok within {timeout:.0f} seconds: run the command again (use --timeout "
                "for more time), or use --paste and paste the address the browser landed on",
                resolution_key="invalid_credentials",
            )
        if self._error is not None:
            raise self._error
        assert self._message is not None
        return self._message

    def _finish(self, callback: Callback) -> tuple[int, str, str]:
        with self._lock:  # one redirect wins; later ones are told the flow is over
            if self._done.is_set():
                return 409, "Already finished", "This authorization was already handled. Close this window."
            try:
                self._check(callback)
            except CredentialFlowError as exc:
                if self._on_ignored is not None:
                    self._on_ignored(f"ignored a request to the OAuth receiver: {exc}")
                return 400, "Not this authorization", f"{exc} ttsync is still waiting for TikTok's redirect."
            try:
                self._message = self._handle(callback)
                status, title, body = 200, "ttsync is authorized", self._message
            except CredentialFlowError as exc:
                self._error = exc
                status, title, body = 400, "Authorization failed", str(exc)
            self._done.set()
            return status, title, body + " You can close this window."

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != receiver.address.path:
                    self._reply(404, "Not found", "This is ttsync's OAuth receiver.")
                    return
                callback = parse_callback("?" + parts.query)
                if not callback.auth_code and not callback.error:
                    self._reply(400, "Missing auth_code", "The address has no auth_code; still waiting.")
                    return
                self._reply(*receiver._finish(callback))

            def _reply(self, status: int, title: str, body: str) -> None:
                content = _PAGE.format(title=html.escape(title), body=html.escape(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(content)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                # Request lines carry the auth code: never write them anywhere.
                return

        return Handler
