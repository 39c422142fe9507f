"""Request timing from the kernel's packet timestamps, not from when Python got around to reading.

A load generator that shares its cores with the server (a user testing a local vLLM) is not scheduled when the
bytes arrive: measured against tcpdump, its TTFT came out 14 ms late at one stream and 78 ms late at eight. The
obvious fix, SO_TIMESTAMPNS on the client's own TCP socket, does not hold: TCP merges the segments that queue
while the reader sleeps and the merged buffer carries the NEWEST segment's timestamp (verified here: five events
20 ms apart, read after 200 ms, all stamped with the fifth's arrival). A packet socket stamps every packet as it
passes, whoever reads it when — what tcpdump reads. So a process that may open one (CAP_NET_RAW, e.g. root) times
its own connections from it:

* one AF_PACKET socket per process, drained lazily (its timestamps are taken at arrival; the buffer is made
  large so a starved process loses nothing, and the kernel's drop counter says if it did);
* each connection's sequence numbers tie byte offsets to packets: the request's first byte, each SSE event's last
  byte (reads are cut at event ends so an event's offset is known), the reply's last byte;
* a time that cannot be tied to a packet (dropped, TLS, not captured) falls back to the client's clock and is
  counted, never guessed.

Times are converted to ``time.perf_counter`` (the driver's clock) from CLOCK_REALTIME packet stamps.
"""

from __future__ import annotations

import bisect
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PacketClock", "WireSocket"]

ETH_P_IP = 0x0800
SO_TIMESTAMPNS = 35  # Linux; Python's socket module does not name it
SO_RCVBUFFORCE = 33
PACKET_STATISTICS = 6
SOL_PACKET = 263
BUFFER = 64 << 20
_HEAD = 128  # IPv4 + TCP headers fit; the payload length comes from the IP header, not the read


@dataclass(slots=True)
class _Flow:
    """One connection, seen from the packets: where each side's byte 0 is, and the packets that carried data."""

    local: int
    remote: int
    rx_base: int | None = None  # the server's ISN + 1
    tx_base: int | None = None  # ours
    rx: list[tuple[int, float]] = field(default_factory=list)  # (end offset, perf time), in arrival order
    tx: list[tuple[int, float]] = field(default_factory=list)

    def at(self, side: list[tuple[int, float]], offset: int) -> float | None:
        """When the byte at ``offset`` passed: the first packet whose data ends beyond it."""
        i = bisect.bisect_right(side, offset, key=lambda p: p[0])
        return side[i][1] if i < len(side) else None


class PacketClock:
    """``PacketClock.open()`` -> a clock, or None with ``PacketClock.why_not`` saying why."""

    why_not = ""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._flows: dict[tuple[int, int], _Flow] = {}
        self.fallbacks = 0  # times that came from the client's clock instead
        self.stamped = 0
        self._dropped = 0

    @classmethod
    def open(cls) -> PacketClock | None:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        except (OSError, AttributeError) as exc:  # no CAP_NET_RAW, or not Linux
            cls.why_not = f"no packet socket ({getattr(exc, 'strerror', None) or exc}: needs CAP_NET_RAW on Linux)"
            return None
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, BUFFER)
        except OSError:  # without CAP_NET_ADMIN: the sysctl's limit
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
        return cls(sock)

    def close(self) -> None:
        self._sock.close()

    def watch(self, local_port: int, remote_port: int) -> _Flow:
        flow = _Flow(local_port, remote_port)
        self._flows[(local_port, remote_port)] = flow
        return flow

    def forget(self, flow: _Flow) -> None:
        self._flows.pop((flow.local, flow.remote), None)

    def dropped(self) -> int:
        """Packets the kernel dropped for lack of buffer (their times are lost), in total."""
        raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        self._dropped += int(struct.unpack("II", raw)[1])  # the kernel resets its counters on each read
        return self._dropped

    def counts(self) -> dict[str, int]:
        """For the run's process file: times taken from packets, from the client's clock, and packets dropped."""
        return {"stamped": self.stamped, "fallbacks": self.fallbacks, "dropped": self.dropped()}

    def drain(self) -> None:
        """Read every queued packet; keep those of watched connections."""
        offset = time.time() - time.perf_counter()
        recv = self._sock.recvmsg
        space = socket.CMSG_SPACE(16)
        while True:
            try:
                head, anc, _, _ = recv(_HEAD, space)
            except (BlockingIOError, InterruptedError):
                return
            if len(head) < 40 or head[9] != 6 or not anc:
                continue
            self._packet(head, anc[0][2], offset)

    def _packet(self, head: bytes, stamp: bytes, offset: float) -> None:
        ihl = (head[0] & 15) * 4
        src, dst, seq = struct.unpack_from("!HHI", head, ihl)
        flow, outgoing = self._flows.get((dst, src)), False
        if flow is None:
            flow, outgoing = self._flows.get((src, dst)), True
            if flow is None:
                return
        sec, ns = struct.unpack_from("qq", stamp)
        when = sec + ns / 1e9 - offset
        flags = head[ihl + 13]
        length = struct.unpack_from("!H", head, 2)[0] - ihl - (head[ihl + 12] >> 4) * 4
        if flags & 0x02:  # SYN: byte 0 is the next one
            if outgoing:
                flow.tx_base = seq + 1
            else:
                flow.rx_base = seq + 1
            return
        base, side = (flow.tx_base, flow.tx) if outgoing else (flow.rx_base, flow.rx)
        if length > 0 and base is not None:
            end = (seq - base) % 2**32 + length
            if not side or end > side[-1][0]:  # a retransmission is not a later arrival
                side.append((end, when))

    def time_of(self, flow: _Flow, offset: int, *, sent: bool, fallback: float) -> float:
        """When byte ``offset`` of the connection (ours if ``sent``, else the server's) passed; ``fallback`` (the
        client's clock) when no packet can say."""
        self.drain()
        found = flow.at(flow.tx if sent else flow.rx, offset)
        if found is None:
            self.fallbacks += 1
            return fallback
        self.stamped += 1
        return found

    def trim(self, flow: _Flow, rx_offset: int, tx_offset: int) -> None:
        """Forget packets wholly before these offsets (a keep-alive connection's earlier requests)."""
        for side, keep in ((flow.rx, rx_offset), (flow.tx, tx_offset)):
            i = bisect.bisect_right(side, keep, key=lambda p: p[0])
            del side[: max(0, i - 1)]


class WireSocket:
    """A connected socket whose reads stop at the end of each SSE event (so an event's last byte has a known
    offset) and which counts the bytes each way. Everything else goes to the wrapped socket."""

    def __init__(self, sock: Any, clock: PacketClock) -> None:
        self._sock = sock
        self.clock = clock
        self.flow: _Flow | None = None
        self.received = 0
        self.sent = 0
        self.request_at = 0  # ``sent`` when the current request began
        self.on_send: Any = lambda _: None  # tells the owner which connection the request went on

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def connect(self, address: Any) -> None:
        # Bound first, so the flow is watched before the handshake's packets can be drained by another user.
        self._sock.bind(("::", 0) if self._sock.family == socket.AF_INET6 else ("0.0.0.0", 0))
        self.flow = self.clock.watch(self._sock.getsockname()[1], address[1])
        self._sock.connect(address)

    def sendall(self, data: bytes, *args: Any) -> None:
        self.request_at = self.sent
        self.on_send(self)
        self._sock.sendall(data, *args)
        self.sent += len(data)

    def recv(self, size: int, *args: Any) -> bytes:
        if args:  # a peek or a liveness check: not the stream
            return bytes(self._sock.recv(size, *args))
        peek = bytes(self._sock.recv(size, socket.MSG_PEEK))
        cut = peek.find(b"\n\n")
        data = bytes(self._sock.recv(cut + 2 if cut >= 0 else len(peek) or size))
        self.received += len(data)
        return data

    def close(self) -> None:
        if self.flow is not None:
            self.clock.forget(self.flow)
        self._sock.close()

    def settle(self) -> None:
        """The exchange is over: forget the packets no later lookup can need (a long keep-alive connection would
        otherwise keep every packet of the run)."""
        if self.flow is not None:
            self.clock.trim(self.flow, self.received, self.request_at)

    def request_sent(self, fallback: float) -> float:
        if self.flow is None:
            return fallback
        return self.clock.time_of(self.flow, self.request_at, sent=True, fallback=fallback)

    def last_received(self, fallback: float) -> float:
        """When the last byte read so far arrived."""
        if self.flow is None or not self.received:
            return fallback
        return self.clock.time_of(self.flow, self.received - 1, sent=False, fallback=fallback)
