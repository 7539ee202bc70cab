"""Compiling the guest agent (katadocker/guest/agent.c) with the system C compiler.

One implementation for the guest assets (vm/assets.py) and the tests.

The agent is linked against musl (Debian's musl-tools: `musl-gcc`, a wrapper around the system gcc)
where it is installed, else against glibc. Static glibc makes a 790 KB binary, musl an 80 KB one,
and the guest pays for every byte at each boot: the kernel unpacks the initramfs, and glibc's
start-up runs before the agent's first line. Under TCG, `run busybox true` took ~100 ms less
with musl (bench/README.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from katadocker.errors import VMError

GUEST_DIR = Path(__file__).resolve().parent.parent / "guest"
AGENT_SOURCE = GUEST_DIR / "agent.c"
#: Static (the initramfs has no libc), small (it is loaded at every boot) and warning-free.
CFLAGS = ("-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror")


def agent_sources() -> list[Path]:
    """The files the agent binary is built from (for cache keys of the guest assets)."""
    return [AGENT_SOURCE, GUEST_DIR / "protocol.h"]


def agent_compiler() -> str:
    """The C compiler for the agent: $CC when set, else musl-gcc when installed, else cc."""
    return os.environ.get("CC") or ("musl-gcc" if shutil.which("musl-gcc") else "cc")


def compile_agent(out: Path, cc: str | None = None) -> Path:
    """Compiles the agent with `cc` (default: `agent_compiler()`) into `out` (atomically: a partial
    binary is never left at `out`) and returns `out`. Raises VMError with the compiler's output
    when there is no compiler or the build fails."""
    cc = cc or agent_compiler()
    if shutil.which(cc) is None:
        raise VMError(f"no C compiler ({cc}) to build the guest agent: install gcc and musl-tools")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    argv = [cc, *CFLAGS, "-o", str(tmp), str(AGENT_SOURCE)]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as e:
        raise VMError("compiling the guest agent timed out", detail=" ".join(argv)) from e
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise VMError(
            f"compiling the guest agent failed:\n{result.stderr.strip()}", detail=" ".join(argv)
        )
    tmp.replace(out)
    return out
