"""Does a training dataset fit the training method? Rows read one at a time (JSONL streamed; a JSON array or a
Parquet file read whole, Parquet only where pyarrow is installed), each judged against every method's schema:

* SFT: ``messages`` (roles system/user/assistant/tool, user and assistant alternating, an assistant turn last), or
  ``prompt`` + ``completion``, or plain ``text``;
* DPO and ORPO: ``prompt``, ``chosen``, ``rejected`` (text or message lists), chosen != rejected; without
  ``prompt`` only when chosen and rejected are conversations (the prompt is their shared start);
* KTO: ``prompt``, ``completion`` and a boolean ``label``.

The result names the method the data actually fits when it does not fit the one chosen (field report 004: an
SFT ``messages`` file under DPO), the first errors with their line numbers and the count of each kind, empty and
duplicate rows, and the distribution of token lengths — with the model's tokenizer when one is available locally,
else an approximation it names — and the share of rows longer than the maximum sequence length.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.percentiles import histogram_percentile

__all__ = ["METHODS", "DataReport", "Tokenizer", "check_rows", "load_tokenizer", "read_rows", "row_errors"]

METHODS = ("sft", "dpo", "orpo", "kto")
SPECIFIC_FIRST = ("kto", "dpo", "orpo", "sft")
MAX_LISTED = 10  # errors listed with their line numbers; the rest are counted
MAX_JSON_ARRAY = 256 << 20  # a JSON array is parsed whole: beyond this, JSONL is the way
CHARS_PER_TOKEN = 4  # the approximation when no tokenizer is at hand
MAX_REMEMBERED = 4_000_000  # rows remembered for duplicates (about 300 MB at most): later ones are not compared
ROLES = {"system", "user", "assistant", "tool"}

Tokenizer = Callable[[str], int]


def _text_or_messages(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [] if value.strip() else [f"`{what}` is empty"]
    if isinstance(value, list):
        return _messages(value, what, final_assistant=False)
    return [f"`{what}` is {type(value).__name__}, not text or a message list"]


def _messages(value: Any, what: str = "messages", *, final_assistant: bool = True) -> list[str]:
    if not isinstance(value, list) or not value:
        return [f"`{what}` is not a non-empty list"]
    roles = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or "content" not in m:
            return [f"`{what}[{i}]` is not a {{role, content}} message"]
        if m["role"] not in ROLES:
            return [f"`{what}[{i}]` has role {m['role']!r} (not one of {', '.join(sorted(ROLES))})"]
        roles.append(m["role"])
    turns = [r for r in roles if r in ("user", "assistant")]
    if final_assistant and (not turns or turns[-1] != "assistant"):
        return [f"`{what}` does not end with an assistant turn (nothing to learn)"]
    if final_assistant and turns[0] != "user":
        return [f"`{what}` starts with an assistant turn"]
    if any(a == b for a, b in itertools.pairwise(turns)):
        return [f"`{what}`: user and assistant turns do not alternate"]
    return []


def _sft(row: dict[str, Any]) -> list[str]:
    if "messages" in row:
        return _messages(row["messages"])
    if "prompt" in row or "completion" in row:
        if "prompt" not in row or "completion" not in row:
            return ["`prompt` without `completion` (or the reverse)"]
        return _text_or_messages(row["prompt"], "prompt") + _text_or_messages(row["completion"], "completion")
    if "text" in row:
        return _text_or_messages(row["text"], "text") if isinstance(row["text"], str) else ["`text` is not text"]
    return ["no `messages`, `prompt`/`completion` or `text`"]


def _preference(row: dict[str, Any]) -> list[str]:
    missing = [k for k in ("chosen", "rejected") if k not in row]
    if missing:
        return [f"no `{'`, `'.join(missing)}`"]
    conversations = isinstance(row["chosen"], list) and isinstance(row["rejected"], list)
    if "prompt" not in row and not conversations:
        return ["no `prompt` (and chosen/rejected are not conversations that carry it)"]
    errors = _text_or_messages(row["prompt"], "prompt") if "prompt" in row else []
    errors += _text_or_messages(row["chosen"], "chosen") + _text_or_messages(row["rejected"], "rejected")
    if not errors and row["chosen"] == row["rejected"]:
        errors.append("`chosen` equals `rejected` (no preference to learn)")
    return errors


def _kto(row: dict[str, Any]) -> list[str]:
    missing = [k for k in ("prompt", "completion", "label") if k not in row]
    if missing:
        return [f"no `{'`, `'.join(missing)}`"]
    errors = _text_or_messages(row["prompt"], "prompt") + _text_or_messages(row["completion"], "completion")
    if not isinstance(row["label"], bool):
        errors.append(f"`label` is {row['label']!r}, not true/false")
    return errors


_SCHEMAS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "sft": _sft,
    "dpo": _preference,
    "orpo": _preference,
    "kto": _kto,
}


def row_errors(row: Any, method: str) -> list[str]:
    """What keeps one row from training under ``method`` (empty: it fits)."""
    if not isinstance(row, dict):
        return [f"a row is {type(row).__name__}, not an object"]
    return _SCHEMAS[method](row)


def _row_text(row: Any) -> str:
    """The text a row trains on, for its token length (the longest side of a preference pair)."""
    if isinstance(row, str):
        return row
    if isinstance(row, list):
        return "\n".join(_row_text(m.get("content", "")) if isinstance(m, dict) else _row_text(m) for m in row)
    if not isinstance(row, dict):
        return ""
    prompt = _row_text(row.get("prompt", ""))
    if "chosen" in row or "rejected" in row:
        return prompt + max(_row_text(row.get("chosen", "")), _row_text(row.get("rejected", "")), key=len)
    return "\n".join(_row_text(row[k]) for k in ("messages", "prompt", "completion", "text") if k in row)


@dataclass(slots=True)
class DataReport:
    method: str
    rows: int = 0
    fitting: int = 0
    empty: int = 0
    duplicates: int = 0
    unreadable: int = 0  # lines that are not JSON
    first_errors: list[str] = field(default_factory=list)  # "line 7: no `chosen`, `rejected`"
    error_counts: Counter[str] = field(default_factory=Counter)
    fits: dict[str, int] = field(default_factory=dict)  # method -> rows that fit it
    lengths: Counter[int] = field(default_factory=Counter)  # tokens -> rows: bounded whatever the row count
    tokenizer: str = ""
    max_seq_length: int = 0

    @property
    def fitting_methods(self) -> list[str]:
        """Other methods every readable row fits, most specific first (KTO rows also read as prompt/completion
        SFT), when the chosen method does not fit them all."""
        readable = self.rows - self.empty - self.unreadable
        if self.fitting == readable or not readable:
            return []
        return [m for m in SPECIFIC_FIRST if m != self.method and self.fits.get(m) == readable]

    def length_summary(self) -> str:
        if not self.lengths:
            return "no rows to measure"
        over = sum(c for n, c in self.lengths.items() if n > self.max_seq_length)
        share = 100 * self.over_share
        p50, p95 = histogram_percentile(self.lengths, 0.5), histogram_percentile(self.lengths, 0.95)
        return (
            f"tokens per row p50 {p50}, p95 {p95}, max {max(self.lengths)} "
            f"({self.tokenizer}); {over} row(s) ({share:.1f}%) over max_seq_length {self.max_seq_length}"
        )

    @property
    def over_share(self) -> float:
        if not self.lengths:
            return 0.0
        return sum(c for n, c in self.lengths.items() if n > self.max_seq_length) / self.lengths.total()


def read_rows(lines: Iterable[bytes], fmt: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row) — the row is ``_Unreadable`` when the line is not JSON, None when blank."""
    if fmt == "jsonl":
        for n, raw in enumerate(lines, 1):
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                yield n, None
                continue
            try:
                yield n, json.loads(text)
            except ValueError as exc:
                yield n, _Unreadable(str(exc))
        return
    parts, size = [], 0
    for raw in lines:
        size += len(raw) + 1
        if size > MAX_JSON_ARRAY:
            yield 1, _Unreadable(f"a JSON file over {MAX_JSON_ARRAY >> 20} MB is not parsed whole: use JSONL")
            return
        parts.append(raw)
    data = b"\n".join(parts)
    try:
        value = json.loads(data)
    except ValueError as exc:
        yield 1, _Unreadable(f"not JSON: {exc}")
        return
    rows = value if isinstance(value, list) else value.get("data") if isinstance(value, dict) else None
    if not isinstance(rows, list):
        yield 1, _Unreadable("a JSON file that is neither a list of rows nor {'data': [...]}")
        return
    yield from enumerate(rows, 1)


def read_parquet(path: Path) -> Iterator[tuple[int, Any]]:
    pq: Any = importlib.import_module("pyarrow.parquet")  # optional: the caller checks that it is installed

    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            n += 1
            yield n, row


@dataclass(frozen=True, slots=True)
class _Unreadable:
    why: str


def check_rows(
    rows: Iterable[tuple[int, Any]], method: str, *, max_seq_length: int, tokenizer: tuple[str, Tokenizer]
) -> DataReport:
    name, count_tokens = tokenizer
    report = DataReport(method, tokenizer=name, max_seq_length=max_seq_length, fits=dict.fromkeys(METHODS, 0))
    seen: set[bytes] = set()
    for n, row in rows:
        report.rows += 1
        if row is None or row == {}:
            report.empty += 1
            _error(report, n, "an empty row")
            continue
        if isinstance(row, _Unreadable):
            report.unreadable += 1
            _error(report, n, f"not JSON ({row.why})")
            continue
        digest = hashlib.blake2b(json.dumps(row, sort_keys=True).encode(), digest_size=8).digest()
        if digest in seen:
            report.duplicates += 1
        elif len(seen) < MAX_REMEMBERED:
            seen.add(digest)
        for m in METHODS:
            errors = row_errors(row, m)
            report.fits[m] += not errors
            if m == method:
                report.fitting += not errors
                for e in errors:
                    _error(report, n, e)
        report.lengths[count_tokens(_row_text(row))] += 1
    return report


def _error(report: DataReport, line: int, error: str) -> None:
    kind = error.split(" (")[0]
    report.error_counts[kind] += 1
    if len(report.first_errors) < MAX_LISTED:
        report.first_errors.append(f"line {line}: {error}")


def load_tokenizer(candidates: list[str | None]) -> tuple[str, Tokenizer]:
    """The first local tokenizer directory that loads (transformers, no download), else the approximation."""
    for path in candidates:
        if not path or not Path(path).is_dir():
            continue
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception:  # transformers missing, or the folder holds no tokenizer: try the next
            continue
        return f"tokenizer {path}", _counter(tok)
    return f"approximation: {CHARS_PER_TOKEN} characters per token, no local tokenizer", _approximate


def _counter(tok: Any) -> Tokenizer:
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def _approximate(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)
