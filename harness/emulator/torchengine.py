"""The ``transformers`` engine: a real model forward pass behind the reference worker (GPU stand-in).

No weights can be downloaded here, so unless ``model_dir`` points at a local model, the engine builds a
model of a real architecture with RANDOM weights — Qwen2.5-Coder-7B's shape (Qwen2, hidden 3584,
intermediate 18944, 28 layers, 28 heads, 4 KV heads, vocab 152064, rope_theta 1e6, untied embeddings) —
saves it once to local disk (so a cold start really reads weights from disk) and uses a byte-level
tokenizer it builds itself. The compute and memory traffic are real; the text is meaningless, and every
result made this way says so (``RANDOM_WEIGHTS_NOTE``). ``config: tiny`` is the same architecture, small,
for CPU tests.

Cold start pieces are timed (``load_report``): import, weights from disk, to device, compile, first token.
Decode on CUDA uses a static KV cache and ``torch.compile`` (eager HF generate is CPU-bound: 16 tok/s
per stream on an H100 in the issue's measurement); compile and a warm-up token are paid at load (the cold
start), never per request. Jobs run one at a time per engine (no batching yet).
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import inspect
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.emulator.engines import Delta, GenRequest

__all__ = ["CONFIGS", "RANDOM_WEIGHTS_NOTE", "ByteTokenizer", "TransformersEngine"]

RANDOM_WEIGHTS_NOTE = (
    "random weights of the Qwen2.5-Coder-7B architecture: real compute and memory traffic, "
    "meaningless text (no weights can be downloaded here)"
)
CONFIGS: dict[str, dict[str, Any]] = {
    "qwen2.5-coder-7b": {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "rope_theta": 1_000_000.0,
        "tie_word_embeddings": False,
        "max_position_embeddings": 32768,
    },
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 512,
        "rope_theta": 1_000_000.0,
        "tie_word_embeddings": False,
        "max_position_embeddings": 2048,
    },
}


class ByteTokenizer:
    """Bytes are tokens 0-255 (ids past 255 decode to ``id % 256``): no vocabulary to download."""

    bos = 256

    def encode(self, text: str) -> list[int]:
        return [self.bos, *text.encode()]

    def decoder(self) -> Any:
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda token: dec.decode(bytes([token % 256]))


class TransformersEngine:
    name = "transformers"

    def __init__(
        self,
        *,
        model_dir: str | None = None,
        config: str = "qwen2.5-coder-7b",
        cache_dir: str | None = None,
        device: str | None = None,
        compile: bool | None = None,
        static_cache: bool | None = None,
        max_context: int = 4096,
        seed: int = 0,
    ) -> None:
        t0 = time.perf_counter()
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise ConfigError(f"engine 'transformers' needs torch and transformers: {exc}") from None
        self.load_report: dict[str, Any] = {"import_s": time.perf_counter() - t0}
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.compile = self.device.startswith("cuda") if compile is None else compile
        self.static_cache = self.compile if static_cache is None else static_cache
        self.random_weights = model_dir is None
        self.note = RANDOM_WEIGHTS_NOTE if self.random_weights else f"weights from {model_dir}"
        self.tokenizer = ByteTokenizer()
        self.max_context = max_context
        path = Path(model_dir) if model_dir else self._random_model(config, cache_dir, seed, transformers)
        t1 = time.perf_counter()
        self.model: Any = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=self.dtype)
        t2 = time.perf_counter()
        self.model.to(self.device).eval()  # type: ignore[arg-type]  # transformers types .to oddly
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        t3 = time.perf_counter()
        self.load_report.update(
            weights_load_s=t2 - t1,
            to_device_s=t3 - t2,
            model_dir=str(path),
            device=self.device,
            dtype=str(self.dtype),
            random_weights=self.random_weights,
            note=self.note,
        )
        self._forward = self.model.forward
        if self.compile:
            self._forward = torch.compile(self.model.forward, mode="reduce-overhead", fullgraph=False)
        self._lock = asyncio.Lock()
        t4 = time.perf_counter()
        self._warm_up()  # compile and the first token are part of the cold start, not of a request
        self.load_report.update(compile_and_first_token_s=time.perf_counter() - t4, total_s=time.perf_counter() - t0)

    def _random_model(self, config: str, cache_dir: str | None, seed: int, transformers: Any) -> Path:
        if config not in CONFIGS:
            raise ConfigError(f"unknown engine config {config!r}: {', '.join(CONFIGS)}")
        default = str(Path.home() / ".cache" / "devai-harness")
        root = Path(cache_dir or os.environ.get("DEVAI_MODEL_CACHE") or default)
        path = root / f"random-{config}-seed{seed}"
        if (path / "config.json").exists():
            return path
        torch = self.torch
        cfg = transformers.Qwen2Config(**CONFIGS[config], bos_token_id=256, eos_token_id=257)
        torch.manual_seed(seed)
        with torch.device(self.device):  # a 7B model is built where it runs (15 GB of bf16 on a GPU)
            model = transformers.Qwen2ForCausalLM(cfg).to(self.dtype)
        tmp = path.with_suffix(".partial")
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "DEVAI_NOTE.txt").write_text(RANDOM_WEIGHTS_NOTE + "\n", encoding="utf-8")
        tmp.rename(path)
        del model
        return path

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def _static_cache(self, batch: int) -> Any:
        from transformers import StaticCache

        return StaticCache(config=self.model.config, max_cache_len=self.max_context)

    @functools.cached_property
    def _forward_params(self) -> frozenset[str]:
        return frozenset(inspect.signature(self.model.forward).parameters)

    @property
    def _cache_kw(self) -> str:
        """transformers 5.2x renamed ``past_key_values`` to ``cache`` (argument and output field)."""
        return "cache" if "cache" in self._forward_params else "past_key_values"

    def _cache_args(self, cache: Any, positions: Any) -> dict[str, Any]:
        args = {self._cache_kw: cache}
        if "cache_position" in self._forward_params:  # gone in 5.2x: positions follow the cache
            args["cache_position"] = positions
        return args

    def _decode_steps(self, ids: list[int], max_tokens: int) -> Any:
        """Yield token ids one at a time (greedy). Each step may run on another thread, and inference mode
        is per thread, so every step enters it itself (the KV cache is updated in place)."""
        torch = self.torch
        ids = ids[-(self.max_context - max_tokens - 1) :]
        with torch.inference_mode():
            cache = self._static_cache(1) if self.static_cache else None
            out = self.model(
                input_ids=torch.tensor([ids], device=self.device),
                use_cache=True,
                **self._cache_args(cache, torch.arange(len(ids), device=self.device)),
            )
            cache, token = getattr(out, self._cache_kw), int(out.logits[0, -1].argmax())
        n = len(ids)
        for _ in range(max_tokens):
            yield token
            with torch.inference_mode():
                out = self._forward(
                    input_ids=torch.tensor([[token]], device=self.device),
                    use_cache=True,
                    **self._cache_args(cache, torch.tensor([n], device=self.device)),
                )
                cache, token = getattr(out, self._cache_kw), int(out.logits[0, -1].argmax())
            n += 1

    def _warm_up(self) -> None:
        for _ in zip(range(3), self._decode_steps(self.tokenizer.encode("warm up"), 3), strict=False):
            pass
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    async def generate(self, req: GenRequest) -> AsyncIterator[Delta]:
        async with self._lock:  # one job at a time per engine (batching is future work)
            steps = self._decode_steps(self.tokenizer.encode(req.prompt), req.max_tokens)
            decode = self.tokenizer.decoder()
            end = object()
            for i in range(req.max_tokens):
                token = await asyncio.to_thread(next, steps, end)
                if token is end:
                    break
                last = i == req.max_tokens - 1
                text = decode(token)
                for c in range(req.n):
                    yield Delta(c, text, "length" if last else None)
