"""How fast the CLI starts: `katadocker --help`, `katadocker images` and `katadocker ps` against a bare
`python -c pass` (the interpreter's own start-up, the floor for any Python CLI).

    .venv/bin/python -m bench.cli_startup [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from bench.timing import compare, time_command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "KATADOCKER_ROOT": root}
        baseline = [sys.executable, "-c", "pass"]
        for args in (["--help"], ["images"], ["ps", "-a"]):
            argv = [sys.executable, "-m", "katadocker", *args]
            compare(f"katadocker {' '.join(args)}", lambda a=argv: time_command(a, env=env),
                    lambda: time_command(baseline), rounds, "python -c pass")


if __name__ == "__main__":
    main()
