"""Public pages reached from e-mails, without login: the survey (R-A5, R-P6) and cancelling a
reception booking (R-P4). Each is reached by a signed link; a GET only shows, a POST acts."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from ivr.db.models import Booking, BookingStatus
from ivr.services import receptions, surveys
from ivr.services.container import Services

from .app_keys import SERVICES
from .auth import audit
from .policy import public


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


def _page(request: web.Request, template: str, context: dict[str, object],
          status: int = 200) -> web.Response:
    org = _services(request).settings.organisation
    return aiohttp_jinja2.render_template(template, request, {"org": org, **context},
                                          status=status)


CANCEL = "Отмена записи"
GONE = "Эта запись уже отменена или приём прошёл."


def _message(request: web.Request, title: str, text: str, status: int = 200) -> web.Response:
    return _page(request, "message.html", {"title": title, "message": text}, status)


def _ref(request: web.Request, salt: str) -> surveys.SurveyRef:
    svc = _services(request)
    return surveys.read_token(svc.settings.panel.secret, request.match_info["token"],
                              max_age_days=svc.settings.reception.link_valid_days, salt=salt)


@public
async def survey_form(request: web.Request) -> web.Response:
    try:
        ref = _ref(request, surveys.SURVEY_SALT)
    except surveys.SurveyError as exc:
        return _message(request, "Опрос", str(exc), 404)
    async with _services(request).sessions() as session:
        done = await surveys.answered(session, ref)
    if done:
        return _message(request, "Опрос", "По этой ссылке ответ уже получен. Спасибо!", 410)
    return _page(request, "survey.html", {"answers": surveys.ANSWER_CHOICES,
                                          "qualities": surveys.QUALITY_CHOICES,
                                          "about_reception": ref.booking_id is not None,
                                          "error": ""})


@public
async def survey_submit(request: web.Request) -> web.Response:
    svc = _services(request)
    try:
        ref = _ref(request, surveys.SURVEY_SALT)
    except surveys.SurveyError as exc:
        return _message(request, "Опрос", str(exc), 404)
    form = {k: str(v) for k, v in (await request.post()).items()}
    try:
        answers = surveys.parse_answers(form)
    except surveys.SurveyError as exc:
        return _page(request, "survey.html", {"answers": surveys.ANSWER_CHOICES,
                                              "qualities": surveys.QUALITY_CHOICES,
                                              "about_reception": ref.booking_id is not None,
                                              "error": str(exc)}, 400)
    try:
        await surveys.record(svc.sessions, ref, answers, svc.clock())
    except surveys.SurveyError as exc:
        return _message(request, "Опрос", str(exc), 410)
    return _message(request, "Спасибо!",
                    "Ваши ответы получены. Они помогут нам работать лучше.")


async def _booking(svc: Services, booking_id: int) -> Booking | None:
    async with svc.sessions() as session:
        return await session.get(Booking, booking_id, options=[
            receptions.BOOKING_DETAILS])


@public
async def cancel_form(request: web.Request) -> web.Response:
    svc = _services(request)
    try:
        ref = _ref(request, surveys.CANCEL_SALT)
    except surveys.SurveyError as exc:
        return _message(request, CANCEL, str(exc), 404)
    booking = await _booking(svc, ref.booking_id or 0)
    if booking is None or booking.status != BookingStatus.BOOKED \
            or booking.slot.starts_at <= svc.clock():
        return _message(request, CANCEL, GONE, 410)
    starts = svc.calendar.local(booking.slot.starts_at)
    official = booking.slot.official
    return _page(request, "cancel.html", {
        "when": starts, "official": f"{official.title} {official.staff.initials_name}"})


@public
async def cancel_submit(request: web.Request) -> web.Response:
    svc = _services(request)
    try:
        ref = _ref(request, surveys.CANCEL_SALT)
    except surveys.SurveyError as exc:
        return _message(request, CANCEL, str(exc), 404)
    async with svc.sessions() as session, session.begin():
        done = await receptions.cancel(session, ref.booking_id or 0,
                                       via=receptions.CANCELLED_VIA_EMAIL, now=svc.clock())
    if not done:
        return _message(request, CANCEL, GONE, 410)
    await audit(svc, None, "cancel", "booking", ref.booking_id or "", "ссылка из письма",
                request.remote or "")
    return _message(request, "Запись отменена", "Запись на личный приём отменена. "
                    "Записаться снова можно по телефону горячей линии.")


def setup(app: web.Application) -> None:
    app.router.add_get("/survey/{token}", survey_form)
    app.router.add_post("/survey/{token}", survey_submit)
    app.router.add_get("/reception/cancel/{token}", cancel_form)
    app.router.add_post("/reception/cancel/{token}", cancel_submit)
