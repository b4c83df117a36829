"""The stacked seccomp filter: what it denies inside a real container, and what still works."""
from __future__ import annotations

import pytest

from sandbox import Limits
from sandbox import seccomp

PROBE = r'''
import ctypes, errno, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
nr, args = int(sys.argv[1]), [int(a, 0) for a in sys.argv[2:]]
r = libc.syscall(nr, *args)
print("denied" if r == -1 and ctypes.get_errno() == errno.EPERM else "allowed:%d:%d" % (r, ctypes.get_errno()))
'''


@pytest.mark.parametrize("name,args", [
    ("ptrace", ["0", "0", "0", "0"]),               # PTRACE_TRACEME
    ("unshare", ["0x10000000"]),                    # CLONE_NEWUSER
    ("bpf", ["0", "0", "0"]),
    ("io_uring_setup", ["1", "0"]),
    ("perf_event_open", ["0", "0", "-1", "-1", "0"]),
    ("keyctl", ["0"]),
    ("userfaultfd", ["0"]),
    ("process_vm_readv", ["1", "0", "0", "0", "0", "0"]),
    ("personality", ["0xffffffff"]),
    ("mount", ["0", "0", "0", "0", "0"]),
])
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
    code = ("import socket\n"
            "for fam, typ, proto in ((17, 3, 0), (38, 5, 0), (40, 1, 0), (16, 3, 9), (16, 3, 0), (1, 1, 0), (2, 1, 0), (10, 2, 0)):\n"
            "    try:\n        socket.socket(fam, typ, proto).close(); print(fam, proto, 'ok')\n"
            "    except OSError as e:\n        print(fam, proto, e.errno)\n")
    lines = dict(line.rsplit(" ", 1) for line in sandbox.run(["python3", "-c", code]).stdout.decode().splitlines())
    assert lines["17 0"] == "1" and lines["38 0"] == "1" and lines["40 0"] == "1"   # AF_PACKET, AF_ALG, AF_VSOCK
    assert lines["16 9"] == "1"                                                      # netlink audit
    assert lines["16 0"] == "ok" and lines["1 0"] == "ok" and lines["2 0"] == "ok" and lines["10 0"] == "ok"


def test_ordinary_programs_still_work(sandbox):
    code = ("import subprocess, threading, multiprocessing, tempfile, os\n"
            "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
            "print(subprocess.run(['sh', '-c', 'echo child'], capture_output=True, text=True).stdout.strip())\n"
            "with multiprocessing.Pool(2) as p: print(sum(p.map(abs, [-1, -2])))\n"
            "print(open(tempfile.mkstemp(dir='/tmp')[1], 'w').write('x'))\n")
    r = sandbox.run(["python3", "-c", code], limits=Limits(pids=64))
    assert r.stdout.split() == [b"thread", b"child", b"3", b"1"], r.stderr


def test_ptrace_traceme_does_not_confuse_the_supervisor(sandbox):
    code = "import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0, 0); import os; os.kill(os.getpid(), 19); print('after')"
    r = sandbox.run(["python3", "-c", code], limits=Limits(seccomp="engine-default", timeout=5))
    assert r.exit_code is not None and not r.timed_out


def test_filter_is_well_formed():
    prog = seccomp.filter_bytes()
    assert len(prog) % 8 == 0 and len(prog) // 8 < 4096
    assert seccomp.describe()["instructions"] == len(prog) // 8
