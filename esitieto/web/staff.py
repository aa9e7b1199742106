"""The administrator's page: staff accounts, their roles and their stations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from esitieto.accounts import (
    AccountChange,
    AccountError,
    create_account,
    get_account,
    list_accounts,
    update_account,
)
from esitieto.runtime import Runtime, get_runtime
from esitieto.web.auth import (
    MIN_DISTINCT_CHARACTERS,
    MIN_PASSWORD_LENGTH,
    Permission,
    StaffUser,
    check_csrf,
    require,
)
from esitieto.web.i18n import messages
from esitieto.web.pages import model_limit, page_language, render
from models import Role, Station

router = APIRouter(include_in_schema=False)

Rt = Annotated[Runtime, Depends(get_runtime)]
Admin = Annotated[StaffUser, Depends(require(Permission.STAFF))]

MAX_NAME_LENGTH = model_limit(AccountChange, "display_name", "max_length")
LIMITS = {
    "min_length": MIN_PASSWORD_LENGTH,
    "min_distinct": MIN_DISTINCT_CHARACTERS,
    "max_name": MAX_NAME_LENGTH,
}
"""The numbers the form's help and error messages name: one place, the code's own values."""


def _context(runtime: Runtime, user: StaffUser, **extra: Any) -> dict[str, Any]:
    with runtime.db.session() as session:
        stations = session.execute(select(Station.id, Station.name).order_by(Station.name)).all()
        accounts = list_accounts(session)
    return {
        "user": user,
        "accounts": accounts,
        "stations": [(sid, name) for sid, name in stations],
        "roles": list(Role),
        "limits": LIMITS,
        "error": None,
        "form": None,
        **extra,
    }


@router.get("/admin/staff", response_class=HTMLResponse)
def staff_list(request: Request, runtime: Rt, user: Admin, saved: int = 0) -> Response:
    return render(request, "staff.html", _context(runtime, user, saved=bool(saved)))


@router.get("/admin/staff/{user_id}", response_class=HTMLResponse)
def staff_edit(user_id: str, request: Request, runtime: Rt, user: Admin) -> Response:
    with runtime.db.session() as session:
        account = get_account(session, user_id)
    if account is None:
        raise HTTPException(status_code=404, detail="no such account")
    return render(request, "staff_edit.html", _context(runtime, user, account=account))


@router.post("/admin/staff")
async def staff_create(request: Request, runtime: Rt, user: Admin) -> Response:
    return await _save(request, runtime, user, None)


@router.post("/admin/staff/{user_id}")
async def staff_update(user_id: str, request: Request, runtime: Rt, user: Admin) -> Response:
    return await _save(request, runtime, user, user_id)


async def _save(request: Request, runtime: Rt, user: StaffUser, user_id: str | None) -> Response:
    form = await request.form()
    check_csrf(request, _text(form.get("csrf")))
    username = _text(form.get("username"))
    fields: dict[str, object] = {
        "username": username,
        "display_name": _text(form.get("display_name")).strip(),
        "role": _text(form.get("role")),
        "station_ids": [_text(v) for v in form.getlist("station")],
        "is_active": form.get("is_active") == "on" if user_id else True,
        "password": _text(form.get("password")),
    }
    try:
        change = AccountChange.model_validate(fields)
        with runtime.db.session() as session:
            if user_id is None:
                create_account(session, user.id, username, change)
            else:
                update_account(session, user.id, user_id, change)
    except (ValidationError, AccountError) as exc:
        code = exc.code if isinstance(exc, AccountError) else _invalid_field(exc)
        t = messages(page_language(request, user))
        error = t.staff_errors.get(code, t.staff_errors["invalid"]).format(**LIMITS)
        with runtime.db.session() as session:
            account = get_account(session, user_id) if user_id else None
        template = "staff_edit.html" if user_id else "staff.html"
        context = _context(runtime, user, account=account, error=error, form=fields)
        return render(request, template, context, status=422)
    return RedirectResponse("/admin/staff?saved=1", status_code=303)


def _invalid_field(exc: ValidationError) -> str:
    """The message for the form's first wrong field (``invalid``: none we can name)."""
    for error in exc.errors():
        if error["loc"] and error["loc"][0] in ("display_name", "role"):
            return f"bad_{error['loc'][0]}"
    return "invalid"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
