"""An extra seccomp filter, stacked on top of the engine's default profile.

Docker applies its default seccomp profile to every container. Filters stack in the
kernel (the strictest answer wins), so the supervisor installs this one in the program's
process just before exec: the program and everything it starts get Docker's default
*and* this denylist. The supervisor itself is not filtered (it must kill and reap).

What it denies and why (x86_64; other architectures keep Docker's default only):
- cross-process access: ptrace, process_vm_readv/writev, kcmp, pidfd_getfd, process_madvise
  (a test must not read or steer the gate runner or another process);
- kernel attack surface rarely needed by skill code: bpf, perf_event_open, userfaultfd,
  io_uring_setup/enter/register (io_uring ops also bypass seccomp), keyctl/add_key/request_key
  (kernel keyrings), modify_ldt, NUMA calls (mbind, set_mempolicy, migrate_pages, move_pages);
- namespaces and mounts: unshare, setns, clone with CLONE_NEW* flags, clone3 (its flags cannot
  be inspected, so it answers ENOSYS and libc falls back to clone), mount, umount2, pivot_root,
  chroot, the new mount API (open_tree, move_mount, fsopen, fsconfig, fsmount, fspick,
  mount_setattr), name_to_handle_at/open_by_handle_at (the classic "shocker" escape);
- privileged operations (already refused for lack of capabilities; denied again in depth):
  reboot, kexec_*, *_module, swapon/off, acct, sethostname/setdomainname, settimeofday,
  clock_settime/adjtime, adjtimex, iopl/ioperm, quotactl, syslog, vhangup, personality;
- sockets other than AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK/NETLINK_ROUTE (glibc's
  getaddrinfo uses that one): no AF_PACKET, AF_ALG, AF_VSOCK, AF_KEY, AF_XDP, other netlink;
- signals to PID 1, the supervisor: kill, tkill, tgkill, rt_sigqueueinfo and rt_tgsigqueueinfo
  aimed at pid 1, and pidfd_open(1). Linux already keeps signals without a handler away from a
  namespace's init, but gVisor does not (a program could SIGKILL its supervisor there, measured);
  denied for both. Only the low 32 bits are compared: the kernel reads pid_t as an int;
- device nodes: mknod/mknodat of a character or block device (FIFOs and plain files stay
  allowed). Linux refuses them without CAP_MKNOD; gVisor lets any user make them (measured);
- raising priority: setpriority to a negative nice value (Linux refuses it without
  CAP_SYS_NICE; gVisor does not check);
- the x32 ABI and any other architecture (i386 via int 0x80): the process is killed.
Denied calls fail with EPERM, so programs see an ordinary error, not a crash.
"""

from __future__ import annotations

import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
EPERM, ENOSYS = 1, 38

# x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
DENIED_X86_64 = {
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "pidfd_getfd": 438,
    "process_madvise": 440,
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "modify_ldt": 154,
    "mbind": 237,
    "set_mempolicy": 238,
    "migrate_pages": 256,
    "move_pages": 279,
    "unshare": 272,
    "setns": 308,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "chroot": 161,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "reboot": 169,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "swapon": 167,
    "swapoff": 168,
    "acct": 163,
    "sethostname": 170,
    "setdomainname": 171,
    "settimeofday": 164,
    "clock_settime": 227,
    "clock_adjtime": 305,
    "adjtimex": 159,
    "iopl": 172,
    "ioperm": 173,
    "quotactl": 179,
    "syslog": 103,
    "vhangup": 153,
    "personality": 135,
    "lookup_dcookie": 212,
    "uselib": 134,
    "ustat": 136,
    "sysfs": 139,
    "fanotify_init": 300,
}
SYS_CLONE, SYS_CLONE3, SYS_SOCKET = 56, 435, 41
# Calls whose first argument names the process (or thread group) to signal or open.
PID_TARGETED_X86_64 = {
    "kill": 62,
    "tkill": 200,
    "tgkill": 234,
    "rt_sigqueueinfo": 129,
    "rt_tgsigqueueinfo": 297,
    "pidfd_open": 434,
}
SUPERVISOR_PID = 1
SYS_MKNOD, SYS_MKNODAT, SYS_SETPRIORITY = 133, 259, 141
S_IFMT, S_IFCHR, S_IFBLK = 0o170000, 0o020000, 0o060000
CLONE_NEW_FLAGS = 0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x02000000
ALLOWED_FAMILIES = (1, 2, 10)  # AF_UNIX, AF_INET, AF_INET6
AF_NETLINK, NETLINK_ROUTE = 16, 0

# classic BPF opcodes
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
AND_K = 0x54
RET_K = 0x06
OFF_NR, OFF_ARCH, OFF_ARG0, OFF_ARG1, OFF_ARG2 = 0, 4, 16, 24, 32


def supported() -> bool:
    """Whether this machine's architecture gets the stacked filter."""
    return platform.machine() in ("x86_64", "amd64")


def _program() -> list[tuple[int, int, int, int]]:
    """Assemble the filter with symbolic jump targets, then resolve them to offsets."""
    prog: list[tuple] = []
    labels: dict[str, int] = {}

    def op(code: int, k: int = 0, jt: str | int = 0, jf: str | int = 0) -> None:
        prog.append((code, jt, jf, k))

    def label(name: str) -> None:
        labels[name] = len(prog)

    op(LD_W_ABS, OFF_ARCH)
    op(JEQ_K, AUDIT_ARCH_X86_64, jt="nr", jf="kill")
    label("nr")
    op(LD_W_ABS, OFF_NR)
    op(JGE_K, X32_SYSCALL_BIT, jt="kill", jf=0)
    for nr in sorted(set(DENIED_X86_64.values())):
        op(JEQ_K, nr, jt="deny", jf=0)
    op(JEQ_K, SYS_CLONE, jt="clone", jf=0)
    op(JEQ_K, SYS_CLONE3, jt="enosys", jf=0)
    op(JEQ_K, SYS_SOCKET, jt="socket", jf=0)
    for nr in sorted(PID_TARGETED_X86_64.values()):
        op(JEQ_K, nr, jt="to_pid", jf=0)
    op(JEQ_K, SYS_MKNOD, jt="mknod", jf=0)
    op(JEQ_K, SYS_MKNODAT, jt="mknodat", jf=0)
    op(JEQ_K, SYS_SETPRIORITY, jt="setpriority", jf=0)
    op(RET_K, RET_ALLOW)  # every other call
    # cBPF jumps only forward: the argument checks come after the dispatch, the returns they
    # share after them (every offset stays well under the 255 a jump can span).
    label("clone")
    op(LD_W_ABS, OFF_ARG0)
    op(AND_K, CLONE_NEW_FLAGS)
    op(JEQ_K, 0, jt="allow", jf="deny")
    label("socket")
    op(LD_W_ABS, OFF_ARG0)
    for fam in ALLOWED_FAMILIES:
        op(JEQ_K, fam, jt="allow", jf=0)
    op(JEQ_K, AF_NETLINK, jt="netlink", jf="deny")
    label("netlink")
    op(LD_W_ABS, OFF_ARG2)
    op(JEQ_K, NETLINK_ROUTE, jt="allow", jf="deny")
    label("to_pid")
    op(LD_W_ABS, OFF_ARG0)
    op(JEQ_K, SUPERVISOR_PID, jt="deny", jf="allow")
    label("mknod")
    op(LD_W_ABS, OFF_ARG1)  # mknod(path, mode, dev)
    op(JEQ_K, 0, jt="node_type", jf="node_type")  # either way: an unconditional jump
    label("mknodat")
    op(LD_W_ABS, OFF_ARG2)  # mknodat(dirfd, path, mode, dev)
    label("node_type")
    op(AND_K, S_IFMT)
    op(JEQ_K, S_IFCHR, jt="deny", jf=0)
    op(JEQ_K, S_IFBLK, jt="deny", jf="allow")
    label("setpriority")
    op(LD_W_ABS, OFF_ARG2)  # setpriority(which, who, prio): prio < 0 raises it
    op(JSET_K, 0x80000000, jt="deny", jf="allow")
    label("allow")
    op(RET_K, RET_ALLOW)
    label("deny")
    op(RET_K, RET_ERRNO | EPERM)
    label("enosys")
    op(RET_K, RET_ERRNO | ENOSYS)
    label("kill")
    op(RET_K, RET_KILL_PROCESS)

    out = []
    for i, (code, jt, jf, k) in enumerate(prog):

        def rel(target: str | int, i: int = i) -> int:
            if isinstance(target, int):
                return target
            off = labels[target] - i - 1
            if not 0 <= off <= 255:
                raise ValueError(f"seccomp jump to {target} out of range ({off})")
            return off

        out.append((code, rel(jt), rel(jf), k))
    return out


def filter_bytes() -> bytes:
    """The filter as an array of struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}."""
    return b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in _program())


def describe() -> dict[str, object]:
    """Facts about the filter, for doctor and the docs."""
    return {
        "denied": sorted(DENIED_X86_64),
        "clone": "CLONE_NEW* flags denied",
        "clone3": "ENOSYS",
        "socket_families": ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK/NETLINK_ROUTE"],
        "signals_to_pid1": sorted(PID_TARGETED_X86_64),
        "device_nodes": "mknod/mknodat S_IFCHR, S_IFBLK",
        "negative_nice": "setpriority",
        "other_abis": "killed",
        "instructions": len(_program()),
    }
