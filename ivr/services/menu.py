"""The IVR menu and the queues, kept in the database (issue 28, R-H1).

The settings' ``[[ivr.topics]]`` seed a fresh database once (:func:`seed`); from then on the
administrator edits queues, topics and operators' skills here, and every refusal says why
in Russian. Every change returns what it was before and after, for the audit log.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from ..db.engine import read_for_render
from ..db.models import IvrQueue, MenuTopic, QueueSkill, Role, Staff
from ..settings import Ivr, Settings, Topic

QUEUE_NAME = re.compile(r"^[a-z0-9_-]{1,40}$")
TOPIC_CODE = re.compile(r"^[a-z_]{1,40}$")
# Asterisk's queue strategies, as people read them.
STRATEGIES = {
    "rrmemory": "по кругу, с памятью",
    "ringall": "всем сразу",
    "leastrecent": "тому, кто дольше без звонка",
    "fewestcalls": "тому, у кого меньше звонков",
    "linear": "по порядку",
    "random": "случайно",
}
ACTIONS = {
    "queue": "соединить с оператором",
    "hours": "режим работы и адрес",
    "appeal_status": "статус обращения",
    "reception": "запись на личный приём",
    "agency": "сведения другого ведомства",
}
GENERAL_TITLE = "Общая очередь"


class SetupError(ValueError):
    """A change refused, phrased for the administrator; ``error_id`` for the API."""

    def __init__(self, message: str, error_id: str = "ivr_setup_invalid",
                 conflict: bool = False) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.conflict = conflict


@dataclass(frozen=True)
class QueueSpec:
    """A queue as queues.conf and the panel need it."""

    name: str
    title: str
    strategy: str
    service_level_seconds: int


Change = tuple[dict[str, Any] | None, dict[str, Any] | None]


def _spec(queue: IvrQueue) -> QueueSpec:
    return QueueSpec(queue.name, queue.title, queue.strategy, queue.service_level_seconds)


def _topic_fields(topic: MenuTopic) -> dict[str, Any]:
    return {"digit": topic.digit, "code": topic.code, "title": topic.title,
            "action": topic.action, "queue": topic.queue.name, "agency": topic.agency}


async def queues(session: AsyncSession) -> list[QueueSpec]:
    rows = await session.scalars(select(IvrQueue).order_by(IvrQueue.name))
    return [_spec(q) for q in rows]


async def topics(session: AsyncSession) -> list[Topic]:
    rows = await session.scalars(select(MenuTopic).options(selectinload(MenuTopic.queue))
                                 .order_by(MenuTopic.digit))
    return [Topic.model_construct(**_topic_fields(t)) for t in rows]


async def _queue(session: AsyncSession, name: str) -> IvrQueue:
    found = await session.scalar(select(IvrQueue).where(IvrQueue.name == name))
    if found is None:
        raise SetupError(f"Очереди «{name}» нет: сначала создайте её.", "queue_unknown")
    return found


def _clean_title(title: str, what: str) -> str:
    title = " ".join(title.split())
    if not 2 <= len(title) <= 100:
        raise SetupError(f"Название {what}: от 2 до 100 знаков.")
    return title


async def save_queue(session: AsyncSession, name: str, title: str, strategy: str,
                     service_level_seconds: int, *, exists: bool | None = None) -> Change:
    """Create the queue ``name`` or change its title, strategy and service level.
    ``exists`` False only adds (a taken name is refused rather than silently rewritten),
    True only changes; None does whichever applies (the API's PUT)."""
    if not QUEUE_NAME.match(name):
        raise SetupError("Служебное имя очереди: латинские строчные буквы, цифры, «-» и "
                         "«_», до 40 знаков.", "queue_name_invalid")
    if strategy not in STRATEGIES:
        raise SetupError("Порядок распределения выберите из списка.", "queue_strategy_invalid")
    if not 5 <= service_level_seconds <= 600:
        raise SetupError("Норматив ответа: от 5 до 600 секунд.", "queue_service_level_invalid")
    title = _clean_title(title, "очереди")
    queue = await session.scalar(select(IvrQueue).where(IvrQueue.name == name))
    if queue is not None and exists is False:
        raise SetupError(f"Очередь со служебным именем «{name}» уже есть: «{queue.title}». "
                         "Выберите другое имя или измените ту очередь кнопкой «Изменить».",
                         "queue_name_taken", conflict=True)
    if queue is None and exists:
        raise SetupError(f"Очереди «{name}» нет.", "queue_unknown")
    before = asdict(_spec(queue)) if queue else None
    if queue is None:
        queue = IvrQueue(name=name)
        session.add(queue)
    queue.title, queue.strategy = title, strategy
    queue.service_level_seconds = service_level_seconds
    await session.flush()
    return before, asdict(_spec(queue))


async def remove_queue(session: AsyncSession, name: str, general_queue: str) -> Change:
    """Refused while the menu leads to it or operators serve it, and for the general queue
    (key 0 and every fallback lead there)."""
    queue = await _queue(session, name)
    if name == general_queue:
        raise SetupError(f"Очередь «{queue.title}» — общая: в неё ведут кнопка 0 и все "
                         "неясные случаи; её нельзя удалить.", "queue_general", conflict=True)
    used = list(await session.scalars(select(MenuTopic.title).where(
        MenuTopic.queue_id == queue.id)))
    if used:
        raise SetupError(f"Очередь «{queue.title}» нельзя удалить: в неё ведут пункты меню "
                         f"{', '.join(f'«{t}»' for t in used)}.", "queue_in_menu", conflict=True)
    served = list(await session.scalars(select(Staff).join(
        QueueSkill, QueueSkill.staff_id == Staff.id).where(QueueSkill.queue_id == queue.id)))
    if served:
        names = ", ".join(s.initials_name for s in served)
        raise SetupError(f"Очередь «{queue.title}» нельзя удалить: её обслуживают операторы "
                         f"{names}. Сначала снимите их с очереди.", "queue_served",
                         conflict=True)
    before = asdict(_spec(queue))
    await session.delete(queue)
    await session.flush()
    return before, None


@dataclass(frozen=True)
class TopicInput:
    digit: str
    code: str
    title: str
    action: str
    queue: str
    agency: str = ""


async def save_topic(session: AsyncSession, given: TopicInput, *, old_digit: str = "") -> Change:
    """Add a topic, or change the one at ``old_digit`` (its digit too)."""
    if not re.fullmatch(r"[1-9]", given.digit):
        raise SetupError("Кнопка пункта меню: цифра от 1 до 9 (0 — оператор, * — повтор).",
                         "topic_digit_invalid")
    if not TOPIC_CODE.match(given.code):
        raise SetupError("Служебный код пункта: латинские строчные буквы и «_».",
                         "topic_code_invalid")
    if given.action not in ACTIONS:
        raise SetupError("Действие пункта меню выберите из списка.", "topic_action_invalid")
    agency = " ".join(given.agency.split())[:300]
    if given.action == "agency" and not agency:
        raise SetupError("Для действия «другое ведомство» укажите ведомство.",
                         "topic_agency_missing")
    title = _clean_title(given.title, "пункта меню")
    queue = await _queue(session, given.queue)
    topic = await _topic(session, old_digit) if old_digit else None
    await _refuse_taken(session, topic, given.digit, given.code)
    before = _topic_fields(topic) if topic else None
    if topic is None:
        topic = MenuTopic()
        session.add(topic)
    topic.digit, topic.code, topic.title = given.digit, given.code, title
    topic.action, topic.queue, topic.agency = given.action, queue, agency
    await session.flush()
    return before, _topic_fields(topic)


async def put_topic(session: AsyncSession, given: TopicInput, at: str) -> Change:
    """The topic at digit ``at`` changed (its digit to ``given.digit`` too), or added."""
    exists = await session.scalar(select(MenuTopic.id).where(MenuTopic.digit == at))
    return await save_topic(session, given, old_digit=at if exists else "")


async def _topic(session: AsyncSession, digit: str) -> MenuTopic:
    found = await session.scalar(select(MenuTopic).options(selectinload(MenuTopic.queue))
                                 .where(MenuTopic.digit == digit))
    if found is None:
        raise SetupError(f"В меню нет пункта на кнопке {digit}.", "topic_unknown")
    return found


async def _refuse_taken(session: AsyncSession, topic: MenuTopic | None, digit: str,
                        code: str) -> None:
    others = select(MenuTopic).where(MenuTopic.id != (topic.id if topic else 0))
    same_digit = await session.scalar(others.where(MenuTopic.digit == digit))
    if same_digit is not None:
        raise SetupError(f"Кнопка {digit} уже занята пунктом «{same_digit.title}».",
                         "topic_digit_taken", conflict=True)
    same_code = await session.scalar(others.where(MenuTopic.code == code))
    if same_code is not None:
        raise SetupError(f"Код «{code}» уже у пункта «{same_code.title}».",
                         "topic_code_taken", conflict=True)


async def remove_topic(session: AsyncSession, digit: str) -> Change:
    topic = await _topic(session, digit)
    before = _topic_fields(topic)
    await session.delete(topic)
    await session.flush()
    return before, None


# --- skills: which queues each operator serves --------------------------------------------

async def skills(session: AsyncSession, staff_id: int) -> dict[str, int]:
    """Queue name → penalty for one operator."""
    rows = await session.execute(select(IvrQueue.name, QueueSkill.penalty).join(
        QueueSkill, QueueSkill.queue_id == IvrQueue.id).where(QueueSkill.staff_id == staff_id)
        .order_by(IvrQueue.name))
    return {name: penalty for name, penalty in rows.tuples()}


async def all_skills(session: AsyncSession) -> dict[int, dict[str, int]]:
    rows = await session.execute(select(QueueSkill.staff_id, IvrQueue.name, QueueSkill.penalty)
                                 .join(IvrQueue, QueueSkill.queue_id == IvrQueue.id))
    found: dict[int, dict[str, int]] = {}
    for staff_id, name, penalty in rows.tuples():
        found.setdefault(staff_id, {})[name] = penalty
    return found


async def set_skill(session: AsyncSession, staff_id: int, queue_name: str,
                    penalty: int | None) -> Change:
    """The operator serves the queue with ``penalty`` (0 first, up to 10), or no longer
    (``penalty`` None)."""
    staff = await session.get(Staff, staff_id)
    if staff is None or not staff.active:
        raise SetupError("Такого сотрудника нет.", "staff_unknown")
    if staff.role != Role.OPERATOR or not staff.extension:
        raise SetupError(f"{staff.initials_name}: очереди обслуживают только операторы с "
                         "телефоном.", "skill_not_operator")
    if penalty is not None and not 0 <= penalty <= 10:
        raise SetupError("Приоритет: от 0 до 10; 0 — получает звонки первым, больше — позже.",
                         "skill_penalty_invalid")
    queue = await _queue(session, queue_name)
    skill = await session.scalar(select(QueueSkill).where(
        QueueSkill.staff_id == staff_id, QueueSkill.queue_id == queue.id))
    before = {"staff": staff_id, "queue": queue_name, "penalty": skill.penalty} if skill else None
    if penalty is None:
        if skill is not None:
            await session.delete(skill)
        await session.flush()
        return before, None
    if skill is None:
        skill = QueueSkill(staff_id=staff_id, queue_id=queue.id)
        session.add(skill)
    skill.penalty = penalty
    await session.flush()
    return before, {"staff": staff_id, "queue": queue_name, "penalty": penalty}


# --- the settings seed a fresh database ---------------------------------------------------

def seed_queues(ivr: Ivr) -> list[QueueSpec]:
    """The queues the settings' topics name; each titled after its first topic."""
    titles: dict[str, str] = {ivr.general_queue: GENERAL_TITLE}
    for topic in ivr.topics:
        titles.setdefault(topic.queue, topic.title)
    return [QueueSpec(name, titles[name], "rrmemory", ivr.service_level_seconds)
            for name in sorted(titles)]


async def seed(session: AsyncSession, settings: Settings) -> bool:
    """Queues and topics from the settings, into a database that never had any queue.
    The general queue cannot be removed, so an emptied menu is never seeded again."""
    if await session.scalar(select(func.count()).select_from(IvrQueue)):
        return False
    made = {}
    for spec in seed_queues(settings.ivr):
        made[spec.name] = IvrQueue(**asdict(spec))
        session.add(made[spec.name])
    for t in settings.ivr.topics:
        session.add(MenuTopic(digit=t.digit, code=t.code, title=t.title, action=t.action,
                              queue=made[t.queue], agency=t.agency))
    await session.flush()
    return True


def queues_for_render(settings: Settings) -> list[QueueSpec]:
    """For the config rendering: the database's queues, or the settings' while the
    database holds none yet."""
    stored = read_for_render(settings.database.url, IvrQueue.__tablename__, queues)
    return stored or seed_queues(settings.ivr)


def menu_of(settings: Settings, found: list[Topic]) -> Ivr:
    """The settings' IVR timings with the database's topics."""
    return settings.ivr.model_copy(update={"topics": found})
