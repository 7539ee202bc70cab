"""Building katadocker's own guest kernel (step 2 of vm/kernel.py's order) from Debian's kernel
source package.

The kernel is Debian's ``linux-source-<ver>`` tarball configured by ``make allnoconfig`` with
``katadocker/guest/kernel.config`` as the forced options (everything else off, every driver built
in, no modules), built with ``make bzImage``. Compared with Debian's cloud kernel it boots in about
half the time under TCG and leaves far less of itself in guest RAM (bench/README.md, "Guest kernel").

Built kernels are cached machine-wide in ``/var/cache/katadocker/kernels/<key>/vmlinuz``, keyed by
the source tarball and the config fragment, so every state root (the default one, the test suite's)
takes the same build; installing it into a state root is a copy into ``<state>/assets/kernel/``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from katadocker.config import Settings
from katadocker.errors import VMError
from katadocker.state.atomic import read_json, write_bytes, write_json
from katadocker.vm.kernel import run_tool, tool, version_key

KERNEL_CONFIG = Path(__file__).resolve().parent.parent / "guest" / "kernel.config"
#: Where Debian's linux-source-<ver> packages put their tarball.
SOURCE_GLOB = "/usr/src/linux-source-*.tar.xz"
CACHE = Path(os.environ.get("KATADOCKER_KERNEL_CACHE", "/var/cache/katadocker/kernels"))
#: What building needs besides the source (named in the error when none is installed): the compiler
#: and make, Kconfig's parser generators, objtool's ELF library, `bc` for the timer constants, lz4
#: for the compressed image. scripts/setup installs them.
BUILD_PACKAGES = "linux-source-6.1 gcc make bc bison flex libelf-dev lz4"
#: A build takes ~10 minutes on 2 loaded cores; the limit only catches a hung compiler.
BUILD_TIMEOUT_S = 3 * 3600

Progress = Callable[[str], None]


@dataclass(frozen=True)
class KernelSource:
    tarball: Path
    version: str  # "6.1" from linux-source-6.1.tar.xz


def find_source(pattern: str = SOURCE_GLOB) -> KernelSource:
    """The newest Debian kernel source tarball installed; VMError naming the packages otherwise."""
    found = [KernelSource(Path(p), Path(p).name.removeprefix("linux-source-").removesuffix(".tar.xz"))
             for p in glob.glob(pattern)]
    if not found:
        raise VMError("no kernel source to build the guest kernel from",
                      detail=f"apt-get install {BUILD_PACKAGES}")
    return max(found, key=lambda source: version_key(source.version))


def parse_config(text: str) -> dict[str, str]:
    """``CONFIG_X=value`` lines of a Kconfig file or fragment (``# CONFIG_X is not set`` as ``n``)."""
    options: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := re.fullmatch(r"(CONFIG_\w+)=(.*)", line):
            options[m[1]] = m[2]
        elif m := re.fullmatch(r"# (CONFIG_\w+) is not set", line):
            options[m[1]] = "n"
    return options


def unmet_options(wanted: dict[str, str], resolved: dict[str, str]) -> list[str]:
    """The options of the fragment that Kconfig did not set as asked (a missing dependency, or an
    option this kernel version doesn't have), as ``CONFIG_X=want (got)`` lines."""
    return [f"{k}={v} (got {resolved.get(k, 'n')})" for k, v in wanted.items() if resolved.get(k, "n") != v]


def build_key(source: KernelSource, config_text: str) -> str:
    """The cache key of a build: the source tarball (name and size) and the config fragment."""
    st = source.tarball.stat()
    h = hashlib.sha256(f"{source.tarball.name}\0{st.st_size}\0".encode() + config_text.encode())
    return h.hexdigest()[:16]


def compile_kernel(source: KernelSource, config_text: str, workdir: Path, jobs: int,
                   progress: Progress) -> Path:
    """Unpack `source` into `workdir`, configure it with the fragment `config_text` and build
    bzImage; returns the image's path. Raises VMError when an option of the fragment did not take."""
    tree = workdir / "linux"
    tree.mkdir()
    progress(f"Unpacking {source.tarball.name}")
    run_tool([tool("tar"), "-xJf", str(source.tarball), "-C", str(tree), "--strip-components=1"])
    fragment = workdir / "katadocker.config"
    fragment.write_text(config_text)
    make = [tool("make"), "-C", str(tree)]
    progress("Configuring (allnoconfig + katadocker/guest/kernel.config)")
    run_tool([*make, "allnoconfig"], env={**os.environ, "KCONFIG_ALLCONFIG": str(fragment)})
    unmet = unmet_options(parse_config(config_text), parse_config((tree / ".config").read_text()))
    if unmet:
        raise VMError("the guest kernel config did not take: " + ", ".join(unmet))
    progress(f"Compiling Linux {source.version} with {jobs} jobs (about 10 minutes on 2 cores)")
    run_tool([*make, f"-j{jobs}", "bzImage"], timeout=BUILD_TIMEOUT_S)
    return tree / "arch" / "x86" / "boot" / "bzImage"


def _installed_key(stamp: Path) -> str | None:
    try:
        return read_json(stamp)["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def build_kernel(settings: Settings, progress: Progress, jobs: int | None = None,
                 force: bool = False) -> Path:
    """Make sure ``<state>/assets/kernel/vmlinuz`` is the kernel built from the installed source and
    the current config fragment: compile it (unless cached, or `force`), then install it into the
    state root. Returns the installed image's path."""
    source = find_source()
    config_text = KERNEL_CONFIG.read_text()
    key = build_key(source, config_text)
    dest = settings.state.assets / "kernel"
    stamp = dest / "build.json"
    if not force and (dest / "vmlinuz").is_file() and _installed_key(stamp) == key:
        progress(f"Guest kernel up to date ({dest / 'vmlinuz'})")
        return dest / "vmlinuz"
    cached = CACHE / key / "vmlinuz"
    if force or not cached.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE, prefix="build.") as tmp:
            image = compile_kernel(source, config_text, Path(tmp), jobs or os.cpu_count() or 1, progress)
            write_bytes(cached, image.read_bytes())
    write_bytes(dest / "vmlinuz", cached.read_bytes())
    write_json(stamp, {"key": key, "source": str(source.tarball), "config": str(KERNEL_CONFIG)})
    progress(f"Guest kernel installed: {dest / 'vmlinuz'}")
    return dest / "vmlinuz"
