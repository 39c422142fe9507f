"""Every devai task check proven both ways: the case's good answer passes, a bad answer fails."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable

import pytest

from harness.conformance.tasks import (
    CHECKS,
    Answer,
    CheckSkipped,
    TaskCase,
    check_bug_gone,
    check_code_parses,
    check_complete,
    check_fixed_passes_test,
    check_keeps_public_names,
    check_language,
    check_mentions_identifiers,
    check_names_bug,
    check_not_empty,
    check_refactor_passes_test,
    check_tests_are_tests,
    check_tests_pass_reference,
    check_usage,
    load_cases,
    messages_for,
    native_input,
    openai_input,
)
from harness.core.findings import Finding
from harness.core.shapes import Usage

CASES = {c.test_id: c for c in load_cases("scenarios/tasks")}
USAGE = Usage(20, 60, "test")
NODE = shutil.which("node") is not None


def good(case: TaskCase) -> Answer:
    return Answer(case.good_answer, "stop", USAGE)


def test_every_task_has_cases_in_each_language_asked() -> None:
    tasks = {c.task for c in CASES.values()}
    assert tasks == set(CHECKS)
    langs = {c.language for c in CASES.values()}
    assert {"python", "javascript", "typescript", "en", "it"} <= langs
    assert all(len([c for c in CASES.values() if c.task == t]) >= 2 for t in tasks)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_good_answers_pass_every_check(case_id: str) -> None:
    case = CASES[case_id]
    skipped = []
    for check in CHECKS[case.task]:
        try:
            check(good(case), case)
        except CheckSkipped as exc:
            skipped.append(str(exc))
    if case.language == "python" or (case.language == "javascript" and NODE):
        assert skipped == [], skipped  # nothing may silently not run where it can run


def test_payloads_in_both_input_forms() -> None:
    case = CASES["fix-py-average-empty"]
    native = native_input(case, max_tokens=300)
    assert native["sampling_params"] == {"max_tokens": 300, "temperature": 0}
    assert "def average_positive" in native["messages"][-1]["content"]
    routed = openai_input(case, "Qwen/Qwen2.5-Coder-7B")
    assert routed["openai_route"] == "/v1/chat/completions"
    assert routed["openai_input"]["messages"] == messages_for(case)


BuggyAnswer = Callable[[TaskCase], Answer]

BAD: list[tuple[str, Callable[[Answer, TaskCase], None], str, str]] = [
    ("chat-en-hello-world", check_not_empty, "   ", "empty"),
    (
        "chat-it-inverte-stringa",
        check_language,
        "Here is a function that reverses the string:\n```python\ndef r(s):\n    return s[::-1]\n```",
        "answered in",
    ),
    ("chat-en-hello-world", check_language, "Ecco la funzione che stampa il saluto: non è difficile.", "answered in"),
    ("analyze-py-mutable-default", check_names_bug, "The code looks fine to me and is well written.", "not named"),
    ("review-js-sql-injection", check_names_bug, "Consider adding comments and better variable names.", "not named"),
    ("fix-py-average-empty", check_code_parses, "```python\ndef average_positive(values)\n    return 0\n```", "parse"),
    ("fix-py-average-empty", check_bug_gone, "```python\n{code}```", "still"),
    ("fix-py-average-empty", check_fixed_passes_test, "```python\n{code}```", "failed"),
    (
        "fix-py-average-empty",
        check_fixed_passes_test,
        "```python\nimport socket\ndef average_positive(v):\n    socket.getaddrinfo('example.com', 80)\n```",
        "failed",
    ),
    (
        "fix-py-average-empty",
        check_fixed_passes_test,
        "```python\ndef average_positive(v):\n    while True:\n        pass\n```",
        "in time",
    ),
    ("fix-js-last-element", check_bug_gone, "```javascript\n{code}```", "still"),
    ("explain-py-memoize", check_mentions_identifiers, "It is a helper that makes things faster.", "identifiers"),
    (
        "generate-tests-py-slugify",
        check_tests_are_tests,
        "```python\ndef test_slugify():\n    slugify('a')\n```",
        "assertions",
    ),
    (
        "generate-tests-py-slugify",
        check_tests_pass_reference,
        "```python\ndef test_wrong():\n    assert slugify('Hello World') == 'Hello World'\n```",
        "failed",
    ),
    (
        "refactor-py-discount",
        check_keeps_public_names,
        "```python\ndef discounted(price, customer):\n    return price\n```",
        "public names",
    ),
    (
        "refactor-py-discount",
        check_refactor_passes_test,
        "```python\ndef price_after_discount(price, customer):\n    return price\n```",
        "failed",
    ),
    ("refactor-js-totals", check_keeps_public_names, "```javascript\nconst sum = (o) => 0;\n```", "public names"),
]


@pytest.mark.parametrize(
    ("case_id", "check", "text", "expect"), BAD, ids=[f"{c}-{f.__name__}-{i}" for i, (c, f, _, _) in enumerate(BAD)]
)
def test_bad_answers_fail(case_id: str, check: Callable[[Answer, TaskCase], None], text: str, expect: str) -> None:
    case = dataclasses.replace(CASES[case_id], timeout_s=2.0)
    answer = Answer(text.replace("{code}", case.code), "stop", USAGE)
    if case.language == "javascript" and not NODE and check in (check_fixed_passes_test, check_refactor_passes_test):
        pytest.skip("node is not installed")
    with pytest.raises(Finding, match=expect):
        check(answer, case)


@pytest.mark.parametrize(
    ("answer", "check", "expect"),
    [
        (Answer("x", "stop", None), check_usage, "no token usage"),
        (Answer("x", "stop", Usage(5, 900, "t"), max_tokens=512), check_usage, "implausible"),
        (Answer("x", "stop", Usage(5, 0, "t")), check_usage, "implausible"),
        (Answer("x", "length", Usage(5, 512, "t")), check_complete, "cut at max_tokens"),
        (Answer("x", "length", Usage(5, 16, "t"), max_tokens=512), check_complete, "not honoured"),
        (Answer("x", "length", Usage(5, 100, "t"), max_tokens=512), check_complete, "worker-vllm #74"),
    ],
)
def test_common_checks_fail(answer: Answer, check: Callable[[Answer, TaskCase], None], expect: str) -> None:
    with pytest.raises(Finding, match=expect):
        check(answer, CASES["chat-en-hello-world"])


def test_typescript_checks_say_why_they_skip() -> None:
    case = CASES["fix-ts-sum-strings"]
    with pytest.raises(CheckSkipped, match="TypeScript"):
        check_code_parses(good(case), case)


def test_no_evidence_of_a_language_is_not_judged_as_english() -> None:
    """A random model's answer (vLLM with a random-weight model: newlines, stray bytes) has no word of either
    language: the check says it cannot tell, instead of "answered in en: it=0 en=0"."""
    case = CASES["chat-it-inverte-stringa"]
    for text in ("\n" * 512, "\ufffd\x0c qurn8 dddu"):
        with pytest.raises(CheckSkipped, match="cannot tell the answer's language"):
            check_language(Answer(text, "length", USAGE), case)


def test_a_missing_code_block_quotes_the_answer_on_one_bounded_line() -> None:
    case = CASES["fix-py-average-empty"]
    with pytest.raises(Finding) as info:
        check_code_parses(Answer("\n" * 512, "length", USAGE), case)
    message = str(info.value)
    assert "\n" not in message and len(message) < 250 and "nothing but whitespace (512 chars)" in message
