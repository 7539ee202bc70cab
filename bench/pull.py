"""Pull the nginx test image (a real Debian nginx-light root, ~140 MB unpacked) from a registry on
loopback with katadocker and with `skopeo copy docker://… dir:…`, alternately, each into an empty
target every round (cold caches on the client side for both; the registry's page cache is warm for
both). Prints the medians and the ratio katadocker/skopeo (goal: <= 1.0).

katadocker does more work than skopeo here: it also unpacks every layer (skopeo only stores the
blobs), so the ratio is an upper bound on the transfer overhead.

    .venv/bin/python -m bench.pull [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench.setup import served_image
from bench.timing import compare, time_command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory(prefix="kd-bench-pull-") as tmp:
        work = Path(tmp)
        with served_image(work, "nginx") as ref:
            counter = iter(range(10 * rounds))

            def katadocker() -> float:
                root = work / f"kd-{next(counter)}"
                env = {**os.environ, "KATADOCKER_ROOT": str(root), "KATADOCKER_CONFIG": "/nonexistent"}
                return time_command([sys.executable, "-m", "katadocker", "pull", "-q", ref], env=env)

            def skopeo() -> float:
                dest = work / f"skopeo-{next(counter)}"
                return time_command(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                     f"docker://{ref}", f"dir:{dest}"])

            compare("pull nginx", katadocker, skopeo, rounds, "skopeo copy")


if __name__ == "__main__":
    main()
