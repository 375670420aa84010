"""Services on a fresh database for the records' tests, and a few people to work with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ivr.db.models import Agency, Channel, Citizen, CitizenPhone, Department, Role, Staff
from ivr.services.container import Services
from ivr.settings import Database, Settings


def services_on(settings: Settings, url: str, now: datetime,
                **sections: dict[str, Any]) -> Services:
    """Services on ``url`` with the clock pinned at ``now``; ``sections`` override settings
    sections field by field, e.g. ``smtp={"port": 2525}``."""
    update: dict[str, Any] = {"database": Database(url=url)}
    for name, fields in sections.items():
        update[name] = getattr(settings, name).model_copy(update=fields)
    services = Services.create(settings.model_copy(update=update))
    services.clock = lambda: now
    return services


@dataclass
class People:
    head: Staff          # department head: marks urgent, completes
    executor: Staff      # specialist who answers
    portal_citizen: Citizen   # chose the state portal, extra channel e-mail (R-A2)
    phone_citizen: Citizen    # phone only
    agency: Agency


async def add_people(services: Services) -> People:
    async with services.sessions() as session, session.begin():
        dept = Department(name="Отдел мер социальной поддержки", short_name="Соцподдержка")
        session.add(dept)
        await session.flush()
        head = Staff(login="head", surname="Кузнецов", first_name="Олег", patronymic="Николаевич",
                     position="начальник отдела", department_id=dept.id,
                     role=Role.DEPARTMENT_HEAD, phone="84950001001")
        executor = Staff(login="exec", surname="Сидорова", first_name="Елена",
                         patronymic="Викторовна", position="главный специалист",
                         department_id=dept.id, role=Role.SPECIALIST, phone="84950001002")
        portal = Citizen(surname="Морозова", first_name="Татьяна", patronymic="Ивановна",
                         email="morozova@example.org", preferred_channel=Channel.STATE_PORTAL,
                         extra_channel=Channel.EMAIL,
                         phones=[CitizenPhone(phone="79001234567")])
        phone = Citizen(surname="Волков", first_name="Андрей", patronymic="Сергеевич",
                        preferred_channel=Channel.PHONE,
                        phones=[CitizenPhone(phone="79007654321")])
        agency = Agency(name="Социальный фонд России, региональное отделение",
                        phone="88001001000", address="г. Демонстрационный, ул. Ленина, 5")
        session.add_all([head, executor, portal, phone, agency])
    return People(head, executor, portal, phone, agency)


async def kb_sections_of(services: Services, login: str) -> tuple[int, int, int]:
    """(the employee's id, their department's KB section, another department's section)."""
    from sqlalchemy import select

    from ivr.db.models import KbSection

    async with services.sessions() as s:
        staff = await s.scalar(select(Staff).where(Staff.login == login))
        assert staff is not None
        own = await s.scalar(select(KbSection.id).where(
            KbSection.department_id == staff.department_id))
        other = await s.scalar(select(KbSection.id).where(
            KbSection.department_id != staff.department_id).order_by(KbSection.id))
    assert own is not None and other is not None
    return staff.id, own, other
