"""Platform parsing, normalization and manifest selection (containerd's platforms rules)."""

from __future__ import annotations

import platform as stdlib_platform

import pytest

from katadocker.errors import InvalidArgument, NoMatchingManifest, RegistryError
from katadocker.image.platform import (
    Platform,
    compatible_platforms,
    host_platform,
    parse_platform,
    select_manifest,
)


@pytest.mark.parametrize(("spec", "expected"), [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/x86_64", Platform("linux", "amd64")),
    ("linux/x86-64", Platform("linux", "amd64")),
    ("linux/amd64/v1", Platform("linux", "amd64")),
    ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
    ("linux/arm64", Platform("linux", "arm64")),
    ("linux/aarch64", Platform("linux", "arm64")),
    ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
    ("linux/arm64/8", Platform("linux", "arm64", "v8")),
    ("linux/arm", Platform("linux", "arm")),
    ("linux/arm/7", Platform("linux", "arm", "v7")),
    ("linux/arm/v6", Platform("linux", "arm", "v6")),
    ("linux/armhf", Platform("linux", "arm")),
    ("linux/armel", Platform("linux", "arm", "v6")),
    ("linux/i386", Platform("linux", "386")),
    ("Linux/AMD64", Platform("linux", "amd64")),
    ("macos/arm64", Platform("darwin", "arm64")),
    ("arm64", Platform("linux", "arm64")),
    ("s390x", Platform("linux", "s390x")),
    ("windows/amd64", Platform("windows", "amd64")),
])
def test_parse(spec: str, expected: Platform) -> None:
    assert parse_platform(spec) == expected


def test_parse_lone_os_takes_host_arch() -> None:
    assert parse_platform("linux").architecture == host_platform().architecture


@pytest.mark.parametrize(("spec", "message"), [
    ("foo", '"foo": unknown operating system or architecture: invalid argument'),
    ("linux/*", '"linux/*": wildcards not yet supported: invalid argument'),
    ("linux//amd64", '"" is an invalid component of "linux//amd64": platform specifier component must match '
                     '"^[A-Za-z0-9_-]+$": invalid argument'),
    ("linux/amd64/v2/x", '"linux/amd64/v2/x": cannot parse platform specifier: invalid argument'),
])
def test_parse_errors(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_platform(spec)
    assert exc.value.message == message


def test_format() -> None:
    assert str(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"
    assert str(Platform("linux", "amd64")) == "linux/amd64"


def test_host_platform_uses_go_names() -> None:
    host = host_platform()
    assert host.os == "linux"
    expected = {"x86_64": "amd64", "aarch64": "arm64"}.get(stdlib_platform.machine(), host.architecture)
    assert host.architecture == expected
    if host.architecture == "arm64":
        assert host.variant == "v8"


def test_compatible_platforms() -> None:
    assert compatible_platforms(Platform("linux", "amd64")) == [Platform("linux", "amd64"),
                                                                Platform("linux", "386")]
    assert compatible_platforms(Platform("linux", "amd64", "v3")) == [
        Platform("linux", "amd64", "v3"), Platform("linux", "amd64", "v2"), Platform("linux", "amd64"),
        Platform("linux", "386")]
    assert compatible_platforms(Platform("linux", "arm64", "v8")) == [
        Platform("linux", "arm64"), Platform("linux", "arm", "v8"), Platform("linux", "arm", "v7"),
        Platform("linux", "arm", "v6"), Platform("linux", "arm", "v5")]
    assert compatible_platforms(Platform("linux", "arm", "v6")) == [
        Platform("linux", "arm", "v6"), Platform("linux", "arm", "v5")]


def _entry(digest: str, os: str, arch: str, variant: str = "", **annotations: str) -> dict:
    platform = {"os": os, "architecture": arch}
    if variant:
        platform["variant"] = variant
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1,
             "platform": platform}
    if annotations:
        entry["annotations"] = annotations
    return entry


# The shape of a buildx-built multi-arch index: images plus their attestation manifests.
INDEX = [
    _entry("sha256:amd", "linux", "amd64"),
    _entry("sha256:arm7", "linux", "arm", "v7"),
    _entry("sha256:arm64", "linux", "arm64", "v8"),
    _entry("sha256:att-amd", "unknown", "unknown",
           **{"vnd.docker.reference.type": "attestation-manifest",
              "vnd.docker.reference.digest": "sha256:amd"}),
    _entry("sha256:att-arm64", "unknown", "unknown",
           **{"vnd.docker.reference.type": "attestation-manifest"}),
]


@pytest.mark.parametrize(("want", "digest"), [
    (Platform("linux", "amd64"), "sha256:amd"),
    (Platform("linux", "arm64", "v8"), "sha256:arm64"),
    (Platform("linux", "arm64"), "sha256:arm64"),
    (Platform("linux", "arm", "v7"), "sha256:arm7"),
    (Platform("linux", "x86_64"), "sha256:amd"),
])
def test_select_exact(want: Platform, digest: str) -> None:
    assert select_manifest(INDEX, want)["digest"] == digest


def test_select_falls_back_to_compatible_platform() -> None:
    only_arm = [_entry("sha256:arm6", "linux", "arm", "v6"), _entry("sha256:arm7", "linux", "arm", "v7")]
    assert select_manifest(only_arm, Platform("linux", "arm64", "v8"))["digest"] == "sha256:arm7"
    only_386 = [_entry("sha256:386", "linux", "386")]
    assert select_manifest(only_386, Platform("linux", "amd64"))["digest"] == "sha256:386"


def test_select_prefers_exact_over_compatible_and_first_among_equals() -> None:
    entries = [_entry("sha256:386", "linux", "386"), _entry("sha256:a", "linux", "amd64"),
               _entry("sha256:b", "linux", "amd64")]
    assert select_manifest(entries, Platform("linux", "amd64"))["digest"] == "sha256:a"


def test_select_amd64_variants() -> None:
    entries = [_entry("sha256:v2", "linux", "amd64", "v2"), _entry("sha256:v1", "linux", "amd64")]
    assert select_manifest(entries, Platform("linux", "amd64"))["digest"] == "sha256:v1"
    assert select_manifest(entries, Platform("linux", "amd64", "v3"))["digest"] == "sha256:v2"
    assert select_manifest(entries[:1], Platform("linux", "amd64", "v4"))["digest"] == "sha256:v2"
    with pytest.raises(NoMatchingManifest):
        select_manifest(entries[:1], Platform("linux", "amd64"))


def test_entry_without_platform_is_a_last_resort() -> None:
    entries = [{"digest": "sha256:none"}, _entry("sha256:386", "linux", "386")]
    assert select_manifest(entries, Platform("linux", "amd64"))["digest"] == "sha256:386"
    assert select_manifest(entries[:1], Platform("linux", "amd64"))["digest"] == "sha256:none"


def test_no_match_message() -> None:
    with pytest.raises(NoMatchingManifest) as exc:
        select_manifest(INDEX[:1] + INDEX[3:], parse_platform("linux/arm64/v8"))
    assert exc.value.message == "no matching manifest for linux/arm64/v8 in the manifest list entries"
    assert isinstance(exc.value, RegistryError)


def test_attestations_are_never_selected() -> None:
    with pytest.raises(NoMatchingManifest, match="linux/s390x"):
        select_manifest(INDEX, Platform("linux", "s390x"))
    with pytest.raises(NoMatchingManifest):
        select_manifest(INDEX[3:], Platform("unknown", "unknown"))
