"""Five years of a busy hotline, for the panel benchmark (issue 5).

``python -m bench.generate URL [--calls 1000000] [--appeals 200000] [--receptions 50000]``
fills a migrated, empty database (SQLite or PostgreSQL) with the demo's organisation plus:
30 more operators; 60,000 citizens; ``--calls`` calls over five years of working days and
hours (answered, abandoned, self-service, after hours), ratings for most answered calls,
transfers (one, two, a refused third), journal entries; ``--appeals`` appeals and
``--receptions`` reception bookings; 2,000 knowledge-base articles. Seeded: the same
arguments give the same data.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ivr.calendar import WorkCalendar
from ivr.db.engine import make_engine, make_sessionmaker
from ivr.db.models import (
    Appeal,
    ArticleKind,
    Booking,
    Call,
    Citizen,
    CitizenPhone,
    Department,
    JournalEntry,
    KbArticle,
    KbSection,
    Official,
    Rating,
    ReceptionSlot,
    Role,
    Staff,
    Transfer,
)
from ivr.demo import seed_demo
from ivr.services.kb import reindex
from ivr.settings import Database, Settings, load_settings

CHUNK = 5000
SURNAMES = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов",
            "Михайлов", "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев",
            "Семёнов", "Егоров", "Павлов", "Козлов", "Степанов", "Николаев"]
NAMES = ["Анна", "Мария", "Елена", "Ольга", "Татьяна", "Сергей", "Андрей", "Алексей",
         "Дмитрий", "Иван"]
WORDS = ("пособие выплата компенсация субсидия пенсия инвалидность ребёнок семья жильё "
         "оплата справка заявление документ срок порядок назначение перерасчёт льгота "
         "ветеран труд занятость безработица услуга портал МФЦ приём отказ жалоба "
         "проверка работодатель зарплата отпуск больничный материнский капитал").split()
TOPICS = ["hours_address", "state_services", "support_measures", "inspections",
          "appeal_status", "reception"]
QUEUES = {"state_services": "hotline-services", "support_measures": "hotline-support",
          "inspections": "hotline-inspections"}


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


async def _insert(conn: AsyncConnection, table: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), CHUNK):
        await conn.execute(insert(table), rows[i:i + CHUNK])


async def generate(settings: Settings, *, calls: int, appeals: int, receptions: int,
                   seed: int = 1) -> dict[str, int]:
    rng = random.Random(seed)
    cal = WorkCalendar(settings.organisation)
    tz = cal.tz
    today = date.today()
    await seed_demo(settings, today=today)
    engine = make_engine(settings.database.url)
    started = time.monotonic()
    try:
        async with engine.begin() as conn:
            if (await conn.scalar(select(func.count()).select_from(Call))) or 0:
                raise SystemExit("the database already has calls: generate into a fresh one")
            department_ids = list(await conn.scalars(select(Department.id)))
            await _insert(conn, Staff.__table__, [
                {"login": f"op{n:03d}", "surname": rng.choice(SURNAMES),
                 "first_name": rng.choice(NAMES), "patronymic": "", "position":
                 "консультант горячей линии", "department_id": department_ids[0],
                 "role": Role.OPERATOR.value, "extension": f"2{n:03d}", "phone":
                 f"84950002{n:03d}", "competence": "", "password_hash": "", "active": True,
                 "failed_logins": 0} for n in range(30)])
            staff_ids = list(await conn.scalars(select(Staff.id)))
            operators = list(await conn.scalars(select(Staff.id).where(
                Staff.role == Role.OPERATOR.value)))

            await _insert(conn, Citizen.__table__, [
                {"surname": rng.choice(SURNAMES), "first_name": rng.choice(NAMES),
                 "patronymic": "", "email": f"c{n}@example.org" if n % 3 else None,
                 "postal_address": "", "preferred_channel": "email" if n % 3 else "phone"}
                for n in range(60_000)])
            citizen_ids = list(await conn.scalars(select(Citizen.id).order_by(Citizen.id)))
            have_phone = set(await conn.scalars(select(CitizenPhone.citizen_id)))
            phones = {cid: f"79{cid:09d}" for cid in citizen_ids if cid not in have_phone}
            await _insert(conn, CitizenPhone.__table__, [
                {"citizen_id": cid, "phone": p} for cid, p in phones.items()])
            numbers = list(phones.values())

            # Calls over five years of working days, during the working hours.
            days = [d for d in (today - timedelta(days=n) for n in range(5 * 365, -1, -1))
                    if cal.is_working_day(d)]
            per_day = calls / len(days) * 1.02   # a little over: the oldest days are cut
            call_rows, rating_rows, transfer_rows = [], [], []
            n = 0
            for day in reversed(days):   # newest first: today, this week and month are full
                count = max(0, int(rng.gauss(per_day, per_day * 0.15)))
                for _ in range(count):
                    if n >= calls:
                        break
                    n += 1
                    at = datetime.combine(day, datetime.min.time(), tz) + timedelta(
                        hours=9, seconds=rng.randrange(9 * 3600))
                    at = at.astimezone(UTC)
                    number = rng.choice(numbers) if rng.random() < 0.7 else \
                        f"79{rng.randrange(10**9):09d}"
                    topic = rng.choice(TOPICS)
                    roll = rng.random()
                    row = {"linkedid": f"gen-{n}", "caller_number": number,
                           "dialed_number": "88001234567", "started_at": at,
                           "ivr_path": str(TOPICS.index(topic) + 1), "topic": topic,
                           "outcome": "self_service", "ended_at": at + timedelta(seconds=60)}
                    if roll < 0.75 and topic in QUEUES:
                        wait = int(rng.expovariate(1 / 25))
                        operator = rng.choice(operators)
                        row.update(queue=QUEUES[topic], queue_joined_at=at,
                                   wait_seconds=wait, operator_id=operator,
                                   answered_at=at + timedelta(seconds=wait),
                                   ended_at=at + timedelta(seconds=wait + 240),
                                   outcome="answered", hangup_by="caller")
                        if rng.random() < 0.9:
                            row["_journal"] = {
                                "operator_id": operator, "topic": topic,
                                "question": _text(rng, 6), "answer": _text(rng, 8),
                                "outcome": "answered", "agency_id": None,
                                "article_id": None, "written_at": row["ended_at"]}
                        if rng.random() < 0.7:
                            quality = rng.choices(["satisfied", "partly", "not_satisfied"],
                                                  [70, 20, 10])[0]
                            rating_rows.append({
                                "call_linkedid": f"gen-{n}", "operator_id": operator,
                                "answer_received": rng.random() < 0.85, "quality": quality,
                                "status": "complete", "rated_at": row["ended_at"]})
                        hops = rng.choices([0, 1, 2, 3], [90, 7, 2.5, 0.5])[0]
                        for seq in range(1, hops + 1):
                            transfer_rows.append({
                                "call_linkedid": f"gen-{n}", "seq": seq, "kind": "blind",
                                "from_staff_id": operator, "to_staff_id": rng.choice(staff_ids),
                                "to_target": "1003", "note": "",
                                "requested_at": row["answered_at"],
                                "outcome": "refused" if seq == 3 else "completed"})
                    elif roll < 0.85 and topic in QUEUES:
                        row.update(queue=QUEUES[topic], queue_joined_at=at,
                                   wait_seconds=rng.randrange(5, 300), outcome="abandoned")
                    call_rows.append(row)
                if len(call_rows) >= 50_000 or n >= calls:
                    await _flush_calls(conn, call_rows, rating_rows, transfer_rows)
                    call_rows, rating_rows, transfer_rows = [], [], []
            await _flush_calls(conn, call_rows, rating_rows, transfer_rows)

            appeal_rows = []
            for a in range(appeals):
                registered = rng.choice(days)
                status = rng.choices(["completed", "answered", "in_work", "registered",
                                      "redirected"], [70, 10, 10, 5, 5])[0]
                appeal_rows.append({
                    "reg_number": f"{100000 + a}", "registered_on": registered,
                    "channel": rng.choice(["post", "email", "website", "state_portal"]),
                    "citizen_id": rng.choice(citizen_ids), "contact_phone": "",
                    "topic": rng.choice(TOPICS), "text": _text(rng, 20), "materials": "",
                    "status": status, "urgent": rng.random() < 0.05, "urgency_reason": "",
                    "abusive": False, "due_date": registered + timedelta(days=30),
                    "executor_id": rng.choice(staff_ids)})
            await _insert(conn, Appeal.__table__, appeal_rows)

            official_ids = list(await conn.scalars(select(Official.id)))
            slot_rows = []
            per_day = 27 * len(official_ids)          # 20-minute slots from 9:00, each
            for b in range(receptions + 2000):   # a few collide with the demo's own slots
                day = days[-1 - (b // per_day) % len(days)]
                at = (datetime.combine(day, datetime.min.time(), tz)
                      + timedelta(hours=9, minutes=20 * (b % 27))).astimezone(UTC)
                slot_rows.append({"official_id": official_ids[(b // 27) % len(official_ids)],
                                  "starts_at": at, "ends_at": at + timedelta(minutes=20)})
            # Two slots of one official cannot share a start: keep the first of each.
            unique = {(r["official_id"], r["starts_at"]): r for r in slot_rows}
            existing = set((await conn.execute(select(ReceptionSlot.official_id,
                                                      ReceptionSlot.starts_at))).all())
            last_id = await conn.scalar(select(func.max(ReceptionSlot.id))) or 0
            await _insert(conn, ReceptionSlot.__table__,
                          [r for k, r in unique.items() if k not in existing][:receptions])
            slot_ids = list(await conn.scalars(select(ReceptionSlot.id).where(
                ReceptionSlot.id > last_id)))
            await _insert(conn, Booking.__table__, [
                {"slot_id": sid, "citizen_id": rng.choice(citizen_ids), "topic": _text(rng, 3),
                 "status": rng.choices(["attended", "no_show", "cancelled"], [80, 10, 10])[0],
                 "booked_via": "hotline", "accessibility_needs": "",
                 "remind_day_before": True, "remind_two_hours_before": False}
                for sid in slot_ids])

            sections = list(await conn.scalars(select(KbSection.id)))
            await _insert(conn, KbArticle.__table__, [
                {"section_id": rng.choice(sections), "kind": ArticleKind.FAQ.value,
                 "title": _text(rng, 5), "body": _text(rng, 80), "version": 1,
                 "archived": False, "review_due": today + timedelta(days=rng.randrange(-30, 90))}
                for _ in range(2000)])
        async with make_sessionmaker(engine)() as session, session.begin():
            await reindex(session)
        # Fresh statistics after a bulk load, as an operator would run after an import:
        # without them PostgreSQL plans for empty tables.
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
        async with engine.connect() as conn:
            counts = {name: await conn.scalar(select(func.count()).select_from(model)) or 0
                      for name, model in (("calls", Call), ("ratings", Rating),
                                          ("transfers", Transfer), ("appeals", Appeal),
                                          ("bookings", Booking), ("citizens", Citizen),
                                          ("kb articles", KbArticle))}
    finally:
        await engine.dispose()
    counts["seconds"] = int(time.monotonic() - started)
    return counts


async def _flush_calls(conn: AsyncConnection, calls: list[dict[str, Any]],
                       ratings: list[dict[str, Any]], transfers: list[dict[str, Any]]) -> None:
    if not calls:
        return
    keys = ("answered_at", "ended_at", "queue", "queue_joined_at", "wait_seconds",
            "operator_id", "hangup_by")
    journal = {row["linkedid"]: row.pop("_journal") for row in calls if "_journal" in row}
    for row in calls:   # one shape per executemany
        for key in keys:
            row.setdefault(key, None)
    await _insert(conn, Call.__table__, calls)
    first = await conn.scalar(select(func.min(Call.id)).where(
        Call.linkedid == calls[0]["linkedid"]))
    ids: dict[str, int] = {linkedid: call_id for linkedid, call_id in (await conn.execute(
        select(Call.linkedid, Call.id).where(Call.id >= first))).all()}
    for row in ratings:
        row["call_id"] = ids[row.pop("call_linkedid")]
    for row in transfers:
        row["call_id"] = ids[row.pop("call_linkedid")]
    await _insert(conn, Rating.__table__, ratings)
    await _insert(conn, Transfer.__table__, transfers)
    await _insert(conn, JournalEntry.__table__, [
        {**entry, "call_id": ids[linkedid]} for linkedid, entry in journal.items()])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__)
    parser.add_argument("url", help="a migrated, empty database")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--appeals", type=int, default=200_000)
    parser.add_argument("--receptions", type=int, default=50_000)
    args = parser.parse_args()
    settings = load_settings()
    settings = settings.model_copy(update={"database": Database(url=args.url)})
    counts = asyncio.run(generate(settings, calls=args.calls, appeals=args.appeals,
                                  receptions=args.receptions))
    print(", ".join(f"{k} {v:,}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
