"""The seccomp filter's program, run the way the kernel runs classic BPF (harness.conformance.seccomp.decide)."""

from __future__ import annotations

import pytest

from harness.conformance import seccomp


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_every_denied_call_is_refused_and_the_rest_allowed(machine: str) -> None:
    program, arch = seccomp.filter_program(machine), seccomp.AUDIT_ARCH[machine]
    column = 0 if machine == "x86_64" else 1
    denied = {nrs[column] for nrs in seccomp.CALLS.values() if nrs[column] is not None}
    for name, nrs in seccomp.CALLS.items():
        if nrs[column] is not None:
            assert seccomp.decide(program, nrs[column], arch) == seccomp.EPERM, name
    allowed = [nr for nr in range(0, 460) if nr not in denied and nr not in (seccomp.CLONE3, seccomp.CLONE[machine])]
    assert all(seccomp.decide(program, nr, arch) == seccomp.ALLOW for nr in allowed)
    clone = seccomp.CLONE[machine]
    assert seccomp.decide(program, clone, arch, 0x01200011) == seccomp.ALLOW  # what fork() passes
    assert seccomp.decide(program, clone, arch, 0x10000000) == seccomp.EPERM  # CLONE_NEWUSER
    assert seccomp.decide(program, seccomp.CLONE3, arch) == seccomp.ENOSYS  # libc then falls back to clone


def test_another_abi_is_killed() -> None:
    program = seccomp.filter_program("x86_64")
    assert seccomp.decide(program, 0, 0x40000003) == seccomp.KILL  # 32-bit x86 through int 0x80
    assert seccomp.decide(program, 0x40000000 | 1, seccomp.AUDIT_ARCH["x86_64"]) == seccomp.KILL  # x32
    with pytest.raises(ValueError, match="no seccomp filter"):
        seccomp.filter_program("riscv64")
