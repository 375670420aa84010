"""Registering written appeals (R-A1): one by one (panel, JSON API) and in bulk from the
document-flow system's CSV export.

The registration number is unique: a second registration with it is refused with a clear
error. A CSV file is checked whole before anything is written: every bad row is reported by
its line number, and then nothing of the file is imported.

CSV columns (a header row, comma or semicolon separated, UTF-8 with or without BOM):
``reg_number, registered_on (ДД.ММ.ГГГГ or YYYY-MM-DD), channel, surname, first_name,
patronymic, phone, email, topic, text, materials`` and, optional, ``notify_channel,
extra_channel, postal_address``. The channel is a code (post, in_person, email, website,
state_portal, hotline) or its Russian name (почта, лично, …, ЕПГУ). The topic is a code or a
title of the classifier (:mod:`ivr.services.topics`), or empty.

Notice channels (R-A2): the channel the citizen chose for notices (email, phone, post,
state_portal or their Russian names) and an extra one for duplicates; each chosen channel
needs its address — an e-mail, a phone the hotline dials (:mod:`ivr.dialling`), a postal
address. They are recorded on the citizen's card, the latest registration's choice winning.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from .. import letters
from ..calendar import WorkCalendar
from ..db.models import Appeal, AppealStatus, AppealTopic, Channel, Citizen, CitizenPhone
from ..dialling import DEFAULT, DiallingPolicy, NumberRefused
from ..settings import Settings
from . import notices, topics
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
_NOTICE_CHANNEL_NAMES = {
    "электронная почта": Channel.EMAIL, "e-mail": Channel.EMAIL, "телефон": Channel.PHONE,
    "почта": Channel.POST, "почтой": Channel.POST, "епгу": Channel.STATE_PORTAL,
    "госуслуги": Channel.STATE_PORTAL,
}
COLUMNS = ("reg_number", "registered_on", "channel", "surname", "first_name", "patronymic",
           "phone", "email", "topic", "text", "materials", "notify_channel", "extra_channel",
           "postal_address")
_FIELD_NAMES = {"reg_number": "регистрационный номер", "registered_on": "дата регистрации",
                "channel": "канал поступления", "email": "электронная почта",
                "phone": "телефон", "topic": "тема", "text": "текст",
                "notify_channel": "канал для уведомлений",
                "extra_channel": "дополнительный канал", "postal_address": "почтовый адрес"}
# Refusals of well-formed data by the rules: 422 in the API, like a number not dialled.
_RULE_FIELDS = {"notify_channel", "extra_channel", "postal_address", ""}


class IntakeError(Exception):
    """A registration refused, phrased for the person registering; ``status`` 422 when the
    rules refuse well-formed data (a number the hotline does not dial)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


DIALLING = "dialling"   # the validation context's key for the DiallingPolicy


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
    notify_channel: Channel | None = None
    extra_channel: Channel | None = None
    postal_address: str = Field(default="", max_length=500)
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

    @field_validator("notify_channel", "extra_channel", mode="before")
    @classmethod
    def _notice_channel(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            value = _NOTICE_CHANNEL_NAMES.get(value, value) or None
        if value is not None and value not in [c.value for c in notices.NOTICE_CHANNELS]:
            raise ValueError("выберите: электронная почта, телефон, почта или ЕПГУ")
        return value

    @field_validator("postal_address")
    @classmethod
    def _postal_address(cls, value: str) -> str:
        value = " ".join(value.split())   # a pasted multi-line address becomes one line
        if value and (len(value) < 10 or not any(c.isdigit() for c in value)
                      or not any(c.isalpha() for c in value)):
            raise ValueError("укажите адрес полностью: индекс, населённый пункт, улица, дом")
        return value

    @model_validator(mode="after")
    def _contacts_for_channels(self) -> AppealInput:
        """Each channel chosen for notices needs its address (R-A2)."""
        if self.extra_channel is not None and self.extra_channel == self.notify_channel:
            raise ValueError("дополнительный канал совпадает с основным")
        needs = {Channel.EMAIL: (self.email, "адрес электронной почты"),
                 Channel.PHONE: (self.phone, "телефон"),
                 Channel.POST: (self.postal_address, "почтовый адрес")}
        for channel in (self.notify_channel, self.extra_channel):
            if channel in needs and not needs[channel][0]:
                raise ValueError(f"для уведомлений по каналу «{_NOTICE_LABELS[channel]}» "
                                 f"нужен {needs[channel][1]}")
        return self

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str, info: ValidationInfo) -> str:
        """A number the hotline will call (notices, reminders): the dialling policy's
        decision, the settings' one when :func:`parse` / :func:`read_csv` pass it."""
        if not value:
            return ""
        policy = (info.context or {}).get(DIALLING, DEFAULT)
        return str(policy.decide(value))


_NOTICE_LABELS = {Channel.EMAIL: "электронная почта", Channel.PHONE: "телефон",
                  Channel.POST: "почта", Channel.STATE_PORTAL: "ЕПГУ"}


def describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        name = _FIELD_NAMES.get(field, field)
        message = "обязательное поле" if item["type"] == "missing" else (
            str(item["msg"]).removeprefix("Value error, "))
        parts.append(f"{name}: {message}" if name else message)
    return "; ".join(parts)


def parse(data: dict[str, object], policy: DiallingPolicy = DEFAULT) -> AppealInput:
    try:
        return AppealInput.model_validate(data, context={DIALLING: policy})
    except ValidationError as exc:
        refused = any(isinstance((e.get("ctx") or {}).get("error"), NumberRefused)
                      or str(e["loc"][0] if e["loc"] else "") in _RULE_FIELDS
                      for e in exc.errors())
        raise IntakeError(describe(exc), 422 if refused else 400) from None


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


def _record_channels(citizen: Citizen, item: AppealInput) -> None:
    """The notice channels this registration states go on the citizen's card (R-A2): the
    latest choice wins; what it leaves out stays as it was."""
    if item.postal_address:
        citizen.postal_address = item.postal_address
    if item.email and not citizen.email:
        citizen.email = item.email
    if item.notify_channel is not None:
        citizen.preferred_channel = item.notify_channel
        citizen.extra_channel = item.extra_channel
    elif item.extra_channel is not None:
        citizen.extra_channel = item.extra_channel


async def _add(session: AsyncSession, settings: Settings, calendar: WorkCalendar,
               item: AppealInput, topic: AppealTopic | None) -> Appeal:
    citizen = await _citizen_for(session, item)
    _record_channels(citizen, item)
    appeal = Appeal(
        reg_number=item.reg_number, registered_on=item.registered_on, channel=item.channel,
        citizen_id=citizen.id, contact_phone=item.phone,
        topic_id=topic.id if topic else None, topic=topic.title if topic else "",
        text=item.text, materials=item.materials, status=AppealStatus.REGISTERED,
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
        try:
            topic = await topics.resolve(session, item.topic)
        except topics.UnknownTopic as exc:
            raise IntakeError(str(exc), 422) from None
        appeal = await _add(session, settings, calendar, item, topic)
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


def read_csv(text: str, policy: DiallingPolicy = DEFAULT
             ) -> tuple[list[tuple[int, AppealInput]], list[str]]:
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
            item = AppealInput.model_validate(data, context={DIALLING: policy})
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
    rows, errors = read_csv(text, DiallingPolicy.from_settings(settings))
    async with sessions() as session, session.begin():
        numbers = [item.reg_number for _, item in rows]
        taken: set[str] = set()
        for i in range(0, len(numbers), 500):
            taken |= set(await session.scalars(select(Appeal.reg_number).where(
                Appeal.reg_number.in_(numbers[i:i + 500]))))
        classifier = await topics.active(session)
        chosen: dict[int, AppealTopic | None] = {}
        for line, item in rows:
            if item.reg_number in taken:
                errors.append(f"строка {line}: обращение с регистрационным номером "
                              f"{item.reg_number} уже зарегистрировано")
            try:
                chosen[line] = topics.match(classifier, item.topic) if item.topic else None
            except topics.UnknownTopic as exc:
                errors.append(f"строка {line}: {exc}")
        if errors:
            errors.sort(key=lambda e: int(e.split()[1].rstrip(":")))
            return ImportReport(0, errors)
        for line, item in rows:
            appeal = await _add(session, settings, calendar, item, chosen[line])
            await session.flush()
            await _registered_notice(session, settings, appeal, now)
    return ImportReport(len(rows), [])


async def citizen_of(session: AsyncSession, citizen_id: int) -> Citizen | None:
    return await session.scalar(select(Citizen).options(selectinload(Citizen.phones))
                                .where(Citizen.id == citizen_id))
