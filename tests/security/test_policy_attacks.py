"""Each attack on the route policies as a test, against the real panel over HTTP and a real
database (issue 25, "Roles on every route"): an employee of another department cannot work
an appeal or pick its executor (R-A8); an operator who did not speak on a call cannot write
its journal (R-H6); an operator reads the card, appeals and history of the citizen on their
own call only; a knowledge-base section is changed by its own department (R-K1). Every
refusal is 403, and refusals and views of personal data are in the audit log; supervisors
can."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from ivr.db.models import (
    Agency,
    Appeal,
    AppealStatus,
    Booking,
    BookingStatus,
    Call,
    CallLeg,
    Channel,
    CitizenPhone,
    Department,
    JournalEntry,
    KbArticle,
    KbSection,
    Role,
    Staff,
    Transfer,
    TransferKind,
    TransferOutcome,
)
from ivr.demo import DEMO_PASSWORD
from ivr.passwords import hash_password
from ivr.services import surveys
from ivr.services.container import Services

from ..support.panel_client import audit_rows, log_in, put_on_call

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
MOROZOVA, VOLKOV = "79001234567", "79007654321"   # the demo's citizens
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@dataclass
class Ids:
    """The demo's people and records, and a head for «Соцподдержка» (the demo has none)."""

    staff: dict[str, int]
    social: int            # «Соцподдержка»: sidorova's department, appeal 1024's
    appeal: int            # 1024: Морозова's, in work with sidorova
    other_appeal: int      # 1031: Волков's, «Госуслуги»
    morozova: int
    volkov: int
    agency: int


@pytest_asyncio.fixture
async def ids(svc: Services) -> Ids:
    async with svc.sessions() as s, s.begin():
        social = await s.scalar(select(Department.id).where(
            Department.short_name == "Соцподдержка"))
        assert social is not None
        s.add(Staff(login="head2", surname="Белова", first_name="Ирина", position="начальник "
                    "отдела", department_id=social, role=Role.DEPARTMENT_HEAD,
                    phone="84950001009", password_hash=hash_password(DEMO_PASSWORD)))
    async with svc.sessions() as s:
        staff = {login: i for login, i in (await s.execute(select(Staff.login, Staff.id)))}
        appeals = {n: (i, c) for n, i, c in await s.execute(
            select(Appeal.reg_number, Appeal.id, Appeal.citizen_id))}
        phones = {p: c for p, c in await s.execute(
            select(CitizenPhone.phone, CitizenPhone.citizen_id))}
        agency = await s.scalar(select(Agency.id).order_by(Agency.id))
    assert agency is not None
    return Ids(staff, social, appeals["1024"][0], appeals["1031"][0], phones[MOROZOVA],
               phones[VOLKOV], agency)


async def _refusals(svc: Services, object_type: str) -> list[str]:
    """The error ids of the refusals audited for ``object_type``."""
    return [details.split(":")[0] for action, kind, details in await audit_rows(svc)
            if action in ("refused", "kb_refused") and kind == object_type]


async def _appeal(svc: Services, appeal_id: int) -> Appeal:
    async with svc.sessions() as s:
        appeal = await s.get(Appeal, appeal_id)
    assert appeal is not None
    return appeal


async def test_an_appeal_is_worked_only_by_its_department_or_a_supervisor(
    svc: Services, client: TestClient, ids: Ids
) -> None:
    """R-A8 and the regulations' routing: a head of another department cannot assign,
    redirect, answer or mark urgent; an operator cannot answer; a specialist of the
    department cannot name someone else as executor; the department's head picks only
    from the department; a supervisor can."""
    path = f"/panel/appeals/{ids.appeal}"
    csrf = await log_in(client, "kuznetsov")       # head of «Госуслуги»
    attempts = {
        "assign": {"executor_id": str(ids.staff["kuznetsov"])},
        "redirect": {"agency_id": str(ids.agency)},
        "answer": {"outcome": "resolved", "text": "Вопрос решён.",
                   "executor_id": str(ids.staff["kuznetsov"])},
        "urgent": {"reason": "повторное обращение"},
    }
    for action, form in attempts.items():
        refused = await client.post(f"{path}/{action}", data={"_csrf": csrf, **form})
        assert refused.status == 403, action
        assert "другое подразделение" in await refused.text()
    csrf = await log_in(client, "ivanova")         # an operator
    refused = await client.post(f"{path}/answer", data={
        "_csrf": csrf, "outcome": "resolved", "text": "Вопрос решён."})
    assert refused.status == 403
    csrf = await log_in(client, "sidorova")        # the specialist who has it
    for action, executor in (("assign", "petrov"), ("answer", "kuznetsov")):
        refused = await client.post(f"{path}/{action}", data={
            "_csrf": csrf, "outcome": "resolved", "text": "Вопрос решён.",
            "executor_id": str(ids.staff[executor])})
        assert refused.status == 403 and "Исполнителем может быть" in await refused.text()
    unchanged = await _appeal(svc, ids.appeal)
    assert (unchanged.status, unchanged.executor_id, unchanged.urgent,
            unchanged.redirected_to_id) == (AppealStatus.IN_WORK, ids.staff["sidorova"],
                                            False, None)

    csrf = await log_in(client, "head2")           # the head of «Соцподдержка»
    elsewhere = await client.post(f"{path}/assign", data={
        "_csrf": csrf, "executor_id": str(ids.staff["petrov"])})
    assert elsewhere.status == 403, "a head picks from their own department"
    own = await client.post(f"{path}/assign", allow_redirects=False, data={
        "_csrf": csrf, "executor_id": str(ids.staff["head2"])})
    assert own.status == 303
    csrf = await log_in(client, "smirnova")        # the contact centre's supervisor
    redirected = await client.post(f"{path}/redirect", allow_redirects=False, data={
        "_csrf": csrf, "agency_id": str(ids.agency)})
    assert redirected.status == 303
    done = await _appeal(svc, ids.appeal)
    assert (done.status, done.executor_id, done.redirected_to_id) == (
        AppealStatus.REDIRECTED, ids.staff["head2"], ids.agency)
    assert await _refusals(svc, "appeal") == [
        *["appeal_other_department"] * 4, "role", *["appeal_executor"] * 3]


async def test_an_appeal_not_yet_routed_is_routed_by_a_head(
    svc: Services, client: TestClient, ids: Ids
) -> None:
    """An appeal just registered has no department: a specialist cannot take it; a head
    gives it to their department, which then works it."""
    async with svc.sessions() as s, s.begin():
        appeal = Appeal(reg_number="9001", registered_on=NOW.date(), channel=Channel.EMAIL,
                        citizen_id=ids.morozova, topic="Пособия", text="Прошу разъяснить")
        s.add(appeal)
    csrf = await log_in(client, "sidorova")
    taken = await client.post(f"/panel/appeals/{appeal.id}/assign", data={"_csrf": csrf})
    assert taken.status == 403 and "ещё не распределено" in await taken.text()
    csrf = await log_in(client, "head2")
    routed = await client.post(f"/panel/appeals/{appeal.id}/assign", allow_redirects=False,
                               data={"_csrf": csrf, "executor_id": str(ids.staff["sidorova"])})
    assert routed.status == 303
    assert (await _appeal(svc, appeal.id)).department_id == ids.social
    csrf = await log_in(client, "sidorova")
    again = await client.post(f"/panel/appeals/{appeal.id}/assign", allow_redirects=False,
                              data={"_csrf": csrf})
    assert again.status == 303, "now it is her department's: she takes it herself"
    assert await _refusals(svc, "appeal") == ["appeal_not_routed"]


async def _call(svc: Services, linkedid: str, caller: str, *, leg: int | None = None,
                transferred_to: int | None = None) -> int:
    """A call in the records, answered on ``leg``'s phone, maybe transferred onwards."""
    async with svc.sessions() as s, s.begin():
        call = Call(linkedid=linkedid, caller_number=caller, started_at=NOW)
        s.add(call)
        await s.flush()
        if leg is not None:
            s.add(CallLeg(call_id=call.id, operator_id=leg, channel=f"PJSIP/{leg}-1",
                          answered_at=NOW))
        if transferred_to is not None:
            s.add(Transfer(call_id=call.id, seq=1, kind=TransferKind.BLIND,
                           from_staff_id=leg, to_staff_id=transferred_to,
                           outcome=TransferOutcome.COMPLETED))
        return call.id


async def test_the_journal_is_written_by_those_who_spoke_on_the_call(
    svc: Services, client: TestClient, ids: Ids
) -> None:
    """R-H6: Петров answered, Сидорова took it by transfer; Иванова, on another call, is
    refused (403, JSON for the card's script, audited), the journal untouched, and cannot
    open the call's journal form either; each who spoke writes their own entry (a transfer
    adds, never overwrites), and so may the supervisor."""
    call_id = await _call(svc, "L-petrov", VOLKOV, leg=ids.staff["petrov"],
                          transferred_to=ids.staff["sidorova"])
    entry = {"linkedid": "L-petrov", "topic": "state_services", "question": "Как записаться",
             "answer": "Рассказала", "outcome": "answered"}
    csrf = await log_in(client, "ivanova")
    refused = await client.post("/panel/workspace/journal", data=entry,
                                headers={"X-CSRF-Token": csrf})
    assert refused.status == 403
    assert (await refused.json())["id"] == "journal_not_your_call"
    form = await client.get("/panel/workspace/journal/fill?linkedid=L-petrov")
    assert form.status == 403 and "Журнал звонка ведут" in await form.text()
    async with svc.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(JournalEntry)) == 0

    for login in ("petrov", "sidorova", "smirnova"):
        csrf = await log_in(client, login)
        form = await client.get("/panel/workspace/journal/fill?linkedid=L-petrov")
        assert form.status == 200 and 'id="journal-form"' in await form.text(), login
        saved = await client.post("/panel/workspace/journal", data={
            **entry, "question": f"Вопрос, записанный {login}"}, headers={"X-CSRF-Token": csrf})
        assert saved.status == 200, login
    # On the phone right now (the hub knows it), before any leg is in the records.
    await _call(svc, "L-now", MOROZOVA)
    put_on_call(client, "1001", "L-now", MOROZOVA)
    csrf = await log_in(client, "ivanova")
    saved = await client.post("/panel/workspace/journal", headers={"X-CSRF-Token": csrf},
                              data={**entry, "linkedid": "L-now"})
    assert saved.status == 200
    async with svc.sessions() as s:
        entries = (await s.execute(select(JournalEntry.operator_id, JournalEntry.question)
                                   .where(JournalEntry.call_id == call_id)
                                   .order_by(JournalEntry.id))).tuples().all()
    assert entries == [(ids.staff[login], f"Вопрос, записанный {login}")
                       for login in ("petrov", "sidorova", "smirnova")]
    assert await _refusals(svc, "call") == ["journal_not_your_call"] * 2


async def test_an_operator_reads_only_the_citizen_on_their_call(
    svc: Services, client: TestClient, ids: Ids
) -> None:
    """The card of the call the operator is on, and that citizen's appeals and history;
    not another call's card, not a number of their choosing, not another citizen's
    records. Appeal staff read by role; the supervisor reads any card."""
    await _call(svc, "L-petrov", VOLKOV, leg=ids.staff["petrov"])
    put_on_call(client, "1001", "L-morozova", MOROZOVA)   # not yet in the records
    await log_in(client, "ivanova")
    own = await client.get("/panel/workspace/card?linkedid=L-morozova")
    assert own.status == 200 and "Морозова Татьяна" in await own.text()
    forged = await client.get(f"/panel/workspace/card?linkedid=L-morozova&caller={VOLKOV}")
    text = await forged.text()
    assert "Морозова Татьяна" in text and "Волков" not in text, "the number is Asterisk's"
    for query in ("linkedid=L-petrov", f"caller={VOLKOV}", ""):
        refused = await client.get(f"/panel/workspace/card?{query}")
        assert refused.status == 403 and "Волков" not in await refused.text()
    history = "/panel/citizens/{}/history"
    assert (await client.get(history.format(ids.volkov))).status == 403
    assert (await client.get(f"/panel/appeals/{ids.other_appeal}")).status == 403
    assert (await client.get("/panel/appeals")).status == 403
    mine = await client.get(history.format(ids.morozova))
    assert mine.status == 200 and "1024" in await mine.text()
    assert (await client.get(f"/panel/appeals/{ids.appeal}")).status == 200

    await log_in(client, "sidorova")    # a specialist: appeals and histories by role
    assert (await client.get(history.format(ids.volkov))).status == 200
    assert (await client.get("/panel/workspace/card?linkedid=L-petrov")).status == 403
    await log_in(client, "smirnova")
    boss = await client.get("/panel/workspace/card?linkedid=L-petrov")
    assert boss.status == 200 and "Волков Андрей" in await boss.text()

    assert await _refusals(svc, "citizen_card") == ["card_not_your_call"] * 4
    assert await _refusals(svc, "citizen_history") == ["citizen_not_your_caller"]
    assert await _refusals(svc, "appeal") == ["appeal_not_your_caller"]
    assert await _refusals(svc, "appeal_list") == ["role"]
    views = [(a, o) for a, o, _ in await audit_rows(svc) if a == "view"]
    assert views.count(("view", "citizen_card")) == 3
    assert views.count(("view", "citizen_history")) == 2


async def test_a_kb_section_is_changed_by_its_own_department(
    svc: Services, client: TestClient, ids: Ids
) -> None:
    """R-K1: the head of «Соцподдержка» names Сидорова an editor of its section; then she
    edits it, and still not another department's; only that head names editors; anyone
    marks an article «изменились сведения»."""
    async with svc.sessions() as s:
        sections = {d: i for d, i in await s.execute(
            select(KbSection.department_id, KbSection.id))}
        foreign = await s.scalar(select(KbArticle.id).where(
            KbArticle.section_id != sections[ids.social]).order_by(KbArticle.id))
    own, other = sections[ids.social], next(i for d, i in sections.items() if d != ids.social)
    article = {"kind": "faq", "title": "Сроки выплаты", "body": "Десять рабочих дней."}
    csrf = await log_in(client, "sidorova")
    before = await client.post(f"/panel/kb/sections/{own}", data={"_csrf": csrf, **article})
    assert before.status == 403 and "другое подразделение" in await before.text()
    naming = await client.post(f"/panel/kb/sections/{own}", data={
        "_csrf": csrf, "editor_id": str(ids.staff["sidorova"]), "editor": "1"})
    assert naming.status == 403
    csrf = await log_in(client, "kuznetsov")   # a head, of another department
    naming = await client.post(f"/panel/kb/sections/{own}", data={
        "_csrf": csrf, "editor_id": str(ids.staff["sidorova"]), "editor": "1"})
    assert naming.status == 403
    csrf = await log_in(client, "head2")
    named = await client.post(f"/panel/kb/sections/{own}", allow_redirects=False, data={
        "_csrf": csrf, "editor_id": str(ids.staff["sidorova"]), "editor": "1"})
    assert named.status == 303

    csrf = await log_in(client, "sidorova")
    made = await client.post(f"/panel/kb/sections/{own}", allow_redirects=False,
                             data={"_csrf": csrf, **article})
    assert made.status == 303
    elsewhere = await client.post(f"/panel/kb/sections/{other}", data={"_csrf": csrf,
                                                                       **article})
    assert elsewhere.status == 403
    edit = await client.post(f"/panel/kb/articles/{foreign}", data={"_csrf": csrf, **article})
    assert edit.status == 403
    marked = await client.post(f"/panel/kb/articles/{foreign}", allow_redirects=False,
                               data={"_csrf": csrf, "action": "changed"})
    assert marked.status == 303
    assert await _refusals(svc, "kb_section") == [
        "kb_other_department", "kb_editor_not_head", "kb_editor_not_head",
        "kb_other_department", "kb_other_department"]


async def test_a_booking_cancelled_by_the_citizens_link_is_audited(
    svc: Services, client: TestClient, ids: Ids
) -> None:
    """Bookings as before, every change audited: also the citizen's own cancellation by
    the e-mailed link (R-P4), under no employee."""
    async with svc.sessions() as s:
        booking = await s.scalar(select(Booking).where(Booking.citizen_id == ids.morozova))
    assert booking is not None
    token = surveys.make_token(svc.settings.panel.secret, booking_id=booking.id,
                               salt=surveys.CANCEL_SALT)
    done = await client.post(f"/reception/cancel/{token}")
    assert done.status == 200 and "Запись отменена" in await done.text()
    async with svc.sessions() as s:
        cancelled = await s.get(Booking, booking.id)
    assert cancelled is not None and cancelled.status == BookingStatus.CANCELLED
    assert ("cancel", "booking", "ссылка из письма") in await audit_rows(svc)


async def test_an_operator_cancels_from_the_card_only_the_callers_booking(
    svc: Services, client: TestClient, ids: Ids
) -> None:
    """R-P4 from the card: an operator on a call with Волков cannot cancel Морозова's
    booking by its id (403, audited); on her own call they can."""
    async with svc.sessions() as s:
        booking = await s.scalar(select(Booking.id).where(Booking.citizen_id == ids.morozova))
    assert booking is not None
    headers = {"X-CSRF-Token": await log_in(client, "ivanova")}
    put_on_call(client, "1001", "call-v", VOLKOV)
    refused = await client.post("/panel/workspace/cancel-booking", headers=headers,
                                data={"booking_id": str(booking)})
    assert refused.status == 403
    assert (await refused.json())["id"] == "booking_not_your_caller"
    assert [a for a, kind, _ in await audit_rows(svc) if kind == "booking"] == [
        "booking_refused"]
    async with svc.sessions() as s:
        assert (await s.get(Booking, booking)).status == BookingStatus.BOOKED  # type: ignore[union-attr]
    put_on_call(client, "1001", "call-m", MOROZOVA)
    done = await client.post("/panel/workspace/cancel-booking", headers=headers,
                             data={"booking_id": str(booking)})
    assert done.status == 200


async def test_an_operator_changes_in_the_register_only_bookings_they_made(
    svc: Services, client: TestClient, ids: Ids
) -> None:
    """R-P4 in the reception register: an operator cannot cancel somebody else's booking
    by its id, nor mark attendance (403, audited); a specialist can."""
    async with svc.sessions() as s:
        booking = await s.scalar(select(Booking.id).where(Booking.citizen_id == ids.morozova))
    assert booking is not None
    csrf = await log_in(client, "ivanova")
    for action in ("cancel", "attended"):
        refused = await client.post(f"/panel/receptions/{booking}/{action}",
                                    data={"_csrf": csrf}, allow_redirects=False)
        assert refused.status == 403 and "booking_not_yours" in await refused.text()
    assert [a for a, kind, _ in await audit_rows(svc) if kind == "booking"] == [
        "booking_refused", "booking_refused"]
    async with svc.sessions() as s:
        assert (await s.get(Booking, booking)).status == BookingStatus.BOOKED  # type: ignore[union-attr]
    await client.post("/panel/logout", data={"_csrf": csrf})
    csrf = await log_in(client, "sidorova")
    done = await client.post(f"/panel/receptions/{booking}/cancel", data={"_csrf": csrf},
                             allow_redirects=False)
    assert done.status == 303
