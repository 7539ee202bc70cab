"""A client for the registry HTTP API v2 (distribution's spec, as docker's daemon uses it).

`open_repository(settings, ref)` gives a `Repository` for one image repository. Its endpoints:

- ``docker.io`` names: each of ``settings.registry_mirrors`` in order, then
  ``https://registry-1.docker.io``. As in docker's daemon, an endpoint that cannot be reached, fails,
  or lacks what is asked for is skipped for the next; the error of the last one is reported. The
  endpoint that answered last is tried first for the following requests (manifest, then blobs).
- other registries: ``http://`` when the host is loopback (``localhost``, 127.0.0.0/8, ``[::1]``) or
  listed in ``settings.insecure_registries`` (host, host:port or CIDR), ``https://`` otherwise.

Each endpoint is pinged (``GET /v2/``) once, unauthenticated; its ``WWW-Authenticate`` challenge then
drives `katadocker.image.auth.RegistryAuth` (scope ``repository:<path>:pull``). Requests share one
pooled httpx.Client per repository; transient failures (connection errors, timeouts, 5xx) are
retried with exponential backoff, `RETRIES` times in all. Repository methods are safe to call from
several threads at once (layers are fetched in parallel).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from katadocker.config import Settings
from katadocker.errors import (
    AuthError,
    DigestMismatch,
    KatadockerError,
    ManifestUnknown,
    PullAccessDenied,
    RegistryError,
)
from katadocker.image.auth import (
    DOCKER_HUB_KEY,
    LOGIN_SCOPE,
    Credential,
    RegistryAuth,
    convert_to_hostname,
    get_credential,
    registry_error_text,
)
from katadocker.image.reference import DEFAULT_DOMAIN, Reference

DOCKER_HUB_REGISTRY = "https://registry-1.docker.io"

MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_SCHEMA1_TYPES = frozenset({"application/vnd.docker.distribution.manifest.v1+json",
                            "application/vnd.docker.distribution.manifest.v1+prettyjws"})
#: The Accept list (and order) of containerd's resolver, which docker 28 pulls with.
MANIFEST_ACCEPT: tuple[str, ...] = (MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_LIST,
                                    MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_OCI_INDEX, "*/*")
_MANIFEST_TYPES = frozenset(MANIFEST_ACCEPT[:4])

MAX_MANIFEST_SIZE = 4 << 20  # containerd's limit; a bigger "manifest" is hostile or broken
RETRIES = 3  # attempts per request, in all
BACKOFF = 0.25  # seconds before the first retry; doubles each time
CHUNK = 1 << 20
# A stalled connection fails after `read` seconds without a byte; connecting is quick or never.
TIMEOUT = httpx.Timeout(60.0, connect=10.0)

ProgressFn = Callable[[int, int | None], None]
_T = TypeVar("_T")


class _ServerError(Exception):
    """A 5xx answer: transient, retried like a connection error."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"received unexpected HTTP status: {response.status_code} {response.reason_phrase}")


@dataclass
class Endpoint:
    """One base URL serving the repository (a mirror or the registry itself) and its auth state."""

    base_url: str
    auth: RegistryAuth
    pinged: bool = field(default=False)

    @property
    def host(self) -> str:
        return convert_to_hostname(self.base_url)


# ---- endpoints ---------------------------------------------------------------------------------


def _split_host(host: str) -> str:
    """The hostname of ``host[:port]`` (``[::1]:5000`` -> ``::1``)."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _ip(hostname: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(hostname)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (with or without a port)."""
    hostname = _split_host(host)
    ip = _ip(hostname)
    return hostname == "localhost" or (ip is not None and ip.is_loopback)


def is_insecure(settings: Settings, host: str) -> bool:
    """True when `host` is spoken to over plain HTTP: loopback, or matched by an
    ``insecure-registries`` entry (``host``, ``host:port``, a URL, or a CIDR holding its IP)."""
    if is_loopback(host):
        return True
    hostname, ip = _split_host(host), _ip(_split_host(host))
    for entry in settings.insecure_registries:
        name = convert_to_hostname(entry)
        if name in (host, hostname):
            return True
        if ip is not None and "/" in entry:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def registry_base_url(settings: Settings, host: str) -> str:
    """``http://host`` or ``https://host`` for a registry that is not Docker Hub."""
    return f"{'http' if is_insecure(settings, host) else 'https'}://{host}"


def _endpoint_urls(settings: Settings, ref: Reference) -> list[str]:
    if ref.domain != DEFAULT_DOMAIN:
        return [registry_base_url(settings, ref.domain)]
    return [m.rstrip("/") for m in settings.registry_mirrors] + [DOCKER_HUB_REGISTRY]


def _credential_for(settings: Settings, ref: Reference, base_url: str) -> Credential | None:
    """Docker Hub's credential for Hub itself; a mirror gets only credentials stored for its own host."""
    if base_url == DOCKER_HUB_REGISTRY:
        return get_credential(settings, ref.domain)
    return get_credential(settings, convert_to_hostname(base_url))


def _new_client() -> httpx.Client:
    # identity: blobs must arrive byte for byte as stored (their digest is of those bytes).
    return httpx.Client(timeout=TIMEOUT, headers={"Accept-Encoding": "identity",
                                                  "User-Agent": "katadocker/0.1"})


def open_repository(settings: Settings, ref: Reference) -> Repository:
    """A Repository for `ref`'s repository (its tag/digest are ignored). Nothing is sent yet;
    credentials are looked up now (a failing credential helper raises AuthError)."""
    scopes = (f"repository:{ref.registry_path}:pull",)
    endpoints = [Endpoint(url, RegistryAuth(_credential_for(settings, ref, url), scopes))
                 for url in _endpoint_urls(settings, ref)]
    return Repository(ref, endpoints, _new_client())


# ---- requests ----------------------------------------------------------------------------------


def _retrying(action: Callable[[], _T], url: str, host: str) -> _T:
    """Run `action`, retrying connection errors, timeouts and 5xx answers with backoff."""
    for attempt in range(RETRIES):
        try:
            return action()
        except (httpx.TransportError, _ServerError) as e:
            failure = e
            if attempt + 1 < RETRIES:
                time.sleep(BACKOFF * 2**attempt)
    if isinstance(failure, _ServerError):
        raise RegistryError(f'Get "{url}": {failure}')
    reason = str(failure) or type(failure).__name__
    raise RegistryError(f'registry {host} is unreachable: Get "{url}": {reason}')


def _send(client: httpx.Client, url: str, auth: httpx.Auth | None, headers: dict[str, str] | None = None,
          limit: int = MAX_MANIFEST_SIZE) -> tuple[httpx.Response, bytes]:
    """One GET whose body (at most `limit` bytes) is read; 5xx raises _ServerError. AuthError
    from the token exchange gets docker's ``Get "<url>": `` prefix."""
    try:
        with client.stream("GET", url, headers=headers, auth=auth, follow_redirects=True) as response:
            if response.status_code >= 500:
                raise _ServerError(response)
            body = bytearray()
            for chunk in response.iter_raw():
                body += chunk
                if len(body) > limit:
                    raise RegistryError(f'Get "{url}": response larger than {limit} bytes')
            return response, bytes(body)
    except AuthError as e:
        raise AuthError(f'Get "{url}": {e.message}') from None


def _error_text(response: httpx.Response, body: bytes) -> str:
    return registry_error_text(httpx.Response(response.status_code, content=body))


def _error_code(body: bytes) -> str:
    """The first distribution error code of an error body (``MANIFEST_UNKNOWN``), or ""."""
    try:
        errors = json.loads(body).get("errors") or [{}]
        return str(errors[0].get("code", ""))
    except (ValueError, AttributeError, TypeError):
        return ""


def _hasher(digest: str) -> hashlib._Hash:
    """A hash object for `digest`'s algorithm (sha256, sha384, sha512)."""
    algorithm = digest.partition(":")[0]
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise RegistryError(f"unsupported digest algorithm: {digest}")
    return hashlib.new(algorithm)


def _is_digest(tag_or_digest: str) -> bool:
    return ":" in tag_or_digest  # tags never contain ':'


# ---- the repository ----------------------------------------------------------------------------


class Repository:
    """One image repository at a registry (through its mirrors for docker.io). Close it when done
    (or use it as a context manager): it owns a pooled HTTP client."""

    def __init__(self, ref: Reference, endpoints: list[Endpoint], client: httpx.Client) -> None:
        self.ref = ref
        self.endpoints = endpoints
        self._client = client
        self._preferred = endpoints[0]

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get_manifest(self, tag_or_digest: str,
                     accept: Iterable[str] = MANIFEST_ACCEPT) -> tuple[bytes, str, str]:
        """Fetch the manifest or index for a tag or digest: (raw bytes, media type, digest).

        Fetched by digest, the bytes are verified against it; by tag, the digest is computed from
        the bytes (and checked against ``Docker-Content-Digest`` when the registry sends one).
        Raises PullAccessDenied (unknown repository, or access refused), ManifestUnknown (unknown
        tag or digest), AuthError (credentials refused), DigestMismatch, RegistryError (schema 1,
        unsupported type, unreachable registry, other failures).
        """
        accept_header = ", ".join(accept)
        return self._on_endpoints(lambda ep: self._manifest_at(ep, tag_or_digest, accept_header))

    def list_tags(self, page_size: int | None = None) -> list[str]:
        """The repository's tags in the registry's order (``GET /v2/<name>/tags/list``).

        Pages are followed through ``Link: <url>; rel="next"`` until the registry sends no next
        page; `page_size` asks for pages of at most that many tags (``?n=``), the registry's own
        size when None. Endpoints, auth and retries as for get_manifest. Raises PullAccessDenied
        (unknown repository, or access refused), AuthError (credentials refused), RegistryError
        (a body that is not a tag list, unreachable registry, other failures).
        """
        return self._on_endpoints(lambda ep: self._tags_at(ep, page_size))

    def fetch_blob(self, digest: str, dest: Path, on_progress: ProgressFn | None = None) -> None:
        """Download blob `digest` into `dest`, verifying it while streaming.

        A partial `dest` is resumed with ``Range: bytes=N-`` (its bytes are hashed first; a server
        ignoring the range restarts the file). Redirects are followed (Authorization is not sent to
        another host). `on_progress(done, total)` is called with the bytes in `dest` so far and the
        blob's size when known. On return `dest` holds exactly the blob. On a digest mismatch `dest`
        is deleted and DigestMismatch raised; transient failures are retried, resuming each time.
        """
        _hasher(digest)  # reject unsupported algorithms before any traffic
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._on_endpoints(lambda ep: self._blob_at(ep, digest, dest, on_progress))

    # -- endpoint selection

    def _on_endpoints(self, action: Callable[[Endpoint], _T]) -> _T:
        """Run `action` on the preferred endpoint, then the others in order, until one succeeds;
        the last endpoint's error is raised."""
        order = sorted(self.endpoints, key=lambda ep: ep is not self._preferred)
        for i, endpoint in enumerate(order):
            try:
                result = action(endpoint)
            except KatadockerError:
                if i == len(order) - 1:
                    raise
                continue
            self._preferred = endpoint
            return result
        raise AssertionError("a repository has at least one endpoint")

    def _ping(self, endpoint: Endpoint) -> None:
        """``GET /v2/`` once per endpoint, unauthenticated: learns its auth challenge."""
        if endpoint.pinged:
            return
        url = f"{endpoint.base_url}/v2/"
        response, body = _retrying(lambda: _send(self._client, url, None), url, endpoint.host)
        if response.status_code == 401:
            endpoint.auth.learn(response)
        elif response.status_code != 200:
            raise RegistryError(f'Get "{url}": {_error_text(response, body)}')
        endpoint.pinged = True

    # -- manifests

    def _familiar(self, tag_or_digest: str) -> str:
        sep = "@" if _is_digest(tag_or_digest) else ":"
        return f"{self.ref.familiar_name}{sep}{tag_or_digest}"

    def _get(self, endpoint: Endpoint, url: str,
             headers: dict[str, str] | None = None) -> tuple[httpx.Response, bytes]:
        """One authenticated GET of a small document at `endpoint`, retried (see `_send`)."""
        return _retrying(lambda: _send(self._client, url, endpoint.auth, headers), url, endpoint.host)

    def _manifest_at(self, endpoint: Endpoint, tag_or_digest: str, accept: str) -> tuple[bytes, str, str]:
        self._ping(endpoint)
        url = f"{endpoint.base_url}/v2/{self.ref.registry_path}/manifests/{tag_or_digest}"
        response, raw = self._get(endpoint, url, {"Accept": accept})
        if response.status_code != 200:
            raise self._manifest_error(endpoint, url, tag_or_digest, response, raw)
        media_type = self._media_type(response, raw)
        return raw, media_type, self._manifest_digest(tag_or_digest, response, raw)

    def _manifest_error(self, endpoint: Endpoint, url: str, tag_or_digest: str,
                        response: httpx.Response, body: bytes) -> KatadockerError:
        if response.status_code == 404 and _error_code(body) == "MANIFEST_UNKNOWN":
            return ManifestUnknown(self._familiar(tag_or_digest))
        return self._refusal(endpoint, url, response, body)

    def _refusal(self, endpoint: Endpoint, url: str, response: httpx.Response,
                 body: bytes) -> KatadockerError:
        """docker's error for a non-200 answer: AuthError when Basic credentials were refused,
        PullAccessDenied for 401/403/404, RegistryError with the registry's text otherwise."""
        status = response.status_code
        challenge = endpoint.auth.challenge
        if status == 401 and challenge and challenge.scheme == "basic" and endpoint.auth.credential:
            return AuthError(f'Get "{url}": {_error_text(response, body)}')
        if status in (401, 403, 404):
            return PullAccessDenied(self.ref.familiar_name)
        return RegistryError(f'Get "{url}": {_error_text(response, body)}')

    def _media_type(self, response: httpx.Response, raw: bytes) -> str:
        """The manifest's media type: Content-Type, else its ``mediaType`` field, else its shape."""
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in _MANIFEST_TYPES and media_type not in _SCHEMA1_TYPES:
            try:
                doc = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(f"invalid manifest for {self.ref.familiar_name}: not JSON") from None
            media_type = self._guess_media_type(doc) if isinstance(doc, dict) else ""
        if media_type in _SCHEMA1_TYPES:
            raise RegistryError(
                "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, "
                f"schema 1 support has been removed. Suggest the author of {self.ref.name} to upgrade the "
                "image to the OCI Format or Docker Image manifest v2, schema 2. More information at "
                "https://docs.docker.com/go/deprecated-image-specs/")
        if media_type not in _MANIFEST_TYPES:
            raise RegistryError(f"unsupported manifest media type {media_type or '(none)'} "
                                f"for {self.ref.familiar_name}")
        return media_type

    @staticmethod
    def _guess_media_type(doc: dict) -> str:
        if doc.get("mediaType"):
            return str(doc["mediaType"])
        if doc.get("schemaVersion") == 1:
            return "application/vnd.docker.distribution.manifest.v1+json"
        if "manifests" in doc:
            return MEDIA_TYPE_OCI_INDEX
        return MEDIA_TYPE_OCI_MANIFEST if "config" in doc else ""

    def _manifest_digest(self, tag_or_digest: str, response: httpx.Response, raw: bytes) -> str:
        """The sha256 digest of `raw`, after checking the digest asked for or announced."""
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        announced = response.headers.get("Docker-Content-Digest")
        expected = tag_or_digest if _is_digest(tag_or_digest) else announced
        if expected:
            hasher = _hasher(expected)
            hasher.update(raw)
            actual = f"{hasher.name}:{hasher.hexdigest()}"
            if actual != expected:
                raise DigestMismatch(f"manifest {self._familiar(tag_or_digest)}", expected, actual)
        return digest

    # -- tags

    def _tags_at(self, endpoint: Endpoint, page_size: int | None) -> list[str]:
        """Every page of the tag list at `endpoint`, joined in order."""
        self._ping(endpoint)
        base = f"{endpoint.base_url}/v2/{self.ref.registry_path}/tags/list"
        url: str | None = f"{base}?n={page_size}" if page_size else base
        tags: list[str] = []
        seen: set[str] = set()
        while url and url not in seen:  # a registry linking back to a page it sent ends the list
            seen.add(url)
            response, body = self._get(endpoint, url)
            if response.status_code != 200:
                raise self._refusal(endpoint, url, response, body)
            tags += _tag_page(url, body)
            url = _next_page(response)
        return tags

    # -- blobs

    def _blob_at(self, endpoint: Endpoint, digest: str, dest: Path, on_progress: ProgressFn | None) -> None:
        self._ping(endpoint)
        url = f"{endpoint.base_url}/v2/{self.ref.registry_path}/blobs/{digest}"
        _retrying(lambda: self._download(endpoint, url, digest, dest, on_progress), url, endpoint.host)

    def _download(self, endpoint: Endpoint, url: str, digest: str, dest: Path,
                  on_progress: ProgressFn | None) -> None:
        """One attempt: resume or start `dest`, stream the rest, verify. Transport errors escape
        (to be retried); the bytes written so far stay in `dest` for the next attempt."""
        hasher, offset = _hash_file(dest, digest)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with self._client.stream("GET", url, headers=headers, auth=endpoint.auth,
                                     follow_redirects=True) as response:
                satisfied = offset > 0 and response.status_code == 416
                if not satisfied:
                    self._check_blob_status(url, response)
                    if offset and (response.status_code == 200 or _range_start(response) != offset):
                        hasher, offset = _hasher(digest), 0  # the server sent the whole blob: start over
                    _stream_to(response, dest, offset, hasher, _blob_total(response, offset), on_progress)
        except AuthError as e:
            raise AuthError(f'Get "{url}": {e.message}') from None
        if satisfied:
            self._complete_or_restart(endpoint, url, digest, dest, hasher, on_progress)
        else:
            _verify(dest, digest, hasher)

    def _complete_or_restart(self, endpoint: Endpoint, url: str, digest: str, dest: Path,
                             hasher: hashlib._Hash, on_progress: ProgressFn | None) -> None:
        """416 to our range: `dest` already has every byte (verify it), or is junk (start over)."""
        if f"{hasher.name}:{hasher.hexdigest()}" == digest:
            if on_progress:
                size = dest.stat().st_size
                on_progress(size, size)
            return
        dest.unlink()
        self._download(endpoint, url, digest, dest, on_progress)

    @staticmethod
    def _check_blob_status(url: str, response: httpx.Response) -> None:
        if response.status_code >= 500:
            raise _ServerError(response)
        if response.status_code not in (200, 206):
            response.read()
            raise RegistryError(f'Get "{url}": {registry_error_text(response)}')


def _tag_page(url: str, body: bytes) -> list[str]:
    """The tags of one ``{"name": …, "tags": [...]}`` page (``"tags": null`` is an empty page)."""
    try:
        tags = json.loads(body).get("tags") or []
    except (ValueError, AttributeError):
        raise RegistryError(f'Get "{url}": the registry did not send a tag list') from None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RegistryError(f'Get "{url}": the registry did not send a tag list')
    return tags


def _next_page(response: httpx.Response) -> str | None:
    """The absolute URL of the ``rel="next"`` Link (resolved against the request's), or None."""
    link = response.links.get("next", {}).get("url")
    return str(response.request.url.join(link)) if link else None


def _hash_file(path: Path, digest: str) -> tuple[hashlib._Hash, int]:
    """A hasher fed with `path`'s current bytes (none when it does not exist), and their count."""
    hasher, size = _hasher(digest), 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        pass
    return hasher, size


def _range_start(response: httpx.Response) -> int:
    """The first byte of a 206 answer (``Content-Range: bytes N-M/T``); -1 when absent."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split(" ", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return -1


def _blob_total(response: httpx.Response, offset: int) -> int | None:
    """The whole blob's size, from Content-Range (206) or Content-Length (200); None if unknown."""
    if response.status_code == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length", "")
    return offset + int(length) if length.isdigit() else None


def _stream_to(response: httpx.Response, dest: Path, offset: int, hasher: hashlib._Hash,
               total: int | None, on_progress: ProgressFn | None) -> None:
    """Append the body to `dest` (truncating it first when `offset` is 0), hashing as it goes."""
    done = offset
    with open(dest, "ab" if offset else "wb") as f:
        if on_progress:
            on_progress(done, total)
        for chunk in response.iter_raw(CHUNK):
            f.write(chunk)
            hasher.update(chunk)
            done += len(chunk)
            if on_progress:
                on_progress(done, total)


def _verify(dest: Path, digest: str, hasher: hashlib._Hash) -> None:
    actual = f"{hasher.name}:{hasher.hexdigest()}"
    if actual != digest:
        dest.unlink(missing_ok=True)
        raise DigestMismatch("blob", digest, actual)


# ---- login -------------------------------------------------------------------------------------


def verify_login(settings: Settings, key: str, credential: Credential) -> None:
    """Check `credential` against the registry named by credential key `key` (``GET /v2/`` with
    Basic or a bearer token for docker's login scope). Raises AuthError when refused."""
    base = DOCKER_HUB_REGISTRY if key == DOCKER_HUB_KEY else registry_base_url(settings, key)
    url = f"{base}/v2/"
    auth = RegistryAuth(credential, (LOGIN_SCOPE,))
    with _new_client() as client:
        response, body = _retrying(lambda: _send(client, url, auth), url, convert_to_hostname(base))
    if response.status_code == 401:
        raise AuthError(f"login attempt to {url} failed with status: 401 Unauthorized")
    if response.status_code != 200:
        raise RegistryError(f"login attempt to {url} failed with status: "
                            f"{response.status_code} {response.reason_phrase}")
