"""Registering written appeals (R-A1): one by one (panel, JSON API) and in bulk from the
document-flow system's CSV export.

The registration number is unique: a second registration with it is refused with a clear
error. A CSV file is checked whole before anything is written: every bad row is reported by
its line number, and then nothing of the file is imported.

CSV columns (a header row, comma or semicolon separated, UTF-8 with or without BOM):
``reg_number, registered_on (ДД.ММ.ГГГГ or YYYY-MM-DD), channel, surname, first_name,
patronymic, phone, email, topic, text, materials``. The channel is a code (post, in_person,
email, website, state_portal, hotline) or its Russian name (почта, лично, …, ЕПГУ).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from .. import letters
from ..calendar import WorkCalendar
from ..db.models import Appeal, AppealStatus, Channel, Citizen, CitizenPhone
from ..phone import normalise
from ..settings import Settings
from . import notices
from .appeals import ordinary_due_date

INTAKE_CHANNELS = (Channel.POST, Channel.IN_PERSON, Channel.EMAIL, Channel.WEBSITE,
                   Channel.STATE_PORTAL, Channel.HOTLINE)
_CHANNEL_NAMES = {
    "почта": Channel.POST, "почтой": Channel.POST, "лично": Channel.IN_PERSON,
    "на личном приёме": Channel.IN_PERSON, "электронная почта": Channel.EMAIL,
    "e-mail": Channel.EMAIL, "сайт": Channel.WEBSITE, "интернет-приёмная": Channel.WEBSITE,
    "епгу": Channel.STATE_PORTAL, "госуслуги": Channel.STATE_PORTAL,
    "горячая линия": Channel.HOTLINE,
}
COLUMNS = ("reg_number", "registered_on", "channel", "surname", "first_name", "patronymic",
           "phone", "email", "topic", "text", "materials")
_FIELD_NAMES = {"reg_number": "регистрационный номер", "registered_on": "дата регистрации",
                "channel": "канал поступления", "email": "электронная почта",
                "phone": "телефон", "topic": "тема", "text": "текст"}


class IntakeError(Exception):
    """A registration refused, phrased for the person registering."""


class AppealInput(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reg_number: str = Field(min_length=1, max_length=50, pattern=r"^[0-9A-Za-zА-Яа-я/\-.]+$")
    registered_on: date
    channel: Channel
    surname: str = Field(default="", max_length=100)
    first_name: str = Field(default="", max_length=100)
    patronymic: str = Field(default="", max_length=100)
    phone: str = Field(default="", max_length=30)
    email: str = Field(default="", max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$")
    topic: str = Field(default="", max_length=100)
    text: str = Field(default="", max_length=100_000)
    materials: str = Field(default="", max_length=10_000)
    citizen_id: int | None = None

    @field_validator("registered_on", mode="before")
    @classmethod
    def _russian_date(cls, value: object) -> object:
        if isinstance(value, str) and "." in value:
            try:
                return datetime.strptime(value.strip(), "%d.%m.%Y").date()
            except ValueError:
                raise ValueError("ожидается дата ДД.ММ.ГГГГ") from None
        return value

    @field_validator("channel", mode="before")
    @classmethod
    def _channel(cls, value: object) -> object:
        if isinstance(value, str):
            value = _CHANNEL_NAMES.get(value.strip().lower(), value.strip().lower())
        if value not in [c.value for c in INTAKE_CHANNELS]:
            raise ValueError("неизвестный канал поступления")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        if value and not normalise(value):
            raise ValueError("не похоже на номер телефона")
        return normalise(value) if value else ""


def describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        name = _FIELD_NAMES.get(field, field)
        message = "обязательное поле" if item["type"] == "missing" else (
            str(item["msg"]).removeprefix("Value error, "))
        parts.append(f"{name}: {message}")
    return "; ".join(parts)


def parse(data: dict[str, object]) -> AppealInput:
    try:
        return AppealInput.model_validate(data)
    except ValidationError as exc:
        raise IntakeError(describe(exc)) from None


async def _citizen_for(session: AsyncSession, item: AppealInput) -> Citizen:
    if item.citizen_id is not None:
        citizen = await session.get(Citizen, item.citizen_id)
        if citizen is None:
            raise IntakeError(f"гражданин {item.citizen_id} не найден")
        return citizen
    if item.phone:
        found = await session.scalar(select(Citizen).join(CitizenPhone).where(
            CitizenPhone.phone == item.phone))
        if found is not None:
            return found
    if item.email:
        found = await session.scalar(select(Citizen).where(Citizen.email == item.email))
        if found is not None:
            return found
    citizen = Citizen(surname=item.surname, first_name=item.first_name,
                      patronymic=item.patronymic, email=item.email or None,
                      preferred_channel=Channel.EMAIL if item.email else (
                          Channel.PHONE if item.phone else Channel.POST))
    if item.phone:
        citizen.phones = [CitizenPhone(phone=item.phone)]
    session.add(citizen)
    await session.flush()
    return citizen


async def _add(session: AsyncSession, settings: Settings, calendar: WorkCalendar,
               item: AppealInput) -> Appeal:
    citizen = await _citizen_for(session, item)
    appeal = Appeal(
        reg_number=item.reg_number, registered_on=item.registered_on, channel=item.channel,
        citizen_id=citizen.id, contact_phone=item.phone, topic=item.topic, text=item.text,
        materials=item.materials, status=AppealStatus.REGISTERED,
        due_date=ordinary_due_date(settings, calendar, item.registered_on))
    session.add(appeal)
    return appeal


async def _registered_notice(session: AsyncSession, settings: Settings, appeal: Appeal,
                             now: datetime) -> None:
    """The first status notice (R-A2): registered, under this number, answer due by."""
    if not settings.appeals.notify_registration or appeal.citizen_id is None:
        return
    citizen = await notices.load_citizen(session, appeal.citizen_id)
    await notices.enqueue(session, settings, citizen,
                          letters.appeal_registered(appeal, settings.organisation),
                          key=f"appeal:{appeal.id}:registered", now=now, appeal_id=appeal.id)


async def register(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                   calendar: WorkCalendar, item: AppealInput, *, now: datetime) -> int:
    async with sessions() as session, session.begin():
        if await session.scalar(select(Appeal.id).where(Appeal.reg_number == item.reg_number)):
            raise IntakeError(
                f"обращение с регистрационным номером {item.reg_number} уже зарегистрировано")
        appeal = await _add(session, settings, calendar, item)
        await session.flush()
        await _registered_notice(session, settings, appeal, now)
        return appeal.id


@dataclass
class ImportReport:
    imported: int
    errors: list[str]          # "строка 3: дата регистрации: …"

    @property
    def ok(self) -> bool:
        return not self.errors


def read_csv(text: str) -> tuple[list[tuple[int, AppealInput]], list[str]]:
    """Every row checked; the good ones with their line numbers, and every error."""
    text = text.lstrip("\ufeff")
    try:
        dialect = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;")
    except csv.Error:
        dialect = csv.excel  # type: ignore[assignment]
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in ("reg_number", "registered_on", "channel") if c not in header]
    unknown = [h for h in header if h not in COLUMNS]
    if missing or unknown:
        what = []
        if missing:
            what.append("нет столбцов " + ", ".join(missing))
        if unknown:
            what.append("неизвестные столбцы " + ", ".join(unknown))
        return [], ["строка 1: " + "; ".join(what)]
    rows: list[tuple[int, AppealInput]] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            errors.append(f"строка {line}: лишние значения")
            continue
        data = {k.strip(): (v or "") for k, v in row.items() if k is not None}
        try:
            item = AppealInput.model_validate(data)
        except ValidationError as exc:
            errors.append(f"строка {line}: {describe(exc)}")
            continue
        if item.reg_number in seen:
            errors.append(f"строка {line}: регистрационный номер {item.reg_number} уже был "
                          f"в строке {seen[item.reg_number]}")
            continue
        seen[item.reg_number] = line
        rows.append((line, item))
    return rows, errors


async def import_csv(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                     calendar: WorkCalendar, text: str, *, now: datetime) -> ImportReport:
    """All or nothing: with any bad row, nothing is imported and every error is listed."""
    rows, errors = read_csv(text)
    async with sessions() as session, session.begin():
        numbers = [item.reg_number for _, item in rows]
        taken: set[str] = set()
        for i in range(0, len(numbers), 500):
            taken |= set(await session.scalars(select(Appeal.reg_number).where(
                Appeal.reg_number.in_(numbers[i:i + 500]))))
        for line, item in rows:
            if item.reg_number in taken:
                errors.append(f"строка {line}: обращение с регистрационным номером "
                              f"{item.reg_number} уже зарегистрировано")
        if errors:
            errors.sort(key=lambda e: int(e.split()[1].rstrip(":")))
            return ImportReport(0, errors)
        for _, item in rows:
            appeal = await _add(session, settings, calendar, item)
            await session.flush()
            await _registered_notice(session, settings, appeal, now)
    return ImportReport(len(rows), [])


async def citizen_of(session: AsyncSession, citizen_id: int) -> Citizen | None:
    return await session.scalar(select(Citizen).options(selectinload(Citizen.phones))
                                .where(Citizen.id == citizen_id))
