"""The callers of ``python -m bench calls`` and what the bench reads from Asterisk.

A caller rings the hotline, presses its keys while the greeting plays, listens and hangs up:

* Local channels: an ``Originate`` of ``Local/<number>@hotline-in`` whose other half runs
  the test-only ``caller-sim`` context (:func:`ivr.simulate.place_call`), SendDTMF inside
  Asterisk;
* SIP: sipp sends the calls over a trunk (the test-only endpoint ``bench-trunk``,
  ``config/asterisk/pjsip_test.conf``) and plays the keys as RFC 4733 events from the
  pcaps Debian's ``sip-tester`` ships.

Timings are Asterisk's own event timestamps (``timestampevents = yes``), so the AMI link's
delay and the load generator's own lag do not enter them.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from panoramisk.message import Message

from ivr.ami import AMIClient
from ivr.simulate import SimulatedCall, place_call

SCENARIO = Path(__file__).parent / "data" / "sipp-caller.xml"
PCAPS = Path("/usr/share/sip-tester")
PCAP_NAMES = {"*": "star", "#": "pound"}
KEYS = re.compile(r"^[0-9*#]{1,8}$")
KEY_DELAY = 2.0  # seconds of greeting before the first key
KEY_GAP = 2.0    # seconds between two keys: each lands in a prompt of its own
# What the bench's own AMI link asks for: DTMF, AGI and user events, none of the
# per-dialplan-step flood, so watching costs Asterisk little.
EVENT_CLASSES = "dtmf,agi,user"


def check_keys(keys: str, *, sip: bool = False) -> str:
    """The keys go into a SendDTMF string and into pcap file names: digits, * and # only.
    Over SIP a key may not follow itself: a pcap's RTP timestamps are fixed, and Asterisk
    takes the same key at the same timestamp for the same keypress."""
    if not KEYS.match(keys):
        raise ValueError(f"keys: 1-8 of 0-9, * and #, got {keys!r}")
    if sip and any(a == b for a, b in itertools.pairwise(keys)):
        raise ValueError(f"keys: over SIP a key may not follow itself, got {keys!r}")
    return keys


@dataclass
class Observer:
    """Per channel, the time from a key received to the next AGI command Asterisk got from
    our server (the server's reaction, seen by Asterisk); channels sent to ``agi-fail``;
    simulated callers that finished their script."""

    lags: list[float] = field(default_factory=list)
    fallbacks: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    _pressed: dict[str, float] = field(default_factory=dict)

    def attach(self, ami: AMIClient) -> None:
        ami.subscribe("DTMFEnd", self._on_dtmf)
        ami.subscribe("AGIExecStart", self._on_agi_command)
        ami.subscribe("UserEvent", self._on_user_event)

    def reset(self) -> None:
        self.lags.clear()
        self.fallbacks.clear()
        self.done.clear()
        self._pressed.clear()

    def _on_dtmf(self, event: Message) -> None:
        if event.get("Direction") == "Received":
            self._pressed[str(event.get("Uniqueid"))] = float(event["Timestamp"])

    def _on_agi_command(self, event: Message) -> None:
        pressed = self._pressed.pop(str(event.get("Uniqueid")), None)
        if pressed is not None:
            self.lags.append(float(event["Timestamp"]) - pressed)

    def _on_user_event(self, event: Message) -> None:
        name = event.get("UserEvent")
        if name == "HotlineAgiFail":
            self.fallbacks.add(str(event.get("Uniqueid")))
        elif name == "SimCallerDone":
            self.done.add(str(event.get("SimId")))


class BenchAMI(AMIClient):
    """The bench's AMI link: watches the events above and places the Local callers."""

    def __init__(self, host: str, port: int, username: str, secret: str) -> None:
        super().__init__(host, port, username, secret, events=EVENT_CLASSES)

    async def originate(self, **fields: Any) -> Any:
        # Done once Asterisk has queued it: the OriginateResponse that follows is a "call"
        # event, which this link does not ask for.
        return await self.action({"Action": "Originate", "Async": "true", **fields},
                                 as_list=False)


async def local_callers(ami: AMIClient, number: str, calls: int, rate: float, keys: str,
                        hold: float) -> list[SimulatedCall]:
    """``calls`` Local-channel callers, ``rate`` a second; each hangs up ``hold`` s after
    its last key."""
    script = ("w" * round(KEY_GAP / 0.5)).join(keys)  # SendDTMF: w = 0.5 s
    started = time.monotonic()
    placed = []
    for n in range(calls):
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        placed.append(await place_call(ami, caller=f"7900{n:07d}", number=number,
                                       dtmf=script, delay=KEY_DELAY, hold=hold))
    return placed


def sipp_scenario(keys: str, hold: float, out: Path) -> Path:
    """bench/data/sipp-caller.xml with the caller's keys and timings filled in."""
    presses = "\n".join(
        f'  <nop><action><exec play_pcap_audio="{PCAPS}/dtmf_2833_'
        f'{PCAP_NAMES.get(key, key)}.pcap"/></action></nop>\n'
        f'  <pause milliseconds="{round(KEY_GAP * 1000)}"/>'
        for key in check_keys(keys, sip=True))
    text = Template(SCENARIO.read_text(encoding="utf-8")).substitute(
        delay_ms=round(KEY_DELAY * 1000), presses=presses,
        hold_ms=round(max(0.0, hold - KEY_GAP) * 1000))
    out.write_text(text, encoding="utf-8")
    return out


@dataclass
class SippResult:
    placed: int
    failed: int  # on sipp's side: an unexpected message, a timeout


async def sip_callers(sip_bind: str, number: str, calls: int, rate: float, keys: str,
                      hold: float, run_dir: Path, local_port: int,
                      media_port: int) -> SippResult:
    """sipp places ``calls`` calls, ``rate`` a second, all of them up at once at the peak."""
    scenario = sipp_scenario(keys, hold, run_dir / "sipp-caller.xml")
    stats = run_dir / "sipp-stats.csv"
    proc = await asyncio.create_subprocess_exec(
        "sipp", sip_bind, "-sf", str(scenario), "-s", number,
        "-i", "127.0.0.1", "-p", str(local_port), "-mp", str(media_port),
        "-m", str(calls), "-r", f"{rate:g}", "-l", str(calls),
        "-trace_stat", "-stf", str(stats), "-fd", "1", "-nostdin",
        "-trace_err", "-error_file", str(run_dir / "sipp-errors.log"),
        # A call Asterisk never answers must not hold the bench for ever.
        "-timeout", f"{round(calls / rate + hold + 120)}s",
        stdout=subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode not in (0, 1):  # 1: some calls failed, which the figures show
        raise RuntimeError(f"sipp exited with {proc.returncode}: {err.decode()[-500:]}")
    with stats.open(newline="") as lines:
        last = list(csv.DictReader(lines, delimiter=";"))[-1]
    return SippResult(int(last["TotalCallCreated"]), int(last["FailedCall(C)"]))
