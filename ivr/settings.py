"""Settings: one TOML file plus ``HOTLINE_*`` environment overrides, validated at start-up.

The file is ``config/hotline.toml`` unless ``HOTLINE_CONFIG`` names another. Any key can be
overridden from the environment as ``HOTLINE_<SECTION>__<KEY>`` (double underscore between
levels), e.g. ``HOTLINE_DATABASE__URL`` or ``HOTLINE_AMI__SECRET``. Values from the
environment are parsed as TOML values when they parse (``8080``, ``true``, ``["a"]``) and taken
as plain strings otherwise.

A wrong or missing value raises :class:`SettingsError` whose message is one line naming the
key; the CLI prints that line and exits with status 2.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "hotline.toml"
ENV_PREFIX = "HOTLINE_"
# Top-level keys set from the environment without a section: HOTLINE_ENVIRONMENT.
TOP_LEVEL_FROM_ENV = {"HOTLINE_ENVIRONMENT": "environment"}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_PERIOD = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


class SettingsError(Exception):
    """A settings problem, already phrased as the one line the operator should read."""


class Period(BaseModel):
    """A span of a day in local time, written ``"09:00-18:00"`` in the file."""

    model_config = ConfigDict(frozen=True)
    start: time
    end: time

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            m = _PERIOD.match(value.strip())
            if not m:
                raise ValueError(f"expected HH:MM-HH:MM, got {value!r}")
            h1, m1, h2, m2 = (int(g) for g in m.groups())
            end = time.max if (h2, m2) == (24, 0) else time(h2, m2)
            if h2 == 24 and m2 != 0:
                raise ValueError(f"expected HH:MM-HH:MM, got {value!r}")
            return {"start": time(h1, m1), "end": end}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end <= self.start:
            raise ValueError("the period must end after it starts")
        return self

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


class WorkingHours(BaseModel):
    """Opening hours per weekday; an empty string (or absent day) means closed."""

    model_config = ConfigDict(extra="forbid")
    mon: Period | None = None
    tue: Period | None = None
    wed: Period | None = None
    thu: Period | None = None
    fri: Period | None = None
    sat: Period | None = None
    sun: Period | None = None

    @field_validator(*WEEKDAYS, mode="before")
    @classmethod
    def _empty_is_closed(cls, value: Any) -> Any:
        return None if value in ("", None) else value

    def for_weekday(self, weekday: int) -> Period | None:
        result: Period | None = getattr(self, WEEKDAYS[weekday])
        return result


def _default_hours() -> WorkingHours:
    return WorkingHours.model_validate(
        {"mon": "09:00-18:00", "tue": "09:00-18:00", "wed": "09:00-18:00",
         "thu": "09:00-18:00", "fri": "09:00-16:45"}
    )


class Organisation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    full_name: str = Field(min_length=3)
    short_name: str = Field(min_length=2)
    hotline_numbers: list[Annotated[str, Field(pattern=r"^\+?\d{3,15}$")]] = Field(min_length=1)
    timezone: str
    address: str = Field(min_length=3)
    directions: str = ""
    hours: WorkingHours = Field(default_factory=_default_hours)
    lunch: Period | None = None
    # Russian labour law shortens the working day before a non-working holiday by one hour.
    preholiday_shortening_minutes: int = Field(default=60, ge=0, le=240)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("lunch", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value in ("", None) else value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Database(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = "sqlite+aiosqlite:///var/hotline.sqlite3"
    echo: bool = False
    # Call facts that could not be committed (database away) wait here, in order.
    spool_dir: Path = PROJECT_ROOT / "var" / "spool"
    # The spool's bound: once it holds this many MiB, new facts are refused (an error in
    # the log and recorder.stats["refused"]) until the database is back and it drains.
    spool_max_mb: int = Field(default=64, ge=1, le=100_000)
    # The call recorder gathers facts for this many seconds before a commit, less when a
    # batch is full or a caller syncs.
    batch_interval: float = Field(default=0.25, gt=0, le=5)
    batch_size: int = Field(default=200, ge=1, le=10_000)

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg://, "
                f"got {value.split('://')[0]!r}"
            )
        return value


class Ami(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = "hotline"
    secret: str = Field(min_length=8)
    action_timeout: float = Field(default=5.0, gt=0)
    ping_interval: float = Field(default=10.0, gt=0)
    reconnect_max_delay: float = Field(default=30.0, gt=0)


class Agi(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(default=4573, ge=1, le=65535)
    header_timeout: float = Field(default=5.0, gt=0)
    command_timeout: float = Field(default=60.0, gt=0)
    max_connections: int = Field(default=1200, ge=1)
    # Who may connect (addresses or CIDR networks): Asterisk's. Others are closed unread.
    allowed_peers: list[IPv4Network | IPv6Network] = Field(
        default_factory=lambda: [ip_network("127.0.0.1")], min_length=1)
    # Connections that have not sent their header yet, apart from max_connections: at the
    # cap a new one closes the oldest idle one, so idle sockets never keep a call out.
    max_pending: int = Field(default=128, ge=1)
    # Watchdog lease (s): how long a flow may stay silent before Asterisk gives up on it
    # and sends the caller to the queue. Flows renew it before every prompt.
    watchdog_seconds: int = Field(default=6, ge=2, le=60)

    @field_validator("allowed_peers", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        # ipaddress's own errors name the bad entry ("… has host bits set").
        return [ip_network(v) for v in value] if isinstance(value, list) else value


class Panel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    secret: str = Field(min_length=32)
    public_url: str = ""
    # Several `hotline serve --only web` processes may share the port (one per core):
    # sessions live in the database, and each process has its own AMI link.
    reuse_port: bool = False
    # After a queue call the operator is paused until the call's journal is saved, or this
    # many seconds (R-H6: a journal entry for every call); 0: no automatic wrap-up.
    wrapup_seconds: int = Field(default=120, ge=0, le=3600)
    # Failed logins allowed within `login_window_seconds`, per remote address and per
    # login, before every further attempt is refused (on top of the lock after five in a row).
    login_failures_per_address: int = Field(default=30, ge=1, le=10_000)
    login_failures_per_login: int = Field(default=10, ge=1, le=1000)
    login_window_seconds: int = Field(default=900, ge=1, le=86_400)
    # Where the browser's phone reaches Asterisk's SIP WebSocket: in production the
    # reverse proxy's wss://…/ws; empty: ws://<asterisk.http_bind>/ws (development).
    phone_ws_url: str = Field(default="", pattern=r"^wss?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?$|^$")
    # Reverse proxies (addresses or networks) whose X-Real-IP names the client: behind nginx
    # every request comes from 127.0.0.1, so the login limits and the audit need it. A
    # header from any other peer is ignored; /metrics always judges the peer itself.
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(default_factory=list)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        return [ip_network(v) for v in value] if isinstance(value, list) else value


class Tts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # espeak: everything rendered on this machine. gtts / auto (gTTS, espeak-ng when Google
    # is unreachable) send the fixed prompts and scripts to Google; texts with a citizen's
    # data are always rendered by espeak-ng (see ivr.tts).
    engine: Literal["espeak", "gtts", "auto"] = "espeak"
    # How often a serving process (FastAGI, panel) looks for an edited knowledge-base
    # script and renders it: a change is heard within this many seconds (R-H3).
    scripts_refresh_seconds: float = Field(default=20, gt=0, le=60)
    recordings_dir: Path = PROJECT_ROOT / "recordings"
    espeak_voice: str = "ru"


class Smtp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    username: str = ""
    password: str = ""
    starttls: bool = False
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


class Survey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    link_base_url: str = Field(pattern=r"^https?://")


class Asterisk(BaseModel):
    """The development Asterisk run by ``hotline asterisk up`` (production runs its own)."""

    model_config = ConfigDict(extra="forbid")
    chroot_dir: Path = Path("/var/cache/hotline/asterisk-sid")
    runtime_dir: Path = PROJECT_ROOT / "var" / "asterisk"
    load_test_contexts: bool = True
    system_name: str = Field(default="hotline-dev", pattern=r"^[A-Za-z0-9_-]+$")
    trunk_dial: str = "PJSIP/{number}@trunk"
    # Asterisk's log folder as this service reads it (cdr-custom/hotline.csv and queue_log:
    # calls completed after missed AMI events); empty: the development Asterisk's own.
    log_dir: str = ""
    # Where the running Asterisk reads our queues.conf, as this service sees it: the panel
    # rewrites it when an administrator changes the queues. Empty: the development
    # Asterisk's own folder.
    config_dir: str = ""
    # How the transfer gate rings a colleague's phone, by extension.
    operator_dial: str = Field(default="PJSIP/{extension}", pattern=r"\{extension\}")
    # SIP side, templated into pjsip.conf: operator phones and the carrier trunk. Each
    # phone's password is its own, generated and kept in the database (`hotline phones`).
    sip_bind: str = "127.0.0.1:5060"
    operator_extensions: list[Annotated[str, Field(pattern=r"^\d{2,6}$")]] = Field(
        default_factory=lambda: ["1001", "1002", "1003"]
    )
    trunk_host: str = ""
    trunk_username: str = ""
    trunk_password: str = ""
    # WebRTC (the phone in the panel's workspace, docs/webrtc.md): Asterisk's HTTP server
    # carries SIP over WebSocket at /ws; these operators' endpoints are the browser's
    # (DTLS-SRTP, ICE), the others stay plain SIP phones. media_address: the address
    # Asterisk puts into its SDP (empty: Asterisk looks it up by the host's name).
    http_bind: str = Field(default="127.0.0.1:8088", pattern=r"^[0-9.]+:\d{1,5}$")
    webrtc_extensions: list[Annotated[str, Field(pattern=r"^\d{2,6}$")]] = Field(
        default_factory=list)
    media_address: str = Field(default="", pattern=r"^([0-9]{1,3}\.){3}[0-9]{1,3}$|^$")

    @model_validator(mode="after")
    def _webrtc_phones_known(self) -> Asterisk:
        unknown = sorted(set(self.webrtc_extensions) - set(self.operator_extensions))
        if unknown:
            raise ValueError(f"webrtc_extensions not in operator_extensions: {unknown}")
        return self


class Callbacks(BaseModel):
    """Calling citizens back (R-H5): the scheduler rings the employee (or the queue) first,
    then the citizen through ``asterisk.trunk_dial``."""

    model_config = ConfigDict(extra="forbid")
    every_seconds: float = Field(default=15, gt=0, le=600)
    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_seconds: int = Field(default=1200, ge=1)     # busy / no answer → again after this
    staff_ring_seconds: int = Field(default=30, ge=5, le=120)
    citizen_ring_seconds: int = Field(default=40, ge=3, le=120)
    # An attempt with no result this long (the service restarted mid-call) is closed.
    stale_after_seconds: int = Field(default=900, ge=60)
    # The latest answer deadline an operator may promise, in working days from today.
    deadline_max_working_days: int = Field(default=10, ge=1, le=30)


class Dialling(BaseModel):
    """Which numbers the system dials (:mod:`ivr.dialling`): Russian numbers only, no premium
    or short ones, unless a prefix here says otherwise; and the caller ID it presents."""

    model_config = ConfigDict(extra="forbid")
    # Presented on every call to a citizen; empty: the first of organisation.hotline_numbers.
    caller_id: str = Field(default="", pattern=r"^$|^\+?\d{3,15}$")
    # Prefixes of the international form without "+" (7809…, 375…): allow opens a number
    # the default rules refuse (premium, another country); deny refuses one they allow.
    # Deny wins over allow.
    allow_prefixes: list[Annotated[str, Field(pattern=r"^\d{1,15}$")]] = Field(
        default_factory=list)
    deny_prefixes: list[Annotated[str, Field(pattern=r"^\d{1,15}$")]] = Field(
        default_factory=list)

    @field_validator("caller_id", "allow_prefixes", "deny_prefixes", mode="before")
    @classmethod
    def _digits_as_text(cls, value: Any) -> Any:
        # HOTLINE_DIALLING__CALLER_ID=74951234567 parses as a TOML integer.
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) else v for v in value]
        return str(value) if isinstance(value, int) else value


NoticeChannel = Literal["email", "phone", "post", "state_portal"]


class Appeals(BaseModel):
    """Deadlines and keeping of written appeals (R-A3, R-A4, R-A9)."""

    model_config = ConfigDict(extra="forbid")
    # The answer to an ordinary appeal is due this many days after registration
    # (59-ФЗ art. 12: 30 days), calendar days unless `default_in_working_days`.
    default_answer_days: int = Field(default=30, ge=1, le=90)
    default_in_working_days: bool = False
    urgent_answer_working_days: int = Field(default=5, ge=1, le=30)            # R-A3
    # Tell the citizen the registration number and due date on registration (R-A2); off
    # where the document-flow system already does.
    notify_registration: bool = True
    not_considered_notice_working_days: int = Field(default=10, ge=1, le=30)   # R-A4
    # "Due soon": due within this many working days.
    due_soon_working_days: int = Field(default=3, ge=1, le=30)
    # Urgency is suggested when the citizen wrote on the same topic this many times within
    # `repeat_window_days` before (or has an open callback).
    repeat_threshold: int = Field(default=1, ge=1, le=10)
    repeat_window_days: int = Field(default=365, ge=1, le=1825)
    # R-A9: appeals, their notices and survey answers are kept this many years, then
    # deleted (or stripped of personal data: "anonymise"). The years count from
    # `retention_from`: "registration" (the registration date) or "completion" (the day the
    # appeal was closed: completed, answered, redirected or not considered). An appeal still
    # open is never purged (docs/retention.md).
    retention_years: int = Field(default=5, ge=1, le=75)
    retention_mode: Literal["delete", "anonymise"] = "delete"
    retention_from: Literal["registration", "completion"] = "registration"


RetentionYears = Annotated[int, Field(ge=1, le=75)]


class Retention(BaseModel):
    """Personal data besides written appeals (152-ФЗ art. 5 p. 7: kept no longer than its
    purpose needs; appeals keep theirs in [appeals], R-A9): past this many years, counted
    from the date named by the matching `*_from`, the scheduled job anonymises or removes
    it, and audits each batch as a count (ivr/services/retention.py, docs/retention.md)."""

    model_config = ConfigDict(extra="forbid")
    # Calls: caller number, citizen, journal question and answer, transfer notes cleared;
    # times, topic, queue, outcome and rating stay for the statistics. From the call's
    # "end" (its start when it never ended) or "start".
    calls_years: RetentionYears = 5
    calls_from: Literal["end", "start"] = "end"
    # Callbacks, once closed (done, failed, cancelled): removed with their windows and
    # attempts. From the day it was "closed" or "created"; an open callback stays.
    callbacks_years: RetentionYears = 5
    callbacks_from: Literal["closed", "created"] = "closed"
    # Reception bookings: removed with their reminders; survey answers stay, without the
    # comment. From the "reception" (the slot's start) or the day it was "booked".
    bookings_years: RetentionYears = 5
    bookings_from: Literal["reception", "booked"] = "reception"
    # The audit log: phone numbers in its entries masked; the entries stay. From the entry.
    audit_years: RetentionYears = 5

    @property
    def shortest_years(self) -> int:
        """A citizen nothing refers to any more is removed once unchanged this long."""
        return min(self.calls_years, self.callbacks_years, self.bookings_years)


class Notices(BaseModel):
    """Notices to citizens (R-A2, R-A5, R-P3): e-mail, automated phone call, outbox."""

    model_config = ConfigDict(extra="forbid")
    every_seconds: float = Field(default=10, gt=0, le=600)
    # Channels the law fixes (ЕПГУ): a notice by one of them is duplicated to the
    # citizen's extra channel (R-A2).
    legally_fixed_channels: list[NoticeChannel] = Field(default=["state_portal"])
    max_attempts: int = Field(default=5, ge=1, le=20)
    retry_seconds: int = Field(default=600, ge=1)
    phone_ring_seconds: int = Field(default=40, ge=5, le=120)
    # A phone notice with no result this long (the service restarted mid-call) is retried.
    stale_after_seconds: int = Field(default=900, ge=30)
    # Phone notices ring only inside these local hours; e-mail goes any time.
    phone_hours: Period = Field(default_factory=lambda: Period.model_validate("09:00-21:00"))


class Reception(BaseModel):
    """Personal reception (R-P1–R-P6)."""

    model_config = ConfigDict(extra="forbid")
    # Free slots are generated from the officials' schedules this many days ahead.
    days_ahead: int = Field(default=30, ge=1, le=180)
    # The e-mail reminder's cancel link and the survey after the reception (R-P4, R-P6).
    cancel_link_base_url: str = Field(
        default="http://127.0.0.1:8080/reception/cancel/", pattern=r"^https?://")
    # Links in e-mails stay valid this long.
    link_valid_days: int = Field(default=60, ge=1, le=400)


class Metrics(BaseModel):
    """``GET /metrics`` (Prometheus): who may read it, by address or network."""

    model_config = ConfigDict(extra="forbid")
    # Others get 403. Behind a reverse proxy every request comes from the proxy's address:
    # the proxy must not forward /metrics (config/nginx/hotline.conf does not).
    allow: list[IPv4Network | IPv6Network] = Field(
        default_factory=lambda: [ip_network("127.0.0.1/32"), ip_network("::1/128")])

    @field_validator("allow", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        return [ip_network(v) for v in value] if isinstance(value, list) else value


class Recording(BaseModel):
    """Call recordings (issue 30, docs/recording.md): MixMonitor writes WAV into the spool
    while the call lasts; the service compresses each finished file into
    ``<directory>/YYYY/MM/DD/`` and links it to the call and the leg."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    # The caller hears that the conversation is recorded before the queue (the knowledge
    # base's script.recording_notice, else the prompt recording_notice).
    notice: bool = True
    directory: Path = PROJECT_ROOT / "recordings" / "calls"
    # The spool as Asterisk sees it, when that differs from <directory>/spool (Asterisk on
    # another mount); empty: the same path (the development chroot bind-mounts it there).
    asterisk_spool: str = Field(default="", pattern=r"^(/[A-Za-z0-9._-]+)+$|^$")
    # ogg: Ogg/Vorbis, mp3, or wav (uncompressed): what sox writes the kept file as.
    format: Literal["ogg", "mp3", "wav"] = "ogg"
    keep_years: int = Field(default=3, ge=1, le=75)
    # An operator's consultation call with a colleague during an attended transfer.
    consultations: bool = True

    @field_validator("directory", mode="after")
    @classmethod
    def _relative_to_project(cls, value: Path) -> Path:
        return value if value.is_absolute() else PROJECT_ROOT / value

    @property
    def spool(self) -> Path:
        return self.directory / "spool"


class Topic(BaseModel):
    """One choice of the IVR topic menu (R-H1): its key, the queue it leads to."""

    model_config = ConfigDict(extra="forbid")
    digit: str = Field(pattern=r"^[1-9]$")
    code: str = Field(pattern=r"^[a-z_]+$")
    title: str = Field(min_length=2)
    queue: str = Field(pattern=r"^[a-z0-9_-]+$")
    # queue: to an operator; hours, appeal_status, reception: self-service first;
    # agency: tell another body's contacts (R-H7), named in `agency` (agencies table).
    action: Literal["queue", "hours", "appeal_status", "reception", "agency"] = "queue"
    agency: str = ""

    @model_validator(mode="after")
    def _agency_named(self) -> Topic:
        if self.action == "agency" and not self.agency:
            raise ValueError("action 'agency' needs the agency's name in `agency`")
        return self


class Ivr(BaseModel):
    model_config = ConfigDict(extra="forbid")
    general_queue: str = Field(default="hotline-general", pattern=r"^[a-z0-9_-]+$")
    max_menu_failures: int = Field(default=3, ge=1, le=10)
    menu_timeout_ms: int = Field(default=5000, ge=1000, le=30000)
    # After this long in a queue the caller is offered a callback instead of waiting on.
    queue_wait_before_offer: int = Field(default=90, ge=5, le=3600)
    # The caller hears their position and the expected wait this often while queued.
    queue_announce_every: int = Field(default=45, ge=5, le=600)
    queue_announce_max_position: int = Field(default=10, ge=1, le=50)
    queue_announce_max_minutes: int = Field(default=30, ge=1, le=120)
    # Windows offered for a callback: the open periods of this many next working days.
    callback_days: int = Field(default=2, ge=1, le=4)
    # Service level (Asterisk's queues.conf servicelevel and the supervisor's figure): the
    # share of answered calls answered within this many seconds of joining the queue.
    service_level_seconds: int = Field(default=20, ge=5, le=600)
    # How long the transfer gate rings a colleague before the caller goes to the queue.
    transfer_ring_seconds: int = Field(default=25, ge=5, le=120)
    topics: list[Topic] = Field(min_length=1)

    def queue_spell(self, waited: int, offered: bool) -> int:
        """Seconds of the caller's next stay in the queue before ``queue-wait`` speaks:
        the announcement period, cut short for a callback offer still to come."""
        if offered:
            return self.queue_announce_every
        return max(5, min(self.queue_announce_every, self.queue_wait_before_offer - waited))

    @field_validator("topics")
    @classmethod
    def _unique_digits(cls, topics: list[Topic]) -> list[Topic]:
        digits = [t.digit for t in topics]
        if len(set(digits)) != len(digits):
            raise ValueError("two topics share one digit")
        return topics

    def topic_for(self, digit: str) -> Topic | None:
        return next((t for t in self.topics if t.digit == digit), None)

    def menu_text(self) -> str:
        """The main menu as the caller hears it, from the topics (R-H1): a topic added or
        renamed is announced at once, never left out of a hand-written text."""
        choices = [f"{t.title} — {'нажмите ' if i == 0 else ''}{t.digit}."
                   for i, t in enumerate(sorted(self.topics, key=lambda t: t.digit))]
        return " ".join([*choices, "Соединение с оператором — 0.", "Повторить — звёздочка."])


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # production refuses to start while a secret shipped in config/hotline.toml is in use
    # (ivr.shipped); `make run` and the tests run in development.
    environment: Literal["production", "development"] = "production"
    organisation: Organisation
    database: Database = Field(default_factory=Database)
    ami: Ami
    agi: Agi = Field(default_factory=Agi)
    panel: Panel
    tts: Tts = Field(default_factory=Tts)
    smtp: Smtp
    survey: Survey
    asterisk: Asterisk = Field(default_factory=Asterisk)
    ivr: Ivr
    callbacks: Callbacks = Field(default_factory=Callbacks)
    dialling: Dialling = Field(default_factory=Dialling)
    appeals: Appeals = Field(default_factory=Appeals)
    retention: Retention = Field(default_factory=Retention)
    notices: Notices = Field(default_factory=Notices)
    reception: Reception = Field(default_factory=Reception)
    metrics: Metrics = Field(default_factory=Metrics)
    recording: Recording = Field(default_factory=Recording)
    # Every text the caller hears, by prompt name; the flows name prompts, never wording.
    prompts: dict[str, Annotated[str, Field(min_length=1)]]
    source: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _menu_from_topics(self) -> Settings:
        # Spoken from the topics, whatever [prompts] holds: no second list to keep in step.
        self.prompts = {**self.prompts, "menu": self.ivr.menu_text()}
        return self

    @field_validator("database", mode="after")
    @classmethod
    def _relative_sqlite_to_project(cls, value: Database) -> Database:
        # A relative SQLite path is relative to the project, not to the shell's directory.
        prefix = "sqlite+aiosqlite:///"
        path = value.url[len(prefix):] if value.url.startswith(prefix) else None
        if path and not path.startswith("/") and path != ":memory:":
            value = value.model_copy(update={"url": prefix + str(PROJECT_ROOT / path)})
        if not value.spool_dir.is_absolute():
            value = value.model_copy(update={"spool_dir": PROJECT_ROOT / value.spool_dir})
        return value


def _env_overrides(environ: dict[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Nested dict of overrides and, for error messages, which variable set which key."""
    tree: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for name, raw in environ.items():
        if name in TOP_LEVEL_FROM_ENV:
            path: tuple[str, ...] = (TOP_LEVEL_FROM_ENV[name],)
        elif not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        else:
            path = tuple(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
        if not all(path):
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(f"settings error: {name}: conflicts with another variable")
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node[path[-1]] = value
        origin[path] = name
    return tree, origin


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: dict[str, Any], origin: dict[tuple[str, ...], str]) -> str:
    loc = tuple(str(p) for p in error["loc"])
    key = ".".join(loc) or "(top level)"
    where = f" (from {origin[loc]})" if loc in origin else ""
    message = error["msg"]
    if error["type"] == "missing":
        message = "required but missing"
    elif error["type"] == "extra_forbidden":
        message = "unknown key"
    message = message.removeprefix("Value error, ")
    return f"{key}{where}: {message}"


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    env = dict(os.environ if environ is None else environ)
    config_path = Path(path or env.get("HOTLINE_CONFIG") or DEFAULT_CONFIG)
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"settings error: {config_path}: file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings error: {config_path}: not valid TOML: {exc}") from None
    overrides, origin = _env_overrides(env)
    try:
        settings = Settings.model_validate(_merge(data, overrides))
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        tail = f" (and {more} more)" if more else ""
        raise SettingsError(
            f"settings error: {config_path}: {_describe(dict(first), origin)}{tail}"
        ) from None
    settings.source = str(config_path)
    return settings
