"""R-H10: both published numbers reach the same service, in every form a carrier may deliver
the number dialled (``+7…``, ``8…``, ``7…``, ten digits), through the real Asterisk; each
call is recorded under the number as published. A number not published reaches nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ivr.ami import AMIClient
from ivr.db.models import Call
from ivr.dialling import carrier_dids
from ivr.simulate import EventPredicate, EventRecorder, is_event, place_call, wait_until

from ..conftest import Stack

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _answered(linkedid: str) -> EventPredicate:
    return lambda e: (str(e.get("Linkedid")) == linkedid
                      and is_event("Newexten", Context="hotline-main", Application="Answer")(e))


async def test_every_carrier_form_of_both_numbers_reaches_hotline_in(
    seeded: Stack, ami: AMIClient, events: EventRecorder
) -> None:
    published = seeded.settings.organisation.hotline_numbers
    forms = [(number, form) for number, forms in carrier_dids(published) for form in forms]
    assert len(forms) == 8 and {"+74951234567", "8001234567"} <= {f for _, f in forms}
    calls = {(await place_call(ami, caller="79001234567", number=form, delay=0.5,
                               hold=1)).linkedid: (number, form) for number, form in forms}
    stranger = await place_call(ami, caller="79001234567", number="84950000000", hold=1)

    for linkedid, (_, form) in calls.items():
        await events.wait_for(_answered(linkedid), 30, f"{form} answered by the hotline")

    async def recorded() -> dict[str, str] | None:
        await seeded.services.recorder.sync()
        async with seeded.services.sessions() as s:
            rows = {c.linkedid: c.dialed_number for c in await s.scalars(
                select(Call).where(Call.linkedid.in_(list(calls))))}
        return rows if len(rows) == len(calls) else None
    rows = await wait_until(recorded, 30, "every call recorded")
    assert rows == {linkedid: number for linkedid, (number, _) in calls.items()}

    # No extension matches it in [hotline-in]: the channel is gone at once, never answered.
    await events.wait_for(lambda e: is_event("Hangup", Uniqueid=stranger.linkedid)(e), 30,
                          "the unpublished number goes nowhere")
    assert not events.matching(lambda e: str(e.get("Linkedid")) == stranger.linkedid
                               and is_event("Newexten", Context="hotline-main")(e))
