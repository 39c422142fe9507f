"""The training deploy ``train-check`` reads: one YAML or JSON file, every key known, every error one line.

method: dpo                      # sft | dpo | orpo | kto
dataset: https://host/data.jsonl # or a mapping: {url, sha256, format: jsonl|json|parquet}
base_model: Qwen/Qwen2.5-Coder-7B-Instruct
tokenizer: ./tokenizer           # optional: a local tokenizer folder for exact token lengths
max_seq_length: 2048
image: runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04
script: train.sh                 # relative to this file
gpu: A100 80GB
gpu_count: 1
price_per_hour: 1.89             # $ per GPU-hour
notice_hours: 1                  # how long a stuck pod bills before someone notices (default 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.core.yamltext import parse_yaml_bytes
from harness.preflight.trainingdata import METHODS

__all__ = ["TrainConfig", "load_config"]

_KEYS = {
    "method",
    "dataset",
    "base_model",
    "tokenizer",
    "max_seq_length",
    "image",
    "script",
    "gpu",
    "gpu_count",
    "price_per_hour",
    "notice_hours",
}
_DATASET_KEYS = {"url", "sha256", "format"}
FORMATS = ("jsonl", "json", "parquet")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    path: Path
    method: str
    dataset: str
    sha256: str | None
    format: str
    base_model: str | None
    tokenizer: str | None
    max_seq_length: int
    image: str | None
    script: Path | None
    gpu: str | None
    gpu_count: int
    price_per_hour: float | None
    notice_hours: float

    @property
    def base(self) -> Path:
        return self.path.parent


def load_config(path: Path) -> TrainConfig:
    if path.is_dir():
        raise ConfigError(f"{path} is a directory: give the training config file (YAML or JSON)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    data = parse_yaml_bytes(raw, str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    if unknown := sorted(set(data) - _KEYS):
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    method = str(data.get("method", "")).lower()
    if method not in METHODS:
        raise ConfigError(f"{path}: method must be one of {', '.join(METHODS)} (got {data.get('method')!r})")
    url, sha256, fmt = _dataset(path, data.get("dataset"))
    script = data.get("script")
    return TrainConfig(
        path=path,
        method=method,
        dataset=url,
        sha256=sha256,
        format=fmt,
        base_model=_text(path, data, "base_model"),
        tokenizer=_text(path, data, "tokenizer"),
        max_seq_length=int(_number(path, data, "max_seq_length", 2048)),
        image=_text(path, data, "image"),
        script=(path.parent / str(script)) if script else None,
        gpu=_text(path, data, "gpu"),
        gpu_count=int(_number(path, data, "gpu_count", 1)),
        price_per_hour=_number(path, data, "price_per_hour", None),
        notice_hours=float(_number(path, data, "notice_hours", 1.0)),
    )


def _dataset(path: Path, value: Any) -> tuple[str, str | None, str]:
    if isinstance(value, dict):
        if unknown := sorted(set(value) - _DATASET_KEYS):
            raise ConfigError(f"{path}: dataset: unknown key(s) {', '.join(unknown)} (known: url, sha256, format)")
        url, sha256, fmt = value.get("url"), value.get("sha256"), value.get("format")
    else:
        url, sha256, fmt = value, None, None
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{path}: dataset is missing (a URL the pod downloads, or a mapping with url:)")
    fmt = str(fmt).lower() if fmt else _format_of(url)
    if fmt not in FORMATS:
        raise ConfigError(f"{path}: dataset format {fmt!r} is not one of {', '.join(FORMATS)}")
    return url.strip(), str(sha256).lower() if sha256 else None, fmt


def _format_of(url: str) -> str:
    name = url.split("?")[0].lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".json"):
        return "json"
    return "jsonl"


def _text(path: Path, data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {key} must be text (got {value!r})")
    return value


def _number(path: Path, data: dict[str, Any], key: str, default: float | None) -> Any:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{path}: {key} must be a positive number (got {value!r})")
    return value
