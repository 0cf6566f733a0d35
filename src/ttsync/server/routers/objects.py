"""Configuration objects: credentials, sources, destinations (+ test connection), templates, orchestrations.

Writes are upserts of the whole object (as `ttsync apply` does); secrets are write-only: a credential is
answered with `has_*` flags, never its secret values, and the audit log records only that a secret was set.
Rights: everyone reads (restricted-PII users do not see destinations that do not allow them); operators
edit templates and orchestrations; admins the rest.

List, get and delete are the same for every kind (`Kind.add_routes`, over the store's generic `ConfigRepo`);
saves stay per kind: each checks its own references and rights.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from types import GenericAlias
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from ttsync.app import objects as app_objects
from ttsync.app.audit import record
from ttsync.config.models import Credential, DataTemplate, Destination, Orchestration, Source
from ttsync.destinations.tiktok.oauth import Doctor
from ttsync.server import access
from ttsync.server.auth import Principal, admin, operator, store_of, viewer
from ttsync.server.problems import Problem
from ttsync.store import objects, repos
from ttsync.store.configrepo import ConfigRepo
from ttsync.store.db import Store

router = APIRouter(prefix="/api")
M = TypeVar("M", bound=BaseModel)

NAME = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$", description="object name")


class Changed(BaseModel):
    """What a write did."""

    name: str
    change: str


class CredentialView(BaseModel):
    """A credential as the API shows it: no secret, only whether each is set."""

    name: str
    app_id: str
    advertiser_ids: list[str]
    environment: str
    redirect_uri: str | None
    sandbox_base_url: str | None
    description: str
    has_app_secret: bool
    has_access_token: bool
    has_refresh_token: bool
    token_expires_at: datetime | None


def _credential_view(item: Credential) -> CredentialView:
    return CredentialView(
        name=item.name,
        app_id=item.app_id,
        advertiser_ids=list(item.advertiser_ids),
        environment=item.environment,
        redirect_uri=item.redirect_uri,
        sandbox_base_url=item.sandbox_base_url,
        description=item.description,
        has_app_secret=item.app_secret is not None,
        has_access_token=item.access_token is not None,
        has_refresh_token=item.refresh_token is not None,
        token_expires_at=item.token_expires_at,
    )


async def _store(request: Request) -> Store:
    # async: FastAPI runs a sync dependency in a worker thread, a hop that costs more than this does
    return store_of(request)


def _not_found(kind: str, name: str) -> Problem:
    return Problem(404, "Not found", f"no {kind} named {name!r}", resolution="object_not_found")


@dataclass(frozen=True)
class Kind(Generic[M]):
    """How the API lists, shows and deletes one kind of configuration object over its generic `ConfigRepo`:
    who may see which objects, who may delete them, and how an object is shown."""

    path: str  # "/api/<path>": also the tag and the operation names (`list_<path>`)
    audit: str  # the audit log's name of the kind: "template" for data templates
    repo: ConfigRepo[M]
    view: type[BaseModel]  # what the API answers with (the model itself, or a view without secrets)
    deleter: Callable[..., Awaitable[Principal]]  # the role dependency of delete
    docs: tuple[str, str, str]  # docstrings of list, get and delete
    show: Callable[[M], BaseModel] = lambda item: item
    # The objects of a list this caller may see (default: all).
    visible: Callable[[Store, Principal, list[M]], list[M]] = lambda _store, _who, items: items
    # Refuse (raise `Problem`) deleting an object the caller may see but not use (default: the role suffices).
    check_use: Callable[[Store, Principal, M], None] = lambda _store, _who, _item: None

    def may_see(self, store: Store, who: Principal, item: M) -> bool:
        """Whether `who` sees `item` (hidden objects answer 404, as missing ones)."""
        return bool(self.visible(store, who, [item]))

    def add_routes(self, router: APIRouter) -> None:
        """`GET /api/<path>`, `GET /api/<path>/{name}` and `DELETE /api/<path>/{name}`."""
        list_doc, get_doc, delete_doc = self.docs

        def list_items(store: Store = Depends(_store), who: Principal = Depends(viewer)) -> list[Any]:
            return [self.show(item) for item in self.visible(store, who, self.repo.list(store))]

        def get_item(
            name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(viewer)
        ) -> Any:
            item = self.repo.get(store, name)
            if not self.may_see(store, who, item):
                raise _not_found(self.repo.kind, name)
            return self.show(item)

        def delete_item(
            name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(self.deleter)
        ) -> Changed:
            item = self.repo.get(store, name)
            if not self.may_see(store, who, item):
                raise _not_found(self.repo.kind, name)
            self.check_use(store, who, item)
            if not self.repo.delete(store, name):
                raise _not_found(self.repo.kind, name)  # deleted meanwhile
            record(store, who.name, f"{self.audit}.delete", f"{self.audit}:{name}", {})
            return Changed(name=name, change="deleted")

        tags: list[str | Enum] = [self.path]
        one = f"/{self.path}/{{name}}"
        router.add_api_route(
            f"/{self.path}", list_items, methods=["GET"], name=f"list_{self.path}", tags=tags,
            response_model=GenericAlias(list, (self.view,)), description=list_doc,
        )  # fmt: skip
        router.add_api_route(
            one, get_item, methods=["GET"], name=f"get_{self.kind_name}", tags=tags,
            response_model=self.view, description=get_doc,
        )  # fmt: skip
        router.add_api_route(
            one, delete_item, methods=["DELETE"], name=f"delete_{self.kind_name}", tags=tags,
            response_model=Changed, description=delete_doc,
        )  # fmt: skip

    @property
    def kind_name(self) -> str:
        """The singular of `path`, as the operation names have it: `get_credential`."""
        return self.path.removesuffix("s")


def _hidden_orchestrations(store: Store, who: Principal, items: list[Orchestration]) -> list[Orchestration]:
    hidden = set(access.hidden_orchestrations(store, who.user))
    return [item for item in items if item.name not in hidden]


def _visible_templates(store: Store, who: Principal, items: list[DataTemplate]) -> list[DataTemplate]:
    destinations = {d.name: d for d in repos.list_destinations(store)}
    return [t for t in items if access.visible(who.user, destinations[t.destination], t)]


def _use_template(store: Store, who: Principal, item: DataTemplate) -> None:
    access.check_use(who.user, repos.get_destination(store, item.destination), item)


def _use_orchestration(store: Store, who: Principal, item: Orchestration) -> None:
    access.check_orchestration(store, who.user, item.name, use=True)


CREDENTIALS = Kind(
    "credentials", "credential", objects.CREDENTIALS, CredentialView, admin,
    ("Credentials, secrets left out.", "One credential, secrets left out.",
     "Delete a credential no destination uses."),
    show=_credential_view,
)  # fmt: skip
SOURCES = Kind(
    "sources", "source", objects.SOURCES, Source, admin,
    ("Warehouse sources.", "One source.", "Delete a source no orchestration uses."),
)  # fmt: skip
DESTINATIONS = Kind(
    "destinations", "destination", objects.DESTINATIONS, Destination, admin,
    ("Destinations this user may see.", "One destination.", "Delete a destination nothing uses."),
    visible=lambda _store, who, items: [item for item in items if access.visible(who.user, item)],
)  # fmt: skip
TEMPLATES = Kind(
    "templates", "template", objects.TEMPLATES, DataTemplate, operator,
    ("Data templates whose destination this user may see.", "One data template.",
     "Delete a data template no orchestration uses."),
    visible=_visible_templates, check_use=_use_template,
)  # fmt: skip
ORCHESTRATIONS = Kind(
    "orchestrations", "orchestration", objects.ORCHESTRATIONS, Orchestration, operator,
    ("Orchestrations this user may see.", "One orchestration.", "Delete an orchestration."),
    visible=_hidden_orchestrations, check_use=_use_orchestration,
)  # fmt: skip


# --- credentials -------------------------------------------------------------------------------------------

CREDENTIALS.add_routes(router)


@router.post("/credentials", tags=["credentials"])
def save_credential(
    body: Credential, store: Store = Depends(_store), who: Principal = Depends(admin)
) -> Changed:
    """Create or update a credential; secrets left out of the body keep their stored values."""
    change = app_objects.save_credential(store, body)
    fields = body.model_dump(exclude={"app_secret", "access_token", "refresh_token"}, mode="json")
    secrets_set = [k for k in ("app_secret", "access_token", "refresh_token") if getattr(body, k) is not None]
    record(
        store,
        who.name,
        "credential.save",
        f"credential:{body.name}",
        {"fields": fields, "secrets_set": secrets_set},
    )
    return Changed(name=body.name, change=change)


# --- sources -----------------------------------------------------------------------------------------------

SOURCES.add_routes(router)


@router.post("/sources", tags=["sources"])
def save_source(body: Source, store: Store = Depends(_store), who: Principal = Depends(admin)) -> Changed:
    """Create or update a source."""
    change = repos.save_source(store, body)
    record(store, who.name, "source.save", f"source:{body.name}", body.model_dump(mode="json"))
    return Changed(name=body.name, change=change)


# --- destinations ------------------------------------------------------------------------------------------

DESTINATIONS.add_routes(router)


@router.post("/destinations", tags=["destinations"])
def save_destination(
    body: Destination, store: Store = Depends(_store), who: Principal = Depends(admin)
) -> Changed:
    """Create or update a destination (its credential must exist)."""
    repos.get_credential(store, body.credential)
    change = app_objects.save_destination(store, body)
    record(store, who.name, "destination.save", f"destination:{body.name}", body.model_dump(mode="json"))
    return Changed(name=body.name, change=change)


@router.post("/destinations/{name}/test", tags=["destinations"])
def check_destination(
    name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(admin)
) -> dict[str, Any]:
    """Test connection: the token, the advertisers and the write permission, as `ttsync doctor` checks them."""
    if not DESTINATIONS.may_see(store, who, repos.get_destination(store, name)):
        raise _not_found("destination", name)
    return Doctor(store).destination(name).to_dict()


# --- data templates ----------------------------------------------------------------------------------------

TEMPLATES.add_routes(router)


@router.post("/templates", tags=["templates"])
def save_template(
    body: DataTemplate, store: Store = Depends(_store), who: Principal = Depends(operator)
) -> Changed:
    """Create or update a data template (on a destination this user may use)."""
    access.check_use(who.user, repos.get_destination(store, body.destination), body)
    change = repos.save_template(store, body)
    record(store, who.name, "template.save", f"template:{body.name}", body.model_dump(mode="json"))
    return Changed(name=body.name, change=change)


# --- orchestrations ----------------------------------------------------------------------------------------

ORCHESTRATIONS.add_routes(router)


@router.post("/orchestrations", tags=["orchestrations"])
def save_orchestration(
    body: Orchestration, store: Store = Depends(_store), who: Principal = Depends(operator)
) -> Changed:
    """Create or update an orchestration (its source, destination and template must exist)."""
    repos.get_source(store, body.source)
    template = repos.get_template(store, body.template) if body.template else None
    access.check_use(who.user, repos.get_destination(store, body.destination), template)
    change = repos.save_orchestration(store, body)
    record(store, who.name, "orchestration.save", f"orchestration:{body.name}", body.model_dump(mode="json"))
    return Changed(name=body.name, change=change)
