"""HTTP through a published port: nginx in a katadocker VM (``run -d -p``) vs the same image under
``podman run -d -p`` (runc), in one invocation, with the same bounded load generator on loopback.

    .venv/bin/python -m bench.http [--seconds S] [--connections N] [--setup-samples M] [--no-podman]

Printed per target: requests/s, p50/p99 latency over keep-alive connections, and the connection
set-up time (TCP connect + first response on a fresh connection, median of M). Then the ratios, and
for katadocker the CPU time spent over the load run by the monitor (which owns the port relay) vs
QEMU (the guest, nginx included), read from /proc/<pid>/stat: the relay must not be the bottleneck.

Set-up (not timed): a registry on loopback with the nginx test image (tests/support/images.py),
pulled into a fresh state root; podman gets it by ``katadocker save`` + ``podman load`` into a
private storage. Everything is removed on exit. The load generator is this process (asyncio, one
thread), so both targets share its limits; numbers are TCG emulation on a shared 2-core host:
compare the ratios of one invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.setup import Bench, bench_root

RUN_TIMEOUT = 300.0
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n"


# ---- load generator ------------------------------------------------------------------------------

@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _read_response(reader: asyncio.StreamReader) -> None:
    """Read one HTTP/1.1 response with a Content-Length body (nginx's static page)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)


async def _client(port: int, deadline: float, result: LoadResult) -> None:
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        except (OSError, TimeoutError):
            result.errors += 1
            await asyncio.sleep(0.05)
            continue
        try:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                writer.write(REQUEST)
                await asyncio.wait_for(_read_response(reader), 10)
                result.latencies.append(time.perf_counter() - start)
                result.requests += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            result.errors += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def load(port: int, seconds: float, connections: int) -> LoadResult:
    """`connections` keep-alive clients hammering ``GET /`` for `seconds` (bounded)."""
    result = LoadResult(0, seconds, [], 0)

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(_client(port, deadline, result) for _ in range(connections)))

    start = time.monotonic()
    asyncio.run(main())
    result.seconds = time.monotonic() - start
    return result


def setup_time(port: int, samples: int) -> float:
    """Median seconds from connect() to the end of the first response on a fresh connection."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(REQUEST.replace(b"keep-alive", b"close"))
            while s.recv(65536):
                pass
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def wait_for_page(port: int, timeout: float = RUN_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx never answered on 127.0.0.1:{port}") from None
            time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- CPU accounting ------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all its threads) in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- targets -------------------------------------------------------------------------------------

def kd(bench: Bench, *args: str) -> str:
    """A katadocker command's stdout (it must succeed)."""
    return bench.run(*args).stdout


def report(name: str, result: LoadResult, setup_s: float) -> None:
    print(f"{name}: {result.rps:.0f} req/s, p50 {result.percentile(0.5) * 1000:.1f} ms, "
          f"p99 {result.percentile(0.99) * 1000:.1f} ms, {result.requests} requests in "
          f"{result.seconds:.1f} s, "
          f"{result.errors} errors; connection set-up {setup_s * 1000:.1f} ms")


def bench_katadocker(bench: Bench, args: argparse.Namespace) -> tuple[LoadResult, float]:
    port = free_port()
    kd(bench, "run", "-d", "--name", "bench-nginx", "-p", f"127.0.0.1:{port}:80", bench.image)
    wait_for_page(port)
    doc = json.loads(kd(bench, "inspect", "bench-nginx"))[0]
    monitor = int(doc["State"]["Pid"])
    qemu = int((bench.root / "containers" / doc["Id"] / "pids" / "qemu").read_text().split()[0])
    load(port, 2, args.connections)  # warm-up
    before = cpu_seconds(monitor), cpu_seconds(qemu)
    result = load(port, args.seconds, args.connections)
    relay_cpu, guest_cpu = cpu_seconds(monitor) - before[0], cpu_seconds(qemu) - before[1]
    setup_s = setup_time(port, args.setup_samples)
    report("katadocker", result, setup_s)
    print(f"katadocker CPU over the load run: relay (monitor) {relay_cpu:.2f} s, "
          f"guest (QEMU) {guest_cpu:.2f} s, "
          f"relay/guest {relay_cpu / guest_cpu if guest_cpu else float('nan'):.2f}")
    kd(bench, "rm", "-f", "bench-nginx")
    return result, setup_s


def bench_podman(bench: Bench, args: argparse.Namespace) -> tuple[LoadResult, float]:
    assert bench.podman is not None
    port = free_port()
    # The ulimits runc needs on these hosts (BRIEF: "Podman with runc works here").
    proc = subprocess.run([*bench.podman, "run", "-d", "--name", "bench-nginx",
                           "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000",
                           "-p", f"127.0.0.1:{port}:80", bench.image],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"podman run failed: {proc.stderr.strip()}")
    wait_for_page(port)
    load(port, 2, args.connections)
    result = load(port, args.seconds, args.connections)
    setup_s = setup_time(port, args.setup_samples)
    report("podman", result, setup_s)
    subprocess.run([*bench.podman, "rm", "-f", "bench-nginx"], capture_output=True, timeout=RUN_TIMEOUT)
    return result, setup_s


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.http", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each load run")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--setup-samples", type=int, default=50, help="fresh connections timed")
    parser.add_argument("--no-podman", action="store_true", help="skip the podman baseline")
    args = parser.parse_args(argv)
    with bench_root("kd-bench-http-", "nginx", podman=not args.no_podman, warm=False,
                    podman_timeout=RUN_TIMEOUT) as bench:
        kd_result, kd_setup = bench_katadocker(bench, args)
        if bench.podman is None:
            print("podman baseline skipped")
            return
        pm_result, pm_setup = bench_podman(bench, args)
        print(f"ratios katadocker/podman: req/s {kd_result.rps / pm_result.rps:.2f}, "
              f"p99 {kd_result.percentile(0.99) / pm_result.percentile(0.99):.2f}, "
              f"connection set-up {kd_setup / pm_setup:.2f}")


if __name__ == "__main__":
    main()
