"""The seven devai tasks: prompts, payloads (worker-vllm native input and the OpenAI route), and checks.

Checks are small functions ``check(answer, case)`` that return quietly or raise a Finding (or
CheckSkipped when a check cannot run here, e.g. no node binary). Every check is proven both ways in
tests/test_tasks.py: a good answer passes, a bad one fails.
"""

from __future__ import annotations

import ast
import contextvars
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.conformance.sandbox import SandboxResult, check_javascript, run_javascript, run_pytest
from harness.core.errors import ConfigError
from harness.core.findings import Finding, Severity
from harness.core.shapes import Usage
from harness.core.yamltext import parse_yaml_bytes

__all__ = [
    "CHECKS",
    "TASKS",
    "Answer",
    "CheckError",
    "CheckSkipped",
    "TaskCase",
    "grade",
    "isolation_of",
    "load_cases",
    "messages_for",
    "native_input",
    "openai_input",
    "scripted_rules",
]

TASKS = ("chat", "analyze", "fix", "review", "explain", "generate-tests", "refactor")
SYSTEM = "You are DevAI, a senior software engineer. Answer precisely; put code in fenced code blocks."
INSTRUCTIONS = {
    "analyze": "Analyze this {language} code and identify the bug: name the line and explain the cause.",
    "fix": "Fix the bug in this {language} code. Reply with a short explanation and the complete fixed code.",
    "review": "Review this {language} code. List the problems by severity, with line numbers.",
    "explain": "Explain what this {language} code does, referring to its identifiers.",
    "generate-tests": "Write pytest unit tests for this {language} code. Reply with one python code block.",
    "refactor": "Refactor this {language} code for readability; keep its public names and behaviour. "
    "Reply with the complete code.",
}
DEFAULT_MAX_TOKENS = 512  # well above worker-vllm's 100 and vLLM's 16 defaults (worker-vllm #74)


class CheckSkipped(Exception):
    """The check cannot run here (say why); never counted as a pass."""


class CheckError(Exception):
    """The harness itself failed while checking (the sandbox could not start): ERROR, never the answer's FAIL."""


@dataclass(frozen=True, slots=True)
class TaskCase:
    task: str
    id: str
    language: str
    code: str
    good_answer: str
    bug: dict[str, Any] = field(default_factory=dict)
    test: str = ""
    timeout_s: float = 10.0  # for each sandboxed run

    @property
    def test_id(self) -> str:
        return f"{self.task}-{self.id}"


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    finish_reason: str | None = "stop"
    usage: Usage | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS


def load_cases(folder: str | Path) -> list[TaskCase]:
    cases = []
    for path in sorted(Path(folder).glob("*.yaml")):
        data = parse_yaml_bytes(path.read_bytes(), str(path))
        task = data.get("task") if isinstance(data, dict) else None
        if task not in TASKS:
            raise ConfigError(f"{path}: 'task' must be one of {', '.join(TASKS)}")
        for i, c in enumerate(data.get("cases") or []):
            try:
                cases.append(
                    TaskCase(
                        task=task,
                        id=c["id"],
                        language=c["language"],
                        code=c["code"],
                        good_answer=c["good_answer"],
                        bug=c.get("bug") or {},
                        test=c.get("test", ""),
                    )
                )
            except (KeyError, TypeError) as exc:
                raise ConfigError(f"{path}: cases[{i}] is missing {exc}") from None
    return cases


def messages_for(case: TaskCase) -> list[dict[str, str]]:
    if case.task == "chat":
        user = case.code
    else:
        fence = {"python": "python", "javascript": "javascript", "typescript": "typescript"}[case.language]
        user = f"{INSTRUCTIONS[case.task].format(language=case.language)}\n\n```{fence}\n{case.code}```"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def native_input(
    case: TaskCase, max_tokens: int = DEFAULT_MAX_TOKENS, sampling: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """worker-vllm's native job input; greedy unless ``sampling`` says otherwise (temperature, seed...)."""
    params = {"max_tokens": max_tokens, "temperature": 0, **(sampling or {})}
    return {"messages": messages_for(case), "sampling_params": params}


def openai_input(
    case: TaskCase, model: str, max_tokens: int = DEFAULT_MAX_TOKENS, sampling: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    body = {"model": model, "messages": messages_for(case), "max_tokens": max_tokens, "temperature": 0}
    return {"openai_route": "/v1/chat/completions", "openai_input": {**body, **(sampling or {})}}


def scripted_rules(cases: list[TaskCase]) -> list[dict[str, str]]:
    """Rules for the emulator's scripted engine: each case's prompt -> its good answer."""
    return [{"match": re.escape(messages_for(c)[-1]["content"][:200]), "response": c.good_answer} for c in cases]


# --- helpers -----------------------------------------------------------------------------

_FENCE = re.compile(r"```([\w+-]*)[ \t]*\n(.*?)```", re.S)


def quote(text: str, limit: int = 80) -> str:
    """A bounded one-line quote of model output for a message (an answer may be 500 newlines)."""
    if not text.strip():
        return f"nothing but whitespace ({len(text)} chars)"
    flat = re.sub(r"\s+", " ", text.strip())
    return repr(flat[:limit]) + (f" ... ({len(text)} chars)" if len(flat) > limit else "")


def code_blocks(text: str) -> list[tuple[str, str]]:
    return [(lang.lower(), body) for lang, body in _FENCE.findall(text)]


def main_code(answer: Answer, language: str) -> str:
    blocks = code_blocks(answer.text)
    aliases = {"python": ("python", "py"), "javascript": ("javascript", "js"), "typescript": ("typescript", "ts")}
    wanted = [b for lang, b in blocks if lang in aliases.get(language, (language,))]
    chosen = wanted or [b for _, b in blocks]
    if not chosen:
        what = f"it is {quote(answer.text)}" if not answer.text.strip() else f"it begins {quote(answer.text)}"
        raise Finding("no-code-block", "the answer has no fenced code block", what)
    return chosen[-1]


def _parse(code: str, language: str) -> None:
    if language == "python":
        try:
            ast.parse(code)
        except SyntaxError as exc:
            raise Finding("code-does-not-parse", "the code does not parse", f"line {exc.lineno}: {exc.msg}") from None
        return
    if language == "javascript":
        result = _note(check_javascript(code))
        if result.skipped:
            raise CheckSkipped(f"cannot parse JavaScript: {result.skipped}")
        if result.error:
            raise CheckError(f"cannot parse JavaScript: {result.error}")
        if not result.ok:
            raise Finding("code-does-not-parse", "the code does not parse", result.tail)
        return
    raise CheckSkipped(f"no parser for {language} here (TypeScript needs tsc or node >= 22)")


_RUNS: contextvars.ContextVar[list[SandboxResult] | None] = contextvars.ContextVar("sandbox_runs", default=None)


def _note(result: SandboxResult) -> SandboxResult:
    """Keep the run for the row being graded (what isolated it, what its cleanup left)."""
    runs = _RUNS.get()
    if runs is not None:
        runs.append(result)
    return result


def _sandbox(result: SandboxResult, what: str) -> None:
    _note(result)
    if result.skipped:
        raise CheckSkipped(f"{what}: {result.skipped}")
    if result.error:
        raise CheckError(f"{what}: {result.error}")
    if result.timed_out:
        raise Finding("sandbox-timeout", f"{what} did not finish in time", result.tail)
    if not result.ok:
        raise Finding("tests-fail", f"{what} failed: {result.reason}", result.tail)


def _run_case_test(code: str, case: TaskCase, what: str) -> None:
    if not case.test:
        raise CheckSkipped(f"case {case.id} bundles no test")
    if case.language == "python":
        _sandbox(run_pytest(code, case.test, timeout=case.timeout_s), what)
    elif case.language == "javascript":
        _sandbox(run_javascript(code, case.test, timeout=case.timeout_s), what)
    else:
        raise CheckSkipped(f"cannot run {case.language} tests here")


def _mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text, re.I) is not None or (
        not word[:1].isalnum() and word.lower() in text.lower()
    )


# --- checks ------------------------------------------------------------------------------

Check = Callable[[Answer, TaskCase], None]


def check_not_empty(a: Answer, case: TaskCase) -> None:
    if not a.text.strip():
        detail = quote(a.text) if a.text else ""
        raise Finding("empty-answer", "the answer is empty", detail, severity=Severity.CRITICAL)


def check_usage(a: Answer, case: TaskCase) -> None:
    if a.usage is None or a.usage.output_tokens is None:
        raise Finding("no-usage", "no token usage reported", "cost and speed cannot be measured", Severity.WARNING)
    if a.usage.output_tokens <= 0 or a.usage.output_tokens > a.max_tokens:
        raise Finding(
            "usage-implausible",
            "implausible output token count",
            f"{a.usage.output_tokens} tokens for max_tokens={a.max_tokens}",
        )


def check_complete(a: Answer, case: TaskCase) -> None:
    """Not cut at max_tokens; and not the 16/100-token default of vLLM/worker-vllm (worker-vllm #74)."""
    out = a.usage.output_tokens if a.usage is not None else None
    if out in (16, 100) and a.max_tokens not in (16, 100) and a.finish_reason == "length":
        raise Finding(
            "default-max-tokens",
            f"answer stopped at {out} tokens: max_tokens was not honoured",
            f"requested {a.max_tokens}; the server used its default (worker-vllm #74)",
        )
    if a.finish_reason == "length":
        raise Finding("truncated-answer", "the answer was cut at max_tokens", f"max_tokens={a.max_tokens}")


_IT = {"il", "lo", "la", "che", "una", "per", "di", "e", "non", "con", "questa", "ecco", "funzione", "stringa"}
_EN = {"the", "a", "is", "that", "to", "of", "and", "this", "it", "here", "function", "you", "with"}


def check_language(a: Answer, case: TaskCase) -> None:
    words = re.findall(r"[a-zàèéìòù]+", re.sub(r"```.*?```", " ", a.text, flags=re.S).lower())
    it, en = sum(w in _IT for w in words), sum(w in _EN for w in words)
    if it == en == 0:  # no evidence either way: not judged, rather than "answered in en"
        raise CheckSkipped("cannot tell the answer's language: it has no common Italian or English word")
    got = "it" if it > en else "en"
    if case.language in ("it", "en") and got != case.language:
        raise Finding("wrong-language", f"asked in {case.language}, answered in {got}", f"it={it} en={en}")


def check_names_bug(a: Answer, case: TaskCase) -> None:
    bug = case.bug
    text = a.text
    line = bug.get("line")
    line_named = line is not None and re.search(rf"\b(line|lines|riga|L)\s*{line}\b", text, re.I) is not None
    ident = any(_mentions(text, i) for i in bug.get("identifiers", []))
    concept = any(_mentions(text, c) for c in bug.get("concepts", []))
    if not (concept or (line_named and ident)):
        raise Finding(
            "bug-not-named",
            "the planted bug is not named",
            f"expected line {line} with one of {bug.get('identifiers')} or a concept of {bug.get('concepts')}",
        )


def check_code_parses(a: Answer, case: TaskCase) -> None:
    _parse(main_code(a, case.language), case.language)


def check_bug_gone(a: Answer, case: TaskCase) -> None:
    pattern = case.bug.get("pattern")
    if pattern and pattern in main_code(a, case.language):
        raise Finding("bug-still-there", "the planted bug is still in the fixed code", repr(pattern))


def check_fixed_passes_test(a: Answer, case: TaskCase) -> None:
    _run_case_test(main_code(a, case.language), case, "the case's test against the fixed code")


def check_mentions_identifiers(a: Answer, case: TaskCase) -> None:
    idents = case.bug.get("identifiers", [])
    named = [i for i in idents if _mentions(a.text, i)]
    if len(named) * 3 < len(idents) * 2:
        raise Finding(
            "identifiers-missing",
            "the explanation does not refer to the code's identifiers",
            f"named {named} of {idents}",
        )


def check_tests_are_tests(a: Answer, case: TaskCase) -> None:
    code = main_code(a, "python")
    _parse(code, "python")
    tests = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
    asserting = [t for t in tests if any(isinstance(n, (ast.Assert, ast.With)) for n in ast.walk(t))]
    if not tests or len(asserting) < len(tests):
        raise Finding(
            "no-real-tests",
            "no pytest test functions with assertions",
            f"{len(tests)} test function(s), {len(asserting)} asserting",
        )


def check_tests_pass_reference(a: Answer, case: TaskCase) -> None:
    _sandbox(
        run_pytest(case.code, main_code(a, "python"), timeout=case.timeout_s),
        "the generated tests against the reference code",
    )


def _public_names(code: str, language: str) -> set[str]:
    if language == "python":
        return {
            n.name
            for n in ast.parse(code).body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")
        }
    return set(re.findall(r"(?:function|class)\s+([A-Za-z_$][\w$]*)", code))


def check_keeps_public_names(a: Answer, case: TaskCase) -> None:
    missing = _public_names(case.code, case.language) - _public_names(main_code(a, case.language), case.language)
    if missing:
        raise Finding("public-names-lost", "the refactor drops public names", ", ".join(sorted(missing)))


def check_refactor_passes_test(a: Answer, case: TaskCase) -> None:
    _run_case_test(main_code(a, case.language), case, "the case's test against the refactored code")


COMMON: list[Check] = [check_not_empty, check_usage, check_complete]
CHECKS: dict[str, list[Check]] = {
    "chat": [*COMMON, check_language],
    "analyze": [*COMMON, check_names_bug],
    "review": [*COMMON, check_names_bug],
    "fix": [*COMMON, check_code_parses, check_bug_gone, check_fixed_passes_test],
    "explain": [*COMMON, check_mentions_identifiers],
    "generate-tests": [*COMMON, check_tests_are_tests, check_tests_pass_reference],
    "refactor": [*COMMON, check_code_parses, check_keeps_public_names, check_refactor_passes_test],
}


def grade(answer: Answer, case: TaskCase, runs: list[SandboxResult] | None = None) -> dict[str, str]:
    """Every check of the case's task: ``pass``, ``fail: <finding>``, ``skip: <why>`` or ``error: <what of ours
    failed>`` by check name; the sandboxed runs it made are appended to ``runs``."""
    verdicts = {}
    token = _RUNS.set(runs)
    try:
        for check in CHECKS[case.task]:
            try:
                check(answer, case)
                verdicts[check.__name__] = "pass"
            except CheckSkipped as exc:
                verdicts[check.__name__] = f"skip: {exc}"
            except CheckError as exc:
                verdicts[check.__name__] = f"error: {exc}"
            except Finding as exc:
                verdicts[check.__name__] = f"fail: {exc}"
    finally:
        _RUNS.reset(token)
    return verdicts


def isolation_of(runs: list[SandboxResult]) -> str:
    """What isolated a row's runs, and what their cleanup left ("" when nothing ran)."""
    said = sorted({r.isolation for r in runs if r.isolation})
    left = [r.left for r in runs if r.left]
    return "; ".join(said + [f"left behind: {x}" for x in left])
