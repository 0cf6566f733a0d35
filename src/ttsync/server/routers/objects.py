"""Configuration objects: credentials, sources, destinations (+ test connection), templates, orchestrations.

Writes are upserts of the whole object (as `ttsync apply` does); secrets are write-only: a credential is
answered with `has_*` flags, never its secret values, and the audit log records only that a secret was set.
Rights: everyone reads (restricted-PII users do not see destinations that do not allow them); operators
edit templates and orchestrations; admins the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from ttsync.app import objects as app_objects
from ttsync.app.audit import record
from ttsync.config.models import Credential, DataTemplate, Destination, Orchestration, Source
from ttsync.destinations.tiktok.oauth import Doctor
from ttsync.server import access
from ttsync.server.auth import Principal, admin, operator, store_of, viewer
from ttsync.server.problems import Problem
from ttsync.store import repos
from ttsync.store.db import Store

router = APIRouter(prefix="/api")

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


def _store(request: Request) -> Store:
    return store_of(request)


# --- credentials -------------------------------------------------------------------------------------------


@router.get("/credentials", tags=["credentials"])
def list_credentials(store: Store = Depends(_store), _: Principal = Depends(viewer)) -> list[CredentialView]:
    """Credentials, secrets left out."""
    return [_credential_view(item) for item in repos.list_credentials(store)]


@router.get("/credentials/{name}", tags=["credentials"])
def get_credential(
    name: str = NAME, store: Store = Depends(_store), _: Principal = Depends(viewer)
) -> CredentialView:
    """One credential, secrets left out."""
    return _credential_view(repos.get_credential(store, name))


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


@router.delete("/credentials/{name}", tags=["credentials"])
def delete_credential(
    name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(admin)
) -> Changed:
    """Delete a credential no destination uses."""
    if not repos.delete_credential(store, name):
        raise Problem(404, "Not found", f"no credential named {name!r}", resolution="object_not_found")
    record(store, who.name, "credential.delete", f"credential:{name}", {})
    return Changed(name=name, change="deleted")


# --- sources -----------------------------------------------------------------------------------------------


@router.get("/sources", tags=["sources"])
def list_sources(store: Store = Depends(_store), _: Principal = Depends(viewer)) -> list[Source]:
    """Warehouse sources."""
    return repos.list_sources(store)


@router.get("/sources/{name}", tags=["sources"])
def get_source(name: str = NAME, store: Store = Depends(_store), _: Principal = Depends(viewer)) -> Source:
    """One source."""
    return repos.get_source(store, name)


@router.post("/sources", tags=["sources"])
def save_source(body: Source, store: Store = Depends(_store), who: Principal = Depends(admin)) -> Changed:
    """Create or update a source."""
    change = repos.save_source(store, body)
    record(store, who.name, "source.save", f"source:{body.name}", body.model_dump(mode="json"))
    return Changed(name=body.name, change=change)


@router.delete("/sources/{name}", tags=["sources"])
def delete_source(
    name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(admin)
) -> Changed:
    """Delete a source no orchestration uses."""
    if not repos.delete_source(store, name):
        raise Problem(404, "Not found", f"no source named {name!r}", resolution="object_not_found")
    record(store, who.name, "source.delete", f"source:{name}", {})
    return Changed(name=name, change="deleted")


# --- destinations ------------------------------------------------------------------------------------------


def _visible_destination(store: Store, who: Principal, name: str) -> Destination:
    item = repos.get_destination(store, name)
    if not access.visible(who.user, item):
        raise Problem(404, "Not found", f"no destination named {name!r}", resolution="object_not_found")
    return item


@router.get("/destinations", tags=["destinations"])
def list_destinations(store: Store = Depends(_store), who: Principal = Depends(viewer)) -> list[Destination]:
    """Destinations this user may see."""
    return [item for item in repos.list_destinations(store) if access.visible(who.user, item)]


@router.get("/destinations/{name}", tags=["destinations"])
def get_destination(
    name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(viewer)
) -> Destination:
    """One destination."""
    return _visible_destination(store, who, name)


@router.post("/destinations", tags=["destinations"])
def save_destination(
    body: Destination, store: Store = Depends(_store), who: Principal = Depends(admin)
) -> Changed:
    """Create or update a destination (its credential must exist)."""
    repos.get_credential(store, body.credential)
    change = app_objects.save_destination(store, body)
    record(store, who.name, "destination.save", f"destination:{body.name}", body.model_dump(mode="json"))
    return Changed(name=body.name, change=change)


@router.delete("/destinations/{name}", tags=["destinations"])
def delete_destination(
    name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(admin)
) -> Changed:
    """Delete a destination nothing uses."""
    if not repos.delete_destination(store, name):
        raise Problem(404, "Not found", f"no destination named {name!r}", resolution="object_not_found")
    record(store, who.name, "destination.delete", f"destination:{name}", {})
    return Changed(name=name, change="deleted")


@router.post("/destinations/{name}/test", tags=["destinations"])
def check_destination(
    name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(admin)
) -> dict[str, Any]:
    """Test connection: the token, the advertisers and the write permission, as `ttsync doctor` checks them."""
    _visible_destination(store, who, name)
    return Doctor(store).destination(name).to_dict()


# --- data templates ----------------------------------------------------------------------------------------


@router.get("/templates", tags=["templates"])
def list_templates(store: Store = Depends(_store), who: Principal = Depends(viewer)) -> list[DataTemplate]:
    """Data templates whose destination this user may see."""
    destinations = {d.name: d for d in repos.list_destinations(store)}
    return [
        t for t in repos.list_templates(store) if access.visible(who.user, destinations[t.destination], t)
    ]


@router.get("/templates/{name}", tags=["templates"])
def get_template(
    name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(viewer)
) -> DataTemplate:
    """One data template."""
    item = repos.get_template(store, name)
    if not access.visible(who.user, repos.get_destination(store, item.destination), item):
        raise Problem(404, "Not found", f"no data template named {name!r}", resolution="object_not_found")
    return item


@router.post("/templates", tags=["templates"])
def save_template(
    body: DataTemplate, store: Store = Depends(_store), who: Principal = Depends(operator)
) -> Changed:
    """Create or update a data template (on a destination this user may use)."""
    access.check_use(who.user, repos.get_destination(store, body.destination), body)
    change = repos.save_template(store, body)
    record(store, who.name, "template.save", f"template:{body.name}", body.model_dump(mode="json"))
    return Changed(name=body.name, change=change)


@router.delete("/templates/{name}", tags=["templates"])
def delete_template(
    name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(operator)
) -> Changed:
    """Delete a data template no orchestration uses."""
    item = repos.get_template(store, name)
    access.check_use(who.user, repos.get_destination(store, item.destination), item)
    repos.delete_template(store, name)
    record(store, who.name, "template.delete", f"template:{name}", {})
    return Changed(name=name, change="deleted")


# --- orchestrations ----------------------------------------------------------------------------------------


@router.get("/orchestrations", tags=["orchestrations"])
def list_orchestrations(
    store: Store = Depends(_store), who: Principal = Depends(viewer)
) -> list[Orchestration]:
    """Orchestrations this user may see."""
    hidden = set(access.hidden_orchestrations(store, who.user))
    return [item for item in repos.list_orchestrations(store) if item.name not in hidden]


@router.get("/orchestrations/{name}", tags=["orchestrations"])
def get_orchestration(
    name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(viewer)
) -> Orchestration:
    """One orchestration."""
    access.check_orchestration(store, who.user, name, use=False)
    return repos.get_orchestration(store, name)


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


@router.delete("/orchestrations/{name}", tags=["orchestrations"])
def delete_orchestration(
    name: str = NAME, store: Store = Depends(_store), who: Principal = Depends(operator)
) -> Changed:
    """Delete an orchestration."""
    access.check_orchestration(store, who.user, name, use=True)
    repos.delete_orchestration(store, name)
    record(store, who.name, "orchestration.delete", f"orchestration:{name}", {})
    return Changed(name=name, change="deleted")
