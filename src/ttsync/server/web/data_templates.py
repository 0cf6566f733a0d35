"""Data templates: list, add/edit with the attribute-mapping editor (source column → TikTok field), settings
overrides, and the audience-name template with its example (rendered live by `template.js`, and by the
server for a page without JavaScript). Checked with the configuration's and the runs' own messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from ttsync.config.models import DataTemplate, Destination
from ttsync.destinations.tiktok.settings import audience_name_warning, validate_settings
from ttsync.errors import ConfigError, NotFoundError
from ttsync.events.columns import EventColumnsError, plan_columns
from ttsync.events.parameters import PARAMETERS, parameter_for
from ttsync.server import access
from ttsync.server.auth import store_of
from ttsync.server.routers import objects
from ttsync.server.web.core import (
    NAME,
    Viewer,
    field_errors,
    need,
    page_router,
    posted,
    principal,
    render,
    signed_in,
    yaml_mapping,
    yaml_text,
)
from ttsync.store import repos
from ttsync.sync.columns import HASH_STATES, REGION_FIELD, USER_ID_KINDS, audience_column_specs

router = page_router()

# What the example audience name fills in (the live example in the browser uses the same values).
EXAMPLE = {"campaign": "Spring offer", "group": "loyal"}
AUDIENCE_FIELDS = [
    *(f"{kind}{state}" for kind in USER_ID_KINDS for state in ("", *(f":{s}" for s in HASH_STATES))),
    REGION_FIELD,
]
MAX_ROWS = 200  # mapping rows read from a post (a warehouse table rarely has more identifier columns)
EMPTY_ROWS = 3  # blank mapping rows offered under the existing ones (more with "Add a row", or save and edit)


def example_name(template: str | None, day: str) -> dict[str, str | None]:
    """The audience name `template` gives for the example campaign and group, and its warning or error."""
    if not template:
        return {"name": None, "warning": None, "error": None}
    try:
        DataTemplate.model_validate({"name": "x", "destination": "x", "audience_name_template": template})
        name = template.format(**EXAMPLE, date=day)
    except ValidationError as exc:
        return {"name": None, "warning": None, "error": field_errors(exc).get("audience_name_template")}
    except (KeyError, IndexError, ValueError):
        return {
            "name": None,
            "warning": None,
            "error": "unbalanced braces: write {campaign}, {group}, {date}",
        }
    return {"name": name, "warning": audience_name_warning(name), "error": None}


def mapping_errors(kind: str, pairs: list[tuple[str, str]]) -> dict[int, str]:
    """Per mapping row, what a run would refuse about it (the runs' own messages)."""
    errors: dict[int, str] = {}
    seen: set[str] = set()
    for index, (source, target) in enumerate(pairs):
        if not (source and target):
            errors[index] = "give both the source column and the TikTok field, or clear the row"
            continue
        if source.lower() in seen:
            errors[index] = f"column {source!r} is mapped twice: keep one row"
            continue
        seen.add(source.lower())
        try:
            if kind == "audience":
                if target.strip().upper() != REGION_FIELD:
                    audience_column_specs(
                        user_id_types=list(USER_ID_KINDS), mapping={source: target}, columns=[source],
                        default_region=None,
                    )  # fmt: skip
            elif parameter_for(target) is None:
                plan_columns([source], key_column=None, attribute_mapping={source: target})
        except (ConfigError, EventColumnsError) as exc:
            errors[index] = str(exc)
    return errors


def _form_rows(form: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = list(form.get("mapping") or [])
    return rows + [("", "")] * EMPTY_ROWS


def _template_form(
    request: Request,
    viewer: Viewer,
    form: dict[str, Any],
    errors: dict[str, Any],
    status: int = 200,
    *,
    saved: bool = False,
) -> HTMLResponse:
    store = store_of(request)
    visible = [d for d in repos.list_destinations(store) if access.visible(viewer.user, d)]
    day = datetime.now(UTC).date().isoformat()
    return render(
        request,
        "template_form.html",
        status,
        viewer=viewer,
        form=form,
        errors=errors,
        rows=_form_rows(form),
        destinations=visible,
        audience_fields=AUDIENCE_FIELDS,
        event_fields=[p.name for p in PARAMETERS],
        example=example_name(form.get("audience_name_template"), day),
        example_values=EXAMPLE | {"date": day},
        saved=saved,
    )


def _visible_template(request: Request, viewer: Viewer, name: str) -> tuple[DataTemplate, Destination]:
    store = store_of(request)
    item = repos.get_template(store, name)
    destination = repos.get_destination(store, item.destination)
    if not access.visible(viewer.user, destination, item):
        raise NotFoundError("data template", name)
    return item, destination


@router.get("/templates")
def templates(request: Request, viewer: Viewer = Depends(signed_in)) -> HTMLResponse:
    """Data templates whose destination this user may see."""
    store = store_of(request)
    destinations = {d.name: d for d in repos.list_destinations(store)}
    rows = [
        t for t in repos.list_templates(store) if access.visible(viewer.user, destinations[t.destination], t)
    ]
    return render(request, "templates.html", viewer=viewer, rows=rows)


@router.get("/templates-new")
def new_template(request: Request, viewer: Viewer = Depends(need("operator"))) -> HTMLResponse:
    """An empty data template form (operators and admins)."""
    return _template_form(request, viewer, {"new": True}, {})


@router.get("/templates/{name}")
def edit_template(
    request: Request,
    name: str = NAME,
    viewer: Viewer = Depends(signed_in),
    saved: bool = Query(default=False),
) -> HTMLResponse:
    """A data template's form (read-only for viewers: they see it, the save is refused)."""
    item, _ = _visible_template(request, viewer, name)
    form = item.model_dump(mode="json", exclude={"settings", "attribute_mapping"}) | {
        "settings": yaml_text(item.settings),
        "mapping": list(item.attribute_mapping.items()),
        "new": False,
    }
    return _template_form(request, viewer, form, {}, saved=saved)


def _flag(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


@router.post("/templates")
def save_template(
    request: Request,
    viewer: Viewer = Depends(posted("operator")),
    name: str = Form(default="", max_length=80),
    destination: str = Form(default="", max_length=80),
    settings: str = Form(default="", max_length=20_000),
    audience_name_template: str = Form(default="", max_length=500),
    available_to_campaigns: bool = Form(default=False),
    admin_only: str = Form(default="inherit", max_length=10),
    allow_restricted_pii: str = Form(default="inherit", max_length=10),
    description: str = Form(default="", max_length=2000),
    new: bool = Form(default=False),
    map_source: list[str] = Form(default_factory=list),
    map_target: list[str] = Form(default_factory=list),
) -> Response:
    """Check every field and mapping row with the configuration's and the runs' messages; save through the
    API's handler only when all pass."""
    posted_rows = zip(map_source[:MAX_ROWS], map_target[:MAX_ROWS], strict=False)
    pairs = [(s.strip()[:200], t.strip()[:200]) for s, t in posted_rows if s.strip() or t.strip()]
    form: dict[str, Any] = {
        "name": name, "destination": destination, "settings": settings, "mapping": pairs,
        "audience_name_template": audience_name_template, "available_to_campaigns": available_to_campaigns,
        "admin_only": _flag(admin_only), "allow_restricted_pii": _flag(allow_restricted_pii),
        "description": description, "new": new,
    }  # fmt: skip
    store = store_of(request)
    errors: dict[str, Any] = {}
    raw, settings_error = yaml_mapping(settings, "delivery: fast")
    if settings_error:
        errors["settings"] = settings_error
    target = next((d for d in repos.list_destinations(store) if d.name == destination), None)
    if target is None or not access.visible(viewer.user, target):
        errors["destination"] = f"no destination named {destination!r}: pick one from the list"
    else:
        if raw is not None:
            try:
                validate_settings(target.kind, raw, f"data template {name!r}")
            except ConfigError as exc:
                errors["settings"] = str(exc)
        rows = mapping_errors(target.kind, pairs)
        if rows:
            errors["mapping"] = rows
    if not new:
        _visible_template(request, viewer, name)  # 404 when hidden
    elif any(t.name == name for t in repos.list_templates(store)):
        errors["name"] = f"a data template named {name!r} exists: pick another name, or edit it"
    fields = {k: v for k, v in form.items() if k not in ("new", "mapping")} | {
        "settings": raw or {},
        "attribute_mapping": dict(pairs),
        "audience_name_template": audience_name_template or None,
    }
    body = None
    try:
        body = DataTemplate.model_validate(fields)
    except ValidationError as exc:
        for field, message in field_errors(exc).items():
            errors.setdefault(field if field in form else "audience_name_template", message)
    if errors or body is None:
        return _template_form(request, viewer, form, errors, 422)
    objects.save_template(body, store, principal(viewer))
    return RedirectResponse(f"/ui/templates/{body.name}?saved=1", status_code=303)
