"""Knowledge base: one section per department (R-K1), versioned articles (R-K2, R-K3)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..base import Base, Timestamped, utcnow
from ._enum import str_enum


class ArticleKind(StrEnum):
    LEGAL_ACT = "legal_act"
    FAQ = "faq"
    TEMPLATE = "template"
    SOLVED_TASK = "solved_task"
    CONTACTS = "contacts"
    SCRIPT = "script"              # greeting / farewell: the IVR speaks these (R-H3)
    INTERNAL = "internal"          # job regulations, vacation schedules, phone directories
    OTHER = "other"


class KbSection(Base, Timestamped):
    __tablename__ = "kb_sections"
    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    articles: Mapped[list[KbArticle]] = relationship(back_populates="section")


class KbSectionEditor(Base):
    __tablename__ = "kb_section_editors"
    __table_args__ = (UniqueConstraint("section_id", "staff_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("kb_sections.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))


class KbArticle(Base, Timestamped):
    __tablename__ = "kb_articles"
    id: Mapped[int] = mapped_column(primary_key=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("kb_sections.id"), index=True)
    kind: Mapped[ArticleKind] = mapped_column(str_enum(ArticleKind))
    # A stable key for articles code refers to, e.g. "script.greeting".
    key: Mapped[str | None] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    review_due: Mapped[date | None] = mapped_column(index=True)       # quarterly (R-K3)
    update_due: Mapped[date | None] = mapped_column(index=True)       # 10 working days after
    archived: Mapped[bool] = mapped_column(default=False)
    section: Mapped[KbSection] = relationship(back_populates="articles")


class KbArticleVersion(Base):
    __tablename__ = "kb_article_versions"
    __table_args__ = (UniqueConstraint("article_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"))
    version: Mapped[int]
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
