"""train-check against datasets served over real HTTP on loopback (a threaded http.server: HEAD, GET, delays,
statuses) and scripts written here — all made by us, each shaped after one of field report 004's failures: good
SFT, good DPO, SFT data under the DPO method, malformed lines, a large file streamed without being held, a 404, a
slow server, a local path; scripts good, without `set -e`, sleeping after a failure. The image check with a real
Docker engine is in the system stage (test_image_check_*)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.preflight import traincheck
from harness.preflight.datasource import Bounds
from harness.preflight.traincheck import check_training
from harness.preflight.trainscript import read_script
from tests.realsystems import ROOT, docker_or_skip

EXAMPLES = ROOT / "examples" / "training"
GOOD_SCRIPT = (EXAMPLES / "train.sh").read_text()
# Field report 004's script, as described: no error handling, a sleep whatever happened.
REPORT_004_SCRIPT = """#!/bin/bash
cd /workspace
wget -O data.jsonl /app/uploads/datasets/my-dataset.jsonl
pip install trl datasets
python train.py --method dpo --data data.jsonl
echo "training finished"
sleep 3600
"""
Body = bytes | Callable[[], Iterator[bytes]]


class Served:
    """Routes of the loopback server: path -> (status, body, delay before answering, content type)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, Body, float, str]] = {}
        self.url = ""

    def add(
        self, path: str, body: Body, *, status: int = 200, delay: float = 0, kind: str = "application/jsonl"
    ) -> str:
        self.routes[path] = (status, body, delay, kind)
        return self.url + path


@pytest.fixture
def served() -> Iterator[Served]:
    routes = Served()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, with_body: bool) -> None:
            status, body, delay, kind = routes.routes.get(self.path, (404, b"not found", 0, "text/plain"))
            time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            if 300 <= status < 400 and isinstance(body, bytes):  # a redirect: the body is where to
                self.send_header("Location", body.decode())
            if isinstance(body, bytes):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                for chunk in [body] if isinstance(body, bytes) else body():
                    self.wfile.write(chunk)

        def do_HEAD(self) -> None:
            self._answer(False)

        def do_GET(self) -> None:
            self._answer(True)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    routes.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield routes
    server.shutdown()
    server.server_close()


def config(tmp_path: Path, dataset: object, *, method: str = "sft", script: str = GOOD_SCRIPT, **more: object) -> Path:
    (tmp_path / "train.sh").write_text(script)
    data = {"method": method, "dataset": dataset, "script": "train.sh", "price_per_hour": 1.89, "gpu": "A100"} | more
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(data))
    return path


def statuses(report: traincheck.TrainReport) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in report.checks:
        out[c.name] = "fail" if "fail" in (out.get(c.name), c.status) else c.status
    return out


def rows(*items: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


SFT = rows(*(json.loads(line) for line in (EXAMPLES / "sft.jsonl").read_text().splitlines()))
DPO = (EXAMPLES / "dpo.jsonl").read_bytes()


def test_good_sft_passes_every_dataset_and_script_check(served: Served, tmp_path: Path) -> None:
    url = served.add("/sft.jsonl", SFT)
    report = check_training(config(tmp_path, url), allow_local_urls=True, timeout=5)
    got = statuses(report)
    assert got.pop("image has Python") == "skip"  # no image in this config: NOT CHECKED, never a pass
    assert set(got.values()) == {"pass"}, report.render()
    assert report.verdict == "NOT CHECKED"
    assert "all 4 rows fit SFT" in report.render() and "(loopback allowed)" in report.render()


def test_sft_data_under_dpo_names_the_method_it_fits(served: Served, tmp_path: Path) -> None:
    url = served.add("/sft.jsonl", SFT)
    report = check_training(config(tmp_path, url, method="dpo"), allow_local_urls=True, timeout=5)
    (fit,) = [c for c in report.checks if c.name == "dataset fits the method"]
    assert fit.status == "fail" and "4 of 4 rows do not fit DPO" in fit.summary
    assert "every row fits SFT: set method: sft" in fit.summary
    assert fit.details[0] == "line 1: no `chosen`, `rejected`" and report.verdict == "NOT READY"


def test_good_dpo_and_kto_fit_their_methods(served: Served, tmp_path: Path) -> None:
    assert (
        statuses(check_training(config(tmp_path, served.add("/d.jsonl", DPO), method="dpo"), allow_local_urls=True))[
            "dataset fits the method"
        ]
        == "pass"
    )
    kto = rows(
        {"prompt": "2+2?", "completion": "4", "label": True}, {"prompt": "2+2?", "completion": "5", "label": False}
    )
    report = check_training(config(tmp_path, served.add("/k.jsonl", kto), method="dpo"), allow_local_urls=True)
    assert "every row fits KTO or SFT: set method: kto" in report.render()


def test_malformed_lines_are_listed_with_their_numbers_and_counted(served: Served, tmp_path: Path) -> None:
    good = {"prompt": "p", "chosen": "a", "rejected": "b"}
    lines = [json.dumps(good), "{not json", "", json.dumps({"prompt": "p", "chosen": "same", "rejected": "same"})]
    lines += [json.dumps({"prompt": "p", "chosen": 3, "rejected": "b"}), json.dumps(good)] + ["[1, 2]"] * 15
    url = served.add("/bad.jsonl", "\n".join(lines).encode() + b"\n")
    report = check_training(config(tmp_path, url, method="dpo"), allow_local_urls=True)
    (fit,) = [c for c in report.checks if c.name == "dataset fits the method"]
    assert "19 of 21 rows do not fit DPO" in fit.summary
    assert fit.details[:4] == [
        "line 2: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
        "line 3: an empty row",
        "line 4: `chosen` equals `rejected` (no preference to learn)",
        "line 5: `chosen` is int, not text or a message list",
    ]
    assert len(fit.details) == 11 and "15 x a row is list, not an object" in fit.details[-1]  # 10 listed, then counts
    assert next(c for c in report.checks if c.name == "dataset rows").summary == "15 duplicate row(s) of 21"


def test_a_large_dataset_is_streamed_not_held(served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    row = json.dumps({"messages": [{"role": "user", "content": "q" * 1500}, {"role": "assistant", "content": "a"}]})
    count = 20_000  # about 31 MB

    def body() -> Iterator[bytes]:
        for i in range(count):
            yield row.replace('"a"', f'"a{i}"').encode() + b"\n"

    url = served.add("/big.jsonl", body)
    monkeypatch.setattr(traincheck, "PROGRESS_EVERY_S", 0.2)
    said: list[str] = []
    tracemalloc.start()
    try:
        report = check_training(config(tmp_path, url, max_seq_length=256), allow_local_urls=True, progress=said.append)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"all {count} rows fit SFT" in report.render()
    assert peak < 8 << 20, f"peak {peak >> 20} MB for a {len(row) * count >> 20} MB file"
    assert said and said[-1].startswith("dataset: ") and " rows, " in said[-1]
    lengths = next(c for c in report.checks if c.name == "dataset token lengths")
    assert lengths.status == "warn" and f"{count} row(s) (100.0%) over max_seq_length 256" in lengths.summary
    assert "approximation: 4 characters per token" in lengths.summary


def test_every_redirect_hop_is_judged_like_the_first_host(served: Served, tmp_path: Path) -> None:
    metadata = served.add("/to-metadata", b"http://169.254.169.254/latest/meta-data/", status=302)
    report = check_training(config(tmp_path, metadata), allow_local_urls=True, timeout=5)
    source = next(c for c in report.checks if c.name == "dataset source")
    assert source.status == "fail" and "redirected to 169.254.169.254" in source.summary, source.summary
    assert "link-local" in source.summary and "not followed" in source.summary
    ok = served.add("/hop", (served.url + "/sft.jsonl").encode(), status=301)
    served.add("/sft.jsonl", SFT)
    followed = check_training(config(tmp_path, ok), allow_local_urls=True, timeout=5)
    assert "via 1 redirect" in followed.render() and statuses(followed)["dataset fits the method"] == "pass"
    served.add("/loop", (served.url + "/loop").encode(), status=302)
    looped = check_training(config(tmp_path, served.url + "/loop"), allow_local_urls=True, timeout=5)
    assert "more than 5 redirects" in looped.render()


def test_an_endless_dataset_is_read_within_its_bounds(served: Served, tmp_path: Path) -> None:
    row = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})

    def endless() -> Iterator[bytes]:
        while True:
            yield (row + "\n").encode() * 100

    def one_line() -> Iterator[bytes]:
        while True:
            yield b"x" * 65536

    url, line = served.add("/endless.jsonl", endless), served.add("/line.jsonl", one_line)
    t0 = time.monotonic()
    timed = check_training(config(tmp_path, url), allow_local_urls=True, bounds=Bounds(max_seconds=1.0))
    assert "only part was checked: 1 s of reading (--max-read-seconds)" in timed.render()
    assert time.monotonic() - t0 < 10
    counted = check_training(config(tmp_path, url), allow_local_urls=True, bounds=Bounds(max_rows=500))
    said = counted.render()
    assert "the first 500 rows were read (--max-rows)" in said and "all 500 rows fit SFT" in said
    sized = check_training(config(tmp_path, url), allow_local_urls=True, bounds=Bounds(max_bytes=1 << 20))
    assert "the first 1 MB were read (--max-dataset-mb)" in sized.render()
    long = check_training(config(tmp_path, line), allow_local_urls=True, bounds=Bounds(line_bytes=1 << 20))
    content = next(c for c in long.checks if c.name == "dataset content")
    assert content.status == "fail" and "a line longer than 1 MB" in content.summary


def test_unreachable_sources_fail_with_the_reason(served: Served, tmp_path: Path) -> None:
    missing = check_training(config(tmp_path, served.url + "/gone.jsonl"), allow_local_urls=True, timeout=5)
    assert "HTTP 404 Not Found" in missing.render() and missing.verdict == "NOT READY"
    slow = served.add("/slow.jsonl", SFT, delay=3)
    t0 = time.monotonic()
    late = check_training(config(tmp_path, slow), allow_local_urls=True, timeout=0.5)
    assert "no answer within 0.5 s" in late.render() and time.monotonic() - t0 < 3
    loopback = check_training(config(tmp_path, served.add("/ok.jsonl", SFT)), timeout=5)
    assert "a loopback address: a pod in a datacenter cannot reach it" in loopback.render()
    html = served.add("/login", b"<html>sign in</html>", kind="text/html")
    assert statuses(check_training(config(tmp_path, html), allow_local_urls=True))["dataset source"] == "warn"


def test_a_local_path_fails_and_its_copy_is_still_checked(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_bytes(DPO)
    report = check_training(config(tmp_path, "data.jsonl", method="dpo"))
    got = statuses(report)
    assert got["dataset source"] == "fail" and got["dataset fits the method"] == "pass"
    assert "is a local path: the pod cannot download it" in report.render()


def test_checksum_json_and_parquet(served: Served, tmp_path: Path) -> None:
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    good = {"url": served.add("/d.jsonl", DPO), "sha256": hashlib.sha256(DPO).hexdigest()}
    assert (
        statuses(check_training(config(tmp_path, good, method="dpo"), allow_local_urls=True))["dataset checksum"]
        == "pass"
    )
    bad = good | {"sha256": "0" * 64}
    assert (
        statuses(check_training(config(tmp_path, bad, method="dpo"), allow_local_urls=True))["dataset checksum"]
        == "fail"
    )
    array = json.dumps([json.loads(line) for line in DPO.splitlines()]).encode()
    as_json = check_training(
        config(tmp_path, served.add("/d.json", array, kind="application/json"), method="dpo"), allow_local_urls=True
    )
    assert "all 4 rows fit DPO" in as_json.render()
    table = pa.Table.from_pylist([json.loads(line) for line in DPO.splitlines()])
    pq.write_table(table, tmp_path / "d.parquet")
    url = served.add("/d.parquet", (tmp_path / "d.parquet").read_bytes(), kind="application/octet-stream")
    assert "all 4 rows fit DPO" in check_training(config(tmp_path, url, method="dpo"), allow_local_urls=True).render()


def test_token_lengths_with_a_tokenizer_built_here(served: Served, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for line in SFT.decode().split() for w in [line]})
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["[UNK]", *words])}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path / "tok")
    report = check_training(
        config(tmp_path, served.add("/s.jsonl", SFT), tokenizer="tok", max_seq_length=10), allow_local_urls=True
    )
    lengths = next(c for c in report.checks if c.name == "dataset token lengths")
    assert f"tokenizer {tmp_path / 'tok'}" in lengths.summary
    longest = max(sum(len(m["content"].split()) for m in json.loads(r)["messages"]) for r in SFT.splitlines())
    assert f"max {longest} " in lengths.summary


def test_field_report_004_script_fails_and_says_what_a_failure_costs(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_bytes(SFT)
    report = check_training(config(tmp_path, "data.jsonl", method="dpo", script=REPORT_004_SCRIPT))
    text = report.render()
    got = statuses(report)
    for name in ("script stops on errors", "trainer exit status", "no keep-alive after a failure", "dataset download"):
        assert got[name] == "fail", (name, text)
    assert "line 7 keeps the pod up 3600 s even after a failure (≈ $1.89 per failed run)" in text
    assert "wget of a local path (/app/uploads/datasets/my-dataset.jsonl)" in text
    assert "a failure here would bill ~1.00 GPU-hours ≈ $1.89" in report.money


@pytest.mark.parametrize(
    ("script", "finding"),
    [
        ("set -e\ncurl -o d.jsonl https://x/d.jsonl\npython3 train.py\n", "curl without --fail"),
        ("set -e\npython3 train.py || true\n", "swallowed"),
        ("set -e\npython3 train.py 2>&1 | tee log.txt\n", "piped (into tee?) without `set -o pipefail`"),
        ("set -e\npython3 train.py\ntrap 'sleep 1h' EXIT\n", "keeps the pod up 3600 s"),
        ("python3 train.py\nwhile true; do sleep 60; done\n", "keeps the pod up forever"),
    ],
)
def test_script_findings(script: str, finding: str, tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_bytes(SFT)
    report = check_training(config(tmp_path, "d.jsonl", script="#!/bin/bash\n" + script))
    assert finding in report.render()


def test_good_script_reads_clean() -> None:
    facts = read_script(GOOD_SCRIPT)
    assert facts.errexit and facts.pipefail and facts.stops_pod_on_failure and facts.needs_python
    assert facts.unchecked == [] and facts.failure_sleeps == [] and facts.bad_fetches == []


def test_cli_exit_codes_json_and_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d.jsonl").write_bytes(SFT)
    path = config(tmp_path, "d.jsonl")
    assert main(["train-check", str(path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "NOT READY" and out["failure_cost_usd"] == pytest.approx(0.0)
    cases = {
        "missing.yaml": "cannot read",
        ".": "is a directory",
    }
    (tmp_path / "binary.yaml").write_bytes(b"\x00\xd0\xff" * 50)
    cases["binary.yaml"] = "is not UTF-8 text"
    for given, said in cases.items():
        assert main(["train-check", str(tmp_path / given)]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1 and "Traceback" not in err
    for data, said in [
        ({"method": "rlhf", "dataset": "x"}, "method must be one of sft, dpo, orpo, kto"),
        ({"method": "sft", "dataset": "x", "lr": 1}, "unknown key(s) lr"),
        ({"method": "sft"}, "dataset is missing"),
        ({"method": "sft", "dataset": "x", "script": "nope.sh"}, "does not exist"),
        ({"method": "sft", "dataset": "x", "price_per_hour": -1}, "price_per_hour must be a positive number"),
    ]:
        path.write_text(json.dumps(data))
        assert main(["train-check", str(path)]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err


IMAGE = "devai-base:bookworm"


def _image_without_python() -> str:
    """A tiny image holding only /bin/sh (dash) and its libraries: no Python."""
    name = "devai-nopython:test"
    root = Path(subprocess.run(["mktemp", "-d"], capture_output=True, text=True, check=True).stdout.strip())
    libs = subprocess.run(["ldd", "/bin/dash"], capture_output=True, text=True, check=True).stdout
    files = ["/bin/dash"] + [p for p in libs.split() if p.startswith("/")]
    for f in files:
        target = root / f.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(f).read_bytes())
        target.chmod(0o755)
    (root / "bin" / "sh").symlink_to("dash")
    tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True).stdout
    subprocess.run(["docker", "import", "-", name], input=tar, capture_output=True, check=True)
    return name


@pytest.mark.system
def test_image_check_runs_the_image(served: Served, tmp_path: Path) -> None:
    docker_or_skip()
    url = served.add("/d.jsonl", DPO)
    ready = check_training(config(tmp_path, url, method="dpo", image=IMAGE), allow_local_urls=True)
    assert ready.verdict == "READY", ready.render()
    assert statuses(ready)["image has Python"] == "pass" and "Python 3." in ready.render()
    bare = _image_without_python()
    try:
        report = check_training(config(tmp_path, url, method="dpo", image=bare), allow_local_urls=True)
    finally:
        subprocess.run(["docker", "rmi", "-f", bare], capture_output=True, check=False)
    assert "has no python3 or python on PATH" in report.render() and report.verdict == "NOT READY"
    assert main(["train-check", str(config(tmp_path, url, method="dpo", image=IMAGE)), "--allow-local-urls"]) == 0
