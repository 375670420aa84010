"""What every flow needs on a call: prompts, menus, typed numbers, dynamic speech, routing."""

from __future__ import annotations

from datetime import datetime

from ivr import dialplan
from ivr.db.models import CallOutcome, IvrStep
from ivr.services.container import Services
from ivr.services.kb import RECORDING_NOTICE
from ivr.settings import Ivr

from ..server import CallContext

QUEUE = "queue"
HANGUP = "hangup"


class CallFlow:
    def __init__(self, call: CallContext) -> None:
        self.call = call
        self.agi = call.agi
        self.svc: Services = call.services
        self.settings = self.svc.settings
        self.prompts = self.svc.prompts
        self.calendar = self.svc.calendar
        args = call.env.args
        # Every AGI step gets the call's linkedid first (see [agi-step] in the dialplan).
        self.linkedid = args[0] if args and args[0] else call.env.uniqueid
        self.args = args[1:]

    def now(self) -> datetime:
        return self.svc.clock()

    async def menu(self) -> Ivr:
        """The topic menu and queues as the administrator last set them (issue 28); the
        calendar's own days come with them."""
        return (await self.svc.menu.fresh(self.svc)).ivr

    @property
    def caller(self) -> str:
        return self.call.env.callerid

    # --- speaking ---------------------------------------------------------------------

    async def play(self, name: str) -> str:
        """A fixed prompt; the key that interrupted it, or ""."""
        return await self.agi.stream_file(self.prompts.path(name))

    async def say(self, text: str, *, personal: bool = True) -> str:
        """A dynamic text (cached by its hash, so repeats cost nothing). ``personal=False``
        only for a text without a citizen's data: it may then go to a remote engine."""
        return await self.agi.stream_file(await self.prompts.prepare(text, personal=personal))

    async def script_path(self, kb_key: str, fallback_prompt: str) -> str:
        """An uploaded studio recording of the prompt, else the knowledge base's script
        (R-H3), else the settings' fallback text."""
        if self.prompts.uploaded(fallback_prompt):
            return self.prompts.path(fallback_prompt)
        text = self.svc.scripts.get(kb_key)
        if text:
            return await self.prompts.prepare(text, personal=False)
        return self.prompts.path(fallback_prompt)

    # --- asking -------------------------------------------------------------------------

    async def choose(self, path: str, keys: str, *, first: str = "", tries: int = 2) -> str | None:
        """Play ``path`` and take one key of ``keys``. An invalid key or silence gets the
        short "не удалось распознать" and one more try; None when nothing valid came."""
        key = first
        for attempt in range(tries):
            if not key:
                key, _ = await self.agi.get_data(path, self.settings.ivr.menu_timeout_ms, 1)
            if key and key in keys:
                return key
            key = await self.play("invalid") if attempt + 1 < tries else ""
        return None

    async def choose_text(self, text: str, keys: str, *, tries: int = 2) -> str | None:
        return await self.choose(await self.prompts.prepare(text), keys, tries=tries)

    async def inform(self, text: str, menu_prompt: str, keys: str = "10*", *,
                     personal: bool = True) -> str:
        """Speak ``text``, then its menu: 1 hears it again, 0 an operator, * the main menu.
        Returns "operator", "menu" or "done" (silence)."""
        path = await self.prompts.prepare(text, personal=personal)
        typed = await self.agi.stream_file(path)
        while True:
            key = await self.choose(self.prompts.path(menu_prompt), keys, first=typed)
            if key == "1":
                typed = await self.agi.stream_file(path)
                continue
            return {"0": "operator", "*": "menu"}.get(key or "", "done")

    async def collect(self, prompt: str, max_digits: int, timeout_ms: int = 6000) -> str:
        """Keys typed after a prompt, ended by ``#`` or silence."""
        digits, _ = await self.agi.get_data(self.prompts.path(prompt), timeout_ms, max_digits)
        return digits.strip("#")

    # --- routing ------------------------------------------------------------------------

    def record(self, key: str, topic: str | None = None, queue: str | None = None) -> None:
        """A key in the caller's path; written by the recorder, the caller never waits."""
        self.svc.recorder.menu(self.linkedid, key, topic, queue)

    def step(self, step: IvrStep, *, delivered: bool = False) -> None:
        """Where the caller is; ``delivered`` once the IVR tells them what they chose: a
        hang-up from then on is self-service, before it an IVR abandon."""
        self.svc.recorder.step(self.linkedid, step, delivered=delivered)

    def outcome(self, outcome: CallOutcome) -> None:
        self.svc.recorder.outcome(self.linkedid, outcome)

    async def to_queue(self, queue: str, topic: str | None) -> None:
        rec = self.settings.recording
        if rec.enabled and rec.notice:
            # Told before anyone answers, and so before the recording starts (issue 30).
            await self.agi.stream_file(
                await self.script_path(RECORDING_NOTICE, "recording_notice"), "")
        await self.agi.set_variable(dialplan.QUEUE, queue)
        await self.agi.set_variable(dialplan.TOPIC, topic or "")
        await self.agi.set_variable(dialplan.NEXT, QUEUE)

    async def farewell_and_hang_up(self) -> None:
        await self.agi.stream_file(await self.script_path("script.farewell", "farewell"), "")
        await self.agi.set_variable(dialplan.NEXT, HANGUP)
