"""Pages in Chromium: what the browser console reports."""

from __future__ import annotations

from playwright.async_api import ConsoleMessage, Page

# How Chromium words a refusal by the Content-Security-Policy in the console.
CSP_REFUSAL = "Content Security Policy"


def _watch(page: Page, keep: str) -> list[str]:
    errors: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if message.type == "error" and keep in message.text:
            errors.append(f"{message.location.get('url')}: {message.text}")

    page.on("console", note)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def console_errors(page: Page) -> list[str]:
    """Every console error of ``page`` from now on, filled in as they come: a refused
    script or style, a resource that failed to load (a 4xx answer too), an uncaught
    exception. A test asserts the list empty at its end."""
    return _watch(page, "")


def csp_violations(page: Page) -> list[str]:
    """Only what the Content-Security-Policy refused, and uncaught exceptions: for pages
    whose flows answer 4xx on purpose (a wrong password, a refused transfer)."""
    return _watch(page, CSP_REFUSAL)
