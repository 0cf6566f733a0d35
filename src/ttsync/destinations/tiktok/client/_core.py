"""Request plumbing shared by every endpoint: encoding, limiter, concurrency bound, retries, envelope."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

import httpx2
import stamina
from pydantic import BaseModel, SecretStr, ValidationError

from ttsync.destinations.tiktok.client import observe
from ttsync.destinations.tiktok.client._redact import install_log_redaction, scrub
from ttsync.destinations.tiktok.client.codes import PARTIAL_SUCCESS_CODE, is_success
from ttsync.destinations.tiktok.client.errors import (
    AuthenticationError,
    ClientValidationError,
    RateLimitedError,
    RetryableError,
    TikTokError,
    UnexpectedResponseError,
    from_envelope,
    from_http_status,
    transport_error,
)
from ttsync.destinations.tiktok.client.limiter import (
    GLOBAL_LIMITERS,
    AdaptiveRateLimiter,
    LimiterRegistry,
    RateLimits,
    group_for_path,
)
from ttsync.destinations.tiktok.client.models.common import ApiResult
from ttsync.destinations.tiktok.client.retry import RetryPolicy
from ttsync.destinations.tiktok.client.retrylog import retrying

PRODUCTION_BASE_URL: Final = "https://business-api.tiktok.com/open_api/v1.3/"
SANDBOX_BASE_URL: Final = "https://sandbox-ads.tiktok.com/open_api/v1.3/"  # ref §1

ResultT = TypeVar("ResultT", bound=ApiResult)
ModelT = TypeVar("ModelT", bound=BaseModel)

install_log_redaction()


def _reveal(value: Any) -> Any:
    """Turn a model dump into wire values: secrets revealed (only here, only for the request body)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Mapping):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    return value


@functools.cache
def _has_secrets(model_type: type[BaseModel]) -> bool:
    """True when a request model has top-level `SecretStr` fields (they need revealing on the wire)."""
    return any(field.annotation is SecretStr for field in model_type.model_fields.values())


def _query_value(value: Any) -> str:
    # ref §1: arrays in GET queries are JSON-encoded strings, e.g. custom_audience_ids=["123"].
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _describe_validation(err: ValidationError) -> str:
    """Field paths and reasons only: never the input values (they may be PII or secrets)."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()]
    return "; ".join(parts[:5]) + (f" (+{len(parts) - 5} more)" if len(parts) > 5 else "")


def build_request(model_type: type[ModelT], endpoint: str, **fields: Any) -> ModelT:
    """Validate a request model, turning pydantic errors into `ClientValidationError` without values."""
    try:
        return model_type(**fields)
    except ValidationError as err:
        raise ClientValidationError(
            f"request not sent: {_describe_validation(err)}",
            code=None,
            endpoint=endpoint,
            resolution_key="invalid_request",
        ) from None


@dataclass
class CallSpec:
    """One logical API call."""

    method: Literal["GET", "POST"]
    path: str
    query: BaseModel | None = None
    body: BaseModel | None = None
    form: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    content: bytes | None = None  # a pre-serialized JSON body (bulk paths build it without Python objects)
    auth: bool = True
    idempotent: bool = True
    requests_sent: int = field(default=0)


@dataclass
class ClientStats:
    """Per-client counters (for benchmarks and progress displays)."""

    calls: int = 0
    requests: int = 0
    fault_retries: int = 0
    rate_limited: int = 0
    failures: int = 0


# Transport failures where the request certainly did not reach TikTok: safe to retry even for creates.
_NOT_SENT: Final = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)


class BaseAsyncClient:
    """Holds credentials, the HTTP client, the limiters, the concurrency bound and the retry policy."""

    def __init__(
        self,
        *,
        access_token: str | SecretStr | None = None,
        app_id: str | None = None,
        app_secret: str | SecretStr | None = None,
        base_url: str = PRODUCTION_BASE_URL,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_concurrency: int = 32,
        retry: RetryPolicy | None = None,
        rate_limits: RateLimits | None = None,
        limiters: LimiterRegistry | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._access_token = _secret(access_token)
        self._app_secret = _secret(app_secret)
        self.app_id = app_id
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.retry_policy = retry or RetryPolicy()
        self.rate_limits = rate_limits or RateLimits()
        self.stats = ClientStats()
        self._registry = limiters or GLOBAL_LIMITERS
        self._limiter_scope = str(httpx2.URL(self.base_url).copy_with(path="/", query=None))
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._urls: dict[str, httpx2.URL] = {}
        # The pool holds as many connections as requests may be in flight: no queueing inside httpx2.
        self._http = httpx2.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            limits=httpx2.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            headers={"User-Agent": "ttsync"},
        )

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> BaseAsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        token = "set" if self._access_token else "none"
        return f"{type(self).__name__}(base_url={self.base_url!r}, app_id={self.app_id!r}, access_token=<{token}>)"

    # -- credentials --------------------------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        return [s.get_secret_value() for s in (self._access_token, self._app_secret) if s is not None]

    def _require_app(self, endpoint: str) -> tuple[str, SecretStr]:
        if not self.app_id or self._app_secret is None:
            raise ClientValidationError(
                "this endpoint needs the client's app_id and app_secret",
                code=None,
                endpoint=endpoint,
                resolution_key="invalid_credentials",
            )
        return self.app_id, self._app_secret

    def limiter(self, path: str) -> AdaptiveRateLimiter:
        """The shared limiter that paces requests to `path`."""
        return self._registry.get(
            self._limiter_scope, self.app_id or "", group_for_path(path), self.rate_limits
        )

    # -- the call pipeline --------------------------------------------------------------------------------

    async def _call(self, spec: CallSpec, result_type: type[ResultT]) -> ResultT:
        """Send `spec` with retries and return the typed `data`."""
        self.stats.calls += 1
        try:
            data, request_id, partial = await self._with_fault_retries(spec)
        except TikTokError as err:
            self.stats.failures += 1
            err.attempts = max(spec.requests_sent, 1)
            raise
        try:
            return result_type.model_validate({**data, "request_id": request_id, "partial_success": partial})
        except ValidationError as err:
            self.stats.failures += 1
            raise UnexpectedResponseError(
                f"response data did not match the expected shape: {_describe_validation(err)}",
                code=None,
                endpoint=spec.path,
                resolution_key="tiktok_unavailable",
                request_id=request_id,
                attempts=spec.requests_sent,
            ) from None

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, RetryableError) or isinstance(exc, RateLimitedError):
            return False
        if exc.ambiguous:
            return False
        self.stats.fault_retries += 1
        return True

    async def _with_fault_retries(self, spec: CallSpec) -> tuple[dict[str, Any], str | None, bool]:
        policy = self.retry_policy
        with retrying(f"TikTok {spec.path}", policy.max_attempts):  # names the call in retry messages
            async for attempt in stamina.retry_context(
                on=self._should_retry,
                attempts=policy.max_attempts,
                timeout=policy.max_total_seconds,
                wait_initial=policy.wait_initial,
                wait_max=policy.wait_max,
                wait_jitter=policy.wait_jitter,
                wait_exp_base=policy.wait_exp_base,
            ):
                with attempt:
                    return await self._with_rate_limit_retries(spec)
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

    async def _with_rate_limit_retries(self, spec: CallSpec) -> tuple[dict[str, Any], str | None, bool]:
        limiter = self.limiter(spec.path)
        started = time.monotonic()
        requeued = 0
        while True:
            try:
                return await self._send_once(spec, limiter)
            except RateLimitedError:
                self.stats.rate_limited += 1
                limiter.on_rate_limited()
                requeued += 1
                policy = self.retry_policy
                if requeued > policy.max_rate_limit_retries or (
                    time.monotonic() - started > policy.max_rate_limit_seconds
                ):
                    raise

    async def _send_once(
        self, spec: CallSpec, limiter: AdaptiveRateLimiter
    ) -> tuple[dict[str, Any], str | None, bool]:
        headers: dict[str, str] = {}
        if spec.auth:
            if self._access_token is None:
                raise AuthenticationError(
                    "no access token configured on this client",
                    code=None,
                    endpoint=spec.path,
                    resolution_key="invalid_credentials",
                )
            headers["Access-Token"] = self._access_token.get_secret_value()  # ref §1: header, not Bearer
        kwargs: dict[str, Any] = {"headers": headers}
        if spec.query is not None:
            dumped = _reveal(spec.query.model_dump(exclude_none=True))
            kwargs["params"] = {k: _query_value(v) for k, v in dumped.items()}
        if spec.body is not None:
            if _has_secrets(type(spec.body)):
                kwargs["json"] = _reveal(spec.body.model_dump(mode="python", exclude_none=True))
            else:
                # The hot path (mapping, events): pydantic-core writes the JSON directly, ~10x cheaper.
                kwargs["content"] = spec.body.model_dump_json(exclude_none=True).encode()
                headers["Content-Type"] = "application/json"
        if spec.files is not None:
            kwargs["files"] = spec.files
            kwargs["data"] = spec.form or {}
        if spec.content is not None:
            kwargs["content"] = spec.content
            headers["Content-Type"] = "application/json"

        async with self._semaphore:
            if observe.OBSERVERS:
                began = time.monotonic()
                claimed_at = await limiter.acquire()
                observe.waited(spec.path, time.monotonic() - began)
            else:
                claimed_at = await limiter.acquire()
            spec.requests_sent += 1
            self.stats.requests += 1
            written = _WriteClock(limiter)
            kwargs["extensions"] = {"trace": written}
            try:
                response = await self._http.request(spec.method, self._url(spec.path), **kwargs)
                limiter.answered(claimed_at, written.at, spec.path)
            except httpx2.TransportError as exc:
                observe.answered(spec.path, "transport_error")
                err = transport_error(spec.path, f"{type(exc).__name__}: could not complete the request")
                # A timeout or dropped connection after sending is ambiguous for a create: do not repeat it.
                err.ambiguous = not spec.idempotent and not isinstance(exc, _NOT_SENT)
                raise err from None
        if observe.OBSERVERS:
            observe.answered(spec.path, _answer_code(response))
        return self._parse(spec, response)

    def _url(self, path: str) -> httpx2.URL:
        """The absolute URL of an API path, built once: httpx2 re-joins a relative one on every request."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx2.URL(self.base_url + path.lstrip("/"))
        return url

    def _parse(self, spec: CallSpec, response: httpx2.Response) -> tuple[dict[str, Any], str | None, bool]:
        if response.status_code != 200:
            # ref §1: HTTP 4xx/5xx means the request never reached the API logic (bad path, gateway fault).
            detail = "path not found" if response.status_code == 404 else "not a TikTok API answer"
            raise from_http_status(response.status_code, endpoint=spec.path, detail=detail)
        try:
            envelope = response.json()
            code = envelope["code"]
            if not isinstance(code, int) or isinstance(code, bool):
                raise TypeError("code is not an integer")
        except (ValueError, KeyError, TypeError):
            raise UnexpectedResponseError(
                "HTTP 200 without a TikTok JSON envelope",
                code=None,
                endpoint=spec.path,
                resolution_key="tiktok_unavailable",
                http_status=200,
            ) from None
        request_id = envelope.get("request_id")
        request_id = str(request_id) if request_id is not None else None
        message = scrub(str(envelope.get("message") or ""), self._secrets())
        if not is_success(code):
            raise from_envelope(code, message, endpoint=spec.path, request_id=request_id)
        data = envelope.get("data")
        return (data if isinstance(data, dict) else {}), request_id, code == PARTIAL_SUCCESS_CODE


class _WriteClock:
    """When the transport finished writing a request, on its limiter's clock (an httpcore `trace` callback).

    The limiter counts a send from its claim unless it went out later (see `AdaptiveRateLimiter.answered`):
    the end of the write is the moment the whole request is on its way, which the answer's time is not when
    a large body takes the server a while to read and process.
    """

    __slots__ = ("_limiter", "at")

    def __init__(self, limiter: AdaptiveRateLimiter) -> None:
        self._limiter = limiter
        self.at: float | None = None

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_body.complete"):
            self.at = self._limiter.now()


def _answer_code(response: httpx2.Response) -> str:
    """TikTok's code of an answer (`http_STATUS` when it is not a TikTok envelope), for observers."""
    if response.status_code != 200:
        return f"http_{response.status_code}"
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return "unparsed"
    return str(code) if isinstance(code, int) and not isinstance(code, bool) else "unparsed"


def _secret(value: str | SecretStr | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)
