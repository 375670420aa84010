"""Self-service menu branches: working hours and address (R-H1), another body's contacts
(R-H7). Each returns what the caller wants next: "operator", "menu" or "done"."""

from __future__ import annotations

from ivr import speech_ru as ru
from ivr.db.models import IvrStep
from ivr.phrases import day_notice, hours_text
from ivr.services.kb import agency_by_name
from ivr.settings import Topic

from .common import CallFlow


async def hours(flow: CallFlow) -> str:
    org = flow.settings.organisation
    text = flow.prompts.fill("hours_info", hours=hours_text(org, flow.prompts),
                             address=org.address, directions=org.directions)
    today = flow.calendar.today(flow.now())
    text = f"{day_notice(flow.calendar, flow.prompts, today)} {text}".strip()
    flow.step(IvrStep.HOURS, delivered=True)
    return await flow.inform(text, "hours_menu", personal=False)  # the ministry's own data


async def agency(flow: CallFlow, topic: Topic) -> str:
    async with flow.svc.sessions() as session:
        found = await agency_by_name(session, topic.agency)
    if found is None:
        return "operator"  # the directory lacks it: a person will help
    flow.step(IvrStep.AGENCY, delivered=True)
    await flow.say(flow.prompts.fill("agency_info", agency=found.name,
                                     phone=ru.digits(found.phone)), personal=False)
    return "done"
