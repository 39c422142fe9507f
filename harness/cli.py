"""The ``devai-harness`` command line.

Exit codes: 0 everything checked passed; 1 something failed or was NOT CHECKED; 2 bad input (one line on
stderr, nothing left behind).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.check import StageResult, run_check
from harness.comparecli import add_compare
from harness.conformance.isolation import OPT_IN_ENV
from harness.conformance.suite import find_suite
from harness.core import __version__
from harness.core.errors import ConfigError, HarnessError, OutputError, ShapeError, WorkerError
from harness.core.scrub import register, secrets_in
from harness.core.shapes import extract, looks_like_sse
from harness.reporting.files import claim_run_dir, output_error, write_json
from harness.reporting.stdio import scrubbed_stdio
from harness.reporting.tables import text_table
from harness.targets import TARGET_KINDS, resolve_target

__all__ = ["build_parser", "main"]


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


# --- shapes -------------------------------------------------------------------------------------


def _read_text(name: str) -> str:
    try:
        raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{name} is not UTF-8 text (a binary file?)") from None


def _cmd_shapes(args: argparse.Namespace) -> int:
    """Recognise a saved reply — a job or its output (JSON), a /stream reply, a /v1/models list, or a raw SSE
    capture (``curl -N``) — and print what was extracted."""
    text = _read_text(args.file)
    value: Any
    try:
        value = json.loads(text)
    except ValueError as exc:
        if not looks_like_sse(text):
            raise ConfigError(f"{args.file} is neither JSON nor an SSE stream ({exc})") from None
        value = [text]  # a raw SSE capture: the body as one piece
    if isinstance(value, dict) and isinstance(value.get("stream"), list) and "output" not in value:
        value = value["stream"]  # a saved /stream reply: its items are {"output": ...}
    try:
        got = extract(value)
    except WorkerError as exc:
        print(f"worker error: {exc}")
        return 1
    except ShapeError as exc:
        print(f"unknown shape: {exc}")
        return 1
    usage = f"{got.usage.input_tokens}/{got.usage.output_tokens} ({got.usage.convention})" if got.usage else "none"
    print(f"shape: {got.shape}\nchoices: {len(got.choices)}\nfinish_reason: {got.finish_reason}\nusage: {usage}")
    for finding in got.findings:
        print(f"finding: {finding}")
    if got.models:
        print("models:\n" + "\n".join(f"  {m}" for m in got.models))
    else:
        print("text:\n" + got.text)
    return 0


# --- check ---------------------------------------------------------------------------------------


def _progress(enabled: bool) -> Callable[[str], None]:
    def show(message: str) -> None:
        if enabled:
            print(f"  .. {message}", file=sys.stderr, flush=True)

    return show


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _cmd_check(args: argparse.Namespace) -> int:
    """The main job: the conformance suite, output shapes through the real client, and cold/hot/warm latency (or
    request timing on OpenAI-compatible servers), with a report that always holds every stage."""
    target = resolve_target(
        args.target,
        base_url=args.base_url,
        endpoint_id=args.endpoint_id,
        api_key_env=args.api_key_env,
        model=args.model,
        config=args.config,
        idle_timeout_s=args.idle_timeout,
    )
    if args.unsafe_run_model_code:  # the suite runs in a subprocess: it learns this from the environment
        os.environ[OPT_IN_ENV] = "1"
    suite = find_suite(args.suite)
    if args.suite and suite is None:
        raise ConfigError(f"--suite {args.suite}: no test_devai_tasks.py there")
    run_dir = claim_run_dir(args.run_dir, f"runs/check-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"devai-harness check against {target.describe()}; results in {run_dir}")
    try:
        run = run_check(
            target,
            run_dir,
            suite=suite,
            run_suite=not args.no_suite,
            suite_target=args.suite_target,
            timeout=args.timeout,
            show=_progress(not args.quiet),
        )
    except ConfigError:
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # the pre-flight refused the target: nothing was asked, nothing is left behind
        raise
    for stage in run.stages:
        _print_stage(stage)
    for c in (run.requests or {}).get("checks", []):
        print(f"  {'PASS' if c['ok'] else 'FAIL'}  {c['name']}: {c['detail']}")
    if args.json:
        write_json(Path(args.json), json.loads(run.report["json"].read_text(encoding="utf-8")))
    print(f"\nreport: {run.report['html']} (also {', '.join(p.name for k, p in run.report.items() if k != 'html')})")
    counts = {v: sum(s.verdict == v for s in run.stages) for v in ("PASS", "FAIL", "ERROR", "NOT CHECKED", "N/A")}
    print(f"\nverdict: {run.verdict} (" + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + ")")
    if run.interrupted:
        print(f"{run.interrupted}: the report holds the stages that finished", file=sys.stderr)
        return 130
    return 0 if run.ok else 1


def _print_stage(stage: StageResult) -> None:
    print(f"\n{stage.verdict:<11} {stage.name}: {stage.summary}")
    if stage.name == "shapes" and stage.rows:
        rows = [
            [
                r["label"],
                "PASS" if r["ok"] else "FAIL",
                r["shape"],
                _ms(r["delay_ms"]),
                _ms(r["execution_ms"]),
                r["detail"],
            ]
            for r in stage.rows
        ]
        print(text_table(["case", "ok", "shape", "delay ms", "exec ms", "detail"], rows))
    elif stage.name == "latency" and stage.rows:
        label = {True: "confirmed", False: "MISLABELLED", None: "-"}
        rows = [
            [r["phase"], _ms(r["e2e_ms"]), _ms(r["delay_ms"]), _ms(r["execution_ms"]), label[r["confirmed"]]]
            for r in stage.rows
        ]
        print(text_table(["phase", "e2e ms", "delayTime ms", "executionTime ms", "label"], rows))
    elif stage.name == "semantics" and stage.rows:
        rows = [[r["feature"], r["layer"], r["status"].upper(), r["detail"][:90]] for r in stage.rows]
        print(text_table(["feature", "layer", "verdict", "detail"], rows))
    if stage.error:
        print("  " + stage.error.strip().splitlines()[-1])


# --- emulate ------------------------------------------------------------------------------------


def _cmd_emulate(args: argparse.Namespace) -> int:
    from harness.emulator import Emulator, load_config
    from harness.emulator.config import describe

    overrides: dict[str, Any] = {
        k: v
        for k, v in (
            ("handler", args.handler),
            ("cold_start", args.cold_start),
            ("idle_timeout_s", args.idle_timeout),
            ("min_workers", args.min_workers),
            ("max_workers", args.max_workers),
            ("worker_command", args.worker),
            ("worker_image", args.image),
            ("worker_cwd", args.worker_cwd),
        )
        if v is not None
    }
    if args.worker_env:
        overrides["worker_env"] = dict(_key_value(item) for item in args.worker_env)
    base = load_config(args.config)
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise ConfigError(f"--api-key-env {args.api_key_env}: that environment variable is empty")
        base = base.replace(api_key=key)
    answers = "a deterministic filler"
    scripted = base.worker.get("engine", "scripted") == "scripted" and not {"responses", "fixtures"} & set(base.worker)
    remote = bool(args.worker or args.image or base.remote_workers)
    if remote:
        answers = "your worker's own (the runpod SDK in it takes jobs from the worker API)"
    elif scripted and (overrides.get("handler") or base.handler) == "builtin" and not args.filler:
        suite = find_suite()
        if suite is not None:  # a good endpoint by default: `check --target runpod` against it passes
            from harness.conformance.tasks import load_cases, scripted_rules

            overrides["worker"] = {**base.worker, "responses": scripted_rules(load_cases(suite / "tasks"))}
            answers = f"the devai task cases' reference answers ({suite / 'tasks'}), else a deterministic filler"

    def echo(worker_id: str, line: str) -> None:
        print(f"[{worker_id}] {line}", file=sys.stderr, flush=True)

    emu = Emulator(
        base,
        host=args.host,
        port=args.port,
        echo=None if args.quiet_workers else echo,
        worker_logs=args.worker_logs,
        **overrides,
    )
    cfg = emu.config

    def announce(port: int) -> None:
        base_url = f"http://{args.host}:{port}/v2"
        if args.announce_json:  # for a parent process (worker-check) that started us on a free port
            print(
                json.dumps({"base_url": base_url, "endpoint_id": cfg.endpoint_id, "api_key": cfg.api_key}), flush=True
            )
            return
        url = f"{base_url}/{cfg.endpoint_id}"
        print(f"RunPod emulator on {url}\n  {describe(cfg)}\n  answers: {answers}")
        # A key made for this run is printed; one the user gave is not (it might be a real one).
        made = not base.api_key
        key = cfg.api_key if made else "$RUNPOD_API_KEY"
        where = f"${args.api_key_env}" if args.api_key_env else "your config"
        print(
            f"API key: {cfg.api_key}   (a local, throwaway key made for this run)"
            if made
            else f"API key: the one in {where} (not printed)"
        )
        print(
            f"  export RUNPOD_ENDPOINT_BASE_URL={base_url} RUNPOD_ENDPOINT_ID={cfg.endpoint_id}"
            + (f" RUNPOD_API_KEY={cfg.api_key}" if made else "")
        )
        print(
            f'  curl -s -X POST {url}/runsync -H "Authorization: Bearer {key}" '
            """-H 'Content-Type: application/json' -d '{"input": {"prompt": "hello"}}'"""
        )
        print(f"  OpenAI-compatible route: {url}/openai/v1 (model {cfg.worker.get('model', 'devai-scripted')})")
        print("Ctrl-C stops it.", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        emu.serve_forever(on_ready=announce)
    return 0


# --- worker-check, report, record -----------------------------------------------------------------


def _cmd_worker_check(args: argparse.Namespace) -> int:
    """Exit 0 when the handler is ready (warnings allowed), 1 when a check failed."""
    if args.target == "container":
        from harness.preflight.containers import check_container

        report = check_container(args.image, job_input=args.input, jobs=args.jobs, job_timeout=args.job_timeout)
    else:
        if not args.handler:
            raise ConfigError(
                "worker-check: give a worker file (handler.py), a function (handler.py:name) "
                "or --target container --image IMAGE"
            )
        from harness.preflight.workercheck import check_worker

        report = check_worker(
            args.handler,
            python=args.python,
            job_input=args.input,
            import_timeout=args.import_timeout,
            slow_import_s=args.slow_import,
            jobs=args.jobs,
            job_timeout=args.job_timeout,
        )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.render())
    return 0 if report.ok else 1


def _cmd_train_check(args: argparse.Namespace) -> int:
    """Exit 0 only when nothing blocks the training run (READY); 1 when a check failed or could not run."""
    from harness.preflight.datasource import Bounds
    from harness.preflight.traincheck import check_training, progress_to_stderr

    bounds = Bounds(int(args.max_dataset_mb * (1 << 20)), int(args.max_rows), args.max_read_seconds)
    report = check_training(
        Path(args.config),
        allow_local_urls=args.allow_local_urls,
        timeout=args.timeout,
        progress=None if args.json else progress_to_stderr,
        bounds=bounds,
    )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.render())
    return 0 if report.verdict == "READY" else 1


def _run_dirs(given: Sequence[str]) -> list[str]:
    """Run directories; a glob is expanded here too (shells that do not expand it, quoted patterns)."""
    out: list[str] = []
    for g in given:
        matches = sorted(glob.glob(g)) if any(ch in g for ch in "*?[") else [g]
        if not matches:
            raise ConfigError(f"{g}: matches no run directory")
        out.extend(matches)
    return out


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.load.report import build_report, report_lines

    dirs = _run_dirs(args.run_dirs)
    paths = build_report(
        dirs,
        out_dir=args.out,
        price_per_hour=args.price_per_hour,
        idle_timeout_s=args.idle_timeout,
        rate_per_s=args.rate,
        slo_p95_s=args.slo_p95,
    )
    data = json.loads(paths["json"].read_text())
    if len(data["sources"]) > 1:
        print("records from: " + ", ".join(f"{k} ({v})" for k, v in sorted(data["sources"].items())))
    for line in report_lines(data):
        print(line)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0 if all(c["ok"] for c in data["checks"]) else 1


RECORDED_MODULES = ("scenarios/test_devai_tasks.py", "scenarios/test_protocol.py", "scenarios/test_faults.py")


def _cmd_record(args: argparse.Namespace) -> int:
    """Re-record the cassettes from the emulator (or a live endpoint) by running the scenario modules."""
    import subprocess

    modules = args.modules or list(RECORDED_MODULES)
    missing = [m for m in modules if not Path(m).is_file()]
    if missing:
        raise ConfigError(f"record: run it from the repository root ({', '.join(missing)} not found)")
    cmd = [sys.executable, "-m", "pytest", *modules, "--target", args.target, "--record-mode", args.mode]
    cmd += ["-p", "no:cacheprovider", "-q"]
    print("running: " + " ".join(cmd[2:]), flush=True)
    with _kept(Path("cassettes")) as kept:
        rc = subprocess.call(cmd)
        if rc == 0:
            kept.clear()  # the new recording passed: it replaces the old one
        else:
            print(f"recording failed (pytest exit {rc}): the cassettes and clocks were left as they were")
    return rc


@contextlib.contextmanager
def _kept(folder: Path) -> Iterator[list[Path]]:
    """A copy of ``folder`` put back after the block unless the block empties the yielded list (a failed or
    interrupted recording never leaves half-replaced cassettes and clocks)."""
    if not folder.is_dir():
        yield []
        return
    try:
        backup = Path(tempfile.mkdtemp(prefix=f".{folder.name}-before-record-", dir=folder.parent))
        shutil.copytree(folder, backup / folder.name)
    except OSError as exc:
        raise output_error(folder.parent, exc) from None
    keep = [backup]
    try:
        yield keep
    finally:
        if keep:
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(backup / folder.name, folder)
        shutil.rmtree(backup, ignore_errors=True)


# --- the parser ----------------------------------------------------------------------------------


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--worker-env {item!r}: expected KEY=VALUE")
    return key, value


def _number(value: str, *, zero: bool) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not (number >= 0 if zero else number > 0) or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a {'non-negative' if zero else 'positive'} number, got {value}")
    return number


def _positive(value: str) -> float:
    return _number(value, zero=False)


def _non_negative(value: str) -> float:
    return _number(value, zero=True)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"ports are 0..65535 (0 = any free one), got {port}")
    return port


def _integer(value: str, minimum: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < minimum:
        raise argparse.ArgumentTypeError(
            f"must not be negative, got {n}" if minimum == 0 else f"must be at least {minimum}, got {n}"
        )
    return n


def _count(value: str) -> int:
    return _integer(value, 0)


def _at_least_one(value: str) -> int:
    return _integer(value, 1)


def _add_check(sub: Any) -> None:
    p = sub.add_parser("check", help="the main job: suite, output shapes, latency; a report (default: the emulator)")
    p.add_argument("--target", choices=TARGET_KINDS, default="emulator")
    p.add_argument(
        "--unsafe-run-model-code",
        action="store_true",
        help="run model-written code even where no sandbox (bubblewrap, a container) is available",
    )
    p.add_argument("--endpoint-id", help="RunPod endpoint id (target runpod; env RUNPOD_ENDPOINT_ID)")
    p.add_argument(
        "--base-url",
        help="runpod: the API base (env RUNPOD_ENDPOINT_BASE_URL, default https://api.runpod.ai/v2); runpod-local: "
        "the SDK's test server (default http://127.0.0.1:8000); openai: e.g. http://127.0.0.1:8000/v1",
    )
    p.add_argument(
        "--api-key-env",
        help="the environment variable holding the API key (default RUNPOD_API_KEY, or OPENAI_API_KEY for openai)",
    )
    p.add_argument("--model", help="target openai: the model (default: the first the server lists)")
    p.add_argument("--config", help="emulator YAML config (target emulator)")
    p.add_argument(
        "--timeout",
        type=_positive,
        default=120.0,
        help="seconds: the total deadline of one request or job (connect, first byte, whole body, retries "
        "included; keep-alives do not extend it). Each stage stops at its first timed-out request, so against an "
        "endpoint that never answers, --no-suite ends within (stages + 1) x (TIMEOUT + 2) + 10 s",
    )
    p.add_argument("--json", help="also write the report's JSON to this file")
    p.add_argument("--run-dir", help="where the report goes (default runs/check-TIMESTAMP)")
    p.add_argument("--idle-timeout", type=_positive, default=5.0, help="the endpoint's idle timeout (target runpod)")
    p.add_argument("--no-suite", action="store_true", help="skip the conformance suite")
    p.add_argument("--suite", help="the scenarios folder (default ./scenarios, else the one beside the package)")
    p.add_argument(
        "--suite-target",
        choices=["replay", *TARGET_KINDS],
        help="run the suite on this target (default: --target; replay = the recorded cassettes)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_check)


def _add_emulate(sub: Any) -> None:
    p = sub.add_parser("emulate", help="serve the RunPod emulator in the foreground")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8000)
    p.add_argument("--config", help="YAML config (see scenarios/faults/)")
    p.add_argument("--handler", help="path/to/handler.py:function (default: the reference worker)")
    p.add_argument("--cold-start", type=_non_negative, help="seconds (default 2)")
    p.add_argument("--idle-timeout", type=_positive, help="seconds (default 5)")
    p.add_argument("--min-workers", type=_count)
    p.add_argument("--max-workers", type=_count)
    p.add_argument(
        "--filler", action="store_true", help="answer with filler text (default: the devai task cases' answers)"
    )
    p.add_argument("--api-key-env", help="take the endpoint's API key from this environment variable (not printed)")
    p.add_argument(
        "--worker",
        metavar="COMMAND",
        help='run each worker as this command, e.g. "python handler.py": a real process under the runpod SDK',
    )
    p.add_argument("--worker-cwd", help="the workers' working directory (default: here)")
    p.add_argument("--worker-env", action="append", metavar="K=V", help="an environment variable for the workers")
    p.add_argument("--image", help="run each worker as this container image (needs a Docker engine)")
    p.add_argument("--worker-logs", metavar="DIR", help="also write each worker's output to DIR/<worker>.log")
    p.add_argument("--quiet-workers", action="store_true", help="do not echo what the workers print")
    p.add_argument("--announce-json", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_emulate)


def _add_worker_check(sub: Any) -> None:
    p = sub.add_parser("worker-check", help="will this RunPod worker survive a deploy? (import, start, jobs)")
    p.add_argument(
        "handler",
        nargs="?",
        help="a worker file (handler.py, run as a real worker) or handler.py:function (a plain function, in-process)",
    )
    p.add_argument(
        "--python", metavar="PATH", help="the worker's interpreter (default: a venv beside the file, else python3)"
    )
    p.add_argument("--input", help='test input JSON ({"input": {...}} or the bare input); default test_input.json')
    p.add_argument("--import-timeout", type=_positive, default=120.0, help="seconds the import may take")
    p.add_argument("--slow-import", type=_positive, default=10.0, help="warn when the import takes longer (seconds)")
    p.add_argument("--jobs", type=_count, default=3, help="jobs to run under the emulator (first one cold)")
    p.add_argument("--job-timeout", type=_positive, default=120.0)
    p.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")
    p.add_argument("--target", choices=["local", "container"], default="local")
    p.add_argument("--image", help="worker image for --target container (needs a Docker engine)")
    p.set_defaults(func=_cmd_worker_check)


def _add_train_check(sub: Any) -> None:
    p = sub.add_parser("train-check", help="before a training pod bills: dataset source and content, script, image")
    p.add_argument("config", help="the training config (YAML or JSON): method, dataset, script, image, price...")
    p.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")
    p.add_argument(
        "--allow-local-urls",
        action="store_true",
        help="accept a dataset URL on loopback or a private network (a pod cannot reach one; for tests)",
    )
    p.add_argument("--timeout", type=_positive, default=10.0, help="seconds the dataset URL has to answer (10)")
    p.add_argument("--max-dataset-mb", type=_positive, default=2048.0, help="MB of the dataset read at most (2048)")
    p.add_argument("--max-rows", type=_positive, default=5_000_000, help="rows of the dataset read at most (5000000)")
    p.add_argument(
        "--max-read-seconds", type=_positive, default=600.0, help="seconds spent reading the dataset at most (600)"
    )
    p.set_defaults(func=_cmd_train_check)


def _add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="JSON, CSV, JUnit and an HTML page with plots from load runs' records")
    p.add_argument("run_dirs", nargs="+", help="run directories (or globs, or records-*.jsonl files): merged")
    p.add_argument("--out", help="where the report goes (default: the first run directory)")
    p.add_argument("--price-per-hour", type=_positive, default=2.49, help="GPU price in $/h (default 2.49)")
    p.add_argument("--idle-timeout", type=_positive, default=5.0, help="the endpoint's idle timeout, s (default 5)")
    p.add_argument("--rate", type=_positive, help="traffic for the cost model, req/s (default: the run's)")
    p.add_argument("--slo-p95", type=_positive, default=10.0, help="capacity SLO: p95 end-to-end seconds")
    p.set_defaults(func=_cmd_report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devai-harness", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"devai-harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_check(sub)
    _add_emulate(sub)
    _add_worker_check(sub)
    _add_train_check(sub)
    _add_report(sub)
    add_compare(sub, positive=_positive, non_negative=_non_negative, at_least_one=_at_least_one, progress=_progress)
    p = sub.add_parser("record", help="re-record the scenario cassettes (default: from the emulator)")
    p.add_argument("modules", nargs="*", help=f"scenario modules (default: {', '.join(RECORDED_MODULES)})")
    p.add_argument("--target", choices=["emulator", "runpod"], default="emulator")
    p.add_argument(
        "--mode",
        default="rewrite",
        choices=["rewrite", "once", "new_episodes", "all"],
        help="pytest-recording mode (default rewrite: replace each cassette)",
    )
    p.set_defaults(func=_cmd_record)
    p = sub.add_parser("shapes", help="recognise a saved reply (JSON, /stream reply, models, raw SSE) and print it")
    p.add_argument("file", help="a file, or - for stdin")
    p.set_defaults(func=_cmd_shapes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    with scrubbed_stdio():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    # Whatever the endpoint echoes back of a key we hold is scrubbed from every line and file we write.
    register(*secrets_in(os.environ, [n for n in [getattr(args, "api_key_env", None)] if n]))
    try:
        return int(args.func(args))
    except ConfigError as exc:
        return _fail(str(exc))
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except HarnessError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
