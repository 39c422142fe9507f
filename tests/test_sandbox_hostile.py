"""Model-written code is contained: an OpenAI-compatible server of ours (the emulator's /openai/v1 route, scripted)
answers every devai task with hostile code, and the real scenarios run it with --target openai. Python: read a
planted secret by absolute path and print it, write outside its folder, delete a planted file, connect to a loopback
listener through socket and through ctypes (around the audit-hook guard), fork in a loop through libc, allocate
8 GB, sleep forever. JavaScript: the same through fs, net and child_process. Needs bubblewrap (system stage); the
same Python runs in the container sandbox (Docker, the sandbox image .ci/system.sh builds). The refusal without
any sandbox is an offline test."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.conformance import isolation, sandbox
from harness.conformance.isolation import Isolation, choose
from harness.emulator import Emulator
from tests.realsystems import ROOT, bwrap_or_skip, docker_or_skip

SANDBOX_IMAGE = "devai-sandbox:test"
SECRET = "rpa_PLANTEDSECRET0123456789ABCDEFGHIJ"  # key-shaped, so the pattern scrub is tested too
MARK = "PLANTED-" + "7f3a9c"  # not key-shaped: only containment can keep it out of the reports

PYTHON = """
import ctypes, os, socket, time
def attempt(what, fn):
    try:
        print(what, "->", fn())
    except BaseException as exc:
        print(what, "blocked:", type(exc).__name__)
attempt("read secret", lambda: open({secret!r}).read())
attempt("write outside", lambda: open({outside!r}, "w").write("pwned"))
attempt("delete planted", lambda: os.remove({planted!r}))
attempt("socket", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=1))
def raw_connect():
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(2, 1, 0)
    addr = (ctypes.c_ubyte * 16)(2, 0, {port} >> 8, {port} & 255, 127, 0, 0, 1)
    return libc.connect(fd, addr, 16), ctypes.get_errno()
attempt("ctypes connect", raw_connect)
def fork_loop():
    libc, n = ctypes.CDLL(None), 0
    while n < 10000 and libc.fork() >= 0:
        n += 1
    return n
attempt("fork loop", fork_loop)
attempt("allocate 8 GB", lambda: len(bytearray(8 << 30)))
time.sleep(10**6)
"""

JAVASCRIPT = """
const fs = require("fs"), net = require("net"), cp = require("child_process");
function attempt(what, fn) {
  try { console.log(what, "->", fn()); } catch (e) { console.log(what, "blocked:", e.code || e.name); }
}
attempt("read secret", () => fs.readFileSync({secret!r}, "utf8"));
attempt("write outside", () => fs.writeFileSync({outside_js!r}, "pwned"));
attempt("delete planted", () => fs.unlinkSync({planted!r}));
attempt("spawn", () => cp.execSync("cat " + {secret!r}).toString());
const s = net.connect({port}, "127.0.0.1"); s.on("error", (e) => console.log("net blocked:", e.code));
setInterval(() => {{}}, 1000);
"""


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A secret file, a file to delete, a place outside to write to, and a loopback listener that counts."""
    place = tmp_path / "host"
    place.mkdir()
    place.chmod(0o777)
    (place / "secret.txt").write_text(f"{SECRET} {MARK}\n")
    (place / "planted.txt").write_text("keep me\n")
    for f in place.iterdir():
        f.chmod(0o666)  # readable and deletable by anyone: only the sandbox may stop it
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[object] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    yield {
        "secret": str(place / "secret.txt"),
        "planted": str(place / "planted.txt"),
        "outside": str(place / "written-by-python.txt"),
        "outside_js": str(place / "written-by-js.txt"),
        "port": listener.getsockname()[1],
        "place": place,
        "accepted": accepted,
    }
    listener.close()


def answers(p: dict[str, object]) -> list[dict[str, str]]:
    py = PYTHON.format(**p)
    js = JAVASCRIPT.replace("{secret!r}", repr(p["secret"])).replace("{outside_js!r}", repr(p["outside_js"]))
    js = js.replace("{planted!r}", repr(p["planted"])).replace("{port}", str(p["port"])).replace("{{}}", "{}")
    return [
        {"match": "javascript", "response": f"Here it is.\n\n```javascript\n{js}\n```\n"},
        {"match": ".", "response": f"Here it is.\n\n```python\n{py}\n```\n"},
    ]


@pytest.mark.system
def test_hostile_answers_are_contained(planted: dict[str, object], tmp_path: Path) -> None:
    bwrap_or_skip()
    assert choose().kind == "bubblewrap", choose()
    worker = {"responses": answers(planted), "ttft_s": 0, "tokens_per_s": 0}
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OPENAI_", "DEVAI_UNSAFE"))}
    env["RUNPOD_API_KEY"] = SECRET  # a key of ours the hostile code would love to print
    t0 = time.monotonic()
    with Emulator(cold_start=0, worker=worker) as emu:
        base = f"{emu.endpoint_url}/openai/v1"
        env["OPENAI_API_KEY"] = emu.api_key
        cmd = [sys.executable, "-m", "pytest", "scenarios/test_devai_tasks.py", "--target", "openai"]
        cmd += ["--base-url", base, "-k", "fix or refactor or generate", "--sandbox-timeout", "4", "-n", "0"]
        cmd += ["-p", "no:cacheprovider", "--junitxml", str(run_dir / "junit.xml")]
        cmd += ["--harness-report", str(run_dir / "suite")]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    took = time.monotonic() - t0
    everything = proc.stdout + proc.stderr + "".join(p.read_text() for p in run_dir.glob("*") if p.is_file())
    place = Path(str(planted["place"]))
    assert proc.returncode == 1, proc.stdout[-3000:]  # the checks fail...
    assert MARK not in everything and SECRET not in everything  # ...and nothing of the secret reaches a report
    assert (place / "planted.txt").read_text() == "keep me\n"
    assert not (place / "written-by-python.txt").exists() and not (place / "written-by-js.txt").exists()
    assert planted["accepted"] == []  # the listener saw no connection
    assert took < 240, took  # 6 runs of model code, each killed at its 4 s limit
    results = json.loads((run_dir / "suite.json").read_text())
    rows = [r for r in results if r["form"] == "openai"]
    failed = [c for r in rows for name, c in r["checks"].items() if name != "answer" and c.startswith("fail")]
    assert any("did not finish in time" in c for c in failed), failed  # each case: a failed check, with a reason
    if shutil.which("node"):
        assert any("javascript" in r["case"] or "js" in r["case"] for r in rows)
    leftovers = subprocess.run(["pgrep", "-u", "65534"], capture_output=True, text=True, check=False).stdout.split()
    assert leftovers == [], f"sandboxed processes outlived their runs: {leftovers}"


def test_without_a_sandbox_model_code_is_not_run_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "choose", lambda: isolation.Isolation("none", "bubblewrap is not installed"))
    monkeypatch.setattr(sandbox, "choose", isolation.choose)
    monkeypatch.delenv(isolation.OPT_IN_ENV, raising=False)
    refused = sandbox.run_pytest("raise SystemExit(3)", "def test_x():\n    pass\n")
    assert refused.skipped is not None and "--unsafe-run-model-code" in refused.skipped
    assert "not run" in sandbox.sandbox_in_use()
    monkeypatch.setenv(isolation.OPT_IN_ENV, "1")
    ran = sandbox.run_pytest("VALUE = 3", "def test_x():\n    assert VALUE == 3\n")
    assert ran.ok and ran.skipped is None and "NO ISOLATION" in sandbox.sandbox_in_use()


@pytest.mark.system
def test_the_container_sandbox_contains_the_same_python(
    planted: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_or_skip()
    if subprocess.run(["docker", "image", "inspect", SANDBOX_IMAGE], capture_output=True, check=False).returncode:
        pytest.fail(f"no {SANDBOX_IMAGE} image: run `bash .ci/system.sh install`", pytrace=False)
    container = Isolation("container", f"docker image {SANDBOX_IMAGE}")
    monkeypatch.setattr(sandbox, "choose", lambda: container)
    monkeypatch.setenv("RUNPOD_API_KEY", SECRET)
    code = "import sys\nsys.stdout.reconfigure(line_buffering=True)\n" + PYTHON.format(**planted)
    t0 = time.monotonic()
    result = sandbox.run_pytest(
        "", f"def test_hostile():\n    exec(compile(CODE, 'hostile', 'exec'))\nCODE = {code!r}\n", timeout=20
    )
    took = time.monotonic() - t0
    place = Path(str(planted["place"]))
    assert not result.ok and result.skipped is None
    assert "allocate 8 GB blocked: MemoryError" in result.output, result.output[-3000:]  # limits, as under bwrap
    assert MARK not in result.output and SECRET not in result.output, result.output
    assert (place / "planted.txt").read_text() == "keep me\n" and not (place / "written-by-python.txt").exists()
    assert planted["accepted"] == []
    assert took < 90, took  # the 8 GB allocation dies at the container's memory limit, or the sleep at 20 s
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "name=devai-sandbox-"], capture_output=True, text=True, check=False
    )
    assert not left.stdout.split(), f"sandbox containers left: {left.stdout.split()}"
    assert isolation.image_has(SANDBOX_IMAGE, "python3")


KERNEL = """
import ctypes, os, platform
libc = ctypes.CDLL(None, use_errno=True)
nr = {numbers!r}[platform.machine()]
def call(what, *args):
    got = libc.syscall(nr[what], *args)
    print(what, "->", got, "errno", ctypes.get_errno())
call("add_key", b"user", b"devai-planted-by-code", b"x", 1, ctypes.c_int(-4))  # KEY_SPEC_USER_KEYRING
call("keyctl", 0, ctypes.c_int(-4), 0)  # KEYCTL_GET_KEYRING_ID of the user keyring
print("unshare ->", libc.unshare(0x10000000 | 0x20000), "errno", ctypes.get_errno())  # NEWUSER | NEWNS
written = 0
try:
    with open("/tmp/fill", "wb") as f:
        while written < (1 << 30):
            f.write(b"x" * (1 << 20)); f.flush(); written += 1 << 20
except OSError as exc:
    print("tmp full after", written >> 20, "MiB:", type(exc).__name__)
"""


@pytest.mark.system
def test_the_kernel_keyring_namespaces_and_tmp_are_out_of_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seccomp filter refuses the keyring and nested namespaces (EPERM = 1); /tmp inside is a sized tmpfs."""
    bwrap_or_skip()
    from harness.conformance import seccomp

    if not seccomp.supported():
        pytest.skip(f"no seccomp table for {os.uname().machine}")
    numbers = {
        m: {k: v[i] for k, v in seccomp.CALLS.items() if k in ("add_key", "keyctl")}
        for i, m in enumerate(("x86_64", "aarch64"))
    }
    monkeypatch.setenv("RUNPOD_API_KEY", SECRET)
    result = sandbox.run_pytest(
        "", f"def test_k():\n    exec(compile(CODE, 'k', 'exec'), {{}})\nCODE = {KERNEL.format(numbers=numbers)!r}\n"
    )
    out = result.output
    assert "add_key -> -1 errno 1" in out and "keyctl -> -1 errno 1" in out, out[-2000:]
    assert "unshare -> -1 errno 1" in out, out[-2000:]
    assert "tmp full after" in out and int(out.split("tmp full after")[1].split()[0]) <= 64, out[-2000:]


@pytest.mark.system
def test_an_interpreter_under_tmp_is_visible_inside(tmp_path: Path) -> None:
    """A venv under /tmp (a common CI layout) was hidden by the sandbox's own /tmp: every run failed to start."""
    bwrap_or_skip()
    venv = Path(tempfile.mkdtemp(prefix="devai-venv-", dir="/tmp"))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        work = tmp_path / "w"
        work.mkdir()
        work.chmod(0o777)
        (work / "x.py").write_text("import sys; print('ran in', sys.prefix)\n")
        python = str(venv / "bin" / "python")
        code = "from harness.conformance.isolation import choose, run_isolated; from pathlib import Path; "
        code += f"o = run_isolated(choose(), Path({str(work)!r}), 'python', ['x.py'], timeout=30); "
        code += "print(o.returncode, o.output)"
        proc = subprocess.run(
            [python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True
        )
        assert proc.stdout.strip() == str(venv)
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.pathsep.join(p for p in sys.path if p)}
        ran = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False)
        assert ran.returncode == 0 and ran.stdout.startswith("0 ") and "ran in" in ran.stdout, ran.stdout + ran.stderr
    finally:
        shutil.rmtree(venv, ignore_errors=True)
