"""The audit log's one writer for changes made in a transaction: who, what, and the
values before and after, in the same transaction as the change itself (a refused change
leaves no entry). Views and refusals of the panel go through ``web.auth.audit`` (the
recorder); both land in ``audit_log``."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import AuditEntry

Values = Mapping[str, object]


def _shown(value: object) -> str:
    if value is None or value == "":
        return "—"
    return f"«{getattr(value, 'value', value)}»"


def changes(before: Values | None, after: Values | None) -> str:
    """«поле: «было» → «стало»; …» over the fields either side names; a field that did not
    change is left out. Only ``after``: what was set; only ``before``: what was removed."""
    before, after = before or {}, after or {}
    parts = []
    for field in dict.fromkeys([*before, *after]):
        old, new = before.get(field), after.get(field)
        if field in before and field in after:
            if old != new:
                parts.append(f"{field}: {_shown(old)} → {_shown(new)}")
        else:
            parts.append(f"{field}: {_shown(new if field in after else old)}")
    return "; ".join(parts)


def write(session: AsyncSession, who: int | None, action: str, object_type: str,
          object_id: object, details: str = "", *, before: Values | None = None,
          after: Values | None = None) -> None:
    """One entry; ``before``/``after`` (field → value) are written out as the change."""
    diff = changes(before, after) if before is not None or after is not None else ""
    text = "; ".join(part for part in (details, diff) if part)
    session.add(AuditEntry(staff_id=who, action=action[:40], object_type=object_type[:40],
                           object_id=str(object_id)[:60], details=text[:2000]))
