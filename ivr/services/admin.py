"""Administration of people (issue 28): employees' details, departments, their
knowledge-base sections and editors (R-K1), and the scripts the hotline speaks (R-H3).

Used by the panel's administration pages, the JSON API and the CLI alike; each function
works in the caller's transaction and writes the audit entry (who, before, after) in it,
so a refused change leaves nothing behind. Errors are :class:`AdminError`, phrased for the
administrator in Russian; a clash with an existing row (a login, an extension, a name) is
:class:`AdminConflict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from ..calendar import WorkCalendar
from ..db.models import (
    ArticleKind,
    Department,
    KbArticle,
    KbSection,
    KbSectionEditor,
    Role,
    Staff,
)
from ..settings import Settings
from . import accounts, audit, kb, phones
from .accounts import EMAIL, EXTENSION, AccountError


class AdminError(AccountError):
    """A change refused, phrased for the administrator."""


class AdminConflict(AdminError):
    """The value is taken by another row: a login, an extension, a department's name."""


ROLE_NAMES = {
    Role.OPERATOR: "оператор", Role.SPECIALIST: "специалист",
    Role.DEPARTMENT_HEAD: "руководитель подразделения",
    Role.SUPERVISOR: "руководитель контакт-центра", Role.ADMINISTRATOR: "администратор",
}


# --- staff -----------------------------------------------------------------------------------

StaffDetails = accounts.StaffDetails


def staff_values(staff: Staff) -> dict[str, object]:
    """An employee as the audit log shows them (Russian field names)."""
    return {"фамилия": staff.surname, "имя": staff.first_name, "отчество": staff.patronymic,
            "должность": staff.position, "роль": ROLE_NAMES[staff.role],
            "подразделение": staff.department_id, "внутренний номер": staff.extension,
            "почта": staff.email, "работает": "да" if staff.active else "нет"}


def check_phone(settings: Settings, extension: str | None) -> None:
    """An extension is an operator phone Asterisk knows (a PJSIP endpoint and a queue
    member's interface): digits only, and one of ``asterisk.operator_extensions``."""
    if extension is None:
        return
    if not EXTENSION.match(extension):
        raise AdminError("Внутренний номер: от 2 до 6 цифр.")
    if extension not in settings.asterisk.operator_extensions:
        listed = ", ".join(settings.asterisk.operator_extensions) or "нет ни одного"
        raise AdminError(f"Телефона {extension} нет среди телефонов операторов "
                         f"(настроены: {listed}). Номер сначала добавляют в настройки "
                         "asterisk.operator_extensions.")


async def _check_details(session: AsyncSession, details: StaffDetails,
                         staff_id: int | None) -> Department:
    if not details.surname.strip() or not details.first_name.strip():
        raise AdminError("Укажите фамилию и имя.")
    if details.email is not None and not EMAIL.match(details.email):
        raise AdminError("Адрес электронной почты указан неверно.")
    if details.extension is not None:
        holder = await session.scalar(select(Staff).where(
            Staff.extension == details.extension, Staff.id != (staff_id or 0)))
        if holder is not None:
            raise AdminConflict(f"Внутренний номер {details.extension} уже закреплён за "
                                f"сотрудником {holder.initials_name} ({holder.login}).")
    department = await accounts.find_department(session, details.department)
    if department is None:
        raise AdminError(f"Подразделения «{details.department}» нет.")
    return department


async def add_staff(session: AsyncSession, settings: Settings, login: str,
                    details: StaffDetails, password_hash: str, *, who: int | None) -> Staff:
    check_phone(settings, details.extension)
    if await session.scalar(select(Staff.id).where(Staff.login == login.strip())) is not None:
        raise AdminConflict(f"Логин «{login}» уже занят.")
    await _check_details(session, details, None)
    try:
        return await accounts.add_staff(session, accounts.NewStaff(
            login=login.strip(), **vars(details)), password_hash, who=who)
    except AdminError:
        raise
    except AccountError as exc:
        raise AdminError(str(exc)) from None


async def _last_admin(session: AsyncSession, staff: Staff) -> bool:
    # Every active administrator's row locked before counting (PostgreSQL; SQLite writes
    # one at a time): two administrators disabling each other at once must not both see
    # the other remain; the second waits and counts again.
    admins = (await session.scalars(select(Staff.id).where(
        Staff.role == Role.ADMINISTRATOR, Staff.active).with_for_update())).all()
    return staff.role is Role.ADMINISTRATOR and not set(admins) - {staff.id}


async def edit_staff(session: AsyncSession, settings: Settings, staff: Staff,
                     details: StaffDetails, *, who: int | None) -> Staff:
    """Name, position, role, department, phone extension, e-mail; the last active
    administrator keeps the role (nobody could administer the system otherwise)."""
    if details.extension != staff.extension:
        check_phone(settings, details.extension)
    department = await _check_details(session, details, staff.id)
    if details.role is not Role.ADMINISTRATOR and await _last_admin(session, staff):
        raise AdminError("Это последний администратор: сначала назначьте другого.")
    before, old_phone = staff_values(staff), staff.extension
    staff.surname, staff.first_name = details.surname.strip(), details.first_name.strip()
    staff.patronymic, staff.position = details.patronymic.strip(), details.position.strip()
    staff.role, staff.department_id = details.role, department.id
    staff.extension, staff.email = details.extension, details.email
    audit.write(session, who, "update", "staff", staff.id, staff.login,
                before=before, after=staff_values(staff))
    if old_phone != staff.extension:
        await retire_phone(session, settings, old_phone, who=who)
    await session.flush()
    return staff


async def disable_staff(session: AsyncSession, settings: Settings, staff: Staff,
                        now: datetime, *, who: int | None) -> int:
    """No more logins; their panel sessions end now, their API tokens stop, their phone's
    SIP password is replaced (how many sessions ended). Not oneself, not the last
    administrator."""
    if staff.id == who:
        raise AdminError("Свою учётную запись отключить нельзя.")
    if await _last_admin(session, staff):
        raise AdminError("Это последний администратор: сначала назначьте другого.")
    if not staff.active:
        raise AdminError(f"Сотрудник «{staff.login}» уже отключён.")
    await retire_phone(session, settings, staff.extension, who=who)
    return await accounts.disable(session, staff, now, who=who)


async def retire_phone(session: AsyncSession, settings: Settings, extension: str | None, *,
                       who: int | None) -> bool:
    """The phone an employee leaves (disabled, or given another extension) gets a new SIP
    password, so the old one registers no more; whether there was such a phone. Asterisk
    reads it, and the phone leaves the queues, once the change is committed (the web
    layer: :func:`phones.leave_queues`, the res_pjsip reload)."""
    if operator_phone(settings, extension) is None:
        return False
    await phones.regenerate(session, settings, str(extension), who=who)
    return True


def operator_phone(settings: Settings, extension: str | None) -> str | None:
    """The extension if it is one of the operator phones Asterisk knows."""
    return extension if extension in settings.asterisk.operator_extensions else None


async def staff_list(session: AsyncSession) -> list[Staff]:
    return list((await session.scalars(select(Staff).options(
        selectinload(Staff.department)).order_by(Staff.active.desc(), Staff.surname,
                                                 Staff.first_name))).all())


async def staff_by_id(session: AsyncSession, staff_id: int) -> Staff:
    staff = await session.get(Staff, staff_id, options=[selectinload(Staff.department)])
    if staff is None:
        raise AdminError("Сотрудник не найден.")
    return staff


# --- departments and their knowledge-base sections (R-K1) --------------------------------

@dataclass(frozen=True)
class DepartmentDetails:
    name: str
    short_name: str = ""
    competence: str = ""


def _department_values(department: Department) -> dict[str, object]:
    return {"название": department.name, "краткое название": department.short_name,
            "компетенция": department.competence}


async def save_department(session: AsyncSession, department_id: int | None,
                          details: DepartmentDetails, *, who: int | None) -> Department:
    """A new department (with its knowledge-base section, R-K1) or changed details."""
    name, short = details.name.strip(), details.short_name.strip()
    if not name:
        raise AdminError("Укажите название подразделения.")
    if len(name) > 300 or len(short) > 100:
        raise AdminError("Название подразделения: до 300 символов, краткое — до 100.")
    clash = await session.scalar(select(Department.id).where(Department.name == name))
    if clash is not None and clash != department_id:
        raise AdminConflict(f"Подразделение «{name}» уже есть.")
    if department_id is None:
        department = Department(name=name, short_name=short or name[:100],
                                competence=details.competence.strip())
        session.add(department)
        await session.flush()
        session.add(KbSection(department_id=department.id,
                              title=f"База знаний: {department.short_name}"))
        audit.write(session, who, "create", "department", department.id,
                    after=_department_values(department))
        return department
    found = await session.get(Department, department_id)
    if found is None:
        raise AdminError("Подразделение не найдено.")
    before = _department_values(found)
    found.name, found.short_name = name, short or name[:100]
    found.competence = details.competence.strip()
    audit.write(session, who, "update", "department", found.id, before=before,
                after=_department_values(found))
    return found


@dataclass(frozen=True)
class DepartmentView:
    department: Department
    heads: list[Staff]
    section: KbSection | None
    editors: list[Staff]
    members: list[Staff]


async def departments(session: AsyncSession) -> list[DepartmentView]:
    """Every department with its heads (R-K1: responsible for the section), its section,
    the section's editors and the active staff who may be made editors."""
    rows = (await session.scalars(select(Department).order_by(Department.name))).all()
    sections = {s.department_id: s for s in await session.scalars(select(KbSection))}
    staff = (await session.scalars(select(Staff).where(Staff.active)
                                   .order_by(Staff.surname, Staff.first_name))).all()
    editor_rows = (await session.execute(select(KbSectionEditor.section_id,
                                                KbSectionEditor.staff_id))).tuples().all()
    editing = {(section_id, staff_id) for section_id, staff_id in editor_rows}
    views = []
    for department in rows:
        members = [s for s in staff if s.department_id == department.id]
        section = sections.get(department.id)
        views.append(DepartmentView(
            department, [s for s in members if s.role is Role.DEPARTMENT_HEAD], section,
            [s for s in members if section and (section.id, s.id) in editing], members))
    return views


async def save_section(session: AsyncSession, department_id: int, title: str, *,
                       who: int | None) -> KbSection:
    """The department's one section (R-K1): made when it has none, else renamed."""
    title = title.strip()
    if not title or len(title) > 300:
        raise AdminError("Название раздела: от 1 до 300 символов.")
    if await session.get(Department, department_id) is None:
        raise AdminError("Подразделение не найдено.")
    section = await session.scalar(select(KbSection).where(
        KbSection.department_id == department_id))
    if section is None:
        section = KbSection(department_id=department_id, title=title)
        session.add(section)
        await session.flush()
        audit.write(session, who, "create", "kb_section", section.id,
                    after={"название": title, "подразделение": department_id})
        return section
    before = {"название": section.title}
    section.title = title
    audit.write(session, who, "update", "kb_section", section.id, before=before,
                after={"название": title})
    return section


async def set_section_editor(session: AsyncSession, section_id: int, staff_id: int,
                             editor: bool, *, who: int | None) -> None:
    """An administrator names or removes an editor of a section: an employee of its own
    department (R-K1), as its head does."""
    section = await session.get(KbSection, section_id)
    member = await session.get(Staff, staff_id)
    if section is None or member is None:
        raise AdminError("Раздел или сотрудник не найден.")
    if member.department_id != section.department_id:
        raise AdminError("Редактором может быть только сотрудник подразделения, которое "
                         "ведёт раздел.")
    if not await kb.toggle_editor(session, section_id, staff_id, editor):
        return
    audit.write(session, who, "kb_editor", "kb_section", section_id,
                before={"редактор": None if editor else member.login},
                after={"редактор": member.login if editor else None})


async def section_of(session: AsyncSession, department_id: int) -> KbSection:
    found = await session.scalar(select(KbSection).where(
        KbSection.department_id == department_id))
    if found is None:
        raise AdminError("У подразделения ещё нет раздела базы знаний: создайте его.")
    return found


# --- scripts (R-H3) --------------------------------------------------------------------------

OPERATOR_GREETING = kb.OPERATOR_GREETING_KEY
SCRIPTS = {
    kb.GREETING: "Приветствие в начале звонка (говорит автоответчик)",
    kb.FAREWELL: "Прощание в конце звонка (говорит автоответчик)",
    OPERATOR_GREETING: "Приветствие оператора (подсказка на рабочем месте); можно "
                       "использовать {org} — название министерства, {name} — имя и "
                       "отчество оператора, {position} — его должность",
}
SCRIPT_TITLES = {kb.GREETING: "Приветствие", kb.FAREWELL: "Прощание",
                 OPERATOR_GREETING: "Приветствие оператора"}
MAX_SCRIPT = 2000


def _check_script(key: str, text: str) -> str:
    if key not in SCRIPTS:
        raise AdminError("Такого скрипта нет.")
    text = text.strip()
    if not text or len(text) > MAX_SCRIPT:
        raise AdminError(f"Текст скрипта: от 1 до {MAX_SCRIPT} символов.")
    try:
        kb.check_script(key, text)   # the braces' rule, as on every write of a script
    except kb.KbError as exc:
        raise AdminError(str(exc)) from None
    return text


async def _scripts_section(session: AsyncSession, staff_id: int) -> int:
    """Where a new script article goes: the section of the administrator's department,
    made when a fresh database has none yet."""
    department_id = await session.scalar(select(Staff.department_id).where(
        Staff.id == staff_id))
    section = await session.scalar(select(KbSection.id).where(
        KbSection.department_id == department_id))
    if section is not None:
        return section
    department = await session.get(Department, department_id)
    made = KbSection(department_id=department_id,
                     title=f"База знаний: {department.short_name if department else ''}")
    session.add(made)
    await session.flush()
    return made.id


async def save_script(session: AsyncSession, calendar: WorkCalendar, *, key: str,
                      text: str, staff_id: int, now: datetime) -> int:
    """A script's new text, as a versioned knowledge-base article with its key; the
    article's id. Callers hear it once it is rendered (:func:`kb.refresh_scripts`)."""
    text = _check_script(key, text)
    article = await session.scalar(select(KbArticle).where(KbArticle.key == key))
    before = {"текст": article.body if article else None}
    saved = await kb.write_article(
        session, calendar, staff_id=staff_id,
        section_id=article.section_id if article else await _scripts_section(session,
                                                                             staff_id),
        given=kb.ArticleInput(ArticleKind.SCRIPT,
                              article.title if article else SCRIPT_TITLES[key], text,
                              key=key),
        now=now, article_id=article.id if article else None, checked=False)
    audit.write(session, staff_id, "update" if article else "create", "script", key,
                before=before, after={"текст": text})
    return saved


async def scripts(session: AsyncSession) -> dict[str, KbArticle | None]:
    found = {a.key: a for a in await session.scalars(select(KbArticle).where(
        KbArticle.key.in_(list(SCRIPTS))))}
    return {key: found.get(key) for key in SCRIPTS}
