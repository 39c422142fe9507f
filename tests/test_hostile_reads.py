"""The pieces that make a hostile endpoint harmless, each on its own and fast: the client against tests/hostile.py
(one deadline, capped and bounded-decoded reads, redirects refused), the scrubber, the writers, the record reader
and the emulator's body limits. The whole ``check`` under each attack, measured, is tests/test_hostile.py."""

from __future__ import annotations

import base64
import io
import json
import math
import time
import urllib.parse
import zlib
from pathlib import Path

import httpx
import pytest

from harness import OpenAIClient, Redirected, ReplyTooLarge, RequestTimeout, StreamProtocolError, StreamStalled
from harness.core.errors import ConfigError, OutputError, ProtocolError
from harness.core.limits import BodyDecoder
from harness.core.percentiles import percentiles
from harness.core.scrub import register, scrub, scrub_bytes
from harness.emulator import Emulator
from harness.load.records import iter_records
from harness.reporting.files import claim_run_dir, write_text
from harness.reporting.stdio import ScrubbedStream
from tests.hostile import MODEL, hostile

SECRET = "sk-unit-planted-0a1b2c3d4e5f6a7b"


async def _chat(mode: str, *, stream: bool, timeout: float = 1.0) -> float:
    with hostile(mode) as server:
        async with OpenAIClient(f"{server.url}/v1", "k-unit-123456", request_timeout=timeout) as oa:
            t0 = time.monotonic()
            try:
                await oa.chat([{"role": "user", "content": "hi"}], model=MODEL, stream=stream)
            finally:
                elapsed = time.monotonic() - t0
    return elapsed


@pytest.mark.parametrize(("mode", "stream"), [("drip", False), ("keepalive", True), ("silent", False)])
async def test_one_deadline_holds_against_drips_keepalives_and_silence(mode: str, stream: bool) -> None:
    t0 = time.monotonic()
    with pytest.raises((RequestTimeout, StreamStalled)):
        await _chat(mode, stream=stream)
    assert time.monotonic() - t0 < 4  # a 1 s deadline, retries included (a drip once meant 30 s per byte)


@pytest.mark.parametrize(("mode", "stream"), [("huge", False), ("gzip", False), ("longline", True)])
async def test_reads_stop_at_their_cap(mode: str, stream: bool) -> None:
    with pytest.raises((ReplyTooLarge, StreamProtocolError), match=r"cap|longer than"):
        await _chat(mode, stream=stream, timeout=20)


async def test_a_redirect_is_reported_with_where_it_points_and_not_followed() -> None:
    with pytest.raises(Redirected, match=r"169\.254\.169\.254"):
        await _chat("redirect", stream=False)


def test_the_decoder_inflates_under_the_cap_and_refuses_unasked_encodings() -> None:
    bomb = zlib.compress(bytes(8 << 20))
    decoder = BodyDecoder("deflate", 1 << 20)
    with pytest.raises(ReplyTooLarge):
        decoder.feed(bomb)
    assert BodyDecoder("gzip", 100).feed(zlib.compressobj(wbits=31).compress(b"x" * 50) + b"") == b""
    with pytest.raises(ProtocolError, match="br"):
        BodyDecoder("br", 100)


def test_every_form_of_a_key_is_scrubbed_and_a_cut_key_too() -> None:
    register(SECRET)
    plain = f"Bearer {SECRET}"
    texts = [
        plain,
        json.dumps({"e": plain}),
        urllib.parse.quote(plain, safe=""),
        base64.b64encode(plain.encode()).decode(),
        base64.urlsafe_b64encode(b"xy" + plain.encode()).decode(),
        f"<td>{SECRET[:20]}</td>",  # a table cell cut short
    ]
    for text in texts:
        assert SECRET[:12] not in scrub(text) and base64.b64encode(SECRET.encode()).decode()[4:16] not in scrub(text)
    assert SECRET.encode() not in scrub_bytes(plain.encode())
    assert scrub("an ordinary line") == "an ordinary line"


def test_the_terminal_is_scrubbed_a_whole_line_at_a_time() -> None:
    register(SECRET)
    out = io.StringIO()
    stream = ScrubbedStream(out)
    stream.write(f"key: {SECRET[:10]}")  # a key split across two writes
    stream.write(f"{SECRET[10:]}\n")
    stream.flush()
    assert SECRET[:12] not in out.getvalue() and "key: ***" in out.getvalue()


def test_files_are_written_whole_scrubbed_or_it_is_one_error_naming_the_folder(tmp_path: Path) -> None:
    register(SECRET)
    path = write_text(tmp_path / "r.json", f'{{"k": "{SECRET}"}}')
    assert SECRET not in path.read_text() and [p.name for p in tmp_path.iterdir()] == ["r.json"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write to"):
        write_text(blocker / "r.json", "x")


def test_a_run_folder_holding_another_run_is_refused_never_emptied(tmp_path: Path) -> None:
    old = tmp_path / "run"
    old.mkdir()
    (old / "records-1.jsonl").write_text("{}\n")
    with pytest.raises(ConfigError, match="holds another run"):
        claim_run_dir(str(old), "unused")
    assert (old / "records-1.jsonl").read_text() == "{}\n"
    first = claim_run_dir(None, str(tmp_path / "check"))
    assert claim_run_dir(None, str(tmp_path / "check")) == Path(f"{first}-2")


def test_a_torn_last_line_is_skipped_and_counted_a_torn_middle_line_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "records-1.jsonl").write_text('{"begun": 0}\n{"seq": 0, "proc')
    torn: dict[Path, int] = {}
    assert list(iter_records(tmp_path, torn=torn)) == [] and list(torn.values()) == [1]
    (tmp_path / "records-1.jsonl").write_text('{"seq": 0, "proc\n{"begun": 1}\n')
    with pytest.raises(ConfigError, match=r"records-1\.jsonl:1"):
        list(iter_records(tmp_path))
    (tmp_path / "records-1.jsonl").write_text('{"begun": "abc"}\n')
    with pytest.raises(ConfigError, match="whole number"):
        list(iter_records(tmp_path))


def test_numbers_from_outside_never_overflow_the_statistics() -> None:
    got = percentiles([1e308, 1e308, float("nan"), math.inf, 5.0])
    assert all(v is None or math.isfinite(v) for v in got.values() if isinstance(v, float)), got


@pytest.mark.emulator(cold_start=0.0, max_run_bytes=1000)
async def test_the_emulator_refuses_floods_and_deep_json_while_reading(emulator: Emulator) -> None:
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    async with httpx.AsyncClient(base_url=emulator.endpoint_url, headers=headers, timeout=10) as http:
        deep = b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        assert (await http.post("/run", content=deep[:900] + b"}")).status_code == 400  # malformed
        assert (await http.post("/runsync", content=deep)).status_code in (400, 413)

        async def endless() -> object:
            for _ in range(10_000):  # chunked, no Content-Length: the running count stops it
                yield b" " * 1000

        assert (await http.post("/run", content=endless())).status_code == 413
        nested = b'{"model": "m", "messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        assert (await http.post("/openai/v1/chat/completions", content=nested)).status_code == 413
        small_deep = b'{"model": "m", "x": ' + b"[" * 400 + b"]" * 400 + b"}"
        assert (await http.post("/openai/v1/chat/completions", content=small_deep)).status_code != 500
