"""Can the pod download the dataset? What the config gives as the dataset source, judged before a pod bills.

* A local path or ``file://`` URL: the pod has no such file (field report 004: ``wget`` of a local path); the
  content check still reads the local copy.
* An http(s) URL whose host is loopback, private, link-local or unspecified: a pod in a datacenter cannot reach
  it (``allow_local`` lets tests serve datasets from loopback).
* Otherwise a HEAD (a one-byte ranged GET where HEAD is refused, as presigned URLs do) with a short timeout: the
  status, the size and the content type (an HTML page is an error or login page, not a dataset).

:func:`stream_lines` downloads once, for the content check and the checksum together, never holding the file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

__all__ = ["Download", "Source", "Verdict", "classify", "probe_url", "stream_lines"]

CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Source:
    kind: str  # url | local | hub | unsupported
    value: str  # the URL, the local path, the hub id, or the scheme


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # pass | warn | fail | skip
    summary: str
    size: int | None = None


def classify(dataset: str, base: Path) -> Source:
    parts = urlsplit(dataset)
    if parts.scheme in ("http", "https"):
        return Source("url", dataset)
    if parts.scheme == "file":
        return Source("local", parts.path)
    if parts.scheme and len(parts.scheme) > 1:  # s3://, hf://, gs:// (a one-letter scheme is a Windows drive)
        return Source("unsupported", parts.scheme)
    path = Path(dataset).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.exists() and dataset.count("/") == 1 and not dataset.startswith((".", "/")):
        return Source("hub", dataset)  # org/name: a Hugging Face dataset id
    return Source("local", str(path))


def _unreachable_address(host: str) -> str | None:
    """Why a pod cannot reach ``host`` (it resolves to a loopback/private address), or None."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        return f"{host} does not resolve from here ({exc.strerror or exc})"
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        for what in ("loopback", "private", "link_local", "unspecified"):
            if getattr(ip, f"is_{what}"):
                return f"{host} is {ip}, a {what.replace('_', '-')} address: a pod in a datacenter cannot reach it"
    return None


def probe_url(url: str, *, allow_local: bool, timeout: float) -> Verdict:
    host = urlsplit(url).hostname or ""
    why = _unreachable_address(host)
    if why is not None and not (allow_local and "does not resolve" not in why):
        return Verdict("fail", why)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            reply = client.head(url)
            if reply.status_code in (403, 405, 501):  # HEAD refused (presigned URLs sign GET only)
                reply = client.get(url, headers={"Range": "bytes=0-0"})
    except httpx.TimeoutException:
        return Verdict("fail", f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return Verdict("fail", f"cannot connect: {exc}")
    if reply.status_code >= 400:
        return Verdict("fail", f"HTTP {reply.status_code} {reply.reason_phrase}: the pod's download would fail")
    size = _size(reply)
    kind = reply.headers.get("content-type", "unknown type")
    said = f"HTTP {reply.status_code}, {_human(size)}, {kind}" + (" (loopback allowed)" if why else "")
    if kind.startswith("text/html"):
        return Verdict("warn", f"{said}: an HTML page (an error or login page?), not a dataset file", size)
    return Verdict("pass", said, size)


def _size(reply: httpx.Response) -> int | None:
    ranged = reply.headers.get("content-range", "")
    if "/" in ranged and ranged.rsplit("/", 1)[1].isdigit():
        return int(ranged.rsplit("/", 1)[1])
    length = reply.headers.get("content-length")
    return int(length) if length and length.isdigit() and reply.status_code != 206 else None


def _human(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            return f"{size} bytes" if size < 1024 else f"{value:.1f} {unit}"
    return f"{size} bytes"


class Download:
    """What was read of the dataset so far: its sha256 and its size."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0

    def chunks(self, source: Source, *, timeout: float) -> Iterator[bytes]:
        """The dataset's bytes as they arrive, from the URL or the local file (the caller checked it can be had)."""
        for chunk in _raw(source, timeout):
            self.sha256.update(chunk)
            self.size += len(chunk)
            yield chunk


def _raw(source: Source, timeout: float) -> Iterator[bytes]:
    if source.kind == "local":
        with open(source.value, "rb") as f:
            yield from iter(lambda: f.read(CHUNK), b"")
        return
    limits = httpx.Timeout(timeout, read=max(timeout, 60.0))
    with httpx.stream("GET", source.value, timeout=limits, follow_redirects=True) as reply:
        reply.raise_for_status()
        yield from reply.iter_bytes(CHUNK)


def stream_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Lines of a byte stream, never holding more than one line and one chunk."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *whole, rest = rest.split(b"\n")
        yield from whole
    if rest:
        yield rest
