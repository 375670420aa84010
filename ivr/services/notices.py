"""Notices to citizens (R-A2, R-A5, R-P3, R-P5): which channels, queued once, sent, retried.

A notice goes by the citizen's chosen channel and is duplicated to the extra one the
citizen asked for; where the law fixes the chosen channel (the state portal) it is
duplicated even when the citizen asked for none (R-A2). Each copy is a
``notifications`` row whose ``dedup_key`` ("appeal:12:answer:email") is unique: queuing the
same notice twice adds nothing, so none is sent twice. The sender (:mod:`ivr.notifier`)
claims due rows with a conditional update (pending → sending), so two senders never take one
row; every copy records its delivery status, failures retry after ``notices.retry_seconds``
up to ``notices.max_attempts``. Post and state-portal copies wait as ``outbox`` for the
external system.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import aiosmtplib
from sqlalchemy import func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from ..db.models import (
    Booking,
    BookingStatus,
    Channel,
    Citizen,
    Notification,
    NotificationStatus,
)
from ..letters import Letter
from ..settings import Settings
from .surveys import make_token

log = logging.getLogger(__name__)

ELECTRONIC = (Channel.EMAIL, Channel.STATE_PORTAL)
NOTICE_CHANNELS = (Channel.EMAIL, Channel.PHONE, Channel.POST, Channel.STATE_PORTAL)
REMINDER_KINDS = ("reminder_day", "reminder_2h")


def _first_possible(citizen: Citizen) -> Channel | None:
    for channel in (Channel.EMAIL, Channel.PHONE, Channel.POST):
        if address_for(citizen, channel):
            return channel
    return None


def channels_for(citizen: Citizen, legally_fixed: list[str]) -> list[Channel]:
    """The chosen channel, plus a duplicate (R-A2): the extra channel the citizen asked
    for; or, where the law fixes the chosen one and the citizen asked for none, the first
    other channel we have an address for. A citizen who chose nothing usable is reached by
    the first channel we have an address for (e-mail, phone, post)."""
    chosen = citizen.preferred_channel
    if chosen not in NOTICE_CHANNELS or not address_for(citizen, chosen):
        chosen = _first_possible(citizen)
    if chosen is None:
        return []
    extra = citizen.extra_channel
    if extra not in NOTICE_CHANNELS or extra == chosen or not address_for(citizen, extra):
        extra = None
    if extra is None and chosen.value in legally_fixed:
        extra = next((c for c in (Channel.EMAIL, Channel.PHONE, Channel.POST)
                      if c != chosen and address_for(citizen, c)), None)
    return [chosen] if extra is None else [chosen, extra]


def address_for(citizen: Citizen, channel: Channel) -> str:
    if channel == Channel.EMAIL:
        return citizen.email or ""
    if channel == Channel.PHONE:
        return citizen.phones[0].phone if citizen.phones else ""
    if channel == Channel.POST:
        return citizen.postal_address
    if channel == Channel.STATE_PORTAL:
        return f"epgu:citizen:{citizen.id}"   # the portal's side matches by the citizen
    return ""


def survey_link(settings: Settings, *, appeal_id: int | None, booking_id: int | None) -> str:
    token = make_token(settings.panel.secret, appeal_id=appeal_id, booking_id=booking_id)
    return settings.survey.link_base_url + token


def _body(letter: Letter, channel: Channel, link: str | None) -> str:
    if channel == Channel.PHONE:
        return letter.spoken
    if link and channel in ELECTRONIC:
        return (f"{letter.written}\n\nОцените, пожалуйста, как мы рассмотрели ваш вопрос: "
                f"{link}\nОпрос займёт минуту; ссылка действует один раз.")
    return letter.written


async def enqueue(
    session: AsyncSession, settings: Settings, citizen: Citizen, letter: Letter, *, key: str,
    now: datetime, appeal_id: int | None = None, booking_id: int | None = None,
    channels: list[Channel] | None = None,
) -> list[Notification]:
    """Queue the letter for each channel (``channels_for`` unless given), in the caller's
    transaction; copies already queued under the same key are left as they are."""
    if channels is None:
        channels = channels_for(citizen, list(settings.notices.legally_fixed_channels))
    added: list[Notification] = []
    for channel in channels:
        dedup = f"{key}:{channel.value}"
        exists = await session.scalar(select(Notification.id).where(
            Notification.dedup_key == dedup))
        if exists is not None:
            continue
        link = None
        if letter.survey and channel in ELECTRONIC:
            link = survey_link(settings, appeal_id=appeal_id, booking_id=booking_id)
        notice = Notification(
            dedup_key=dedup, kind=letter.kind, channel=channel,
            address=address_for(citizen, channel), citizen_id=citizen.id,
            appeal_id=appeal_id, booking_id=booking_id, subject=letter.subject,
            body=_body(letter, channel, link), status=NotificationStatus.PENDING,
            next_attempt_at=now)
        session.add(notice)
        added.append(notice)
    await session.flush()
    return added


async def load_citizen(session: AsyncSession, citizen_id: int) -> Citizen:
    citizen = await session.scalar(select(Citizen).options(selectinload(Citizen.phones))
                                   .where(Citizen.id == citizen_id))
    if citizen is None:
        raise LookupError(f"no citizen {citizen_id}")
    return citizen


# --- sending -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    id: int
    channel: Channel
    address: str
    subject: str
    body: str
    kind: str
    dedup_key: str


def _in_phone_hours(settings: Settings, now: datetime) -> bool:
    hours = settings.notices.phone_hours
    local = now.astimezone(settings.organisation.tz).time()
    return hours.start <= local < hours.end


async def claim_due(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                    now: datetime, *, limit: int = 50) -> list[Claimed]:
    """Take due copies for one attempt each (pending → sending, conditionally: two senders
    never take one). Phone copies wait for ``notices.phone_hours``; a reminder whose
    reception has begun or was cancelled is dropped; a phone attempt that never reported
    (a restart mid-call) goes back to pending."""
    cfg = settings.notices
    claimed: list[Claimed] = []
    async with sessions() as session, session.begin():
        await _release_stale(session, now, cfg.max_attempts, cfg.retry_seconds)
        query = (select(Notification)
                 .where(Notification.status == NotificationStatus.PENDING,
                        or_(Notification.next_attempt_at.is_(None),
                            Notification.next_attempt_at <= now))
                 .order_by(Notification.next_attempt_at, Notification.id).limit(limit)
                 .with_for_update(skip_locked=True))
        if not _in_phone_hours(settings, now):
            query = query.where(Notification.channel != Channel.PHONE)
        for notice in (await session.scalars(query)).all():
            if notice.kind in REMINDER_KINDS and not await _reminder_still_due(
                    session, notice, now):
                notice.status = NotificationStatus.FAILED
                notice.last_error = "приём отменён или уже начался"
                continue
            deadline = now + timedelta(seconds=cfg.stale_after_seconds)
            won = await session.execute(
                update(Notification).where(Notification.id == notice.id,
                                           Notification.status == NotificationStatus.PENDING)
                .values(status=NotificationStatus.SENDING, attempts=Notification.attempts + 1,
                        next_attempt_at=deadline)
                .execution_options(synchronize_session=False))
            if won.rowcount != 1:  # type: ignore[attr-defined]
                continue
            claimed.append(Claimed(notice.id, notice.channel, notice.address, notice.subject,
                                   notice.body, notice.kind, notice.dedup_key))
    return claimed


async def _reminder_still_due(session: AsyncSession, notice: Notification,
                              now: datetime) -> bool:
    if notice.booking_id is None:
        return True
    booking = await session.get(Booking, notice.booking_id,
                                options=[selectinload(Booking.slot)])
    return (booking is not None and booking.status == BookingStatus.BOOKED
            and booking.slot.starts_at > now)


async def _release_stale(session: AsyncSession, now: datetime, max_attempts: int,
                         retry_seconds: int) -> None:
    stale = (await session.scalars(select(Notification).where(
        Notification.status == NotificationStatus.SENDING,
        Notification.next_attempt_at <= now))).all()
    for notice in stale:
        _failed(notice, "нет результата звонка", now, max_attempts, retry_seconds)


def _failed(notice: Notification, error: str, now: datetime, max_attempts: int,
            retry_seconds: int) -> None:
    notice.last_error = error[:2000]
    if notice.attempts >= max_attempts:
        notice.status, notice.next_attempt_at = NotificationStatus.FAILED, None
    else:
        notice.status = NotificationStatus.PENDING
        notice.next_attempt_at = now + timedelta(seconds=retry_seconds)


async def finish(sessions: async_sessionmaker[AsyncSession], settings: Settings,
                 notice_id: int, now: datetime, *, error: str | None = None,
                 outbox: bool = False, final: bool = False) -> NotificationStatus | None:
    """Record how an attempt ended: sent, handed to the outbox, or failed (retried later
    or, ``final`` or after the last attempt, failed for good). Only a copy being sent
    changes; a repeat changes nothing."""
    cfg = settings.notices
    async with sessions() as session, session.begin():
        notice = await session.get(Notification, notice_id, with_for_update=True)
        if notice is None or notice.status != NotificationStatus.SENDING:
            return None
        if error is not None:
            _failed(notice, error, now, notice.attempts if final else cfg.max_attempts,
                    cfg.retry_seconds)
        elif outbox:
            notice.status, notice.next_attempt_at = NotificationStatus.OUTBOX, None
        else:
            notice.status, notice.sent_at = NotificationStatus.SENT, now
            notice.next_attempt_at = None
        return notice.status


def email_message(settings: Settings, item: Claimed) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp.sender
    message["To"] = item.address
    message["Subject"] = item.subject
    # Stable per copy: a receiving system that sees it twice can tell.
    domain = settings.smtp.sender.rsplit("@", 1)[-1]
    message["Message-ID"] = f"<notice-{item.id}@{domain}>"
    message.set_content(item.body)
    return message


async def send_email(settings: Settings, item: Claimed) -> None:
    cfg = settings.smtp
    await aiosmtplib.send(
        email_message(settings, item), hostname=cfg.host, port=cfg.port,
        username=cfg.username or None, password=cfg.password or None,
        start_tls=cfg.starttls, use_tls=False, timeout=30)


# --- the automated call (agi/flows/notice_call.py) ---------------------------------------

@dataclass(frozen=True)
class PhoneNotice:
    id: int
    kind: str
    body: str
    booking_id: int | None


async def phone_notice(sessions: async_sessionmaker[AsyncSession],
                       notice_id: int) -> PhoneNotice | None:
    """The copy this call delivers, if it is still being sent (else the call is spurious)."""
    async with sessions() as session:
        notice = await session.get(Notification, notice_id)
    if notice is None or notice.status not in (NotificationStatus.SENDING,
                                               NotificationStatus.SENT):
        return None
    return PhoneNotice(notice.id, notice.kind, notice.body, notice.booking_id)


async def heard(sessions: async_sessionmaker[AsyncSession], notice_id: int,
                now: datetime) -> None:
    """The citizen heard the text through once more: delivered."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(Notification).where(Notification.id == notice_id)
            .values(heard_times=Notification.heard_times + 1, status=NotificationStatus.SENT,
                    sent_at=func.coalesce(Notification.sent_at,
                                          literal(now, Notification.sent_at.type)),
                    next_attempt_at=None)
            .execution_options(synchronize_session=False))


async def replied(session: AsyncSession, notice_id: int, reply: str) -> None:
    await session.execute(update(Notification).where(Notification.id == notice_id)
                          .values(reply=reply).execution_options(synchronize_session=False))


# --- the outbox: post and state-portal copies, for the external system --------------------

async def outbox(session: AsyncSession, channel: Channel, *,
                 limit: int = 100) -> list[Notification]:
    return list((await session.scalars(
        select(Notification).where(Notification.status == NotificationStatus.OUTBOX,
                                   Notification.channel == channel)
        .order_by(Notification.id).limit(limit))).all())


async def outbox_result(sessions: async_sessionmaker[AsyncSession], notice_id: int, *,
                        delivered: bool, error: str, now: datetime) -> bool:
    """The external system reports a copy delivered (or undeliverable); once."""
    async with sessions() as session, session.begin():
        won = await session.execute(
            update(Notification).where(Notification.id == notice_id,
                                       Notification.status == NotificationStatus.OUTBOX)
            .values(status=NotificationStatus.SENT if delivered else NotificationStatus.FAILED,
                    sent_at=literal(now, Notification.sent_at.type) if delivered else None,
                    last_error=None if delivered else (error or "не доставлено")[:2000])
            .execution_options(synchronize_session=False))
        return bool(won.rowcount)  # type: ignore[attr-defined]
