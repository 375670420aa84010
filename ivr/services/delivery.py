"""How a reception's notices reach the citizen (R-P3, R-P5): the channels of the booking's
confirmation and of its reminders, following the citizen's choice and recorded needs, and
the plain-Russian summary of them that the confirmation and the operator's screen show.

Needs change the channels: impaired hearing takes no calls — e-mail instead, and the
confirmation also as a large-print letter for post (printed from the outbox); impaired
sight takes no paper — a call instead, and e-mail that a screen reader reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum

from ..db.models import Booking, Channel, Citizen
from ..letters import Letter
from .notices import address_for, channels_for


class Need(StrEnum):
    HEARING = "hearing"
    SIGHT = "sight"
    MOBILITY = "mobility"


NEED_NAMES = {Need.HEARING: "нарушение слуха", Need.SIGHT: "нарушение зрения",
              Need.MOBILITY: "ограничена подвижность (нужен доступ без ступеней)"}


def needs_of(booking: Booking) -> list[Need]:
    flags = {Need.HEARING: booking.need_hearing, Need.SIGHT: booking.need_sight,
             Need.MOBILITY: booking.need_mobility}
    return [need for need, on in flags.items() if on]


def needs_text(booking: Booking) -> str:
    """The needs as the staff and the citizen read them."""
    names = [NEED_NAMES[need] for need in needs_of(booking)]
    if booking.accessibility_needs:
        names.append(booking.accessibility_needs)
    return "; ".join(names)


def _adjusted(booking: Booking, channels: Sequence[Channel]) -> list[Channel]:
    channels = list(channels)
    if booking.need_hearing:
        channels = [c for c in channels if c != Channel.PHONE] + [Channel.EMAIL]
    if booking.need_sight:
        channels = [c for c in channels if c != Channel.POST] + [Channel.PHONE, Channel.EMAIL]
    return list(dict.fromkeys(channels))


def reminder_channels(booking: Booking, citizen: Citizen) -> list[Channel]:
    """The reminder's channels: the one chosen (a call also leaves the text by e-mail),
    changed by the needs; only those the citizen has an address for."""
    chosen = booking.reminder_channel
    if chosen is None or not (booking.remind_day_before or booking.remind_two_hours_before):
        return []
    channels = [chosen, Channel.EMAIL] if chosen == Channel.PHONE else [chosen]
    return [c for c in _adjusted(booking, channels) if address_for(citizen, c)]


def notice_channels(booking: Booking, citizen: Citizen,
                    legally_fixed: list[str]) -> list[Channel]:
    """A notice about the booking the citizen did not ask for (the reception called off):
    the citizen's channels (R-A2), changed by the needs (R-P5)."""
    return [c for c in _adjusted(booking, channels_for(citizen, legally_fixed))
            if address_for(citizen, c)]


def confirmation_channels(booking: Booking, citizen: Citizen,
                          legally_fixed: list[str]) -> list[Channel]:
    """The confirmation goes in writing by the citizen's channels (the operator booking by
    phone has just said it); the needs add e-mail and a large-print letter (hearing) or a
    call instead of paper (sight)."""
    channels: list[Channel] = [c for c in channels_for(citizen, legally_fixed)
                               if c != Channel.PHONE]
    if booking.need_hearing:
        channels += [Channel.EMAIL, Channel.POST]
    return [c for c in _adjusted(booking, channels) if address_for(citizen, c)]


def mask(channel: Channel, address: str) -> str:
    """Enough of an address to recognise it, not enough to learn it from a screen."""
    if channel == Channel.PHONE and len(address) >= 4:
        return f"номер, оканчивающийся на {address[-2:]}" if len(address) < 10 else \
            f"+7 {address[-10:-7]} ***-**-{address[-2:]}"
    if channel == Channel.EMAIL and "@" in address:
        user, domain = address.rsplit("@", 1)
        return f"{user[:1]}***@{domain}"
    if channel == Channel.POST:
        return f"{address[:12]}…" if len(address) > 12 else address
    return "личный кабинет"


_WAYS = {Channel.PHONE: "звонком на {}", Channel.EMAIL: "по электронной почте на {}",
         Channel.POST: "письмом по адресу {}", Channel.STATE_PORTAL: "в {} на Госуслугах"}


def _ways(booking: Booking, citizen: Citizen, channels: list[Channel]) -> str:
    parts = []
    for channel in channels:
        way = _WAYS[channel].format(mask(channel, address_for(citizen, channel)))
        if channel == Channel.POST and booking.need_hearing:
            way = way.replace("письмом", "письмом крупным шрифтом")
        parts.append(way)
    return ", ".join(parts)


def summary(booking: Booking, citizen: Citizen, confirmation: list[Channel]) -> list[str]:
    """The lines the confirmation ends with and the operator sees: what was sent, which
    reminders will come, how and where (R-P3)."""
    lines = [f"Подтверждение записи отправлено {_ways(booking, citizen, confirmation)}."
             if confirmation else "Подтверждение записи сообщено по телефону."]
    reminders = reminder_channels(booking, citizen)
    when = [label for on, label in ((booking.remind_day_before, "за день"),
                                    (booking.remind_two_hours_before, "за два часа"))
            if on]
    if reminders and when:
        lines.append(f"Напоминание {' и '.join(when)} до приёма придёт "
                     f"{_ways(booking, citizen, reminders)}.")
    else:
        lines.append("Напоминание о приёме не придёт.")
    return lines


# A post copy of this kind prints in large type (the outbox's letter page, R-P5).
LARGE_PRINT_SUFFIX = "_large_print"


def large_print(letter: Letter) -> Letter:
    """The letter for post in large print: the same text, printed larger by the outbox."""
    return replace(letter, kind=letter.kind + LARGE_PRINT_SUFFIX)
