"""A fast path for the API's two busiest reads, GET /api/workflows and GET /api/workflows/{id}: what scripts
and dashboards poll, tens of clients at a time.

Through FastAPI, each of these requests costs about as much in routing (the app has 100+ routes), the
middleware stack, parameter validation and dependency solving as in its own work. This ASGI middleware sits in
front of all that: a well-formed request (GET, known parameters within the documented bounds) runs the very
functions the FastAPI routes run (`routers.runs.read_workflow_page` / `read_workflow`: authentication, the
role and PII rules, one lean query) in one worker thread, and is answered as they answer it.

Everything else goes to FastAPI unchanged: another method or path, a parameter it would refuse or coerce, and
any request whose read raised (a bad token, a hidden or unknown workflow...): the route then runs again and
answers with its problem document. So the OpenAPI routes stay the single source of the API's behaviour."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ttsync.server.jsonout import json_response
from ttsync.server.routers import runs

_LIST = "/api/workflows"
_ID = re.compile(r"[0-9a-f]{4,40}")  # as `runs.WORKFLOW_ID`
_COUNT = re.compile(r"[0-9]{1,8}")  # what FastAPI reads as the same int: plain digits
# Query parameters of the list and their bounds, as `runs.list_workflows` declares them.
_TEXT_PARAMS = {"orchestration": 80, "state": 32}
_INT_PARAMS = {"limit": (1, 500), "offset": (0, 10_000_000)}


@dataclass(frozen=True)
class _Route:
    """What `scope["route"]` carries for the metrics middleware (its `path` labels the request)."""

    path: str


_LIST_ROUTE = _Route("/api/workflows")
_SHOW_ROUTE = _Route("/api/workflows/{workflow_id}")


class HotReads:
    """Pure ASGI middleware answering well-formed GET /api/workflows[/{id}] directly (see the module)."""

    def __init__(self, app: ASGIApp, threads: int = 8) -> None:
        self.app = app
        # Its own few threads: SQLite reads are short, and fewer threads contend less for the GIL.
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ttsync-hot-read")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = _match(scope) if scope["type"] == "http" else None
        if matched is None:
            await self.app(scope, receive, send)
            return
        route, read = matched
        try:
            body = await asyncio.get_running_loop().run_in_executor(self.executor, read, Request(scope))
        except Exception:
            # Refused or not found (or a bug): FastAPI's route runs the same read again and answers with the
            # problem document (or the 500) the error calls for.
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        await json_response(body)(scope, receive, send)


def _match(scope: Scope) -> tuple[_Route, Callable[[Request], Any]] | None:
    """The route and the read of a request the fast path answers, or None to let FastAPI handle it."""
    if scope["method"] != "GET" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if path == _LIST:
        params = _list_params(scope["query_string"])
        return None if params is None else (_LIST_ROUTE, partial(_page, params=params))
    head, _, workflow_id = path.rpartition("/")
    if head == _LIST and _ID.fullmatch(workflow_id):
        return _SHOW_ROUTE, partial(_show, workflow_id=workflow_id)
    return None


def _page(request: Request, params: dict[str, Any]) -> Any:
    return runs.read_workflow_page(request, **params)


def _show(request: Request, workflow_id: str) -> Any:
    return runs.read_workflow(request, workflow_id)


def _list_params(query_string: bytes) -> dict[str, Any] | None:
    """The list's parameters (defaults filled in), or None when any is repeated or out of bounds."""
    params: dict[str, Any] = {"orchestration": None, "state": None, "limit": 50, "offset": 0}
    seen: set[str] = set()
    # Decoded as Starlette decodes it (latin-1 bytes, then percent-escapes as UTF-8).
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            return None
        seen.add(name)
        if name in _TEXT_PARAMS:
            if len(value) > _TEXT_PARAMS[name]:
                return None
            params[name] = value
        elif name in _INT_PARAMS:
            low, high = _INT_PARAMS[name]
            if not _COUNT.fullmatch(value) or not low <= int(value) <= high:
                return None
            params[name] = int(value)
    return params
