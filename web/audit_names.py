"""What the audit log's codes mean, in the words of the people who read the log.

The codes stay in the database (stable, searchable); the page shows these names. A code
without a name is shown as it is, so a new one is never hidden: tests/test_audit_names.py
keeps every code written by the source named.
"""

from __future__ import annotations

ACTIONS = {
    "view": "просмотр", "create": "создание", "update": "изменение", "delete": "удаление",
    "cancel": "отмена", "disable": "отключение", "export": "выгрузка",
    "download": "скачивание", "listen": "прослушивание записи", "spy": "прослушивание звонка",
    "generate": "создание расписания", "regenerate": "новый пароль телефона",
    "revoke": "отзыв токена", "password_set": "новый пароль", "login": "вход",
    "login_failed": "неудачный вход", "login_throttled": "вход закрыт после ошибок",
    "logout": "выход", "csrf_refused": "отказ: форма без защитного кода",
    "journal": "запись в журнал", "kb_editor": "назначение редактора раздела",
    "status": "смена состояния", "to_survey": "перевод на оценку", "transfer": "перевод звонка",
    "transfer_refused": "перевод отклонён", "transfer_unreachable": "перевод: коллега недоступен",
    "refused": "отказано в доступе", "kb_refused": "отказ: чужой раздел базы знаний",
    "listen_refused": "отказ: чужая запись", "download_refused": "отказ: скачивание записи",
    "spy_refused": "отказ: прослушивание звонка", "booking_refused": "отказ: чужая запись на приём",
    "attended": "отметка о явке",
    "no_show": "отметка о неявке", "recording_not_your_call": "отказ: чужая запись",
}

OBJECTS = {
    "agency": "ведомство", "api_token": "токен API", "appeal": "обращение",
    "appeal_list": "список обращений", "appeal_report": "отчёт по обращениям",
    "audit_log": "журнал доступа", "booking": "запись на приём",
    "booking_list": "записи на приём", "calendar_day": "день календаря", "call": "звонок",
    "call_list": "список звонков", "callback": "обратный звонок",
    "callback_list": "обратные звонки", "citizen": "гражданин",
    "citizen_card": "карточка гражданина", "citizen_history": "история гражданина",
    "dashboard": "показатели", "department": "подразделение", "ivr_queue": "очередь",
    "kb_article": "статья базы знаний", "kb_section": "раздел базы знаний",
    "menu_topic": "пункт меню", "metrics": "метрики", "notification": "уведомление",
    "official": "должностное лицо", "operator_phone": "телефон оператора",
    "plain_language": "словарь простого языка", "queue_skill": "очереди оператора",
    "rating_list": "оценки", "reception_exception": "исключение в приёме",
    "reception_schedule": "расписание приёма", "reception_slot": "время приёма",
    "recording": "запись разговора", "recording_list": "записи разговоров",
    "request": "запрос", "script": "текст для звонящих", "staff": "сотрудник",
}


def action_name(code: str) -> str:
    return ACTIONS.get(code, code)


def object_name(code: str) -> str:
    return OBJECTS.get(code, code)
