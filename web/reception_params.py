"""Free reception slots filtered by official and date (R-P2), as the booking pane beside the
call, the receptions page and the API ask for them: ``official_id``, and ``date`` (one day)
or ``date_from``/``date_to`` (local dates, ISO ``YYYY-MM-DD``). Bad parameters are refused
with a message in Russian: malformed ones with 400, an unknown official with 422."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivr.calendar import WorkCalendar
from ivr.db.models import Channel, Citizen, CitizenPhone, Official, ReceptionSlot
from ivr.phone import normalise
from ivr.services import receptions
from ivr.services.delivery import Need

from .errors import Invalid, Unprocessable

MAX_DAYS = 62
# Without an official or a period the list is of the nearest times only; asked for one
# official and a period, every free time of it is listed.
NEAREST = 40
WHOLE_PERIOD = 1000


class BadSlotQuery(Invalid):
    error_id = "bad_slot_query"


@dataclass(frozen=True)
class SlotQuery:
    official_id: int | None = None
    first_day: date | None = None
    last_day: date | None = None

    @property
    def narrowed(self) -> bool:
        return self.official_id is not None or self.first_day is not None


def _day(raw: str, what: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadSlotQuery(f"{what}: укажите дату в виде ГГГГ-ММ-ДД, например 2026-11-25.") \
            from None


def parse(params: Mapping[str, str]) -> SlotQuery:
    """The filter from query parameters; :class:`BadSlotQuery` (400) when malformed."""
    raw_official = params.get("official_id", "").strip()
    if raw_official and not (raw_official.isdecimal() and len(raw_official) <= 9):
        raise BadSlotQuery("Должностное лицо указано неверно.")
    single = _day(params.get("date", "").strip(), "Дата")
    first = single or _day(params.get("date_from", "").strip(), "Начало периода")
    last = single or _day(params.get("date_to", "").strip(), "Конец периода")
    if first and last and last < first:
        raise BadSlotQuery("Конец периода раньше его начала.")
    if first and last and (last - first).days >= MAX_DAYS:
        raise BadSlotQuery(f"Период не длиннее {MAX_DAYS} дней.")
    return SlotQuery(int(raw_official) if raw_official else None, first, last)


async def find(session: AsyncSession, calendar: WorkCalendar, now: datetime,
               query: SlotQuery, limit: int | None = None) -> list[ReceptionSlot]:
    """The free slots the query asks for; an unknown official is refused (422)."""
    if query.official_id is not None and await session.get(Official,
                                                           query.official_id) is None:
        raise Unprocessable("Такого должностного лица нет.", "official_unknown")
    since = (datetime.combine(query.first_day, time(0), calendar.tz)
             if query.first_day else None)
    until = (datetime.combine(query.last_day + timedelta(days=1), time(0), calendar.tz)
             if query.last_day else None)
    return await receptions.free_slots(session, now, official_id=query.official_id,
                                       since=since, until=until,
                                       limit=limit or (WHOLE_PERIOD if query.narrowed
                                                       else NEAREST))


def official_name(official: Official) -> str:
    return f"{official.title} {official.staff.initials_name}"


# --- the booking's choices: reminders and needs (R-P3, R-P5) ------------------------------

REMINDER_WHEN = {"day": (True, False), "2h": (False, True), "both": (True, True)}
REMINDER_WHEN_NAMES = {"day": "за день", "2h": "за два часа", "both": "за день и за два часа"}


@dataclass(frozen=True)
class BookingChoices:
    reminder_channel: Channel | None
    remind_day_before: bool
    remind_two_hours_before: bool
    needs: frozenset[Need]
    other_needs: str


def booking_choices(form: Mapping[str, str], needs: list[str]) -> BookingChoices:
    """The reminder (channel: phone, email or none; when: day, 2h or both — a day before
    unless said) and the needs (``needs``: the form's ``need`` values, from the fixed list;
    ``accessibility_needs`` for anything else); :class:`BadSlotQuery` (400) for a value
    off the lists."""
    raw_channel = form.get("reminder_channel", "").strip()
    if raw_channel not in ("", Channel.PHONE.value, Channel.EMAIL.value):
        raise BadSlotQuery("Напоминание возможно звонком или по электронной почте.")
    when = form.get("reminder_when", "").strip() or "day"
    if when not in REMINDER_WHEN:
        raise BadSlotQuery("Когда напомнить: за день, за два часа или и то и другое.")
    day, two_hours = REMINDER_WHEN[when] if raw_channel else (False, False)
    try:
        chosen = frozenset(Need(raw) for raw in needs)
    except ValueError:
        raise BadSlotQuery("Особые потребности: выберите из списка.") from None
    return BookingChoices(Channel(raw_channel) if raw_channel else None, day, two_hours,
                          chosen, form.get("accessibility_needs", "").strip()[:500])


# --- whom the booking is for: a citizen found by phone, or registered with it -------------

PHONE_FORMAT = "Номер телефона: 11 цифр, например +7 900 123-45-67."
UNKNOWN_CITIZEN = ("Гражданина с этим номером телефона ещё нет в базе: укажите его фамилию "
                   "и имя — он будет зарегистрирован вместе с записью.")
NAME_FIELDS = ("surname", "first_name", "patronymic")


def citizen_phone(raw: str) -> str:
    """The number as stored (``7XXXXXXXXXX``); :class:`Invalid` with the format otherwise."""
    phone = normalise(raw)
    if not (phone.isdecimal() and len(phone) == 11):
        raise Invalid(PHONE_FORMAT, "bad_phone")
    return phone


async def booking_citizen(session: AsyncSession, phone: str,
                          form: Mapping[str, str]) -> tuple[int, bool]:
    """(citizen id, created): the citizen with this number, or a new one under the names
    the form gives; :class:`Invalid` when the number is unknown and no name is given."""
    found = await session.scalar(select(CitizenPhone.citizen_id).where(
        CitizenPhone.phone == phone))
    if found is not None:
        return found, False
    surname, first, patronymic = (form.get(name, "").strip()[:100] for name in NAME_FIELDS)
    if not (surname and first):
        raise Invalid(UNKNOWN_CITIZEN, "citizen_unknown")
    citizen = Citizen(surname=surname, first_name=first, patronymic=patronymic,
                      phones=[CitizenPhone(phone=phone)])
    session.add(citizen)
    await session.flush()
    return citizen.id, True
