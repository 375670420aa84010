"""The panel's records (issue 5 "Records", issue 6 "Intake"): log in and out, appeals —
list with search and keyset pagination, registration, the card with every action of its
life —, and personal reception — free slots, booking, cancellation, attendance.

Every view of a citizen's personal data and every change is audit-logged; phone numbers
are masked in lists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from ivr.db.models import (
    Agency,
    Appeal,
    AppealOutcome,
    AppealStatus,
    AuditEntry,
    Booking,
    BookingStatus,
    Channel,
    Citizen,
    Notification,
    PlainLanguageTerm,
    ReceptionSlot,
    Role,
    Staff,
)
from ivr.dialling import DiallingPolicy, display
from ivr.phone import normalise
from ivr.services import appeals, intake, notices, receptions, topics
from ivr.services.container import Services
from ivr.services.delivery import NEED_NAMES, needs_text
from ivr.services.plain_language import KIND_NAMES

from . import audit_names, audit_view, auth, reception_params, scopes
from .app_keys import SERVICES
from .errors import Invalid, NotFound
from .policy import APPEAL_STAFF, HEADS, OVERSEERS, STAFF, actor, panel, public

PAGE = 50
STATUS_NAMES = {
    AppealStatus.REGISTERED: "зарегистрировано", AppealStatus.IN_WORK: "на рассмотрении",
    AppealStatus.REDIRECTED: "направлено по компетенции",
    AppealStatus.NOT_CONSIDERED: "не рассмотрено по существу",
    AppealStatus.ANSWERED: "дан ответ", AppealStatus.COMPLETED: "завершено",
}
# The appeal list's status filter as the audit log shows a search.
SEARCH_NAMES = {"overdue": "просроченные", "due_soon": "срок скоро"} | {
    status.value: name for status, name in STATUS_NAMES.items()}
BOOKING_NAMES = {"booked": "записан", "cancelled": "отменена", "attended": "состоялся",
                 "no_show": "не пришёл"}
OUTCOME_NAMES = {
    AppealOutcome.RESOLVED: "вопрос решён", AppealOutcome.WILL_RESOLVE_BY: "будет решён к дате",
    AppealOutcome.CAN_RESOLVE_NO_DATE: "может быть решён, срок не определён",
    AppealOutcome.CANNOT_RESOLVE: "не может быть решён (с причинами)",
}
CHANNEL_NAMES = {
    Channel.POST: "почта", Channel.IN_PERSON: "лично", Channel.EMAIL: "электронная почта",
    Channel.WEBSITE: "сайт", Channel.STATE_PORTAL: "ЕПГУ", Channel.HOTLINE: "горячая линия",
    Channel.PHONE: "телефон",
}


def mask_phone(phone: str) -> str:
    """«7900***4567»: enough to tell numbers apart in a list, not to call."""
    digits = normalise(phone) or phone
    return digits[:4] + "*" * max(0, len(digits) - 8) + digits[-4:] if len(digits) > 8 else (
        "*" * len(digits))


def phone_display(number: object) -> str:
    """A number for people (``+7 900 123-45-67``); none: «номер скрыт»."""
    return display(normalise(str(number)) or str(number)) if number else "номер скрыт"


def _svc(request: web.Request) -> Services:
    return request.app[SERVICES]


def _render(request: web.Request, template: str, context: dict[str, Any],
            status: int = 200) -> web.Response:
    svc = _svc(request)
    me = request.get(auth.CURRENT)
    return aiohttp_jinja2.render_template(template, request, {
        "org": svc.settings.organisation, "me": me, "csrf": me.csrf if me else "",
        "status_names": STATUS_NAMES, "outcome_names": OUTCOME_NAMES,
        "booking_names": BOOKING_NAMES, "channel_names": CHANNEL_NAMES, "mask": mask_phone,
        "heads": HEADS, "need_names": NEED_NAMES,
        "reminder_when_names": reception_params.REMINDER_WHEN_NAMES,
        "tz": svc.calendar.tz, **context}, status=status)


# --- log in / out ------------------------------------------------------------------------

def _next(value: str) -> str:
    return value if value.startswith("/panel") and "//" not in value else "/panel"


@public
async def login_form(request: web.Request) -> web.Response:
    return _render(request, "login.html", {"error": "", "next": _next(
        request.query.get("next", ""))})


@public
async def login_submit(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    form = await request.post()
    target = _next(str(form.get("next", "")))
    try:
        token, staff = await auth.log_in(svc, request.app[auth.LOGIN_GUARD],
                                         str(form.get("login", "")),
                                         str(form.get("password", "")), request.remote or "")
    except auth.LoginError as exc:
        return _render(request, "login.html", {  # the name stays; the password is retyped
            "error": str(exc), "next": target, "login": str(form.get("login", ""))[:100]},
            exc.status)
    if target == "/panel" and staff.role is Role.OPERATOR:
        target = "/panel/workspace"   # an operator's page is the workspace
    response = web.HTTPSeeOther(target)
    auth.set_cookie(request, response, token)
    raise response


@panel(*STAFF)
async def logout(request: web.Request) -> web.StreamResponse:
    await auth.log_out(_svc(request), auth.current(request))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(auth.COOKIE, path="/")
    raise response


@panel(*STAFF)
async def home(request: web.Request) -> web.Response:
    return _render(request, "panel_home.html", {})


# --- appeals -------------------------------------------------------------------------------

@panel(*APPEAL_STAFF, audit="appeal_list")
async def appeals_list(request: web.Request) -> web.Response:
    svc = _svc(request)
    me = auth.current(request)
    q = request.query.get("q", "").strip()
    status = request.query.get("status", "")
    before = request.query.get("before", "")
    query = (select(Appeal, Citizen).outerjoin(Citizen, Citizen.id == Appeal.citizen_id)
             .order_by(Appeal.id.desc()).limit(PAGE + 1))
    if q:
        like = f"%{q}%"
        query = query.where(or_(Appeal.reg_number == q, Appeal.topic.ilike(like),
                                Citizen.surname.ilike(like)))
    if status in {s.value for s in AppealStatus}:
        query = query.where(Appeal.status == status)
    elif status == "overdue":
        query = query.where(appeals._waiting(), Appeal.due_date < svc.calendar.today(
            svc.clock()))
    elif status == "due_soon":
        today = svc.calendar.today(svc.clock())
        until = svc.calendar.add_working_days(today, svc.settings.appeals.due_soon_working_days)
        query = query.where(appeals._waiting(), Appeal.due_date >= today,
                            Appeal.due_date <= until)
    if before.isdigit():
        query = query.where(Appeal.id < int(before))   # keyset: never OFFSET
    async with svc.sessions() as session:
        rows = (await session.execute(query)).all()
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    await auth.audit(svc, me.staff_id, "view", "appeal_list", "",
                     f"q={q!r} status={status!r} before={before!r}: {len(rows)}",
                     request.remote or "")
    return _render(request, "appeals.html", {
        "rows": rows, "q": q, "status": status,
        "next_before": rows[-1][0].id if more and rows else None,
        "today": svc.calendar.today(svc.clock())})


async def _intake_choices(svc: Services) -> dict[str, Any]:
    """The registration form's lists: how appeals arrive, the classifier's topics (R-A1),
    the channels a citizen may choose for notices (R-A2)."""
    async with svc.sessions() as session:
        classifier = await topics.active(session)
    return {"channels": intake.INTAKE_CHANNELS, "topics": classifier,
            "notice_channels": notices.NOTICE_CHANNELS}


@panel(*APPEAL_STAFF)
async def appeal_new_form(request: web.Request) -> web.Response:
    return _render(request, "appeal_new.html", {"error": "", "form": {},
                                                **await _intake_choices(_svc(request))})


@panel(*APPEAL_STAFF, audit="appeal")
async def appeal_new_submit(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    me = auth.current(request)
    form = {k: str(v) for k, v in (await request.post()).items() if k != auth.CSRF_FIELD}
    try:
        item = intake.parse({k: v for k, v in form.items() if k in intake.COLUMNS},
                            DiallingPolicy.from_settings(svc.settings))
        appeal_id = await intake.register(svc.sessions, svc.settings, svc.calendar, item,
                                          now=svc.clock())
    except intake.IntakeError as exc:
        return _render(request, "appeal_new.html", {
            "error": str(exc), "form": form, **await _intake_choices(svc)}, exc.status)
    await auth.audit(svc, me.staff_id, "create", "appeal", appeal_id, item.reg_number,
                     request.remote or "")
    raise web.HTTPSeeOther(f"/panel/appeals/{appeal_id}")


async def _appeal_context(svc: Services, appeal_id: int) -> dict[str, Any]:
    async with svc.sessions() as session:
        appeal = await session.get(Appeal, appeal_id)
        if appeal is None:
            raise NotFound("Обращение не найдено.", "appeal_not_found")
        citizen = (await session.scalar(select(Citizen).options(selectinload(Citizen.phones))
                                        .where(Citizen.id == appeal.citizen_id))
                   if appeal.citizen_id else None)
        others = list((await session.scalars(select(Appeal).where(
            Appeal.citizen_id == appeal.citizen_id, Appeal.id != appeal.id)
            .order_by(Appeal.registered_on.desc()).limit(20))).all()) if citizen else []
        sent = list((await session.scalars(select(Notification).where(
            Notification.appeal_id == appeal.id).order_by(Notification.id))).all())
        executor = await session.get(Staff, appeal.executor_id) if appeal.executor_id else None
        staff = list((await session.scalars(select(Staff).where(Staff.active)
                                            .order_by(Staff.surname))).all())
        agencies = list((await session.scalars(select(Agency).order_by(Agency.name))).all())
        reasons = await appeals.suggest_urgency(session, svc.settings, appeal)
        violations = await appeals.violations_of(session, appeal.id)
    return {"appeal": appeal, "citizen": citizen, "others": others, "notices": sent,
            "executor": executor, "staff": staff, "agencies": agencies,
            "violations": violations, "violation_kinds": appeals.VIOLATION_KINDS,
            "violation_rows": VIOLATION_ROWS,
            "urgency_reasons": reasons, "outcomes": list(AppealOutcome), "flags": [],
            "error": "", "form": {}}


@panel(*STAFF, check=scopes.appeal_reader, audit="appeal")
async def appeal_card(request: web.Request) -> web.Response:
    svc = _svc(request)
    me = auth.current(request)
    appeal_id = int(request.match_info["id"])
    context = await _appeal_context(svc, appeal_id)
    await auth.audit(svc, me.staff_id, "view", "appeal", appeal_id, "",
                     request.remote or "")
    return _render(request, "appeal.html", context)


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise appeals.AppealError("дата в формате ГГГГ-ММ-ДД") from None


async def current_staff(request: web.Request) -> Staff:
    """The logged-in employee's row (the session carries only what every page needs)."""
    async with _svc(request).sessions() as session:
        staff = await session.get(Staff, auth.current(request).staff_id)
    assert staff is not None
    return staff


Step = Callable[[Services, int, dict[str, str]], Awaitable[object]]


async def _appeal_step(request: web.Request, action: str, step: Step) -> web.StreamResponse:
    """One action on an appeal: done and audited, then back to its card; a refusal of
    the rules (R-A6, R-A7) shown on the card beside the form the employee filled."""
    svc = _svc(request)
    appeal_id = int(request.match_info["id"])
    form = {k: str(v) for k, v in (await request.post()).items()}
    try:
        await step(svc, appeal_id, form)
    except appeals.PlainLanguageIssues as issues:
        context = await _appeal_context(svc, appeal_id)
        context.update(flags=issues.flags, form=form)
        return _render(request, "appeal.html", context, 422)
    except (appeals.AppealError, ValueError) as exc:
        context = await _appeal_context(svc, appeal_id)
        context.update(error=str(exc), form=form)
        return _render(request, "appeal.html", context, 400)
    await auth.audit(svc, actor(request).staff_id, action, "appeal", appeal_id, "",
                     request.remote or "")
    raise web.HTTPSeeOther(f"/panel/appeals/{appeal_id}")


@panel(*HEADS, check=scopes.appeal_department, audit="appeal")
async def appeal_urgent(request: web.Request) -> web.StreamResponse:
    """R-A3: the head of the appeal's department marks it urgent, with the reason."""
    async def step(svc: Services, appeal_id: int, form: dict[str, str]) -> None:
        await appeals.mark_urgent(svc.sessions, svc.settings, svc.calendar, appeal_id,
                                  by=await current_staff(request),
                                  reason=form.get("reason", ""))
    return await _appeal_step(request, "urgent", step)


@panel(*APPEAL_STAFF, check=scopes.appeal_executor, audit="appeal")
async def appeal_assign(request: web.Request) -> web.StreamResponse:
    """R-A8: a specialist takes the appeal; the department head gives it to an employee
    of the department (an appeal not yet routed goes to the head's department)."""
    async def step(svc: Services, appeal_id: int, form: dict[str, str]) -> None:
        await appeals.assign(svc.sessions, svc.settings, appeal_id,
                             scopes.executor_id(form, actor(request)), now=svc.clock())
    return await _appeal_step(request, "assign", step)


@panel(*HEADS, check=scopes.appeal_department, audit="appeal")
async def appeal_abusive(request: web.Request) -> web.StreamResponse:
    """R-A4: not considered on its merits, decided by the head of its department."""
    async def step(svc: Services, appeal_id: int, form: dict[str, str]) -> None:
        await appeals.mark_abusive(svc.sessions, svc.settings, svc.calendar, appeal_id,
                                   now=svc.clock())
    return await _appeal_step(request, "abusive", step)


@panel(*APPEAL_STAFF, check=scopes.appeal_department, audit="appeal")
async def appeal_redirect(request: web.Request) -> web.StreamResponse:
    """R-A5: sent to the competent body by the appeal's department."""
    async def step(svc: Services, appeal_id: int, form: dict[str, str]) -> None:
        await appeals.redirect(svc.sessions, svc.settings, appeal_id,
                               int(form.get("agency_id") or 0), now=svc.clock())
    return await _appeal_step(request, "redirect", step)


@panel(*APPEAL_STAFF, check=scopes.appeal_executor, audit="appeal")
async def appeal_answer(request: web.Request) -> web.StreamResponse:
    """R-A6–R-A8: answered by the appeal's department, naming the executor who signs or
    one the head picks."""
    async def step(svc: Services, appeal_id: int, form: dict[str, str]) -> None:
        await appeals.answer(svc.sessions, svc.settings, appeal_id, appeals.AnswerInput(
            AppealOutcome(form.get("outcome", "resolved")), form.get("text", ""),
            scopes.executor_id(form, actor(request)),
            outcome_date=_date(form.get("outcome_date", "")),
            refusal_reasons=form.get("refusal_reasons", "")), now=svc.clock(),
            accept_flags=form.get("accept_flags") == "1")
    return await _appeal_step(request, "answer", step)


VIOLATION_ROWS = 3   # rows of the completion form; a row left empty is no violation


def _violations(form: dict[str, str]) -> list[appeals.ViolationInput]:
    """The completion form's rows ``violation_kind_N``, ``violation_description_N``,
    ``violation_cause_N`` that were filled in."""
    found = []
    for n in range(1, appeals.MAX_VIOLATIONS + 1):
        kind, description, cause = (form.get(f"violation_{f}_{n}", "").strip()
                                    for f in ("kind", "description", "cause"))
        if kind or description or cause:
            found.append(appeals.ViolationInput(kind, cause, description))
    return found


@panel(*HEADS, check=scopes.appeal_department, audit="appeal")
async def appeal_complete(request: web.Request) -> web.StreamResponse:
    """R-A10: the controlling official of its department records that it is done, with
    the violations found and their causes."""
    async def step(svc: Services, appeal_id: int, form: dict[str, str]) -> None:
        await appeals.complete(svc.sessions, appeal_id, by=await current_staff(request),
                               now=svc.clock(), violations=_violations(form))
    return await _appeal_step(request, "complete", step)


# --- personal reception ------------------------------------------------------------------

async def reception_page(request: web.Request, *, error: str = "", status: int = 200,
                         form: dict[str, str] | None = None) -> web.Response:
    """The bookings and the booking form; ``form``: a refused booking's values, kept."""
    svc = _svc(request)
    me = auth.current(request)
    now = svc.clock()
    query = reception_params.parse(request.query)
    async with svc.sessions() as session:
        free = await reception_params.find(session, svc.calendar, now, query)
        officials = await receptions.officials(session)
        booked = request.query.get("booked", "")
        # What the confirmation of the booking just made said was sent (R-P3).
        delivery = (await receptions.delivery_summary(session, svc.settings, int(booked))
                    if booked.isdecimal() and len(booked) <= 9 else [])
        bookings = list((await session.execute(
            select(Booking, Citizen).join(Citizen, Citizen.id == Booking.citizen_id)
            .join(ReceptionSlot, ReceptionSlot.id == Booking.slot_id)
            .where(Booking.status.in_((BookingStatus.BOOKED, BookingStatus.ATTENDED,
                                       BookingStatus.NO_SHOW)),
                   ReceptionSlot.starts_at > now - timedelta(days=1))
            .order_by(ReceptionSlot.starts_at).limit(100)
            .options(receptions.BOOKING_DETAILS))).all())
    await auth.audit(svc, me.staff_id, "view", "booking_list", "", f"{len(bookings)}",
                     request.remote or "")
    return _render(request, "receptions.html", {"free": free, "bookings": bookings,
                                                "officials": officials, "query": query,
                                                "needs_text": needs_text,
                                                "delivery": delivery, "booked": booked,
                                                "error": error, "now": now,
                                                "form": form or {
                                                    "phone": request.query.get("phone", "")}},
                   status)


@panel(*STAFF, audit="booking")
async def reception_get(request: web.Request) -> web.Response:
    return await reception_page(request)


@panel(*STAFF, audit="booking")
async def reception_book(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    me = auth.current(request)
    posted = await request.post()
    form = {k: str(v) for k, v in posted.items()}
    choices = reception_params.booking_choices(form, [str(v) for v in posted.getall("need", [])])
    try:
        phone = reception_params.citizen_phone(form.get("phone", ""))
        async with svc.sessions() as session, session.begin():
            citizen_id, created = await reception_params.booking_citizen(session, phone, form)
    except Invalid as exc:   # the form comes back as typed, with what to do
        return await reception_page(request, error=str(exc), status=400, form=form)
    if created:
        await auth.audit(svc, me.staff_id, "create", "citizen", citizen_id, "при записи на приём",
                         request.remote or "")
    try:
        booking_id = await receptions.book(
            svc.sessions, svc.settings, svc.calendar, receptions.BookingRequest(
                slot_id=int(form.get("slot_id") or 0), citizen_id=citizen_id,
                topic=form.get("topic", ""), booked_via="panel", booked_by_id=me.staff_id,
                needs=choices.needs, accessibility_needs=choices.other_needs,
                reminder_channel=choices.reminder_channel,
                remind_day_before=choices.remind_day_before,
                remind_two_hours_before=choices.remind_two_hours_before), svc.clock())
    except (receptions.SlotTaken, receptions.BookingError, ValueError) as exc:
        return await reception_page(request, error=str(exc), status=409, form=form)
    await auth.audit(svc, me.staff_id, "create", "booking", booking_id, "",
                     request.remote or "")
    raise web.HTTPSeeOther(f"/panel/receptions?booked={booking_id}")


@panel(*STAFF, check=scopes.booking_keeper, audit="booking", refused="booking_refused")
async def reception_change(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    me = auth.current(request)
    booking_id = int(request.match_info["id"])
    action = request.match_info["action"]
    try:
        if action == "cancel":
            async with svc.sessions() as session, session.begin():
                await receptions.cancel(session, booking_id,
                                        via=receptions.CANCELLED_VIA_PANEL, now=svc.clock())
        elif action in ("attended", "no_show"):
            await receptions.mark_attendance(svc.sessions, svc.settings, svc.calendar,
                                             booking_id, attended=action == "attended",
                                             now=svc.clock())
        else:
            raise NotFound("Нет такого действия с записью.", "booking_action_unknown")
    except receptions.BookingError as exc:
        return await reception_page(request, error=str(exc), status=409)
    await auth.audit(svc, me.staff_id, action, "booking", booking_id, "",
                     request.remote or "")
    raise web.HTTPSeeOther("/panel/receptions")


@panel(*OVERSEERS, audit="audit_log")
async def audit_log(request: web.Request) -> web.Response:
    """Who viewed or changed what, when (administrators and supervisors); newest first,
    keyset-paged."""
    me = actor(request)
    svc = _svc(request)
    before = request.query.get("before", "")
    kind = request.query.get("object", "")
    query = (select(AuditEntry, Staff).outerjoin(Staff, Staff.id == AuditEntry.staff_id)
             .order_by(AuditEntry.id.desc()).limit(PAGE * 2 + 1))
    if before.isdigit():
        query = query.where(AuditEntry.id < int(before))
    if kind:
        query = query.where(AuditEntry.object_type == kind)
    with contextlib.suppress(TimeoutError):   # this process's entries still in a batch
        await svc.recorder.sync(timeout=2)
    async with svc.sessions() as session:
        rows = (await session.execute(query)).all()
        named = {int(e.object_id) for e, _ in rows
                 if e.object_type == "staff" and e.object_id.isdigit()}
        staff_names = {s.id: s.initials_name for s in (await session.scalars(
            select(Staff).where(Staff.id.in_(named)))).all()} if named else {}
    more = len(rows) > PAGE * 2
    rows = rows[:PAGE * 2]
    await auth.audit(svc, me.staff_id, "view", "audit_log", kind, "", request.remote or "")
    return _render(request, "audit.html", {
        "rows": [(e, s, audit_view.object_label(e.object_type, e.object_id, staff_names),
                  audit_view.details_text(e.action, e.object_type, e.details, SEARCH_NAMES))
                 for e, s in rows],
        "object": kind,
        "objects": sorted(audit_names.OBJECTS.items(), key=lambda item: item[1]),
        "next_before": rows[-1][0].id if more and rows else None})


@panel(*HEADS, audit="appeal_report")
async def appeal_reports(request: web.Request) -> web.Response:
    """R-A10: appeals by topic of the classifier (registered, answered, overdue now), the
    violations found with their causes, and repeat appeals, for a period (default: this
    year)."""
    me = actor(request)
    svc = _svc(request)
    today = svc.calendar.today(svc.clock())
    try:
        since = date.fromisoformat(request.query.get("since") or f"{today.year}-01-01")
        until = date.fromisoformat(request.query.get("until") or today.isoformat())
    except ValueError:
        raise Invalid("Даты в формате ГГГГ-ММ-ДД.", "bad_date") from None
    async with svc.sessions() as session:
        by_topic = await appeals.report_by_topic(session, since, until, today)
        violations = await appeals.report_violations(session, since, until)
        repeats = await appeals.repeat_appeals(session, since)
        names: dict[int, str] = {c: n for c, n in (await session.execute(
            select(Citizen.id, Citizen.surname).where(
                Citizen.id.in_([c for c, _, _ in repeats])))).tuples()}
    await auth.audit(svc, me.staff_id, "view", "appeal_report", f"{since}..{until}", "",
                     request.remote or "")
    return _render(request, "appeal_reports.html", {
        "since": since, "until": until, "by_topic": by_topic, "repeats": repeats,
        "violations": violations,
        "names": names})


@panel(*STAFF, check=scopes.citizen_reader, audit="citizen_history")
async def citizen_history(request: web.Request) -> web.StreamResponse:
    """R-A9: a citizen's appeals of the kept five years, printable, or as CSV."""
    from ivr.services.retention import citizen_history as history
    from ivr.services.retention import history_csv

    me = auth.current(request)
    svc = _svc(request)
    citizen_id = int(request.match_info["id"])
    async with svc.sessions() as session:
        citizen = await session.get(Citizen, citizen_id)
        if citizen is None:
            raise NotFound("Гражданин не найден.", "citizen_not_found")
        rows = await history(session, svc.settings, citizen_id,
                             svc.calendar.today(svc.clock()))
    await auth.audit(svc, me.staff_id, "view", "citizen_history", citizen_id,
                     request.query.get("format", "html"), request.remote or "")
    if request.query.get("format") == "csv":
        return web.Response(body=("\ufeff" + history_csv(rows)).encode(), headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="appeals-{citizen_id}.csv"'})
    return _render(request, "citizen_history.html", {
        "citizen": citizen, "rows": rows, "years": svc.settings.appeals.retention_years,
        "today": svc.calendar.today(svc.clock())})


DICTIONARY_KINDS = {**KIND_NAMES, "abbreviation_ok": "допустимое сокращение"}


@panel(*STAFF)
async def dictionary(request: web.Request, *, error: str = "") -> web.Response:
    """The plain-language dictionary (R-A7): everyone reads it; department heads,
    supervisors and administrators keep it."""
    async with _svc(request).sessions() as session:
        terms = list((await session.scalars(select(PlainLanguageTerm).order_by(
            PlainLanguageTerm.kind, PlainLanguageTerm.term))).all())
    return _render(request, "dictionary.html", {
        "terms": terms, "kinds": DICTIONARY_KINDS, "error": error}, 400 if error else 200)


async def _change_dictionary(svc: Services, form: dict[str, str]) -> str:
    """Delete a term or add one; what went wrong, in Russian, or ""."""
    async with svc.sessions() as session, session.begin():
        if form.get("delete", "").isdigit():
            row = await session.get(PlainLanguageTerm, int(form["delete"]))
            if row is not None:
                await session.delete(row)
            return ""
        term = form.get("term", "").strip()[:200]
        if not term or form.get("kind") not in DICTIONARY_KINDS:
            return "Укажите слово и его вид."
        if await session.scalar(select(PlainLanguageTerm.id).where(
                PlainLanguageTerm.term == term)) is not None:
            return "Такое слово уже есть в словаре."
        session.add(PlainLanguageTerm(term=term, kind=form["kind"],
                                      hint=form.get("hint", "").strip()))
        return ""


@panel(*HEADS, audit="plain_language")
async def dictionary_change(request: web.Request) -> web.StreamResponse:
    svc = _svc(request)
    form = {k: str(v) for k, v in (await request.post()).items() if k != auth.CSRF_FIELD}
    error = await _change_dictionary(svc, form)
    if error:
        return await dictionary(request, error=error)
    await auth.audit(svc, actor(request).staff_id, "update", "plain_language", "",
                     str(form)[:200], request.remote or "")
    raise web.HTTPSeeOther("/panel/dictionary")


def setup(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/panel", home)
    app.router.add_get("/panel/audit", audit_log)
    app.router.add_get("/panel/appeals", appeals_list)
    app.router.add_get("/panel/appeals/new", appeal_new_form)
    app.router.add_get("/panel/appeals/reports", appeal_reports)
    app.router.add_get(r"/panel/citizens/{id:\d{1,9}}/history", citizen_history)
    app.router.add_get("/panel/dictionary", dictionary)
    app.router.add_post("/panel/dictionary", dictionary_change)
    app.router.add_post("/panel/appeals/new", appeal_new_submit)
    app.router.add_get(r"/panel/appeals/{id:\d{1,9}}", appeal_card)
    app.router.add_post(r"/panel/appeals/{id:\d{1,9}}/urgent", appeal_urgent)
    app.router.add_post(r"/panel/appeals/{id:\d{1,9}}/assign", appeal_assign)
    app.router.add_post(r"/panel/appeals/{id:\d{1,9}}/abusive", appeal_abusive)
    app.router.add_post(r"/panel/appeals/{id:\d{1,9}}/redirect", appeal_redirect)
    app.router.add_post(r"/panel/appeals/{id:\d{1,9}}/answer", appeal_answer)
    app.router.add_post(r"/panel/appeals/{id:\d{1,9}}/complete", appeal_complete)
    app.router.add_get("/panel/receptions", reception_get)
    app.router.add_post("/panel/receptions/book", reception_book)
    app.router.add_post(r"/panel/receptions/{id:\d{1,9}}/{action}", reception_change)
