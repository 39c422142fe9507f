"""One scrubber in front of every output: the secret values in play, in every form a text can carry them (no I/O).

A key an endpoint echoes back reaches us in whatever form its path gave it: as it is (an error message), JSON-escaped
(inside a job's ``error`` string), URL-encoded (a query string, a redirect), HTML-escaped (a page), or base64 (a
token, a header dump, a cassette's binary body) — and base64 of a text that holds the key somewhere depends on where
it starts, so each of the three alignments is a form of its own (only the characters that depend on the key alone).

The process keeps one registry (:func:`register`): every client registers the key it was given, the command line and
the pytest plugin the environment's key-like variables, the emulator its own keys. :func:`scrub` replaces every known
form with ``***``; printing, report, record and cassette writers all call it.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
import urllib.parse
from collections.abc import Iterable, Mapping

__all__ = ["MASK", "Redactor", "forms", "register", "registered", "scrub", "scrub_bytes", "secrets_in"]

MASK = "***"
_MIN_SECRET = 4  # shorter values are not secrets worth masking everywhere (and would mask ordinary text)
_MIN_DERIVED = 8  # an encoded fragment shorter than this could be ordinary text
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD)$")
_PREFIX = 12  # a text cut short (a table cell, a capped read) still masks a key's first characters


def _cut_forms(secret: str) -> str:
    """A pattern for ``secret`` cut anywhere after its first ``_PREFIX`` characters (nested optional groups: one
    pass, no backtracking blow-up)."""
    if len(secret) <= _PREFIX:
        return re.escape(secret)
    tail = ""
    for ch in reversed(secret[_PREFIX:]):
        tail = f"(?:{re.escape(ch)}{tail})?"
    return re.escape(secret[:_PREFIX]) + tail


def forms(secret: str) -> set[str]:
    """Every form of ``secret`` worth masking: plain, JSON/Python-escaped, URL-encoded, HTML-escaped, base64
    (standard and URL-safe, each of the three alignments a secret can start at inside a longer text)."""
    if len(secret) < _MIN_SECRET:
        return set()
    out = {secret}
    if len(secret) < _MIN_DERIVED:
        return out
    out |= {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1], repr(secret)[1:-1]}
    out |= {urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret), urllib.parse.quote_plus(secret)}
    out |= {html.escape(secret), html.escape(secret, quote=False)}
    raw = secret.encode("utf-8")
    for pad in range(3):
        whole = (pad + len(raw)) // 3 * 4  # characters of the groups that are complete
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * pad + raw).decode("ascii")
            fragment = text[4 if pad else 0 : whole]  # a group shared with the text before is not the key's alone
            if len(fragment) >= _MIN_DERIVED:
                out.add(fragment)
    return {f for f in out if len(f) >= _MIN_SECRET}


def secrets_in(env: Mapping[str, str], names: Iterable[str] = ()) -> tuple[str, ...]:
    """Values of an environment's key-like variables (RUNPOD_API_KEY, OPENAI_API_KEY, HF_TOKEN, ...) and of the
    variables ``names`` lists (``--api-key-env``'s, whatever it is called)."""
    wanted = set(names)
    return tuple(v for k, v in env.items() if v and (k in wanted or _SECRET_ENV.search(k.upper())))


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._text: re.Pattern[str] | None = None
        self._bytes: re.Pattern[bytes] | None = None

    def add(self, values: Iterable[str | None]) -> None:
        new = {v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET} - self._secrets
        if not new:
            return
        with self._lock:
            self._secrets |= new
            every = sorted({f for s in self._secrets for f in forms(s)}, key=len, reverse=True)
            cut = [_cut_forms(s) for s in sorted(self._secrets, key=len, reverse=True)]
            self._text = re.compile("|".join([*map(re.escape, every), *cut]))
            self._bytes = re.compile("|".join([*map(re.escape, every), *cut]).encode("utf-8"))

    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def text(self, value: str) -> str:
        pattern = self._text
        return value if pattern is None or not value else pattern.sub(MASK, value)

    def data(self, value: bytes) -> bytes:
        pattern = self._bytes
        return value if pattern is None or not value else pattern.sub(MASK.encode(), value)


_REGISTRY = _Registry()


def register(*values: str | None) -> None:
    """Known from now on, to every scrub in this process (None and short values are ignored)."""
    _REGISTRY.add(values)


def registered() -> frozenset[str]:
    return _REGISTRY.secrets()


def scrub(text: str) -> str:
    """``text`` with every registered secret, in every form, replaced by ``***``."""
    return _REGISTRY.text(text)


def scrub_bytes(data: bytes) -> bytes:
    return _REGISTRY.data(data)


class Redactor:
    """A scrubber that knows ``secrets`` (registered for the whole process too: wherever this text goes next, the
    other writers know them)."""

    def __init__(self, *secrets: str | None) -> None:
        register(*secrets)

    def __call__(self, text: str) -> str:
        return scrub(text)
