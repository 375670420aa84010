"""Departments, staff, citizens and other agencies."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ...hygiene import is_web_link
from ..base import Base, Timestamped
from ._enum import str_enum


class Role(StrEnum):
    OPERATOR = "operator"
    SPECIALIST = "specialist"
    DEPARTMENT_HEAD = "department_head"
    SUPERVISOR = "supervisor"
    ADMINISTRATOR = "administrator"


class Channel(StrEnum):
    """How a citizen wants to be reached (R-A2); also how an appeal arrived (R-A1)."""

    EMAIL = "email"
    PHONE = "phone"
    POST = "post"
    STATE_PORTAL = "state_portal"
    WEBSITE = "website"
    IN_PERSON = "in_person"
    HOTLINE = "hotline"


class Department(Base, Timestamped):
    __tablename__ = "departments"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    short_name: Mapped[str] = mapped_column(String(100), default="")
    competence: Mapped[str] = mapped_column(Text, default="")
    staff: Mapped[list[Staff]] = relationship(back_populates="department")


class Staff(Base, Timestamped):
    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(100), unique=True)
    surname: Mapped[str] = mapped_column(String(100))
    first_name: Mapped[str] = mapped_column(String(100))
    patronymic: Mapped[str] = mapped_column(String(100), default="")
    position: Mapped[str] = mapped_column(String(300))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    role: Mapped[Role] = mapped_column(str_enum(Role))
    # Operator phone extension = PJSIP endpoint name = queue member interface.
    extension: Mapped[str | None] = mapped_column(String(20), unique=True)
    phone: Mapped[str] = mapped_column(String(30), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    competence: Mapped[str] = mapped_column(Text, default="")
    password_hash: Mapped[str] = mapped_column(String(300), default="")
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    department: Mapped[Department] = relationship(back_populates="staff")

    @property
    def initials_name(self) -> str:
        """«Иванова А. П.» — how an executor is named to a citizen (R-A8)."""
        initials = "".join(f"{p[0]}. " for p in (self.first_name, self.patronymic) if p)
        return f"{self.surname} {initials}".strip()


class OperatorPhone(Base, Timestamped):
    """An operator phone's SIP credentials: each phone (PJSIP endpoint = extension) has its
    own password, generated here and rendered into Asterisk's pjsip.conf. Kept readable,
    as the phone is provisioned with it; the database is as secret as Asterisk's config."""

    __tablename__ = "operator_phones"
    id: Mapped[int] = mapped_column(primary_key=True)
    extension: Mapped[str] = mapped_column(String(20), unique=True)
    sip_password: Mapped[str] = mapped_column(String(64))


class Citizen(Base, Timestamped):
    __tablename__ = "citizens"
    id: Mapped[int] = mapped_column(primary_key=True)
    surname: Mapped[str] = mapped_column(String(100), default="")
    first_name: Mapped[str] = mapped_column(String(100), default="")
    patronymic: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    postal_address: Mapped[str] = mapped_column(Text, default="")
    preferred_channel: Mapped[Channel | None] = mapped_column(str_enum(Channel))
    extra_channel: Mapped[Channel | None] = mapped_column(str_enum(Channel))
    # Set when the five-year retention job (R-A9) has removed the personal data.
    anonymised_at: Mapped[datetime | None]
    phones: Mapped[list[CitizenPhone]] = relationship(
        back_populates="citizen", cascade="all, delete-orphan"
    )


class CitizenPhone(Base):
    __tablename__ = "citizen_phones"
    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id", ondelete="CASCADE"))
    # Normalised digits only, national form (see ivr.phone.normalise).
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    citizen: Mapped[Citizen] = relationship(back_populates="phones")


class Agency(Base, Timestamped):
    """Another body's contacts, for questions outside the ministry's competence (R-H7)."""

    __tablename__ = "agencies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    phone: Mapped[str] = mapped_column(String(50), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    website: Mapped[str] = mapped_column(String(300), default="")
    competence: Mapped[str] = mapped_column(Text, default="")

    @property
    def website_link(self) -> str | None:
        """The website as a link target, or None: an address saved before links were
        checked (javascript:, data: …) is shown as text, never followed."""
        return self.website if is_web_link(self.website) else None
