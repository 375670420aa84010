"""``hotline demo``: a small, believable data set for trying the system. Idempotent."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .calendar import WorkCalendar
from .db.models import (
    Agency,
    Appeal,
    AppealOutcome,
    AppealStatus,
    ArticleKind,
    Booking,
    Call,
    Channel,
    Citizen,
    CitizenPhone,
    Department,
    KbArticle,
    KbSection,
    Official,
    ReceptionSchedule,
    ReceptionSlot,
    Role,
    Staff,
)
from .passwords import hash_password
from .services import topics
from .services.container import Services
from .services.kb import OPERATOR_LIMITS, OPERATOR_LIMITS_KEY, reindex
from .services.receptions import generate_slots
from .settings import Settings

DEPARTMENTS = [
    ("Отдел организации работы с обращениями граждан", "Обращения"),
    ("Отдел государственных услуг", "Госуслуги"),
    ("Отдел мер социальной поддержки", "Соцподдержка"),
    ("Отдел контроля и надзора", "Проверки"),
]

STAFF = [
    # login, surname, first name, patronymic, position, department index, role, extension
    ("ivanova", "Иванова", "Анна", "Петровна", "консультант горячей линии", 0, Role.OPERATOR,
     "1001"),
    ("petrov", "Петров", "Сергей", "Игоревич", "консультант горячей линии", 0, Role.OPERATOR,
     "1002"),
    ("sidorova", "Сидорова", "Елена", "Викторовна", "главный специалист", 2, Role.SPECIALIST,
     "1003"),
    ("kuznetsov", "Кузнецов", "Олег", "Николаевич", "начальник отдела", 1,
     Role.DEPARTMENT_HEAD, None),
    ("smirnova", "Смирнова", "Ольга", "Александровна", "руководитель контакт-центра", 0,
     Role.SUPERVISOR, None),
    ("orlov", "Орлов", "Виктор", "Павлович", "министр", 0, Role.ADMINISTRATOR, None),
]

# Every demo employee logs in to the panel with this password (demo data only).
DEMO_PASSWORD = "hotline-demo"

CITIZENS = [
    ("Морозова", "Татьяна", "Ивановна", "79001234567", "morozova@example.org"),
    ("Волков", "Андрей", "Сергеевич", "79007654321", None),
    ("Лебедева", "Мария", "Олеговна", "74951112233", "lebedeva@example.org"),
]

AGENCIES = [
    ("Социальный фонд России, региональное отделение", "88001001000",
     "пенсии, материнский капитал, больничные"),
    ("Государственная инспекция труда в области", "84952223344",
     "нарушения трудовых прав работодателем"),
    ("Министерство здравоохранения области", "84953334455", "медицинская помощь, лекарства"),
]


class DemoRefused(Exception):
    """The database holds data that is not the demo's: seeding would mix the two (and give
    a real database employees with a published password)."""


def _named(found: set[str], demo: set[str], what: str) -> list[str]:
    other = sorted(found - demo)
    return [f"{what} {', '.join(other[:3])}{' …' if len(other) > 3 else ''}"] if other else []


async def _seeded(session: AsyncSession) -> bool:
    """True when the demo is already there (nothing is written then), False for an empty
    database; :class:`DemoRefused` for any other."""
    departments = set(await session.scalars(select(Department.name)))
    logins = set(await session.scalars(select(Staff.login)))
    demo_departments = {name for name, _ in DEPARTMENTS}
    demo_logins = {row[0] for row in STAFF}
    if demo_departments <= departments and demo_logins <= logins:
        return True
    other = [*_named(departments, demo_departments, "departments"),
             *_named(logins, demo_logins, "staff")]
    for model in (Citizen, Appeal, Call, KbArticle, Official):
        if await session.scalar(select(func.count()).select_from(model)):
            other.append(str(model.__tablename__))
    if other:
        raise DemoRefused("refusing: the database holds data that is not the demo's ("
                          + "; ".join(other) + "); demo data goes only into an empty "
                          "database")
    return False


async def seed_demo(settings: Settings, *, today: date | None = None) -> dict[str, int]:
    """Seeds an empty database; one already seeded is left as it is (its counts are
    returned); :class:`DemoRefused` for a database with other data."""
    services = Services.create(settings)
    try:
        async with services.sessions() as session, session.begin():
            if await _seeded(session):
                return await _counts(session)
            day = today or services.calendar.today(datetime.now(UTC))
            await _seed(session, services.calendar, settings, day)
            await session.flush()
            await reindex(session)
        await generate_slots(services.sessions, services.calendar, day,
                             settings.reception.days_ahead)
        async with services.sessions() as session:
            return await _counts(session)
    finally:
        await services.close()


async def _counts(session: AsyncSession) -> dict[str, int]:
    result = {}
    for label, model in (("departments", Department), ("staff", Staff),
                         ("citizens", Citizen), ("appeals", Appeal),
                         ("kb articles", KbArticle), ("reception slots", ReceptionSlot)):
        result[label] = await session.scalar(select(func.count()).select_from(model)) or 0
    return result


async def _seed(session: AsyncSession, cal: WorkCalendar, settings: Settings,
                today: date) -> None:
    departments = [Department(name=n, short_name=s) for n, s in DEPARTMENTS]
    session.add_all(departments)
    await session.flush()
    password = hash_password(DEMO_PASSWORD)
    staff = [Staff(login=login, surname=sur, first_name=first, patronymic=patr, position=pos,
                   department_id=departments[dep].id, role=role, extension=ext,
                   phone=f"84950001{100 + i}", password_hash=password)
             for i, (login, sur, first, patr, pos, dep, role, ext) in enumerate(STAFF)]
    session.add_all(staff)
    citizens = []
    for sur, first, patr, phone, email in CITIZENS:
        citizen = Citizen(surname=sur, first_name=first, patronymic=patr, email=email,
                          preferred_channel=Channel.EMAIL if email else Channel.PHONE)
        citizen.phones.append(CitizenPhone(phone=phone))
        citizens.append(citizen)
    session.add_all(citizens)
    session.add_all(Agency(name=n, phone=p, competence=c) for n, p, c in AGENCIES)
    await session.flush()

    registered = cal.add_working_days(today - timedelta(days=30), 1)
    # The classifier (R-A1) comes with the migrations.
    topic = {t.title: t.id for t in await topics.active(session)}
    session.add_all([
        Appeal(reg_number="1024", registered_on=registered, channel=Channel.EMAIL,
               citizen_id=citizens[0].id, contact_phone="79001234567",
               department_id=departments[2].id, topic="Меры социальной поддержки",
               topic_id=topic.get("Меры социальной поддержки"),
               text="Прошу разъяснить порядок получения компенсации.",
               status=AppealStatus.IN_WORK, executor_id=staff[2].id,
               due_date=cal.add_working_days(registered, 30)),
        Appeal(reg_number="1031", registered_on=registered, channel=Channel.STATE_PORTAL,
               citizen_id=citizens[1].id, contact_phone="79007654321",
               department_id=departments[1].id, topic="Государственные услуги",
               topic_id=topic.get("Государственные услуги"),
               text="Не получил ответ по заявлению.", status=AppealStatus.ANSWERED,
               executor_id=staff[3].id, outcome=AppealOutcome.RESOLVED,
               answer_text="Заявление рассмотрено, услуга предоставлена.",
               answered_at=datetime.now(UTC) - timedelta(days=3),
               due_date=cal.add_working_days(registered, 30)),
    ])

    sections = [KbSection(department_id=d.id, title=f"База знаний: {d.short_name}")
                for d in departments]
    session.add_all(sections)
    await session.flush()
    org = settings.organisation
    session.add_all([
        KbArticle(section_id=sections[0].id, kind=ArticleKind.SCRIPT, key="script.greeting",
                  title="Приветствие", body=settings.prompts.get("greeting", org.full_name),
                  review_due=cal.add_working_days(today, 60)),
        KbArticle(section_id=sections[0].id, kind=ArticleKind.SCRIPT, key="script.farewell",
                  title="Завершение разговора",
                  body="Спасибо за обращение. Всего доброго!",
                  review_due=cal.add_working_days(today, 60)),
        # R-H9: a rule of the hotline's work, shown to the operator beside the greeting.
        KbArticle(section_id=sections[0].id, kind=ArticleKind.INTERNAL,
                  key=OPERATOR_LIMITS_KEY, title="Правила работы: чего оператор не делает "
                  "за гражданина", body=OPERATOR_LIMITS,
                  review_due=cal.add_working_days(today, 60)),
        KbArticle(section_id=sections[2].id, kind=ArticleKind.FAQ,
                  title="Как получить компенсацию расходов на оплату жилья",
                  body="Заявление подаётся через портал госуслуг или в МФЦ. Срок — 10 рабочих "
                       "дней.", review_due=cal.add_working_days(today, 60)),
    ])

    minister = Official(staff_id=staff[5].id, title="Министр", kind="minister",
                        place=org.address, directions=org.directions)
    # Department staff receive during the whole working day (R-P1).
    specialist = Official(staff_id=staff[2].id, title="Главный специалист отдела мер "
                          "социальной поддержки", kind="department",
                          place=f"{org.address}, кабинет 305",
                          directions="Третий этаж, лифт справа от входа.")
    session.add_all([minister, specialist])
    await session.flush()
    session.add(ReceptionSchedule(official_id=minister.id, weekday=2, starts=time(14),
                                  ends=time(16), slot_minutes=30))
    slots: list[ReceptionSlot] = []
    day = today
    while len(slots) < 8:
        day += timedelta(days=1)
        if day.weekday() == 2 and cal.is_working_day(day):
            for minute in range(0, 120, 30):
                start = datetime.combine(day, time(14), org.tz) + timedelta(minutes=minute)
                slots.append(ReceptionSlot(official_id=minister.id, starts_at=start,
                                           ends_at=start + timedelta(minutes=30)))
    session.add_all(slots)
    await session.flush()
    session.add(Booking(slot_id=slots[0].id, citizen_id=citizens[0].id,
                        topic="Назначение ежемесячной выплаты", booked_via="hotline",
                        reminder_channel=Channel.EMAIL))
