"""Docker's image reference grammar (github.com/distribution/reference), normalized as docker does.

`parse_reference` is ParseNormalizedNamed: ``nginx`` becomes ``docker.io/library/nginx``,
``index.docker.io/x`` becomes ``docker.io/library/x``, a first path element that contains ``.`` or ``:``,
is ``localhost`` or has an uppercase letter is a registry host. Errors carry docker's exact texts.

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [domain '/'] path-component ['/' path-component]*
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from katadocker.errors import InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = r"(?:" + _DOMAIN_NAME + "|" + _IPV6 + r")(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_PATH_COMPONENT = _ALPHANUMERIC + r"(?:" + _SEPARATOR + _ALPHANUMERIC + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME

# re.ASCII: Go's \w is [0-9A-Za-z_], never Unicode letters.
_REFERENCE_RE = re.compile(
    r"^(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?$", re.ASCII)
_ANCHORED_NAME_RE = re.compile(r"^(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")$", re.ASCII)
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")

# Digest algorithms docker registers (go-digest), with their hex lengths.
_ALGORITHM_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class Reference:
    """A normalized, named image reference: `domain` is never empty (``docker.io`` for Docker Hub).

    `tag` and `digest` are "" when absent; both may be set (``busybox:latest@sha256:…``).
    """

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """The full repository name: ``docker.io/library/nginx``."""
        return f"{self.domain}/{self.path}"

    @property
    def registry_path(self) -> str:
        """The repository path at the registry: ``library/nginx``."""
        return self.path

    @property
    def familiar_name(self) -> str:
        """FamiliarName: ``nginx``, ``user/app``, ``localhost:5000/a/b``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        rest = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        if rest != self.path and "/" not in rest:
            return rest
        return self.path

    @property
    def familiar(self) -> str:
        """FamiliarString: ``nginx:latest``, ``localhost:5000/a/b@sha256:…`` (no tag added)."""
        return self.familiar_name + self._suffix()

    def with_default_tag(self) -> Reference:
        """TagNameOnly: this reference with tag ``latest`` when it has neither tag nor digest."""
        if self.tag or self.digest:
            return self
        return replace(self, tag=DEFAULT_TAG)

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        """The full normalized form: ``docker.io/library/nginx:latest``."""
        return self.name + self._suffix()


def parse_reference(s: str) -> Reference:
    """Parse `s` as docker's ParseNormalizedNamed does; raise InvalidReference with docker's text."""
    if _IDENTIFIER_RE.match(s):
        raise InvalidReference(f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(s)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReference(f"invalid reference format: repository name ({remote}) must be lowercase")
    return _parse(f"{domain}/{remainder}")


def _split_docker_domain(name: str) -> tuple[str, str]:
    """Split `name` into (domain, remainder), choosing Docker Hub when the first element is no host."""
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == "localhost" or any(c in first for c in ".:") or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if first == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def _parse(s: str) -> Reference:
    """distribution's Parse for a string that starts with a domain; raises its errors."""
    m = _REFERENCE_RE.match(s)
    if m is None:
        lower = s.lower()
        if lower != s and _REFERENCE_RE.match(lower):
            raise InvalidReference("repository name must be lowercase")
        raise InvalidReference("invalid reference format")
    name, tag, digest = m.group(1), m.group(2) or "", m.group(3) or ""
    name_match = _ANCHORED_NAME_RE.match(name)
    assert name_match is not None  # `name` matched the same grammar just above
    domain, path = name_match.group(1) or "", name_match.group(2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if digest:
        validate_digest(digest)
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def validate_digest(digest: str) -> None:
    """go-digest's Validate: a registered algorithm and a lowercase hex value of its exact length."""
    algorithm, _, encoded = digest.partition(":")
    if not algorithm or not encoded:
        raise InvalidReference("invalid checksum digest format")
    size = _ALGORITHM_HEX_LEN.get(algorithm)
    if size is None:
        if not re.fullmatch(_DIGEST, digest):
            raise InvalidReference("invalid checksum digest format")
        raise InvalidReference("unsupported digest algorithm")
    if len(encoded) != size:
        raise InvalidReference("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise InvalidReference("invalid checksum digest format")
