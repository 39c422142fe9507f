"""Can the pod download the dataset? What the config gives as the dataset source, judged before a pod bills.

* A local path or ``file://`` URL: the pod has no such file (field report 004: ``wget`` of a local path); the
  content check still reads the local copy.
* An http(s) URL whose host is loopback, private, link-local or unspecified: a pod in a datacenter cannot reach
  it (``allow_local`` lets tests serve datasets from loopback).
* Otherwise a HEAD (a one-byte ranged GET where HEAD is refused, as presigned URLs do) with a short timeout: the
  status, the size and the content type (an HTML page is an error or login page, not a dataset).

:func:`stream_lines` downloads once, for the content check and the checksum together, never holding the file.
Redirects are followed by hand, each hop's host judged like the first (a public host may redirect to a link-local
metadata address), at most :data:`MAX_HOPS`. A download stops at its :class:`Bounds` — bytes, seconds — and says
so; a line longer than ``Bounds.line_bytes`` ends the read with that said (an endless line is not held).
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

__all__ = ["Bounds", "Download", "LineTooLong", "Source", "Verdict", "classify", "probe_url", "stream_lines"]

CHUNK = 1 << 16
MAX_HOPS = 5
LINE_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class Bounds:
    """How much of a dataset the content check reads (train-check's --max-dataset-mb, --max-rows,
    --max-read-seconds); past one, the check says it read only part."""

    max_bytes: int = 2 << 30
    max_rows: int = 5_000_000
    max_seconds: float = 600.0
    line_bytes: int = LINE_BYTES


class LineTooLong(ValueError):
    """A line past Bounds.line_bytes: no JSONL row is that long; an endless line is not held."""


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
        for what in ("loopback", "link_local", "private", "unspecified"):  # link-local is private too: named first
            if getattr(ip, f"is_{what}"):
                return f"{host} is {ip}, a {what.replace('_', '-')} address: a pod in a datacenter cannot reach it"
    return None


def probe_url(url: str, *, allow_local: bool, timeout: float) -> Verdict:
    why = _refused_host(url, allow_local)
    if why is not None and "allowed" not in why:
        return Verdict("fail", why)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            reply, hops = _follow(client, "HEAD", url, allow_local)
            if reply.status_code in (403, 405, 501):  # HEAD refused (presigned URLs sign GET only)
                reply, hops = _follow(client, "GET", url, allow_local, headers={"Range": "bytes=0-0"})
    except RedirectRefused as exc:
        return Verdict("fail", str(exc))
    except httpx.TimeoutException:
        return Verdict("fail", f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return Verdict("fail", f"cannot connect: {exc}")
    if reply.status_code >= 400:
        return Verdict("fail", f"HTTP {reply.status_code} {reply.reason_phrase}: the pod's download would fail")
    size = _size(reply)
    kind = reply.headers.get("content-type", "unknown type")
    via = f" (via {hops} redirect{'s' if hops > 1 else ''})" if hops else ""
    said = f"HTTP {reply.status_code}, {_human(size)}, {kind}{via}" + (" (loopback allowed)" if why else "")
    if kind.startswith("text/html"):
        return Verdict("warn", f"{said}: an HTML page (an error or login page?), not a dataset file", size)
    return Verdict("pass", said, size)


class RedirectRefused(httpx.HTTPError):
    """A redirect to a host a pod cannot reach (or too many): not followed."""


def _refused_host(url: str, allow_local: bool) -> str | None:
    """Why the pod could not fetch ``url`` (its host is private...), "... allowed" when tests allow loopback."""
    host = urlsplit(url).hostname or ""
    why = _unreachable_address(host)
    if why is not None and allow_local and "loopback" in why:
        return f"{why} (allowed)"
    return why


def _follow(
    client: httpx.Client, method: str, url: str, allow_local: bool, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, int]:
    """The final answer to ``method url`` and how many redirects led there, every hop's host judged."""
    request = client.build_request(method, url, headers=headers)
    for hops in range(MAX_HOPS + 1):
        reply = client.send(request, stream=True)
        reply.close()  # headers are all a probe needs: a redirect's body (or a huge answer) is never read
        if not reply.is_redirect or reply.next_request is None:
            return reply, hops
        request = reply.next_request
        why = _refused_host(str(request.url), allow_local)
        if why is not None and "allowed" not in why:
            raise RedirectRefused(f"redirected to {request.url.host}: {why}; not followed")
    raise RedirectRefused(f"more than {MAX_HOPS} redirects: not followed")


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
    """What was read of the dataset so far: its sha256, its size, and why it stopped early (None: it did not)."""

    def __init__(self, bounds: Bounds | None = None) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.bounds = bounds or Bounds()
        self.stopped: str | None = None

    def chunks(self, source: Source, *, timeout: float, allow_local: bool = False) -> Iterator[bytes]:
        """The dataset's bytes as they arrive, from the URL or the local file (the caller checked it can be had),
        until the end or a bound."""
        deadline = time.monotonic() + self.bounds.max_seconds
        for chunk in _raw(source, timeout, allow_local):
            if self.size + len(chunk) > self.bounds.max_bytes:
                self.stopped = f"the first {self.bounds.max_bytes >> 20} MB were read (--max-dataset-mb)"
                return
            self.sha256.update(chunk)
            self.size += len(chunk)
            yield chunk
            if time.monotonic() > deadline:
                self.stopped = f"{self.bounds.max_seconds:g} s of reading (--max-read-seconds)"
                return


def _raw(source: Source, timeout: float, allow_local: bool) -> Iterator[bytes]:
    if source.kind == "local":
        with open(source.value, "rb") as f:
            yield from iter(lambda: f.read(CHUNK), b"")
        return
    limits = httpx.Timeout(timeout, read=max(timeout, 60.0))
    with httpx.Client(timeout=limits, follow_redirects=False) as client:
        url = source.value
        for _ in range(MAX_HOPS + 1):
            with client.stream("GET", url) as reply:
                if reply.is_redirect and reply.next_request is not None:
                    url = str(reply.next_request.url)
                    why = _refused_host(url, allow_local)
                    if why is not None and "allowed" not in why:
                        raise RedirectRefused(f"redirected to {reply.next_request.url.host}: {why}; not followed")
                    continue
                reply.raise_for_status()
                yield from reply.iter_bytes(CHUNK)
                return
        raise RedirectRefused(f"more than {MAX_HOPS} redirects: not followed")


def stream_lines(chunks: Iterator[bytes], line_bytes: int = LINE_BYTES) -> Iterator[bytes]:
    """Lines of a byte stream, never holding more than one line (at most ``line_bytes``) and one chunk."""
    parts: list[bytes] = []
    held = 0
    for chunk in chunks:
        *whole, last = chunk.split(b"\n")
        if whole:
            yield b"".join([*parts, whole[0]])
            yield from whole[1:]
            parts, held = [], 0
        parts.append(last)
        held += len(last)
        if held > line_bytes:
            raise LineTooLong(f"a line longer than {line_bytes >> 20} MB: no row is that long (is it one file?)")
    if held:
        yield b"".join(parts)
