"""cgroup v2 device control: the rules of ``devices.target`` as a BPF_PROG_TYPE_CGROUP_DEVICE
program, attached to the container's cgroup directory.

The kernel runs the program on every mknod and open of a device node by a member of the
cgroup, with ``struct bpf_cgroup_dev_ctx`` in r1: ``access_type`` (device type in the low 16
bits, access bits above), ``major``, ``minor``. It returns 1 to allow, 0 to deny (EPERM).

The program is the v1 state written out, so both versions behave the same: one block per
exception, each returning the exception's verdict when it matches, then the default. An
exception grants (deny-all default) only when it covers every requested access bit, as v1's
``match_exception``; it denies (allow-all default) when it shares any bit, as v1's
``match_exception_partial``. runc's generator tests "requested within the rule" in both
cases, which lets a deny of ``w`` miss an ``O_RDWR`` open; this one does not. Comparisons
are 32-bit (BPF_JMP32), as wide as the context's fields and the rules' numbers.

Replacing the rules attaches the new program next to the old ones (BPF_F_ALLOW_MULTI: every
attached program must allow) and only then detaches those, so an update never leaves the
container unrestricted, not even for a moment. The kernel drops what is attached when the
cgroup directory is removed.

A runtime inside a user namespace (rootless, nested) or run by a user other than root may
not load programs at all; as runc does, the rules are then left unenforced rather than
failing the container: such a runtime cannot reach a device its user could not open anyway.
"""

from __future__ import annotations

import os

from ocirt.runtime import syscalls
from ocirt.runtime.cgroups.devices import ALL, WILDCARD, F, Key, State, target
from ocirt.runtime.errors import OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ocirt.runtime.cgroups.devices import Rule

NAME = "ocirt_devices"  # what bpftool shows; the kernel keeps 15 characters
LICENSE = "Apache-2.0"  # the program calls no helper, so any license string is accepted

# opcodes (linux/bpf_common.h, linux/bpf.h): class | operation | source
LDX_MEM_W = 0x61  # dst = *(u32 *)(src + off)
AND32_K = 0x54
RSH32_K = 0x74
MOV32_K = 0xB4
MOV32_X = 0xBC
JNE32_K = 0x56
JEQ32_K = 0x16
JSET32_K = 0x46  # jump if dst & imm
EXIT = 0x95
R0, R1, R2, R3, R4, R5 = range(6)

# BPF_DEVCG_DEV_* and BPF_DEVCG_ACC_*
DEV_TYPE = {"b": 1, "c": 2}
ACCESS_BIT = {"m": 1, "r": 2, "w": 4}
NEXT = -1  # placeholder offset: the start of the next block

Insn = tuple[int, int, int, int, int]  # opcode, dst, src, off, imm


def program(state: State) -> bytes:
    """The instructions, 8 bytes each, as ``bpf(BPF_PROG_LOAD)`` takes them."""
    insns: list[Insn] = [
        (LDX_MEM_W, R2, R1, 0, 0),
        (AND32_K, R2, 0, 0, 0xFFFF),  # r2: device type
        (LDX_MEM_W, R3, R1, 0, 0),
        (RSH32_K, R3, 0, 0, 16),  # r3: requested access
        (LDX_MEM_W, R4, R1, 4, 0),  # r4: major
        (LDX_MEM_W, R5, R1, 8, 0),  # r5: minor
    ]
    for key, access in state.exceptions.items():
        insns += _resolve(_block(key, access, not state.allow_all))
    insns += [(MOV32_K, R0, 0, 0, int(state.allow_all)), (EXIT, 0, 0, 0, 0)]
    return b"".join(_encode(insn) for insn in insns)


def _block(key: Key, access: str, grants: bool) -> list[Insn]:
    """Return the exception's verdict when the access matches it; else fall through."""
    kind, major, minor = key
    bits = sum(ACCESS_BIT[c] for c in access)
    block: list[Insn] = [(JNE32_K, R2, 0, NEXT, DEV_TYPE[kind])]
    if access != ALL and grants:
        block.append((JSET32_K, R3, 0, NEXT, 7 & ~bits))  # asks for a bit not granted
    elif access != ALL:
        block += [(MOV32_X, R0, R3, 0, 0), (AND32_K, R0, 0, 0, bits), (JEQ32_K, R0, 0, NEXT, 0)]
    if major != WILDCARD:
        block.append((JNE32_K, R4, 0, NEXT, major))
    if minor != WILDCARD:
        block.append((JNE32_K, R5, 0, NEXT, minor))
    return [*block, (MOV32_K, R0, 0, 0, int(grants)), (EXIT, 0, 0, 0, 0)]


def _resolve(block: list[Insn]) -> list[Insn]:
    """Jump offsets count from the instruction after the jump."""
    end = len(block)
    return [
        (op, dst, src, end - i - 1, imm) if off == NEXT else (op, dst, src, off, imm)
        for i, (op, dst, src, off, imm) in enumerate(block)
    ]


def _encode(insn: Insn) -> bytes:
    """``struct bpf_insn`` on a little-endian host: code, dst_reg:4 | src_reg:4, s16, s32."""
    op, dst, src, off, imm = insn
    return (
        bytes((op, dst | src << 4))
        + off.to_bytes(2, "little", signed=True)
        + (imm & 0xFFFFFFFF).to_bytes(4, "little")
    )


def set_v2(path: str, rules: list[Rule]) -> None:
    """Bring the cgroup2 directory ``path`` to the rules: one program of ours, or none when
    they allow everything."""
    wanted = target(rules)
    code = None if wanted.allows_everything() else program(wanted)
    try:
        dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise OcirtError(f"{F}: opening {path}: {exc.strerror}") from None
    try:
        _replace(dir_fd, code)
    except PermissionError as exc:
        if not in_user_namespace() and os.geteuid() == 0:
            raise OcirtError(f"{F}: device programs on {path}: {exc.strerror}") from None
    except OSError as exc:
        raise OcirtError(f"{F}: device programs on {path}: {exc.strerror}") from None
    finally:
        os.close(dir_fd)


def _replace(dir_fd: int, code: bytes | None) -> None:
    old = syscalls.bpf_device_programs(dir_fd)
    if code is not None:
        prog_fd = syscalls.bpf_device_load(code, LICENSE, NAME)
        try:
            syscalls.bpf_device_attach(dir_fd, prog_fd)
        finally:
            os.close(prog_fd)
    for prog_id in old:
        _detach(dir_fd, prog_id)


def _detach(dir_fd: int, prog_id: int) -> None:
    """A program that went away meanwhile (another update) is already what we want."""
    try:
        prog_fd = syscalls.bpf_prog_fd(prog_id)
    except FileNotFoundError:
        return
    try:
        syscalls.bpf_device_detach(dir_fd, prog_fd)
    except FileNotFoundError:
        return
    finally:
        os.close(prog_fd)


def in_user_namespace() -> bool:
    """Any uid map but the initial namespace's identity map of every id."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except FileNotFoundError:
        return False
