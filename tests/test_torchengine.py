"""The transformers engine on CPU with the tiny config of the real architecture (random weights, made here):
the code the GPU runs, covered in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from harness import extract
from harness.clients.openai import OpenAIClient
from harness.clients.runpod import RunPodClient
from harness.emulator import Emulator
from harness.emulator.engines import GenRequest
from harness.emulator.torchengine import CONFIGS, RANDOM_WEIGHTS_NOTE, ByteTokenizer, TransformersEngine


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("models"))


def test_the_full_size_config_is_qwen2_5_coder_7b() -> None:
    c = CONFIGS["qwen2.5-coder-7b"]
    assert (
        c["hidden_size"],
        c["intermediate_size"],
        c["num_hidden_layers"],
        c["num_attention_heads"],
        c["num_key_value_heads"],
        c["vocab_size"],
        c["rope_theta"],
        c["tie_word_embeddings"],
    ) == (3584, 18944, 28, 28, 4, 152064, 1e6, False)


def test_byte_tokenizer_round_trips_and_never_fails() -> None:
    tok = ByteTokenizer()
    ids = tok.encode("città")
    assert ids[0] == tok.bos and len(ids) == 1 + len("città".encode())
    decode = tok.decoder()
    assert "".join(decode(i) for i in ids[1:]) == "città"
    assert isinstance(decode(151_000), str)  # ids past 255 still decode


async def test_saves_once_loads_from_disk_and_decodes_the_same_with_a_static_cache(model_cache: str) -> None:
    dynamic = TransformersEngine(config="tiny", cache_dir=model_cache, static_cache=False)
    model_dir = Path(dynamic.load_report["model_dir"])
    assert (model_dir / "model.safetensors").exists() and RANDOM_WEIGHTS_NOTE in (
        model_dir / "DEVAI_NOTE.txt"
    ).read_text()
    assert {"import_s", "weights_load_s", "to_device_s", "compile_and_first_token_s"} <= set(dynamic.load_report)
    static = TransformersEngine(config="tiny", cache_dir=model_cache, static_cache=True)
    assert static.load_report["model_dir"] == str(model_dir)  # built once, read from disk after
    req = GenRequest(prompt="def reverse(s):", max_tokens=16)
    a = [d async for d in dynamic.generate(req)]
    b = [d async for d in static.generate(req)]
    assert [d.text for d in a] == [d.text for d in b]  # greedy: the cache must not change the tokens
    assert len(a) == 16 and a[-1].finish_reason == "length" and all(d.finish_reason is None for d in a[:-1])


async def test_through_the_emulator_lifecycle_in_every_era(model_cache: str) -> None:
    worker = {"engine": "transformers", "config": "tiny", "cache_dir": model_cache}
    with Emulator(cold_start=0.0, worker=worker) as emu:
        async with RunPodClient.of(emu) as rp:
            job = await rp.run(
                {"prompt": "def f():", "stream": True, "sampling_params": {"max_tokens": 20}}, timeout=120
            )
        async with OpenAIClient(f"{emu.endpoint_url}/openai/v1", emu.api_key) as oa:
            streamed = await oa.chat([{"role": "user", "content": "hi"}], model="x", max_tokens=12)
        state = emu.state()
    got = extract(job.output)
    assert got.shape == "vllm-native-tokens" and got.usage is not None and got.usage.output_tokens == 20
    assert job.delay_time_ms is not None  # includes the engine load: the cold start
    assert streamed.usage is not None and streamed.usage.output_tokens == 12 and streamed.timing.ttft is not None
    assert any("engine load" in line and "random_weights': True" in line for line in state["workers"][0]["logs"])
