"""Data hygiene where our data leaves for other programs: CSV cells a spreadsheet will not
run as formulas, and web links a browser follows only to the web (issue 25)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import IO, Any
from urllib.parse import urlsplit

# A spreadsheet reads a cell starting with one of these as a formula (=HYPERLINK(…),
# +…, -…, @SUM(…)); tab and CR hide one behind what looks like blank space.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
WEB_SCHEMES = ("http", "https")


def csv_cell(value: object) -> object:
    """A text cell that would be read as a formula gets a leading apostrophe, which
    spreadsheets show as plain text; numbers and other values pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class SafeCsvWriter:
    """``csv.writer`` whose every text cell goes through :func:`csv_cell`."""

    def __init__(self, out: IO[str], **fmt: Any) -> None:
        self._writer = csv.writer(out, **fmt)

    def writerow(self, row: Iterable[object]) -> Any:
        return self._writer.writerow([csv_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_text(rows: Iterable[Iterable[object]], delimiter: str = ";") -> str:
    out = io.StringIO()
    SafeCsvWriter(out, delimiter=delimiter).writerows(rows)
    return out.getvalue()


class LinkError(ValueError):
    """Phrased for the employee who typed the address."""


def is_web_link(url: str) -> bool:
    """True for an absolute http(s) address with a host and no blank or control
    character: the only kind rendered as a link (javascript:, data: and the like never)."""
    if not url or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in WEB_SCHEMES and bool(parts.hostname)


def web_link(raw: str) -> str:
    """The address to keep for a typed site address: ``sfr.gov.ru`` becomes
    ``https://sfr.gov.ru``; anything but an http(s) address raises :class:`LinkError`."""
    url = raw.strip()
    if url and ":" not in url.split("/", 1)[0] and not url.startswith("/"):
        url = "https://" + url
    if not is_web_link(url):
        raise LinkError("Адрес сайта должен быть веб-адресом, начинающимся с http:// или "
                        "https://, например https://sfr.gov.ru.")
    return url
