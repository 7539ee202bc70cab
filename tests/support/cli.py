"""Run the real katadocker command line in a subprocess, against a state root of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    """What one katadocker invocation did."""

    rc: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"rc={self.rc}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@dataclass
class Katadocker:
    """`kd("run", "--rm", image, "true")` runs ``katadocker --root ROOT run --rm IMAGE true``.

    `config` is written as katadocker's config file (registry-mirrors, insecure-registries) and
    `docker_config` is the docker client config dir (credentials), both private to the test.
    """

    root: Path
    config_file: Path
    docker_config: Path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(KATADOCKER_ROOT=str(self.root), KATADOCKER_CONFIG=str(self.config_file),
                   DOCKER_CONFIG=str(self.docker_config))
        return env

    def __call__(self, *args: str, input: str | bytes | None = None, timeout: float = 300,
                 check: bool = False) -> Result:
        text = not isinstance(input, bytes)
        proc = subprocess.run([sys.executable, "-m", "katadocker", *args], input=input,
                              capture_output=True, text=text, timeout=timeout, env=self.env())
        out, err = (proc.stdout, proc.stderr) if text else (proc.stdout.decode(), proc.stderr.decode())
        result = Result(proc.returncode, out, err)
        if check and result.rc != 0:
            raise AssertionError(f"katadocker {' '.join(args)} failed:\n{result}")
        return result

    def teardown(self) -> None:
        """Remove every container and network of this state root, so that no VM, namespace,
        veth, route or NAT rule outlives the test."""
        from katadocker.config import load_settings
        from katadocker.network.networks import teardown_all

        ids = self("ps", "-aq").out.split()
        if ids:
            self("rm", "-f", *ids)
        teardown_all(load_settings(root=str(self.root)))

    def ok(self, *args: str, **kwargs) -> str:
        """Run and require exit 0; return stdout."""
        return self(*args, check=True, **kwargs).out
