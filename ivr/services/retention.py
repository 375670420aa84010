"""Five years (R-A9): appeals with their notices and survey answers are kept
``appeals.retention_years`` after registration, then removed — or, with
``retention_mode = "anonymise"``, stripped of everything personal — by a scheduled job.
A citizen's list of appeals over those years is printable and exportable on request.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..db.models import Appeal, Notification, SurveyResponse
from ..settings import Settings

BATCH = 500
STATUS_NAMES = {"registered": "зарегистрировано", "in_work": "на рассмотрении",
                "redirected": "направлено по компетенции",
                "not_considered": "не рассмотрено по существу", "answered": "дан ответ",
                "completed": "рассмотрение завершено"}
OUTCOME_NAMES = {"resolved": "вопрос решён", "will_resolve_by": "будет решён к сроку",
                 "can_resolve_no_date": "может быть решён, срок не определён",
                 "cannot_resolve": "не может быть решён"}


def cutoff(today: date, years: int) -> date:
    """The first registration date still kept: the same day ``years`` ago (29 February
    becomes 28 February)."""
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return today.replace(year=today.year - years, day=28)


@dataclass(frozen=True)
class PurgeResult:
    appeals: int
    notices: int
    surveys: int


async def purge_expired(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                        today: date, now: datetime) -> PurgeResult:
    cfg = settings.appeals
    keep_from = cutoff(today, cfg.retention_years)
    totals = [0, 0, 0]
    while True:
        async with sessions() as session, session.begin():
            query = select(Appeal.id).where(Appeal.registered_on < keep_from)
            if cfg.retention_mode == "anonymise":
                query = query.where(Appeal.anonymised_at.is_(None))
            ids = list(await session.scalars(query.order_by(Appeal.id).limit(BATCH)))
            if not ids:
                break
            if cfg.retention_mode == "delete":
                counts = await _delete(session, ids)
            else:
                counts = await _anonymise(session, ids, now)
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
    return PurgeResult(*totals)


def _rows(result: object) -> int:
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def _delete(session: AsyncSession, ids: list[int]) -> tuple[int, int, int]:
    surveys = _rows(await session.execute(
        delete(SurveyResponse).where(SurveyResponse.appeal_id.in_(ids))))
    sent = _rows(await session.execute(
        delete(Notification).where(Notification.appeal_id.in_(ids))))
    appeals = _rows(await session.execute(delete(Appeal).where(Appeal.id.in_(ids))))
    return appeals, sent, surveys


async def _anonymise(session: AsyncSession, ids: list[int], now: datetime) -> tuple[int, int, int]:
    surveys = 0
    for response in (await session.scalars(select(SurveyResponse).where(
            SurveyResponse.appeal_id.in_(ids)))).all():
        if response.answers.get("comment"):
            response.answers = {**response.answers, "comment": ""}
            surveys += 1
    sent = _rows(await session.execute(
        update(Notification).where(Notification.appeal_id.in_(ids))
        .values(address="", body="", citizen_id=None)))
    appeals = _rows(await session.execute(
        update(Appeal).where(Appeal.id.in_(ids))
        .values(text="", materials="", contact_phone="", answer_text=None,
                refusal_reasons=None, citizen_id=None, anonymised_at=now)))
    return appeals, sent, surveys


async def citizen_history(session: AsyncSession, settings: Settings, citizen_id: int,
                          today: date) -> list[Appeal]:
    """The citizen's appeals of the kept years, newest first (R-A9)."""
    keep_from = cutoff(today, settings.appeals.retention_years)
    return list((await session.scalars(
        select(Appeal).where(Appeal.citizen_id == citizen_id,
                             Appeal.registered_on >= keep_from)
        .order_by(Appeal.registered_on.desc(), Appeal.id.desc()))).all())


def history_csv(appeals: list[Appeal]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(["Рег. номер", "Дата регистрации", "Тема", "Состояние", "Срок ответа",
                     "Результат", "Дата ответа"])
    for a in appeals:
        writer.writerow([
            a.reg_number, f"{a.registered_on:%d.%m.%Y}", a.topic,
            STATUS_NAMES.get(a.status.value, a.status.value),
            f"{a.due_date:%d.%m.%Y}" if a.due_date else "",
            OUTCOME_NAMES.get(a.outcome.value, "") if a.outcome else "",
            f"{a.answered_at:%d.%m.%Y}" if a.answered_at else ""])
    return out.getvalue()
