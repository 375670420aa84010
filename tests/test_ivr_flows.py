"""The caller's paths through the real Asterisk and our flows (issue 3; R-H1, R-H2, R-H5,
R-H8, R-A6, R-P4). Callers and operators are simulated inside Asterisk; each test states the
AMI events it expects and what the database must hold afterwards."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ivr import speech_ru as ru
from ivr.ami import AMIClient
from ivr.db.models import (
    Appeal,
    AuditEntry,
    Booking,
    BookingStatus,
    Call,
    Callback,
    CallbackSource,
    CallOutcome,
    KbArticle,
    Quality,
    Rating,
    RatingStatus,
    Staff,
)
from ivr.phrases import appeal_status_text, booking_text, queue_position, queue_texts, queue_wait
from ivr.services.appeals import agency_of, executor_of
from ivr.services.kb import refresh_scripts
from ivr.services.receptions import BOOKING_DETAILS
from ivr.settings import Settings, Topic
from ivr.simulate import (
    EventRecorder,
    SimulatedCall,
    caller_channel,
    is_event,
    place_call,
    press,
    wait_until,
)
from ivr.tts import PromptLibrary

from .conftest import OPEN_TIME, Stack

MSK = ZoneInfo("Europe/Moscow")
OWNER = "79001234567"  # Морозова: appeal 1024, a booking with the minister
W = "W"                 # SendDTMF: one second of pause
# The flows' database work is the same SQL on both backends (see test_database and
# test_call_through_asterisk); one flow, the rating, runs on PostgreSQL as well.
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@SQLITE
async def test_greeting_is_the_knowledge_base_script(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """R-H3: department staff edit the greeting in the knowledge base; callers hear it."""
    new_text = "Здравствуйте! Министерство труда. Горячая линия слушает вас."
    async with seeded.services.sessions() as s, s.begin():
        article = await s.scalar(select(KbArticle).where(KbArticle.key == "script.greeting"))
        assert article is not None
        article.body = new_text
    await refresh_scripts(seeded.services)  # what every serving process does
    rendered = seeded.services.prompts.cached(new_text)
    assert rendered is not None
    call = await place_call(ami, caller=OWNER, number="88001234567", dtmf="2", delay=2, hold=2)
    try:
        played = await events.wait_for(
            lambda e: call.ours(e) and is_event("AGIExecStart")(e)
            and "STREAM FILE" in str(e.get("Command", "")), 20, "greeting played")
    finally:
        await _hang_up(ami, events, call)
    assert str(rendered.with_suffix("")) in str(played["Command"])


async def _call(stack: Stack, linkedid: str) -> Call | None:
    await stack.services.recorder.sync()  # facts are written in batches
    async with stack.services.sessions() as s:
        return await s.scalar(select(Call).where(Call.linkedid == linkedid))


async def _ended(stack: Stack, events: EventRecorder, call: SimulatedCall, timeout: float) -> Call:
    await events.wait_for(lambda e: call.ours(e) and is_event("Hangup")(e)
                          and e.get("Uniqueid") == call.linkedid, timeout, "caller hung up")
    row = await _call(stack, call.linkedid)
    assert row is not None
    return row


def _joined(call: SimulatedCall, queue: str):  # type: ignore[no-untyped-def]
    return lambda e: call.ours(e) and is_event("QueueCallerJoin", Queue=queue)(e)


@SQLITE
async def test_operator_key_and_three_invalid_inputs_reach_general_queue(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    zero = await place_call(ami, caller=OWNER, number="88001234567", dtmf="0", hold=3)
    await events.wait_for(_joined(zero, "hotline-general"), 20, "0 → operator")
    # Three unrecognised keys: never hung up on, the caller reaches an operator.
    bad = await place_call(ami, caller=OWNER, number="88001234567",
                           dtmf=f"9{W}9{W}{W}9", hold=12)
    try:
        await events.wait_for(_joined(bad, "hotline-general"), 40, "3 failures → operator")
    finally:
        await _hang_up(ami, events, zero, bad)
    row = await _call(seeded, bad.linkedid)
    assert row is not None and row.ivr_path.endswith("!") and row.queue == "hotline-general"


@SQLITE
async def test_working_hours_heard_is_self_service(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """R-H1, issue 27: a caller who hangs up once the hours are being told was served by
    the IVR (no need to listen to the end)."""
    menu = seeded.services.prompts.path("menu")
    call = await place_call(ami, caller=OWNER, number="88001234567", hold=60)
    await _answer(ami, events, call, menu, "1")

    async def hours_started() -> bool:
        return len(_heard(events, call, menu)) > 1

    await wait_until(hours_started, 30, "hours told")
    await _hang_up(ami, events, call)

    async def ended() -> Call | None:  # the IVR records the end on the caller's hang-up
        row = await _call(seeded, call.linkedid)
        return row if row is not None and row.ended_at is not None else None

    row = await wait_until(ended, 20, "call ended")
    assert (row.topic, row.ivr_path, row.outcome, row.ivr_step) == (
        "hours_address", "1", CallOutcome.SELF_SERVICE, "hours")
    assert not events.matching(lambda e: call.ours(e) and is_event("QueueCallerJoin")(e))


@SQLITE
async def test_after_hours_callback_request_is_stored(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    # Wednesday 20:00 in Moscow: closed; windows offered are Thu and Fri, split by lunch.
    seeded.services.clock = lambda: datetime(2026, 11, 25, 20, 0, tzinfo=MSK)
    call = await place_call(ami, caller=OWNER, number="88001234567", hold=40)
    # 1 during the after-hours message (played after the greeting), 1 = "the calling number
    # is right", 3 = Friday morning: each typed as its question begins.
    await _answer(ami, events, call, "STREAM FILE", "1", 2)
    await _answer(ami, events, call, "GET DATA", "1", 1)
    await _answer(ami, events, call, "GET DATA", "3", 2)
    row = await _ended(seeded, events, call, 60)
    assert row.outcome == CallOutcome.CALLBACK_REQUESTED
    async with seeded.services.sessions() as s:
        callback = await s.scalar(select(Callback).options(selectinload(Callback.windows)))
    assert callback is not None
    assert (callback.phone, callback.source, callback.call_id) == (
        OWNER, CallbackSource.IVR_AFTER_HOURS, row.id)
    assert [(w.starts_at.astimezone(MSK), w.ends_at.astimezone(MSK)) for w in callback.windows] \
        == [(datetime(2026, 11, 27, 9, 0, tzinfo=MSK), datetime(2026, 11, 27, 13, 0, tzinfo=MSK))]
    assert not events.matching(lambda e: call.ours(e) and is_event("QueueCallerJoin")(e))


# --- appeal status and bookings: only to a verified caller (issue 25; R-A6, R-P4) -------

def _agi(call: SimulatedCall, path: str = ""):  # type: ignore[no-untyped-def]
    return lambda e: call.ours(e) and is_event("AGIExecStart")(e) and path in str(
        e.get("Command", ""))


async def _answer(ami: AMIClient, events: EventRecorder, call: SimulatedCall, prompt: str,
                  keys: str, nth: int = 1) -> None:
    """Type ``keys`` once the ``nth`` playing of ``prompt`` begins, as a caller would."""
    async def asked() -> bool:
        return len(events.matching(_agi(call, prompt))) >= nth

    await wait_until(asked, 40, f"{prompt} asked ({nth})")
    await press(ami, caller_channel(events, call), keys)


async def _answer_after(ami: AMIClient, events: EventRecorder, call: SimulatedCall,
                        after: str, nth: int, keys: str) -> None:
    """Type ``keys`` once the ``nth`` question (GET DATA) from the first playing of
    ``after`` on begins: the questions after it are spoken texts of their own."""
    def asked() -> bool:
        commands = [str(e.get("Command", "")) for e in events.matching(_agi(call))]
        start = next((i for i, c in enumerate(commands) if after in c), None)
        return start is not None and sum(
            c.startswith("GET DATA") for c in commands[start:]) >= nth

    async def check() -> bool:
        return asked()

    await wait_until(check, 40, f"question {nth} after {after}")
    await press(ami, caller_channel(events, call), keys)


def _heard(events: EventRecorder, call: SimulatedCall, after: str) -> list[str]:
    """The files the call played (STREAM FILE, GET DATA) from the first playing of
    ``after`` on, in order."""
    commands = [str(e["Command"]).split()[2].strip('"') for e in events.matching(_agi(call))
                if str(e.get("Command", "")).startswith(("STREAM FILE", "GET DATA"))]
    return commands[commands.index(after):]


async def _audited(stack: Stack, object_type: str) -> list[AuditEntry]:
    await stack.services.recorder.sync()
    async with stack.services.sessions() as s:
        return list(await s.scalars(select(AuditEntry).where(
            AuditEntry.object_type == object_type).order_by(AuditEntry.id)))


async def _hang_up(ami: AMIClient, events: EventRecorder, *calls: SimulatedCall) -> None:
    for call in calls:
        await ami.action({"Action": "Hangup", "Channel": caller_channel(events, call)},
                         check=False)


@SQLITE
async def test_appeal_status_answer_is_the_same_for_any_number_until_verified(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """No enumeration: the appeal's own caller ID with wrong digits and a stranger with a
    number that does not exist hear the same prompts; after three wrong attempts each is
    put through to the general queue with the reason; every attempt is audited."""
    prompts = seeded.services.prompts
    enter, digits = prompts.path("appeal_enter"), prompts.path("appeal_second_factor")
    known = await place_call(ami, caller=OWNER, number="88001234567", dtmf="4", hold=90)
    unknown = await place_call(ami, caller="79009990002", number="88001234567", dtmf="4",
                               hold=90)

    async def three_wrong(call: SimulatedCall, number: str) -> None:
        for attempt in (1, 2, 3):
            await _answer(ami, events, call, enter, f"{number}#", attempt)
            await _answer(ami, events, call, digits, "0000", attempt)
        await events.wait_for(_joined(call, "hotline-general"), 40, "to the general queue")

    try:
        await asyncio.gather(three_wrong(known, "1024"), three_wrong(unknown, "5555"))
        heard = _heard(events, known, enter)
        assert heard == _heard(events, unknown, enter), "the same answer for both numbers"
        assert heard == [enter, digits, prompts.path("appeal_not_verified")] * 3 + [
            prompts.path("connecting")], "nothing about the appeal was said"
        for call in (known, unknown):
            row = await _call(seeded, call.linkedid)
            assert row is not None
            assert (row.ivr_path, row.topic, row.queue) == (
                "4>не подтверждён", "appeal_status", "hotline-general")
    finally:
        await _hang_up(ami, events, known, unknown)
    entries = await _audited(seeded, "appeal")
    assert sorted((e.object_id, e.action, e.remote_addr) for e in entries) == sorted(
        [("1024", "ivr_not_verified", OWNER)] * 3
        + [("5555", "ivr_not_verified", "79009990002")] * 3)
    assert all("0000" not in e.details for e in entries), "the typed digits are not kept"


@SQLITE
async def test_appeal_status_is_spoken_once_the_caller_is_verified(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """R-A6: a stranger's phone, the appeal's number and, at the second attempt, the last
    four digits of the phone given in it: the status is spoken."""
    prompts = seeded.services.prompts
    enter, digits = prompts.path("appeal_enter"), prompts.path("appeal_second_factor")
    call = await place_call(ami, caller="79009990001", number="88001234567", dtmf="4",
                            hold=60)
    try:
        await _answer(ami, events, call, enter, "1024#")
        await _answer(ami, events, call, digits, "9999")
        await _answer(ami, events, call, enter, "1024#", 2)
        await _answer(ami, events, call, digits, "4567", 2)
        async with seeded.services.sessions() as s:
            appeal = await s.scalar(select(Appeal).where(Appeal.reg_number == "1024"))
            assert appeal is not None
            text = appeal_status_text(prompts, appeal, executor=await executor_of(s, appeal),
                                      agency=await agency_of(s, appeal), tz=MSK)
        spoken = await wait_until(lambda: _rendered(prompts, text), 20, "status rendered")
        await events.wait_for(_agi(call, str(spoken.with_suffix(""))), 20, "status spoken")
    finally:
        await _hang_up(ami, events, call)
    row = await _call(seeded, call.linkedid)
    assert row is not None and row.ivr_path == "4>#2", "disclosed at the second attempt"
    assert [(e.object_id, e.action) for e in await _audited(seeded, "appeal")] == [
        ("1024", "ivr_not_verified"), ("1024", "ivr_verified")]


async def _rendered(prompts: PromptLibrary, text: str) -> Path | None:
    return prompts.cached(text)


@SQLITE
async def test_reception_booking_is_read_and_cancelled_only_after_verification(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """R-P4: the citizen's own caller ID is not enough to hear or cancel a booking; its
    number and the last four digits of the citizen's phone are."""
    prompts = seeded.services.prompts
    enter, digits = prompts.path("reception_enter"), prompts.path("reception_second_factor")
    async with seeded.services.sessions() as s:
        booking = await s.scalar(select(Booking).options(BOOKING_DETAILS))
    assert booking is not None and booking.status == BookingStatus.BOOKED
    number = str(booking.id)
    spoofed = await place_call(ami, caller=OWNER, number="88001234567", dtmf="5", hold=60)
    calls = [spoofed]
    try:
        await _answer(ami, events, spoofed, enter, f"{number}#")
        await _answer(ami, events, spoofed, digits, "0000")
        failed = prompts.path("reception_not_verified")
        await events.wait_for(_agi(spoofed, failed), 20, "refused")
        await _hang_up(ami, events, spoofed)
        assert _heard(events, spoofed, enter) == [enter, digits, failed]
        owner = await place_call(ami, caller=OWNER, number="88001234567", dtmf="5", hold=60)
        calls.append(owner)
        await _answer(ami, events, owner, enter, f"{number}#")
        await _answer(ami, events, owner, digits, "4567")
        text = booking_text(prompts, booking, seeded.services.calendar, OPEN_TIME)
        spoken = await wait_until(lambda: _rendered(prompts, text), 20, "booking rendered")
        await _answer(ami, events, owner, str(spoken.with_suffix("")), "1")
        row = await _ended(seeded, events, owner, 60)
    finally:
        await _hang_up(ami, events, *calls)
    async with seeded.services.sessions() as s:
        cancelled = await s.get(Booking, booking.id)
    assert cancelled is not None and cancelled.status == BookingStatus.CANCELLED
    assert cancelled.cancelled_via == "hotline IVR" and row.ivr_path == "5>#1>1"
    assert [(e.object_id, e.action, e.remote_addr) for e in await _audited(
        seeded, "booking")] == [(number, "ivr_not_verified", OWNER),
                                (number, "ivr_verified", OWNER), (number, "cancel", OWNER)]


@SQLITE
async def test_queue_wait_offer_takes_a_callback_and_frees_the_queue(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    # Nobody answers hotline-services; after the 8 s limit the offer plays: 1 (a callback),
    # 1 (the calling number), 2 (the second window), each as its question begins.
    offer = seeded.services.prompts.path("queue_offer")
    call = await place_call(ami, caller=OWNER, number="88001234567", dtmf="2", hold=40)
    await events.wait_for(_joined(call, "hotline-services"), 20, "queued")
    await _answer(ami, events, call, offer, "1")
    await _answer_after(ami, events, call, offer, 2, "1")
    await _answer_after(ami, events, call, offer, 3, "2")
    await events.wait_for(lambda e: call.ours(e) and is_event(
        "QueueCallerLeave", Queue="hotline-services")(e), 20, "left the queue")
    row = await _ended(seeded, events, call, 90)
    async with seeded.services.sessions() as s:
        callback = await s.scalar(select(Callback).options(selectinload(Callback.windows)))
    assert callback is not None and callback.source == CallbackSource.IVR_QUEUE
    assert callback.topic == "state_services" and len(callback.windows) == 1
    assert row.outcome == CallOutcome.CALLBACK_REQUESTED
    joins = events.matching(_joined(call, "hotline-services"))
    assert len(joins) == 1, "after the callback the caller is not queued again"


def _played(call: SimulatedCall, path: Path | None):  # type: ignore[no-untyped-def]
    assert path is not None, "the sentence is rendered in advance"
    return lambda e: call.ours(e) and is_event("AGIExecStart")(e) and str(
        path.with_suffix("")) in str(e.get("Command", ""))


@SQLITE
async def test_queue_announces_position_and_keeps_the_place_after_a_declined_offer(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """Issue 3, step 7: position and expected-wait announcements in Russian while queued;
    a declined callback offer puts the caller back where they were, and the announcements
    go on every ivr.queue_announce_every seconds (8 s in tests)."""
    prompts, ivr = seeded.services.prompts, seeded.settings.ivr
    first = prompts.cached(queue_position(prompts, ivr, 1))
    stay = prompts.cached(prompts.texts["queue_stay"])
    # 2 → hotline-services, nobody answers; after 8 s: «Вы следующий в очереди», the offer,
    # 2 = keep waiting; 8 s later the next announcement.
    call = await place_call(ami, caller=OWNER, number="88001234567", dtmf="2", hold=30)
    try:
        await events.wait_for(_played(call, first), 40, "position announced")
        await _answer(ami, events, call, prompts.path("queue_offer"), "2")
        await events.wait_for(_played(call, stay), 50, "the next announcement, a spell later")
    finally:
        await _hang_up(ami, events, call)
    joins = events.matching(_joined(call, "hotline-services"))
    assert len(joins) == 2, "back in the queue after declining the offer"
    assert joins[1].get("Position") == "1", "at the place the caller had"
    row = await _call(seeded, call.linkedid)
    assert row is not None and "q1" not in row.ivr_path, "no callback taken"


def test_queue_sentences_are_natural_russian(settings: Settings) -> None:
    prompts = PromptLibrary(settings.tts, settings.prompts)
    ivr = settings.ivr
    assert queue_position(prompts, ivr, 3) == "Перед вами в очереди два человека."
    assert queue_position(prompts, ivr, 7) == "Перед вами в очереди шесть человек."
    assert queue_position(prompts, ivr, 99) == prompts.texts["queue_many_ahead"]
    assert queue_wait(prompts, ivr, 1) == "Примерное время ожидания — одна минута."
    assert queue_wait(prompts, ivr, 22) == "Примерное время ожидания — двадцать две минуты."
    assert queue_wait(prompts, ivr, 500) == prompts.texts["queue_long_wait"]
    texts = queue_texts(prompts, ivr)
    assert len(set(texts)) == ivr.queue_announce_max_position + 1 + \
        ivr.queue_announce_max_minutes + 1


async def _with_operator(ami: AMIClient, queue: str, extension: str) -> None:
    await ami.queue_add(queue, f"Local/{extension}@operator-sim/n", extension)


async def _without_operator(ami: AMIClient, queue: str, extension: str) -> None:
    await ami.queue_remove(queue, f"Local/{extension}@operator-sim/n")


async def _rating(stack: Stack, linkedid: str) -> Rating | None:
    async with stack.services.sessions() as s:
        return await s.scalar(select(Rating).join(Call).where(Call.linkedid == linkedid))


async def test_rating_after_the_operator_hangs_up(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    await _with_operator(ami, "hotline-services", "1002")
    try:
        # 2 → queue → operator 1002 talks 3 s and hangs up → «Получен ли ответ?» 1 →
        # «Оцените…» 2 (частично удовлетворен).
        prompts = seeded.services.prompts
        call = await place_call(ami, caller=OWNER, number="88001234567", dtmf="2", hold=40)
        await events.wait_for(lambda e: call.ours(e) and is_event("AgentConnect")(e), 20,
                              "operator answers")
        await _answer(ami, events, call, prompts.path("rating_answer"), "1")
        await _answer(ami, events, call, prompts.path("rating_quality"), "2")
        rating = await wait_until(lambda: _rating(seeded, call.linkedid), 60, "rating stored")
        await _hang_up(ami, events, call)
    finally:
        await _without_operator(ami, "hotline-services", "1002")
    async with seeded.services.sessions() as s:
        operator = await s.scalar(select(Staff).where(Staff.extension == "1002"))
    assert operator is not None
    assert (rating.answer_received, rating.quality, rating.status) == (
        True, Quality.PARTLY, RatingStatus.COMPLETE)
    assert rating.operator_id == operator.id


@SQLITE
async def test_caller_hanging_up_mid_survey_leaves_a_partial_rating(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    await _with_operator(ami, "hotline-support", "1001")
    try:
        # 3 → operator 1001 → «Получен ли ответ?» 2 → the caller hangs up at the second
        # question.
        prompts = seeded.services.prompts
        call = await place_call(ami, caller=OWNER, number="88001234567", dtmf="3", hold=40)
        await _answer(ami, events, call, prompts.path("rating_answer"), "2")
        await events.wait_for(_agi(call, prompts.path("rating_quality")), 20, "second question")
        await _hang_up(ami, events, call)
        rating = await wait_until(lambda: _rating(seeded, call.linkedid), 60, "rating stored")
    finally:
        await _without_operator(ami, "hotline-support", "1001")
    assert (rating.answer_received, rating.quality, rating.status) == (
        False, None, RatingStatus.PARTIAL)


@SQLITE
async def test_topic_outside_competence_names_the_agency(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    """R-H7: a menu topic can send the caller to another body's contacts."""
    ivr = seeded.settings.ivr
    agency = "Социальный фонд России, региональное отделение"
    extra = Topic(digit="7", code="pensions", title="Пенсии", queue="hotline-general",
                  action="agency", agency=agency)
    seeded.services.settings = seeded.settings.model_copy(
        update={"ivr": ivr.model_copy(update={"topics": [*ivr.topics, extra]})})
    expected = seeded.services.prompts.fill("agency_info", agency=agency,
                                            phone=ru.digits("88001001000"))
    call = await place_call(ami, caller=OWNER, number="88001234567", dtmf="7", hold=30)
    row = await _ended(seeded, events, call, 60)
    assert (row.topic, row.outcome) == ("pensions", CallOutcome.SELF_SERVICE)
    spoken = seeded.services.prompts.cached(expected)
    assert spoken is not None, "the agency's name and phone were rendered and played"
    assert events.matching(lambda e: call.ours(e) and is_event("AGIExecStart")(e)
                           and str(spoken.with_suffix("")) in str(e.get("Command", "")))


def test_menu_is_spoken_from_the_topics(settings: Settings) -> None:
    """R-H1: the main menu names every topic with its digit; a topic added to the settings
    is announced without anyone rewriting a prompt."""
    assert settings.prompts["menu"] == (
        "Режим работы и адрес — нажмите 1. Государственные услуги — 2. Меры социальной "
        "поддержки — 3. Статус обращения — 4. Личный приём — 5. Проверки — 6. Соединение с "
        "оператором — 0. Повторить — звёздочка.")
    data = settings.model_dump()
    data["ivr"]["topics"].append({"digit": "7", "code": "pensions", "title": "Пенсии",
                                  "queue": "hotline-general", "action": "agency",
                                  "agency": "Социальный фонд"})
    menu = Settings.model_validate(data).prompts["menu"]
    assert menu.endswith("Проверки — 6. Пенсии — 7. Соединение с оператором — 0. "
                         "Повторить — звёздочка.")
