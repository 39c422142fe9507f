"""The seccomp filter model-written code runs under in bubblewrap (``bwrap --seccomp FD``).

In the spirit of Docker's default profile, narrowed to what a case's code never needs: the kernel keyring
(keyctl, add_key, request_key), new namespaces (unshare, setns, and clone with a CLONE_NEW* flag), mounts and the
new mount API, ptrace and cross-process memory access, bpf, perf_event_open, kexec, kernel modules, userfaultfd,
file handles, and the host-wide switches (reboot, swap, clock, accounting, quotas, port I/O). Those calls fail with
EPERM; clone3, whose flags the filter cannot read, fails with ENOSYS so libc falls back to clone. Calls from another
ABI (32-bit x86 on x86_64, x32) kill the process: a way around the table otherwise.

Classic BPF, assembled here: the only library that writes these programs (libseccomp) is C, and a fixed deny-list
is a few dozen instructions. ``decide`` runs the program the way the kernel does, for tests.
"""

from __future__ import annotations

import errno
import platform
import struct

__all__ = [
    "ALLOW",
    "AUDIT_ARCH",
    "CALLS",
    "CLONE",
    "CLONE3",
    "ENOSYS",
    "EPERM",
    "KILL",
    "decide",
    "filter_program",
    "supported",
]

# name: (x86_64, aarch64); None where the call does not exist on that architecture.
CALLS: dict[str, tuple[int | None, int | None]] = {
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "unshare": (272, 97),
    "setns": (308, 268),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "userfaultfd": (323, 282),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    "reboot": (169, 142),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "acct": (163, 89),
    "settimeofday": (164, 170),
    "clock_settime": (227, 112),
    "quotactl": (179, 60),
    "iopl": (172, None),
    "ioperm": (173, None),
}
CLONE, CLONE3 = {"x86_64": 56, "aarch64": 220}, 435
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_BIT = 0x40000000
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (and NEWTIME, 0x80, on clone3 only)
CLONE_NEW = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

ALLOW, KILL = 0x7FFF0000, 0x80000000
EPERM, ENOSYS = 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (arg0's low 32 bits, little-endian)

Instruction = tuple[int, int, int, int]  # code, jump if true, jump if false, k


def supported(machine: str | None = None) -> bool:
    return (machine or platform.machine()) in AUDIT_ARCH


def _instructions(machine: str) -> list[Instruction]:
    column = 0 if machine == "x86_64" else 1
    denied = sorted({n for nrs in CALLS.values() if (n := nrs[column]) is not None})
    head: list[Instruction] = [(_LD_ABS, 0, 0, _ARCH), (_JEQ, 1, 0, AUDIT_ARCH[machine]), (_RET, 0, 0, KILL)]
    head.append((_LD_ABS, 0, 0, _NR))
    if machine == "x86_64":
        head += [(_JGE, 0, 1, _X32_BIT), (_RET, 0, 0, KILL)]
    # m comparisons, then: ALLOW (none matched), EPERM, ENOSYS, and clone's flag check. A jump counts from the
    # next instruction: from comparison i to the tail's j-th instruction is m + j - (i + 1).
    m = len(denied) + 2
    table: list[Instruction] = [(_JEQ, m - i, 0, nr) for i, nr in enumerate(denied)]
    table += [(_JEQ, 3, 0, CLONE3), (_JEQ, 3, 0, CLONE[machine])]
    tail: list[Instruction] = [(_RET, 0, 0, ALLOW), (_RET, 0, 0, EPERM), (_RET, 0, 0, ENOSYS)]
    tail += [(_LD_ABS, 0, 0, _ARG0), (_JSET, 0, 1, CLONE_NEW), (_RET, 0, 0, EPERM), (_RET, 0, 0, ALLOW)]
    return head + table + tail


def filter_program(machine: str | None = None) -> bytes:
    """The filter as bytes for ``bwrap --seccomp FD`` (an array of struct sock_filter)."""
    machine = machine or platform.machine()
    if machine not in AUDIT_ARCH:
        raise ValueError(f"no seccomp filter for {machine}")
    return b"".join(struct.pack("<HBBI", *ins) for ins in _instructions(machine))


def decide(program: bytes, nr: int, arch: int, arg0: int = 0) -> int:
    """What the program returns for a call: the kernel's classic BPF, reduced to the instructions we emit."""
    data = {_NR: nr, _ARCH: arch, _ARG0: arg0 & 0xFFFFFFFF}
    code = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        op, jt, jf, k = code[pc]
        if op == _RET:
            return int(k)
        if op == _LD_ABS:
            acc = data[k]
        elif op in (_JEQ, _JGE, _JSET):
            hit = acc == k if op == _JEQ else acc >= k if op == _JGE else bool(acc & k)
            pc += jt if hit else jf
        else:
            raise ValueError(f"unknown instruction {op:#x}")
        pc += 1
