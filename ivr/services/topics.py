"""The ministry's classifier of appeal topics (R-A1): appeals are classified by it, never by
free text. A topic is named by its code («01.01») or its title («Пособия»), in any letter
case; a retired topic (``active`` false) takes no new appeals but stays on the old ones."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import AppealTopic


class UnknownTopic(ValueError):
    """A topic the classifier does not hold, phrased for the person registering."""

    def __init__(self, given: str) -> None:
        super().__init__(f"тема: «{given}» нет в классификаторе тем обращений")


async def active(session: AsyncSession) -> list[AppealTopic]:
    return list((await session.scalars(select(AppealTopic).where(AppealTopic.active)
                                       .order_by(AppealTopic.code))).all())


def match(topics: list[AppealTopic], given: str) -> AppealTopic:
    """The topic ``given`` names among ``topics``; :class:`UnknownTopic` if none."""
    wanted = " ".join(given.split()).casefold()
    for topic in topics:
        if wanted in (topic.code.casefold(), topic.title.casefold()):
            return topic
    raise UnknownTopic(given)


async def resolve(session: AsyncSession, given: str) -> AppealTopic | None:
    """The active topic ``given`` names; None for no topic (classified later)."""
    if not given.strip():
        return None
    return match(await active(session), given)


CODE = re.compile(r"^[0-9A-Za-z.\-]{1,20}$")


class TopicError(ValueError):
    """A change of the classifier refused, phrased for the administrator."""


async def save(session: AsyncSession, code: str, title: str) -> AppealTopic:
    """Add a topic, or rename (and bring back) the one with this code."""
    title = " ".join(title.split())
    if not CODE.match(code):
        raise TopicError("код темы: буквы, цифры, точка или дефис, до 20 знаков")
    if not 2 <= len(title) <= 100:
        raise TopicError("название темы: от 2 до 100 знаков")
    same_title = await session.scalar(select(AppealTopic).where(AppealTopic.title == title))
    if same_title is not None and same_title.code != code:
        raise TopicError(f"тема «{title}» уже есть под кодом {same_title.code}")
    topic = await session.scalar(select(AppealTopic).where(AppealTopic.code == code))
    if topic is None:
        topic = AppealTopic(code=code, title=title)
        session.add(topic)
    topic.title, topic.active = title, True
    await session.flush()
    return topic


async def retire(session: AsyncSession, code: str) -> AppealTopic:
    """No new appeals on this topic; those that carry it keep it, and the reports too."""
    topic = await session.scalar(select(AppealTopic).where(AppealTopic.code == code))
    if topic is None:
        raise TopicError(f"темы с кодом {code} нет в классификаторе")
    topic.active = False
    return topic


async def every(session: AsyncSession) -> list[AppealTopic]:
    return list((await session.scalars(select(AppealTopic).order_by(AppealTopic.code))).all())
