"""Surveys after a redirection, an answer or a reception (R-A5, R-P6, R-X2).

A link is signed with the panel's secret (:mod:`itsdangerous`) and names what it is about
(an appeal or a booking) and a nonce; the nonce is the response's unique ``token_id``, so a
link records one answer and refuses the second. Links in e-mails carry their own expiry.
The same two questions as the hotline's rating (R-H8), so the supervisor reads them side by
side, plus a free comment.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db.models import SurveyResponse

SURVEY_SALT = "hotline-survey"
CANCEL_SALT = "hotline-reception-cancel"

ANSWER_CHOICES = {"yes": "Да", "no": "Нет"}
QUALITY_CHOICES = {"satisfied": "Удовлетворён", "partly": "Частично удовлетворён",
                   "not_satisfied": "Не удовлетворён"}
COMMENT_MAX = 2000


class SurveyError(Exception):
    """Why a survey link can't be used, phrased for the citizen."""


@dataclass(frozen=True)
class SurveyRef:
    nonce: str
    appeal_id: int | None
    booking_id: int | None


def make_token(secret: str, *, appeal_id: int | None = None,
               booking_id: int | None = None, salt: str = SURVEY_SALT) -> str:
    if (appeal_id is None) == (booking_id is None):
        raise ValueError("a survey is about one appeal or one booking")
    payload = {"n": secrets.token_urlsafe(12), "a": appeal_id, "b": booking_id}
    return URLSafeTimedSerializer(secret, salt=salt).dumps(payload)


def read_token(secret: str, token: str, *, max_age_days: int,
               salt: str = SURVEY_SALT) -> SurveyRef:
    try:
        data = URLSafeTimedSerializer(secret, salt=salt).loads(
            token, max_age=max_age_days * 86400)
    except SignatureExpired:
        raise SurveyError("Срок действия ссылки истёк.") from None
    except BadSignature:
        raise SurveyError("Ссылка недействительна.") from None
    if not isinstance(data, dict) or not isinstance(data.get("n"), str):
        raise SurveyError("Ссылка недействительна.")
    return SurveyRef(data["n"], data.get("a"), data.get("b"))


def parse_answers(form: dict[str, str]) -> dict[str, str]:
    answer = form.get("answer_received", "")
    quality = form.get("quality", "")
    if answer not in ANSWER_CHOICES:
        raise SurveyError("Ответьте, пожалуйста, получен ли ответ на вопрос.")
    if quality not in QUALITY_CHOICES:
        raise SurveyError("Оцените, пожалуйста, работу специалиста.")
    comment = " ".join(form.get("comment", "").split())[:COMMENT_MAX]
    return {"answer_received": answer, "quality": quality, "comment": comment}


async def answered(session: AsyncSession, ref: SurveyRef) -> bool:
    return await session.scalar(select(SurveyResponse.id).where(
        SurveyResponse.token_id == ref.nonce)) is not None


async def record(sessions: async_sessionmaker[AsyncSession], ref: SurveyRef,
                 answers: dict[str, str], now: datetime) -> None:
    """Store the answers once; a second use of the link raises :class:`SurveyError`."""
    try:
        async with sessions() as session, session.begin():
            session.add(SurveyResponse(token_id=ref.nonce, appeal_id=ref.appeal_id,
                                       booking_id=ref.booking_id, answers=answers,
                                       answered_at=now))
    except IntegrityError:
        raise SurveyError("По этой ссылке ответ уже получен. Спасибо!") from None


@dataclass(frozen=True)
class Summary:
    """Survey answers of a period, for the supervisor beside the call ratings (R-X2)."""

    responses: int
    answer_received: int
    satisfied: int
    partly: int
    not_satisfied: int


async def summary(session: AsyncSession, since: datetime, until: datetime,
                  *, about: str) -> Summary:
    """``about``: "appeal" or "reception"."""
    column = SurveyResponse.appeal_id if about == "appeal" else SurveyResponse.booking_id
    rows = (await session.scalars(select(SurveyResponse.answers).where(
        column.is_not(None), SurveyResponse.answered_at >= since,
        SurveyResponse.answered_at < until))).all()
    qualities = [r.get("quality") for r in rows]
    return Summary(len(rows), sum(1 for r in rows if r.get("answer_received") == "yes"),
                   qualities.count("satisfied"), qualities.count("partly"),
                   qualities.count("not_satisfied"))
