"""An audit entry as the people who read the log see it: the object by name, the details in
words. The stored entry keeps its codes (stable, searchable); only the page translates them,
so entries written before a writer learnt words read as well as new ones."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ivr.services import audit, menu

from .audit_names import object_name

# Sub-views written as the object id of a list's view (dashboard, callback list, …).
VIEWS = {"operators": "операторы", "today": "сегодня", "week": "7 дней", "month": "30 дней",
         "mine": "мои", "department": "подразделения", "overdue": "просроченные"}
# The fields the IVR administration writes as JSON before/after.
FIELDS = {"digit": "цифра", "code": "код", "title": "название", "action": "действие",
          "queue": "очередь", "agency": "ведомство", "name": "имя очереди",
          "strategy": "порядок вызова", "service_level_seconds": "норматив ответа, с",
          "staff": "сотрудник", "penalty": "приоритет", "day": "дата", "kind": "вид дня",
          "closes_at": "окончание работы", "note": "примечание"}
VALUES: dict[str, Mapping[str, str]] = {"action": menu.ACTIONS, "strategy": menu.STRATEGIES}
# A refusal's reason (the error id of web.errors.PolicyDenied), in words.
REASONS = {
    "role": "недостаточно прав", "address": "доступ с этого адреса закрыт",
    "no_policy": "для адреса не объявлены права", "no_token": "нет токена",
    "token_staff_inactive": "сотрудник токена не работает",
    "appeal_executor": "исполнитель не может подписывать ответ",
    "appeal_not_routed": "обращение ещё не распределено",
    "appeal_other_department": "обращение другого подразделения",
    "appeal_not_your_caller": "обращение не собеседника",
    "booking_not_your_caller": "запись на приём не собеседника",
    "booking_not_yours": "чужая запись на приём",
    "callback_not_yours": "обратный звонок другого сотрудника",
    "callback_other_department": "обратный звонок другого подразделения",
    "card_not_your_call": "карточка не собеседника",
    "citizen_not_your_caller": "гражданин не собеседник",
    "journal_not_your_call": "журнал чужого звонка",
    "kb_editor_not_head": "редакторов назначает руководитель",
    "kb_other_department": "раздел другого подразделения",
    "recording_not_your_call": "запись чужого разговора",
    "survey_not_your_call": "оценка чужого звонка",
}
STATES = {"ready": "готов", "pause": "пауза", "wrapup": "поствызывная обработка",
          "offline": "вышел из очередей"}
REFUSAL = re.compile(r"^([a-z_]+): [A-Z]+ (\S+)$")
SEARCH = re.compile(r"^q=(?P<q>'.*') status=(?P<status>'.*') before='.*': (?P<n>\d+)$")


def object_label(object_type: str, object_id: str, staff_names: Mapping[int, str]) -> str:
    """«сотрудник Иванов И. И.» rather than «сотрудник 5»; a list's sub-view in words."""
    label = object_name(object_type)
    if object_type == "staff" and object_id.isdigit() and int(object_id) in staff_names:
        return f"{label} {staff_names[int(object_id)]}"
    return f"{label} {VIEWS.get(object_id, object_id)}".strip()


def details_text(action: str, object_type: str, details: str,
                 status_names: Mapping[str, str]) -> str:
    """The details column: JSON before/after as changes, searches and refusals in words."""
    if details.startswith("{"):
        return _change(details) or details
    refusal = REFUSAL.match(details)
    if refusal and (action == "refused" or action.endswith("_refused")):
        reason = REASONS.get(refusal[1], "отказ")
        return f"отказано: {reason}; адрес: {refusal[2]}"
    search = SEARCH.match(details)
    if search and object_type == "appeal_list":
        return _search(search, status_names)
    if action == "status" and details in STATES:
        return STATES[details]
    if action == "view" and details.isdecimal():   # a list's view writes how many it showed
        return f"показано: {details}"
    return details


def _change(details: str) -> str:
    try:
        found: Any = json.loads(details)
    except ValueError:
        return ""
    if not isinstance(found, dict) or not {"before", "after"} <= found.keys():
        return ""
    return audit.changes(_in_words(found["before"]), _in_words(found["after"]))


def _in_words(values: object) -> dict[str, object] | None:
    if not isinstance(values, dict):
        return None
    return {FIELDS.get(str(key), str(key)): VALUES.get(str(key), {}).get(str(value), value)
            for key, value in values.items()}


def _search(found: re.Match[str], status_names: Mapping[str, str]) -> str:
    q, status = (found[name][1:-1] for name in ("q", "status"))
    parts = [f"поиск: «{q}»" if q else "поиск: всё"]
    if status:
        parts.append(f"статус: {status_names.get(status, status)}")
    parts.append(f"найдено: {found['n']}")
    return ", ".join(parts)
