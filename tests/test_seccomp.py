"""The stacked seccomp filter: what it denies inside a real container, and what still works."""

from __future__ import annotations

import pytest

from sandbox import Limits, seccomp

PROBE = r"""
import ctypes, errno, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
nr, args = int(sys.argv[1]), [int(a, 0) for a in sys.argv[2:]]
r = libc.syscall(nr, *args)
err = ctypes.get_errno()
print("denied" if r == -1 and err == errno.EPERM else f"allowed:{r}:{err}")
"""


@pytest.mark.parametrize(
    "name,args",
    [
        ("ptrace", ["0", "0", "0", "0"]),  # PTRACE_TRACEME
        ("unshare", ["0x10000000"]),  # CLONE_NEWUSER
        ("bpf", ["0", "0", "0"]),
        ("io_uring_setup", ["1", "0"]),
        ("perf_event_open", ["0", "0", "-1", "-1", "0"]),
        ("keyctl", ["0"]),
        ("userfaultfd", ["0"]),
        ("process_vm_readv", ["1", "0", "0", "0", "0", "0"]),
        ("personality", ["0xffffffff"]),
        ("mount", ["0", "0", "0", "0", "0"]),
    ],
)
def test_denied_syscalls_fail_with_eperm(sandbox, name, args):
    nr = seccomp.DENIED_X86_64[name]
    r = sandbox.run(["python3", "-c", PROBE, str(nr), *args])
    assert r.stdout.strip() == b"denied", (name, r.stdout, r.stderr)


@pytest.mark.parametrize("name,args", [("io_uring_setup", ["1", "0"]), ("ptrace", ["0", "0", "0", "0"])])
def test_tighter_than_the_engine_default(sandbox, name, args):
    """The engine's own profile lets these through (measured on Docker 20.10); the stacked filter does not."""
    nr = str(seccomp.DENIED_X86_64[name])
    loose = sandbox.run(["python3", "-c", PROBE, nr, *args], limits=Limits(seccomp="engine-default"))
    strict = sandbox.run(["python3", "-c", PROBE, nr, *args])
    assert loose.stdout.startswith(b"allowed"), loose.stdout
    assert strict.stdout.strip() == b"denied", strict.stdout


def test_socket_families(sandbox):
    code = (
        "import socket\n"
        "for fam, typ, proto in ((17, 3, 0), (38, 5, 0), (40, 1, 0), (16, 3, 9), (16, 3, 0),\n"
        "                        (1, 1, 0), (2, 1, 0), (10, 2, 0)):\n"
        "    try:\n        socket.socket(fam, typ, proto).close(); print(fam, proto, 'ok')\n"
        "    except OSError as e:\n        print(fam, proto, e.errno)\n"
    )
    lines = dict(
        line.rsplit(" ", 1) for line in sandbox.run(["python3", "-c", code]).stdout.decode().splitlines()
    )
    assert (
        lines["17 0"] == "1" and lines["38 0"] == "1" and lines["40 0"] == "1"
    )  # AF_PACKET, AF_ALG, AF_VSOCK
    assert lines["16 9"] == "1"  # netlink audit
    assert lines["16 0"] == "ok" and lines["1 0"] == "ok" and lines["2 0"] == "ok" and lines["10 0"] == "ok"


def test_ordinary_programs_still_work(sandbox):
    code = (
        "import subprocess, threading, multiprocessing, tempfile, os\n"
        "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
        "print(subprocess.run(['sh', '-c', 'echo child'], capture_output=True, text=True).stdout.strip())\n"
        "with multiprocessing.Pool(2) as p: print(sum(p.map(abs, [-1, -2])))\n"
        "print(open(tempfile.mkstemp(dir='/tmp')[1], 'w').write('x'))\n"
    )
    r = sandbox.run(["python3", "-c", code], limits=Limits(pids=64))
    assert r.stdout.split() == [b"thread", b"child", b"3", b"1"], r.stderr


def test_ptrace_traceme_does_not_confuse_the_supervisor(sandbox):
    code = (
        "import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0, 0); "
        "import os; os.kill(os.getpid(), 19); print('after')"
    )
    r = sandbox.run(["python3", "-c", code], limits=Limits(seccomp="engine-default", timeout=5))
    assert r.exit_code is not None and not r.timed_out


def test_filter_is_well_formed():
    prog = seccomp.filter_bytes()
    assert len(prog) % 8 == 0 and len(prog) // 8 < 4096
    assert seccomp.describe()["instructions"] == len(prog) // 8


SIGNALS_TO_PID1 = r"""
import ctypes, errno, os, signal, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(nr, *args)
    return "ok" if r >= 0 else ctypes.get_errno()
out = {
    "kill": call(62, 1, 0),                       # signal 0: a pure permission probe
    "kill_high_bits": call(62, (1 << 32) | 1, 0),   # the kernel reads pid_t as an int: still pid 1
    "tkill": call(200, 1, 0),
    "tgkill": call(234, 1, 1, 0),
    "rt_sigqueueinfo": call(129, 1, 0, 0),
    "rt_tgsigqueueinfo": call(297, 1, 1, 0, 0),
    "pidfd_open": call(434, 1, 0),
}
# Signals to anything else still work: a child of our own, and ourselves.
child = subprocess.Popen(["sleep", "30"])
out["kill_child"] = call(62, child.pid, signal.SIGKILL)
child.wait()
out["kill_self"] = call(62, os.getpid(), 0)
print(out)
"""


def test_signals_to_the_supervisor_are_denied(sandbox):
    r = sandbox.run(["python3", "-c", SIGNALS_TO_PID1])
    out = eval(r.stdout)  # our own probe's dict literal
    assert out.pop("kill_child") == "ok" and out.pop("kill_self") == "ok", out
    assert set(out.values()) == {1}, out  # EPERM for every way of signalling PID 1
    # Without the stacked filter, Docker's profile allows them (Linux then drops unhandled signals to init).
    loose = eval(
        sandbox.run(["python3", "-c", SIGNALS_TO_PID1], limits=Limits(seccomp="engine-default")).stdout
    )
    assert loose["kill"] == "ok", loose


NODES_AND_NICE = r"""
import ctypes, os, stat
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return exc.errno
libc = ctypes.CDLL(None, use_errno=True)
def mknodat(path, mode):
    ctypes.set_errno(0)
    return "ok" if libc.syscall(259, -100, path.encode(), mode, os.makedev(1, 3)) == 0 else ctypes.get_errno()
print({
    "chr": attempt(lambda: os.mknod("/tmp/c", 0o600 | stat.S_IFCHR, os.makedev(1, 3))),
    "blk": attempt(lambda: os.mknod("/tmp/b", 0o600 | stat.S_IFBLK, os.makedev(7, 0))),
    "chr_at": mknodat("/tmp/c2", 0o600 | stat.S_IFCHR),
    "fifo": attempt(lambda: os.mkfifo("/tmp/f")),
    "file": attempt(lambda: os.mknod("/tmp/r", 0o600 | stat.S_IFREG)),
    "nice_up": attempt(lambda: os.nice(-5)),
    "nice_down": attempt(lambda: os.nice(5)),
})
"""


def test_device_nodes_and_negative_nice_are_denied(sandbox):
    out = eval(sandbox.run(["python3", "-c", NODES_AND_NICE]).stdout)  # our own probe's dict
    assert (out["chr"], out["blk"], out["chr_at"], out["nice_up"]) == (1, 1, 1, 1), out
    assert (out["fifo"], out["file"], out["nice_down"]) == ("ok", "ok", "ok"), out


# -- the filter's logic, run on the bytes handed to the kernel -----------------------------------
# Inside a container several argument rules are backed twice (no CAP_MKNOD, no CAP_SYS_NICE), so a
# broken rule would not show there. Here a small cBPF interpreter runs seccomp.filter_bytes() on
# seccomp_data we build, and each rule must decide on its own.
def _verdict(nr: int, args: tuple[int, ...] = (), arch: int = seccomp.AUDIT_ARCH_X86_64) -> int:
    import struct

    data = struct.pack("<IIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    raw = seccomp.filter_bytes()
    prog = [struct.unpack_from("=HBBI", raw, i) for i in range(0, len(raw), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        if code == seccomp.LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == seccomp.AND_K:
            acc &= k
        elif code in (seccomp.JEQ_K, seccomp.JGE_K, seccomp.JSET_K):
            taken = {seccomp.JEQ_K: acc == k, seccomp.JGE_K: acc >= k, seccomp.JSET_K: bool(acc & k)}[code]
            pc += jt if taken else jf
        elif code == seccomp.RET_K:
            return k
        else:
            raise AssertionError(f"opcode {code:#x} at {pc} is not one the filter uses")
        pc += 1


ALLOW, DENY = seccomp.RET_ALLOW, seccomp.RET_ERRNO | seccomp.EPERM
S_IFCHR, S_IFBLK, S_IFIFO, S_IFREG = 0o020000, 0o060000, 0o010000, 0o100000


@pytest.mark.parametrize(
    "nr,args,want",
    [
        (seccomp.SYS_MKNOD, (0, S_IFCHR | 0o600, 0), DENY),
        (seccomp.SYS_MKNOD, (0, S_IFBLK | 0o600, 0), DENY),
        (seccomp.SYS_MKNOD, (0, S_IFIFO | 0o600, 0), ALLOW),
        (seccomp.SYS_MKNODAT, (0, 0, S_IFCHR | 0o600, 0), DENY),
        (seccomp.SYS_MKNODAT, (0, 0, S_IFREG | 0o600, 0), ALLOW),
        (seccomp.SYS_SETPRIORITY, (0, 0, (-5) & (2**64 - 1)), DENY),
        (seccomp.SYS_SETPRIORITY, (0, 0, 5), ALLOW),
        (62, (1, 9), DENY),  # kill(1, SIGKILL)
        (62, ((1 << 32) | 1, 9), DENY),  # pid_t is an int: still PID 1
        (62, (2, 9), ALLOW),
        (434, (1, 0), DENY),  # pidfd_open(1)
        (seccomp.SYS_CLONE, (0x10000000,), DENY),  # CLONE_NEWUSER
        (seccomp.SYS_CLONE, (0x01200011,), ALLOW),  # fork()'s flags
        (seccomp.SYS_CLONE3, (), seccomp.RET_ERRNO | seccomp.ENOSYS),
        (seccomp.SYS_SOCKET, (2, 1, 0), ALLOW),  # AF_INET
        (seccomp.SYS_SOCKET, (17, 3, 0), DENY),  # AF_PACKET
        (seccomp.SYS_SOCKET, (seccomp.AF_NETLINK, 3, 0), ALLOW),  # NETLINK_ROUTE
        (seccomp.SYS_SOCKET, (seccomp.AF_NETLINK, 3, 9), DENY),  # NETLINK_AUDIT
        (101, (), DENY),  # ptrace
        (0, (), ALLOW),  # read
        (0 | seccomp.X32_SYSCALL_BIT, (), seccomp.RET_KILL_PROCESS),
    ],
)
def test_filter_decides_each_rule(nr, args, want):
    assert _verdict(nr, args) == want


def test_filter_kills_other_abis():
    assert _verdict(0, (), arch=0x40000003) == seccomp.RET_KILL_PROCESS  # i386
