"""Image references; cases from distribution/reference's normalize_test.go and reference_test.go."""

from __future__ import annotations

import pytest

from katadocker.errors import InvalidReference
from katadocker.image.reference import Reference, parse_reference, validate_digest

HEX64 = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
DBCC = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"

# TestValidateReferenceName / TestValidateRemoteName (normalize_test.go)
VALID = [
    "docker/docker", "library/debian", "debian", "docker.io/docker/docker", "docker.io/library/debian",
    "docker.io/debian", "index.docker.io/docker/docker", "index.docker.io/library/debian",
    "index.docker.io/debian", "127.0.0.1:5000/docker/docker", "127.0.0.1:5000/library/debian",
    "127.0.0.1:5000/debian", "192.168.0.1", "192.168.0.1:80", "192.168.0.1:8/debian",
    "192.168.0.2:25000/debian", "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "[fc00::1]:5000/docker", "[fc00::1]:5000/docker/docker", "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "Docker/docker",
    "DOCKER/docker", "docker-rules/docker", "docker---rules/docker", "doc/docker", "d/docker", "jess/t",
    "dock__er/docker",
]
INVALID = [
    "https://github.com/docker/docker", "docker/Docker", "-docker", "-docker/docker",
    "-docker.io/docker/docker",
    "docker///docker", "docker.io/docker/Docker", "docker.io/docker///docker", "[fc00::1]", "[fc00::1]:5000",
    "fc00::1:5000/debian", "[fe80::1%eth0]:5000/debian", "[2001:db8:3:4::192.0.2.33]:5000/debian",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "docker-/docker", "-docker-/docker",
    "____/____", "_docker/_docker", "dock..er/docker", "dock_.er/docker", "dock-.er/docker", "docker/",
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4 + "/docker",
    "", ":justtag", "@sha256:" + HEX64, "aa/asdf$$^/aa", "[2001:db8::1]", "[2001:db8::1]:5000",
]


@pytest.mark.parametrize("s", VALID)
def test_valid_names(s: str) -> None:
    parse_reference(s)


@pytest.mark.parametrize("s", INVALID)
def test_invalid_names(s: str) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(s)


# TestParseRepositoryInfo: (path, familiar name, full name, ambiguous spelling, domain)
REPOSITORY_INFO = [
    ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io"),
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io"),
    ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", "", "docker.io"),
    ("other/library", "other/library", "docker.io/other/library", "", "docker.io"),
    ("private/moonbase", "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase", "",
     "127.0.0.1:8000"),
    ("privatebase", "127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase", "", "127.0.0.1:8000"),
    ("private/moonbase", "example.com/private/moonbase", "example.com/private/moonbase", "", "example.com"),
    ("privatebase", "example.com/privatebase", "example.com/privatebase", "", "example.com"),
    ("private/moonbase", "example.com:8000/private/moonbase", "example.com:8000/private/moonbase", "",
     "example.com:8000"),
    ("library/ubuntu-12.04-base", "ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base",
     "index.docker.io/library/ubuntu-12.04-base", "docker.io"),
    ("library/foo", "foo", "docker.io/library/foo", "docker.io/foo", "docker.io"),
    ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", "", "docker.io"),
    ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", "", "docker.io"),
    ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
    ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
]


@pytest.mark.parametrize(("path", "familiar", "full", "ambiguous", "domain"), REPOSITORY_INFO)
def test_repository_info(path: str, familiar: str, full: str, ambiguous: str, domain: str) -> None:
    for spelling in filter(None, (familiar, full, ambiguous)):
        ref = parse_reference(spelling)
        assert (ref.familiar_name, str(ref), ref.domain, ref.path) == (familiar, full, domain, path)
        assert ref.registry_path == path


# TestNormalizedSplitHostname
@pytest.mark.parametrize(("s", "domain", "path"), [
    ("test.com/foo", "test.com", "foo"),
    ("test_com/foo", "docker.io", "test_com/foo"),
    ("docker/migrator", "docker.io", "docker/migrator"),
    ("test.com:8080/foo", "test.com:8080", "foo"),
    ("test-com:8080/foo", "test-com:8080", "foo"),
    ("foo", "docker.io", "library/foo"),
    ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
    ("docker.io/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
    ("localhost/app", "localhost", "app"),
    ("localhost:5000/a/b", "localhost:5000", "a/b"),
])
def test_split_hostname(s: str, domain: str, path: str) -> None:
    ref = parse_reference(s)
    assert (ref.domain, ref.path) == (domain, path)


# TestParseAnyReference (named cases) and the compat doc §7.2 table
@pytest.mark.parametrize(("s", "full", "familiar"), [
    ("redis", "docker.io/library/redis", "redis"),
    ("redis:latest", "docker.io/library/redis:latest", "redis:latest"),
    ("docker.io/library/redis:latest", "docker.io/library/redis:latest", "redis:latest"),
    (f"redis@sha256:{DBCC}", f"docker.io/library/redis@sha256:{DBCC}", f"redis@sha256:{DBCC}"),
    ("dmcgowan/myapp:latest", "docker.io/dmcgowan/myapp:latest", "dmcgowan/myapp:latest"),
    (f"docker.io/dmcgowan/myapp@sha256:{DBCC}", f"docker.io/dmcgowan/myapp@sha256:{DBCC}",
     f"dmcgowan/myapp@sha256:{DBCC}"),
    (DBCC[:-1], f"docker.io/library/{DBCC[:-1]}", DBCC[:-1]),
    ("dbcc1", "docker.io/library/dbcc1", "dbcc1"),
    ("nginx:1.25", "docker.io/library/nginx:1.25", "nginx:1.25"),
    ("index.docker.io/library/nginx", "docker.io/library/nginx", "nginx"),
    ("registry:5000/alpine:frozen", "registry:5000/alpine:frozen", "registry:5000/alpine:frozen"),
    (f"ghcr.io/o/r@sha256:{DBCC}", f"ghcr.io/o/r@sha256:{DBCC}", f"ghcr.io/o/r@sha256:{DBCC}"),
    ("lowercase:Uppercase", "docker.io/library/lowercase:Uppercase", "lowercase:Uppercase"),
    ("test.com:5000", "docker.io/library/test.com:5000", "test.com:5000"),
])
def test_normalized_and_familiar(s: str, full: str, familiar: str) -> None:
    ref = parse_reference(s)
    assert str(ref) == full
    assert ref.familiar == familiar


# TestReferenceParse (inputs that already carry a domain keep it verbatim)
@pytest.mark.parametrize(("s", "name", "tag", "digest"), [
    ("test.com/repo:tag", "test.com/repo", "tag", ""),
    ("test:5000/repo", "test:5000/repo", "", ""),
    (f"test:5000/repo@sha256:{HEX64}", "test:5000/repo", "", f"sha256:{HEX64}"),
    (f"test:5000/repo:tag@sha256:{HEX64}", "test:5000/repo", "tag", f"sha256:{HEX64}"),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com/bar/baz/quux", "some-long-tag", ""),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io/test.example.com/my-app",
     "test.example.com", ""),
    (f"xn--7o8h.com/myimage:xn--7o8h.com@sha512:{HEX64 * 2}", "xn--7o8h.com/myimage", "xn--7o8h.com",
     f"sha512:{HEX64 * 2}"),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo", "5050", ""),
    ("[2001:db8::1]/repo", "[2001:db8::1]/repo", "", ""),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]/repo", "tag", ""),
    ("[::1]:5000/repo", "[::1]:5000/repo", "", ""),
    ("a/" * 127 + "a:tag-puts-this-over-max", "docker.io/" + "a/" * 127 + "a", "tag-puts-this-over-max", ""),
])
def test_parse_components(s: str, name: str, tag: str, digest: str) -> None:
    ref = parse_reference(s)
    assert (ref.name, ref.tag, ref.digest) == (name, tag, digest)


def test_tag_and_digest_together() -> None:
    short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
    ref = parse_reference(short)
    assert str(ref) == "docker.io/library/" + short
    assert ref.familiar == short


@pytest.mark.parametrize(("s", "message"), [
    ("Nginx", "invalid reference format: repository name (library/Nginx) must be lowercase"),
    ("Uppercase:tag", "invalid reference format: repository name (library/Uppercase) must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag",
     "invalid reference format: repository name (Uppercase/lowercase) must be lowercase"),
    (DBCC, f"invalid repository name ({DBCC}), cannot specify 64-byte hexadecimal strings"),
    ("", "invalid reference format"),
    (":justtag", "invalid reference format"),
    ("aa/asdf$$^/aa", "invalid reference format"),
    ("nginx:", "invalid reference format"),
    ("nginx:-tag", "invalid reference format"),
    ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
    ("validname@invaliddigest:" + HEX64, "unsupported digest algorithm"),
    ("repo@sha256:" + "F" * 64, "invalid checksum digest format"),
    ("a/" * 128 + "a:tag", "repository name must not be more than 255 characters"),
])
def test_error_texts(s: str, message: str) -> None:
    with pytest.raises(InvalidReference) as exc:
        parse_reference(s)
    assert exc.value.message == message


def test_with_default_tag() -> None:
    assert str(parse_reference("nginx").with_default_tag()) == "docker.io/library/nginx:latest"
    assert parse_reference("nginx").with_default_tag().familiar == "nginx:latest"
    assert str(parse_reference("nginx:1").with_default_tag()) == "docker.io/library/nginx:1"
    digested = parse_reference(f"nginx@sha256:{DBCC}")
    assert digested.with_default_tag() == digested


def test_reference_is_a_value() -> None:
    ref = parse_reference("localhost:5000/a/b:1")
    assert ref == Reference("localhost:5000", "a/b", "1", "")
    assert ref.familiar_name == "localhost:5000/a/b"
    assert hash(ref) == hash(Reference("localhost:5000", "a/b", "1", ""))


def test_validate_digest() -> None:
    validate_digest(f"sha256:{DBCC}")
    with pytest.raises(InvalidReference, match="invalid checksum digest format"):
        validate_digest("sha256")
