"""Administration pages (issue 28): employees, departments with their knowledge-base
sections and editors (R-K1), the scripts callers hear (R-H3); every change audited with
who, before and after; a non-administrator refused and audited; CSRF as on every form."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from ivr.db.models import AuditEntry, Department, KbArticle, KbSection, KbSectionEditor, Staff
from ivr.demo import DEMO_PASSWORD
from ivr.runner import run_service
from ivr.services import admin, kb
from ivr.services.container import Services
from ivr.settings import load_settings
from ivr.simulate import wait_until

from .conftest import hotline_environ
from .support.panel_client import audit_rows, log_in
from .support.smtp import free_port

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def _no_pjsip_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    """A phone's new password is not rendered into this worker's running Asterisk from a
    test's own database: its SIP tests read the passwords of the session's database."""
    from ivr.asterisk_dev import DevAsterisk

    monkeypatch.setattr(DevAsterisk, "reload_phones", lambda _self: False)

NEW = {"login": "volkova", "surname": "Волкова", "first_name": "Мария",
       "patronymic": "Ильинична", "position": "консультант", "role": "operator",
       "email": "volkova@example.org"}


async def _department_id(svc: Services, short: str = "Госуслуги") -> int:
    async with svc.sessions() as s:
        found = await s.scalar(select(Department.id).where(Department.short_name == short))
    assert found is not None
    return found


async def _staff(svc: Services, login: str) -> Staff:
    async with svc.sessions() as s:
        found = await s.scalar(select(Staff).where(Staff.login == login))
    assert found is not None
    return found


async def _audit_details(svc: Services, object_type: str) -> list[str]:
    """The details of the changes to objects of this type (views, logins left out)."""
    await svc.recorder.sync()
    async with svc.sessions() as s:
        return list((await s.scalars(select(AuditEntry.details).where(
            AuditEntry.object_type == object_type,
            AuditEntry.action.not_in(("view", "login", "logout"))).order_by(
            AuditEntry.id))).all())


async def test_an_administrator_adds_and_edits_an_employee(svc: Services,
                                                           client: TestClient) -> None:
    csrf = await log_in(client, "orlov")
    department = str(await _department_id(svc))
    added = await client.post("/panel/admin/staff", data={
        **NEW, "department_id": department, "extension": "", "_csrf": csrf})
    page = await added.text()
    assert added.status == 200 and "показан один раз" in page
    password = re.search(r"<dt>Пароль</dt><dd><code>([^<]+)</code>", page)
    assert password, "the generated password is on the page, once"
    volkova = await _staff(svc, "volkova")
    assert volkova.role.value == "operator" and volkova.email == "volkova@example.org"

    edited = await client.post(f"/panel/admin/staff/{volkova.id}/edit", data={
        **NEW, "position": "главный консультант", "role": "specialist",
        "department_id": department, "extension": "", "_csrf": csrf}, allow_redirects=False)
    assert edited.status == 303
    assert (await _staff(svc, "volkova")).position == "главный консультант"
    created, changed = (await _audit_details(svc, "staff"))[-2:]
    assert created.startswith("volkova: operator"), "who was added, by whom (staff_id)"
    assert "должность: «консультант» → «главный консультант»" in changed
    assert "роль: «оператор» → «специалист»" in changed and "фамилия" not in changed

    await log_in(client, "volkova", password.group(1))
    assert (await client.get("/panel", allow_redirects=False)).status == 200


async def test_duplicate_login_and_extension_are_refused_in_russian(
    svc: Services, client: TestClient
) -> None:
    csrf = await log_in(client, "orlov")
    department = str(await _department_id(svc))
    form = {**NEW, "department_id": department, "_csrf": csrf}
    taken = await client.post("/panel/admin/staff", data={**form, "extension": "1001"})
    assert taken.status == 409
    assert "Внутренний номер 1001 уже закреплён за сотрудником Иванова А. П." in (
        await taken.text())
    unknown = await client.post("/panel/admin/staff", data={**form, "extension": "1099"})
    assert unknown.status == 400 and "Телефона 1099 нет среди телефонов" in (
        await unknown.text())
    login = await client.post("/panel/admin/staff", data={**form, "login": "petrov",
                                                           "extension": ""})
    assert login.status == 409 and "Логин «petrov» уже занят" in await login.text()
    petrov = await _staff(svc, "petrov")
    moved = await client.post(f"/panel/admin/staff/{petrov.id}/edit", data={
        "surname": "Петров", "first_name": "Сергей", "role": "operator",
        "department_id": str(petrov.department_id), "extension": "1001", "_csrf": csrf})
    assert moved.status == 409 and "уже закреплён" in await moved.text()
    assert (await _staff(svc, "petrov")).extension == "1002", "nothing changed"
    async with svc.sessions() as s:
        assert await s.scalar(select(Staff).where(Staff.login == "volkova")) is None


async def test_disabling_and_a_new_password_end_the_employees_sessions(
    svc: Services, client: TestClient
) -> None:
    from aiohttp.test_utils import TestServer

    from web.app import init_app

    petrov = await _staff(svc, "petrov")
    async with TestClient(TestServer(init_app(svc))) as operator:
        await log_in(operator, "petrov")
        csrf = await log_in(client, "orlov")
        reset = await client.post(f"/panel/admin/staff/{petrov.id}/password",
                                  data={"_csrf": csrf})
        assert reset.status == 200 and "Новый пароль" in await reset.text()
        assert (await operator.get("/panel", allow_redirects=False)).status == 303
        await log_in(operator, "ivanova")
        ivanova = await _staff(svc, "ivanova")
        off = await client.post(f"/panel/admin/staff/{ivanova.id}/disable",
                                data={"_csrf": csrf}, allow_redirects=False)
        assert off.status == 303
        gone = await operator.get("/panel/workspace", allow_redirects=False)
        assert gone.status == 303 and gone.headers["Location"].startswith("/login")
        again = await operator.post("/login", data={"login": "ivanova",
                                                    "password": DEMO_PASSWORD})
        assert again.status == 401
    me = await _staff(svc, "orlov")
    self_off = await client.post(f"/panel/admin/staff/{me.id}/disable", data={"_csrf": csrf})
    assert self_off.status == 400 and "Свою учётную запись отключить нельзя" in (
        await self_off.text())
    assert any("сеансов завершено: 1" in d for d in await _audit_details(svc, "staff"))


async def test_a_non_administrator_is_refused_and_audited_and_csrf_is_required(
    svc: Services, client: TestClient
) -> None:
    csrf = await log_in(client, "smirnova")
    department = str(await _department_id(svc))
    for path in ("/panel/admin/staff", "/panel/admin/departments", "/panel/admin/scripts"):
        assert (await client.get(path)).status == 403
    refused = await client.post("/panel/admin/staff", data={
        **NEW, "department_id": department, "_csrf": csrf})
    assert refused.status == 403
    assert ("refused", "staff", "role: POST /panel/admin/staff") in await audit_rows(svc)
    admin_csrf = await log_in(client, "orlov")
    assert admin_csrf
    forged = await client.post("/panel/admin/staff", data={**NEW, "department_id":
                                                            department})
    assert forged.status == 403 and "CSRF" in await forged.text()
    async with svc.sessions() as s:
        assert await s.scalar(select(Staff).where(Staff.login == "volkova")) is None
    assert "Администрирование" in await (await client.get("/panel")).text()
    for path in ("/panel/admin", "/panel/admin/departments", "/panel/admin/scripts",
                 "/panel/admin/officials"):
        assert (await client.get(path)).status == 200, path
    page = await (await client.get("/panel/admin/staff")).text()
    assert "Смирнова Ольга Александровна" in page and 'id="staff-new"' in page


async def test_departments_get_a_section_heads_and_editors(svc: Services,
                                                           client: TestClient) -> None:
    csrf = await log_in(client, "orlov")
    made = await client.post("/panel/admin/departments", data={
        "name": "Отдел опеки", "short_name": "Опека", "_csrf": csrf}, allow_redirects=False)
    assert made.status == 303
    again = await client.post("/panel/admin/departments", data={
        "name": "Отдел опеки", "_csrf": csrf})
    assert again.status == 409 and "«Отдел опеки» уже есть" in await again.text()
    nameless = await client.post("/panel/admin/departments", data={
        "name": " ", "short_name": "Без имени", "_csrf": csrf})
    assert nameless.status == 400 and "Укажите название подразделения" in (
        await nameless.text())
    opeka = await _department_id(svc, "Опека")
    async with svc.sessions() as s:
        section = await s.scalar(select(KbSection).where(KbSection.department_id == opeka))
    assert section is not None and section.title == "База знаний: Опека"

    kuznetsov, sidorova = await _staff(svc, "kuznetsov"), await _staff(svc, "sidorova")
    social = kuznetsov.department_id
    page = await (await client.get("/panel/admin/departments")).text()
    assert "Руководитель: Кузнецов О. Н." in page
    assert re.search(r"<label>Сотрудник подразделения\s*<select name=\"staff_id\">", page)
    named = await client.post(f"/panel/admin/departments/{social}/editor", data={
        "staff_id": str(kuznetsov.id), "editor": "1", "_csrf": csrf}, allow_redirects=False)
    assert named.status == 303
    outsider = await client.post(f"/panel/admin/departments/{social}/editor", data={
        "staff_id": str(sidorova.id), "editor": "1", "_csrf": csrf})
    assert outsider.status == 400 and "только сотрудник подразделения" in (
        await outsider.text())
    async with svc.sessions() as s:
        editors = list(await s.scalars(select(KbSectionEditor.staff_id)))
    assert kuznetsov.id in editors and sidorova.id not in editors
    assert "редактор: — → «kuznetsov»" in (await _audit_details(svc, "kb_section"))[-1]


async def test_scripts_are_articles_with_a_key_and_are_heard_at_once(
    svc: Services, client: TestClient
) -> None:
    """R-H3: the greeting is a knowledge-base article with its key; saved in the panel it
    is rendered and handed to the flows by this process at once."""
    csrf = await log_in(client, "orlov")
    text = "Здравствуйте! Горячая линия министерства, новая редакция."
    saved = await client.post("/panel/admin/scripts", data={
        "key": "script.greeting", "text": text, "_csrf": csrf}, allow_redirects=False)
    assert saved.status == 303
    assert svc.scripts["script.greeting"] == text
    assert svc.prompts.cached(text, personal=False) is not None, "rendered ahead of calls"
    async with svc.sessions() as s:
        article = await s.scalar(select(KbArticle).where(KbArticle.key == "script.greeting"))
    assert article is not None and article.body == text and article.version == 2
    assert await kb.refresh_scripts(svc) is False, "nothing new to render"

    greeting = await client.post("/panel/admin/scripts", data={
        "key": "script.operator_greeting", "text": "Добрый день! {org}, {position} {name}.",
        "_csrf": csrf}, allow_redirects=False)
    assert greeting.status == 303
    for key, bad in (("script.operator_greeting", "Здравствуйте, {name.__class__}"),
                     ("script.operator_greeting", "Здравствуйте, {org:>999999999}"),
                     ("script.operator_greeting", "Здравствуйте, {name"),
                     ("script.farewell", "До свидания {org}"),
                     ("script.unknown", "Текст")):
        refused = await client.post("/panel/admin/scripts", data={
            "key": key, "text": bad, "_csrf": csrf})
        assert refused.status == 400 and 'role="alert"' in await refused.text()
    assert "{" not in svc.scripts["script.farewell"], "the refused text is not spoken"
    assert svc.scripts["script.operator_greeting"].startswith("Добрый день! {org}")


async def test_a_script_saved_in_the_panel_is_rendered_by_an_agi_only_process(
    svc: Services, db_url: str, tmp_path: Path
) -> None:
    """``hotline serve --only agi`` beside the panel: the greeting saved by the panel
    (``svc``) is rendered by the FastAGI process on its own, within its refresh period."""
    port = free_port()
    settings = load_settings(environ=hotline_environ(
        HOTLINE_DATABASE__URL=db_url, HOTLINE_AGI__PORT=str(port),
        HOTLINE_TTS__SCRIPTS_REFRESH_SECONDS="0.2",
        HOTLINE_DATABASE__SPOOL_DIR=str(tmp_path / "spool")))
    service = asyncio.create_task(run_service(settings, ["agi"]))
    text = f"Здравствуйте! Горячая линия, выпуск {secrets.randbelow(10**6)}."

    async def listening() -> bool:
        with contextlib.suppress(OSError):
            (await asyncio.open_connection("127.0.0.1", port))[1].close()
            return True
        return service.done()

    try:
        # Started (its first rendering of the scripts done) before the change is made.
        await wait_until(listening, 60, "the agi part listening")
        async with svc.sessions() as s, s.begin():
            orlov = await s.scalar(select(Staff.id).where(Staff.login == "orlov"))
            assert orlov is not None
            await admin.save_script(s, svc.calendar, key="script.greeting", text=text,
                                    staff_id=orlov, now=svc.clock())

        async def rendered() -> bool:
            return service.done() or svc.prompts.cached(text, personal=False) is not None

        await wait_until(rendered, 30, "the agi process rendered the script")
        assert not service.done(), service.exception()
        assert "script.greeting" not in svc.scripts or svc.scripts["script.greeting"] != text
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # what stops `hotline serve`
        await asyncio.wait_for(service, 30)


async def test_a_new_phone_password_is_shown_once_and_kept_for_the_phone(
    svc: Services, client: TestClient
) -> None:
    from ivr.db.models import OperatorPhone

    csrf = await log_in(client, "orlov")
    petrov, smirnova = await _staff(svc, "petrov"), await _staff(svc, "smirnova")
    shown = await client.post(f"/panel/admin/staff/{petrov.id}/phone", data={"_csrf": csrf})
    page = await shown.text()
    found = re.search(r"<dt>Пароль SIP</dt><dd><code>([A-Za-z0-9]+)</code>", page)
    assert shown.status == 200 and found and "показан один раз" in page
    # Whether the phone has it yet, in plain words; the command only as IT's hint.
    assert re.search(r"<dt>Телефонная станция</dt><dd><code>(Телефон уже работает|Пароль "
                     r"сохранён)", page)
    async with svc.sessions() as s:
        kept = await s.scalar(select(OperatorPhone.sip_password).where(
            OperatorPhone.extension == "1002"))
    assert kept == found.group(1)
    assert ("regenerate", "operator_phone", "новый пароль SIP") in await audit_rows(svc)
    none = await client.post(f"/panel/admin/staff/{smirnova.id}/phone", data={"_csrf": csrf})
    assert none.status == 400 and "нет внутреннего номера" in await none.text()
    crafted = await client.post(f"/panel/admin/staff/{smirnova.id}/edit", data={
        "surname": "Смирнова", "first_name": "Ольга", "role": "supervisor",
        "department_id": str(smirnova.department_id), "extension": "1003\r\nAction: Originate",
        "_csrf": csrf})
    assert crafted.status == 400 and "от 2 до 6 цифр" in await crafted.text()


async def test_a_script_edited_as_an_article_keeps_the_script_rules(
    svc: Services, client: TestClient
) -> None:
    """The braces' rule lives where every script is written: a department's editor
    changing ``script.operator_greeting`` as an article (panel or API) is refused too, and
    the workspace fills the greeting without ``str.format`` whatever is stored."""
    from ivr.db.models import ApiToken, ArticleKind
    from web.api import token_hash

    head = await _staff(svc, "kuznetsov")
    async with svc.sessions() as s, s.begin():
        section = await s.scalar(select(KbSection.id).where(
            KbSection.department_id == head.department_id))
        article = KbArticle(section_id=section, kind=ArticleKind.SCRIPT,
                            key="script.operator_greeting", title="Приветствие оператора",
                            body="Здравствуйте! {org}.", version=1)
        s.add_all([article, ApiToken(name="t", token_hash=token_hash("head-t"),
                                     staff_id=head.id)])
    csrf = await log_in(client, "kuznetsov")
    for bad in ("{org:>999999999}", "Здравствуйте, {name", "{name.__class__}"):
        page = await client.post(f"/panel/kb/articles/{article.id}", data={
            "kind": "script", "title": "Приветствие", "body": bad, "_csrf": csrf})
        assert page.status == 400 and "фигурные скобки" in await page.text(), bad
        api = await client.put(f"/api/v1/kb/articles/{article.id}", json={
            "kind": "script", "title": "Приветствие", "body": bad},
            headers={"Authorization": "Bearer head-t"})
        assert api.status == 400, bad
    async with svc.sessions() as s:
        assert (await s.get(KbArticle, article.id)).body == "Здравствуйте! {org}."  # type: ignore[union-attr]
    fine = await client.post(f"/panel/kb/articles/{article.id}", data={
        "kind": "script", "title": "Приветствие", "body": "Добрый день! {org}, {name}.",
        "_csrf": csrf}, allow_redirects=False)
    assert fine.status == 303
    values = {"org": "Министерство", "name": "Анна", "position": "консультант"}
    assert kb.fill_greeting("{org:>999999999}{name}!", values) == "Анна!"
    assert kb.fill_greeting("Здравствуйте, {name", values).startswith("Здравствуйте! Министерство")
    assert kb.fill_greeting("{org}, {position} {name}", values) == \
        "Министерство, консультант Анна"


class QueueLink:
    """Just enough of the AMI link for a phone leaving the queues: the removals asked; one
    queue the phone is not in."""

    def __init__(self) -> None:
        self.removed: list[tuple[str, str]] = []
        self.connected = asyncio.Event()
        self.connected.set()

    def subscribe(self, _event: str, _handler: object) -> None:
        pass

    async def queue_remove(self, queue: str, interface: str) -> None:
        from ivr.ami import AMIActionError

        self.removed.append((queue, interface))
        if len(self.removed) == 1:
            raise AMIActionError("QueueRemove", "Unable to remove interface: Not there")


async def _sip_password(svc: Services, extension: str) -> str | None:
    from ivr.db.models import OperatorPhone

    async with svc.sessions() as s:
        return await s.scalar(select(OperatorPhone.sip_password).where(
            OperatorPhone.extension == extension))


async def test_a_disabled_or_moved_employees_phone_stops_working(
    svc: Services, client: TestClient
) -> None:
    """Disabling an employee, or giving them another extension, replaces the old phone's
    SIP password (its registration is refused from then on) and takes it out of every
    queue, a queue it is not in being no error; the administrator reads so."""
    from ivr.services import phones
    from web.workspace import HUB

    assert client.app is not None
    client.app[HUB].ami = link = QueueLink()   # type: ignore[assignment]
    async with svc.sessions() as s, s.begin():
        old = await phones.ensure_passwords(s, ["1001", "1002"])
    queues = [q.name for q in (await svc.menu.fresh(svc)).queues]
    dial = svc.settings.asterisk.operator_dial
    csrf = await log_in(client, "orlov")
    ivanova, petrov = await _staff(svc, "ivanova"), await _staff(svc, "petrov")
    off = await client.post(f"/panel/admin/staff/{ivanova.id}/disable", data={"_csrf": csrf})
    page = await off.text()
    assert off.status == 200 and "Пароль прежнего телефона заменён" in page
    assert "выведен из всех очередей" in page
    assert await _sip_password(svc, "1001") not in (None, old["1001"])
    assert link.removed == [(q, dial.format(extension="1001")) for q in queues]
    assert len(queues) > 1
    link.removed.clear()
    moved = await client.post(f"/panel/admin/staff/{petrov.id}/edit", data={
        "surname": "Петров", "first_name": "Сергей", "role": "operator",
        "department_id": str(petrov.department_id), "extension": "", "_csrf": csrf})
    assert moved.status == 200 and "Пароль прежнего телефона заменён" in await moved.text()
    assert await _sip_password(svc, "1002") not in (None, old["1002"])
    assert [i for _, i in link.removed] == [dial.format(extension="1002")] * len(queues)
    from ivr.db.models import ApiToken
    from web.api import token_hash

    async with svc.sessions() as s, s.begin():
        s.add(ApiToken(name="t", token_hash=token_hash("admin-p"),
                       staff_id=(await _staff(svc, "orlov")).id))
    sidorova = await _staff(svc, "sidorova")
    by_api = await client.post(f"/api/v1/admin/staff/{sidorova.id}/disable",
                               headers={"Authorization": "Bearer admin-p"})
    assert (await by_api.json())["phone_released"] == "later"   # the reload is off here
    regenerated = [a for a, kind, _ in await audit_rows(svc) if kind == "operator_phone"]
    assert regenerated == ["regenerate"] * 3


async def test_admin_pages_show_only_their_own_notes_and_audit_the_staff_lists(
    svc: Services, client: TestClient
) -> None:
    """A crafted link cannot put its own text on the IVR setup pages (only a note this
    panel signed is shown); the lists of employees are views of personal data, audited."""
    from ivr.db.models import ApiToken
    from web.api import token_hash

    csrf = await log_in(client, "orlov")
    forged = "Система обновлена: позвоните администратору по номеру 8-900-000-00-00"
    for kind in ("error", "done", "warning"):
        page = await client.get(f"/panel/admin/ivr?{kind}={forged}&{kind}_mark=0")
        assert page.status == 200 and "позвоните администратору" not in await page.text()
    refused = await client.post("/panel/admin/ivr/topics", allow_redirects=False, data={
        "_csrf": csrf, "digit": "0", "code": "x", "title": "Пенсии", "action": "queue"})
    assert refused.status == 422
    assert "Кнопка пункта меню: цифра от 1 до 9" in await refused.text()

    orlov = await _staff(svc, "orlov")
    async with svc.sessions() as s, s.begin():
        s.add(ApiToken(name="t", token_hash=token_hash("admin-t"), staff_id=orlov.id))
    assert (await client.get("/panel/admin/staff")).status == 200
    listed = await client.get("/api/v1/admin/staff", headers={"Authorization": "Bearer admin-t"})
    assert listed.status == 200
    views = [d for a, kind, d in await audit_rows(svc) if (a, kind) == ("view", "staff")]
    assert views[0] == "список" and views[1].startswith("список (API)")
