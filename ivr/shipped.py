"""Secrets shipped in ``config/hotline.toml``: production must not run with any of them.

The shipped file is public (it is in the repository and in every install), so a key whose
value is still the shipped one is no secret. A secret is any key named like one (``secret``,
``password``, ``token``) with a non-empty shipped value; new ones are covered as they are
added to the file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .settings import DEFAULT_CONFIG, ENV_PREFIX, Settings

SECRET_WORDS = ("secret", "password", "token")


def _secret_keys(node: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], str]]:
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _secret_keys(value, (*prefix, key))
        elif isinstance(value, str) and value and any(w in key for w in SECRET_WORDS):
            yield (*prefix, key), value


def _current(settings: Settings, path: tuple[str, ...]) -> object:
    node: object = settings
    for part in path:
        node = getattr(node, part, None)
    return node


def shipped_secrets_in_use(settings: Settings, shipped: Path = DEFAULT_CONFIG) -> list[str]:
    """Dotted keys (``ami.secret``) whose value is still the one shipped in ``shipped``."""
    data = tomllib.loads(shipped.read_text(encoding="utf-8"))
    return [".".join(path) for path, value in _secret_keys(data)
            if _current(settings, path) == value]


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace(".", "__")


def production_refusal(settings: Settings) -> str | None:
    """The one line ``hotline serve`` prints when it must not start, else None."""
    if settings.environment != "production":
        return None
    keys = shipped_secrets_in_use(settings)
    if keys:
        names = ", ".join(env_name(k) for k in keys)
        if len(keys) == 1:
            return (f"refusing to start in production: {keys[0]} is the shipped value; "
                    f"set {names}")
        return (f"refusing to start in production: {', '.join(keys)} are the shipped values; "
                f"set {names}")
    if settings.asterisk.load_test_contexts:
        # The test contexts take unauthenticated calls into the hotline and originate at will.
        return ("refusing to start in production: asterisk.load_test_contexts is on; set "
                + env_name("asterisk.load_test_contexts") + "=false")
    return None
