"""Build a tiny Qwen2 chat model for the system stage's real vLLM server: RANDOM weights of a real architecture
and a byte-level BPE tokenizer trained here on a few lines of text (no weights can be downloaded). Its answers are
gibberish by design; the server, its protocol and its timings are real.

    V/bin/python .ci/tiny_model.py OUT_DIR [--seed N] [--broken-template]
                                                (V: a venv with transformers, tokenizers, torch)

--seed gives other random weights (a different model of the same shape: compare's "two models that differ");
--broken-template writes a chat template that drops the user's message (compare's deliberately broken deploy).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# A real deploy mistake's shape: the template renders the system prompt and forgets the conversation.
BROKEN = (
    "{% for m in messages %}{% if m['role'] == 'system' %}<|im_start|>system\n{{ m['content'] }}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "Review this function and fix the bug in the loop.",
    "The quick brown fox jumps over the lazy dog. Ciao, come stai? Hello, world!",
    "import os\nfor i in range(10):\n    print(i)\n",
    "function sum(xs) { return xs.reduce((a, b) => a + b, 0); }",
]


def tokenizer(template: str) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = template
    return fast


def main(out: Path, seed: int, broken: bool) -> None:
    torch.manual_seed(seed)
    tok = tokenizer(BROKEN if broken else CHATML)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=256,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        torch_dtype="bfloat16",
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    what = f"random weights (seed {seed}), tokenizer trained on the spot by .ci/tiny_model.py"
    (out / "MODEL.txt").write_text(what + ("; chat template BROKEN on purpose\n" if broken else "\n"))
    print(f"tiny model in {out}: vocab {len(tok)}, {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--broken-template", action="store_true")
    args = parser.parse_args()
    main(args.out, args.seed, args.broken_template)
