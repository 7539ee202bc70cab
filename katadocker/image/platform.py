"""Platforms (os/architecture/variant) and the choice of a manifest from an image index.

Follows containerd's `platforms` package as docker uses it: Go's names (amd64, arm64, 386),
normalization (x86_64 -> amd64, aarch64 -> arm64, arm64/v8 == arm64, amd64/v1 == amd64, armhf -> arm/v7),
`Parse` of specifiers such as ``linux/arm64/v8``, and `Only(platform)`: an exact match first, then the
platforms the host also runs (amd64/v3 runs v2, v1 and 386; arm64 runs arm/v8…v5; arm/v7 runs v6, v5).
"""

from __future__ import annotations

import platform as _stdlib_platform
import re
from dataclasses import dataclass

from katadocker.errors import InvalidArgument, NoMatchingManifest

_KNOWN_OS = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux", "nacl",
    "netbsd", "openbsd", "plan9", "solaris", "windows", "zos",
})
_KNOWN_ARCH = frozenset({
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64", "mips",
    "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64", "s390", "s390x",
    "sparc", "sparc64", "wasm",
})
_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# Python's platform.machine() -> Go's GOARCH (and the variant containerd's DefaultSpec adds).
_MACHINE_TO_GO = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "i386": ("386", ""), "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
}
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"


@dataclass(frozen=True)
class Platform:
    """An OCI platform in Go's names. `variant` is "" when unspecified."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        """containerd's Format: ``linux/amd64``, ``linux/arm64/v8``."""
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def normalized(self) -> Platform:
        """containerd's Normalize: canonical os/arch names and variants (arm64/v8 -> arm64)."""
        arch, variant = _normalize_arch(self.architecture, self.variant)
        return Platform(_normalize_os(self.os), arch, variant)


def host_platform() -> Platform:
    """containerd's DefaultSpec for this machine: ``linux/amd64`` or ``linux/arm64/v8`` …"""
    machine = _stdlib_platform.machine().lower()
    arch, variant = _MACHINE_TO_GO.get(machine, (machine, ""))
    return Platform("linux", arch, variant)


def parse_platform(specifier: str) -> Platform:
    """containerd's Parse: ``os``, ``arch``, ``os/arch`` or ``os/arch/variant``, normalized.

    A lone known OS gets the host's architecture; a lone known architecture gets OS linux.
    ``linux/arm64`` keeps no variant, ``linux/arm64/v8`` keeps ``v8`` (both select the same manifests).
    Raises InvalidArgument with containerd's texts.
    """
    if "*" in specifier:
        raise InvalidArgument(f"{_quote(specifier)}: wildcards not yet supported: invalid argument")
    parts = specifier.split("/", 3)
    for part in parts:
        if not _COMPONENT_RE.match(part):
            raise InvalidArgument(
                f"{_quote(part)} is an invalid component of {_quote(specifier)}: "
                "platform specifier component must match \"^[A-Za-z0-9_-]+$\": invalid argument")
    if len(parts) == 1:
        return _parse_single(specifier)
    if len(parts) == 2:
        arch, variant = _normalize_arch(parts[1], "")
        return Platform(_normalize_os(parts[0]), arch, "" if (arch, variant) == ("arm", "v7") else variant)
    if len(parts) == 3:
        arch, variant = _normalize_arch(parts[1], parts[2])
        return Platform(_normalize_os(parts[0]), arch, "v8" if arch == "arm64" and not variant else variant)
    raise InvalidArgument(f"{_quote(specifier)}: cannot parse platform specifier: invalid argument")


def _parse_single(specifier: str) -> Platform:
    os_name = _normalize_os(specifier)
    if os_name in _KNOWN_OS:
        host = host_platform()
        return Platform(os_name, host.architecture, host.variant if host.architecture == "arm" else "")
    arch, variant = _normalize_arch(specifier, "")
    if arch in _KNOWN_ARCH:
        return Platform("linux", arch, "" if (arch, variant) == ("arm", "v7") else variant)
    raise InvalidArgument(f"{_quote(specifier)}: unknown operating system or architecture: invalid argument")


def select_manifest(manifests: list[dict], want: Platform) -> dict:
    """Pick the entry of an image index (`manifests` as in the JSON) that best runs on `want`.

    Attestation manifests (annotation ``vnd.docker.reference.type: attestation-manifest``, or platform
    unknown/unknown) are never chosen. Preference follows `compatible_platforms(want)`; among equals
    the first entry wins; entries without a platform are accepted last, as docker does.
    Raises NoMatchingManifest naming `want` as given (``linux/arm64/v8``).
    """
    ranked = compatible_platforms(want)
    best: tuple[int, dict] | None = None
    for entry in manifests:
        if _is_attestation(entry):
            continue
        rank = _rank(entry, ranked)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, entry)
    if best is None:
        raise NoMatchingManifest(str(want))
    return best[1]


def compatible_platforms(want: Platform) -> list[Platform]:
    """containerd's platformVector: `want` then the platforms it also runs, best first, all normalized."""
    want = want.normalized()
    vector = [want]
    if want.architecture == "amd64":
        level = _variant_number(want.variant or "v1")
        vector += [Platform(want.os, "amd64", f"v{v}") for v in range(level - 1, 0, -1)]
        vector.append(Platform(want.os, "386"))
    elif want.architecture == "arm":
        level = _variant_number(want.variant)
        vector += [Platform(want.os, "arm", f"v{v}") for v in range(level - 1, 4, -1)]
    elif want.architecture == "arm64":
        vector += compatible_platforms(Platform(want.os, "arm", want.variant or "v8"))
    return [p.normalized() for p in vector]


def _rank(entry: dict, ranked: list[Platform]) -> int | None:
    spec = entry.get("platform")
    if not spec:
        return len(ranked)
    candidate = Platform(spec.get("os", ""), spec.get("architecture", ""), spec.get("variant", ""))
    candidate = candidate.normalized()
    return ranked.index(candidate) if candidate in ranked else None


def _is_attestation(entry: dict) -> bool:
    annotations = entry.get("annotations") or {}
    spec = entry.get("platform") or {}
    return (annotations.get(ATTESTATION_ANNOTATION) == "attestation-manifest"
            or (spec.get("os"), spec.get("architecture")) == ("unknown", "unknown"))


def _variant_number(variant: str) -> int:
    """``v7`` -> 7; 0 when the variant is not of that form."""
    digits = variant.removeprefix("v")
    return int(digits) if digits.isdigit() else 0


def _normalize_os(os_name: str) -> str:
    lowered = os_name.lower()
    return "darwin" if lowered == "macos" else lowered


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's normalizeArch."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            return "arm64", ""
        return "arm64", "v9" if variant in ("9", "9.0", "v9.0") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        return "arm", f"v{variant}" if variant in ("5", "6", "8") else variant
    return arch, variant


def _quote(s: str) -> str:
    """Go's %q for the plain ASCII strings that reach these messages."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
