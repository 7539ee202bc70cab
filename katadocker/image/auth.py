"""Registry credentials and authentication, as the docker CLI and daemon do them.

Credentials live in docker's client config (``<docker config dir>/config.json``)::

    {"auths": {"https://index.docker.io/v1/": {"auth": "<base64 user:password>"},
               "localhost:5000": {"username": "u", "password": "p"},
               "ghcr.io": {"identitytoken": "<refresh token>"}},
     "credsStore": "pass",                       # default helper: docker-credential-pass
     "credHelpers": {"registry.example": "test"}}  # per-registry helper: docker-credential-test

Docker Hub's key is ``https://index.docker.io/v1/``; every other registry is keyed by its host
(``localhost:5000``), and keys written with a scheme or path (``https://host/v1/``) still match.
A helper is run as ``docker-credential-<name> get|store|erase`` with docker's JSON protocol.

`RegistryAuth` answers ``WWW-Authenticate`` challenges for one registry endpoint: Bearer (token
from the realm, anonymous or with credentials, cached per scope until it expires) and Basic.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from katadocker.config import Settings
from katadocker.errors import AuthError
from katadocker.state.atomic import write_bytes

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
LOGIN_SCOPE = "registry:catalog:*"  # the scope docker asks for when it verifies a login
_TOKEN_MIN_LIFETIME = 60  # seconds; docker's floor for `expires_in`
_HELPER_NOT_FOUND = "credentials not found in native keychain"

# An httpx auth flow step: yields requests to send, receives their responses, returns a T.
_T = TypeVar("_T")
_Flow = Generator[httpx.Request, httpx.Response, _T]


@dataclass(frozen=True)
class Credential:
    """What a registry may be given: a username and password, or an OAuth identity (refresh) token."""

    username: str = ""
    password: str = ""
    identity_token: str = ""


# ---- where credentials are kept ----------------------------------------------------------------


def credential_key(server: str) -> str:
    """The config/helper key for `server` (a host, ``host:port`` or URL): Hub's URL or the bare host."""
    host = convert_to_hostname(server)
    return DOCKER_HUB_KEY if host in DOCKER_HUB_HOSTS or not host else host


def convert_to_hostname(server: str) -> str:
    """docker's ConvertToHostname: drop a scheme and anything after the host."""
    rest = server.split("://", 1)[1] if "://" in server else server
    return rest.split("/", 1)[0]


def _config_path(settings: Settings) -> Path:
    return settings.docker_config / "config.json"


def _load_config(settings: Settings) -> dict:
    """The parsed config.json ({} when absent); a malformed file is an AuthError, never ignored."""
    path = _config_path(settings)
    try:
        data = json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as e:
        raise AuthError(f"error loading docker config file {path}: {e}") from None
    if not isinstance(data, dict):
        raise AuthError(f"error loading docker config file {path}: expected a JSON object")
    return data


def _save_config(settings: Settings, data: dict) -> None:
    """Rewrite config.json atomically, readable by its owner only (as docker writes it)."""
    write_bytes(_config_path(settings), json.dumps(data, indent="\t").encode() + b"\n", mode=0o600)


def _helper_for(config: dict, key: str) -> str:
    """The credential helper name for `key` ("" when credentials are kept in the file itself)."""
    helpers = config.get("credHelpers") or {}
    return helpers.get(convert_to_hostname(key)) or helpers.get(key) or config.get("credsStore") or ""


def _find_auths_entry(config: dict, key: str) -> dict | None:
    """The ``auths`` entry for `key`: exact key first, then any key naming the same host."""
    auths = config.get("auths") or {}
    if key in auths:
        return auths[key]
    host = convert_to_hostname(key)
    for name, entry in auths.items():
        if credential_key(name) == credential_key(host):
            return entry
    return None


def _entry_credential(entry: dict | None) -> Credential | None:
    """Decode one ``auths`` entry (``auth`` base64, or username/password, and ``identitytoken``)."""
    if not entry:
        return None
    username, password = entry.get("username", ""), entry.get("password", "")
    if entry.get("auth"):
        try:
            username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise AuthError("invalid auth configuration file: bad base64 in auth") from None
    token = entry.get("identitytoken", "")
    if not (username or password or token):
        return None
    return Credential(username=username, password=password, identity_token=token)


def get_credential(settings: Settings, server: str) -> Credential | None:
    """The stored credential for `server` (host, ``host:port``, URL or ``docker.io``), or None.

    A helper (``credHelpers`` for the host, else ``credsStore``) is asked first; when it has nothing,
    the ``auths`` entry of the file is used, as docker's native store falls back to the file.
    """
    config = _load_config(settings)
    key = credential_key(server)
    helper = _helper_for(config, key)
    if helper:
        found = _helper_get(helper, key)
        if found is not None:
            return found
    return _entry_credential(_find_auths_entry(config, key))


# ---- docker-credential-* helpers ----------------------------------------------------------------


def _run_helper(helper: str, action: str, stdin: str) -> subprocess.CompletedProcess[str]:
    program = f"docker-credential-{helper}"
    try:
        return subprocess.run([program, action], input=stdin, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise AuthError(f'error getting credentials - err: exec: "{program}": executable file not found '
                        "in $PATH, out: ``") from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"error getting credentials - err: {program} {action} timed out") from None


def _helper_failure(proc: subprocess.CompletedProcess[str]) -> AuthError:
    out = (proc.stdout + proc.stderr).strip()
    return AuthError(f"error getting credentials - err: exit status {proc.returncode}, out: `{out}`")


def _helper_get(helper: str, key: str) -> Credential | None:
    """``docker-credential-<helper> get``: None when the helper has no credential for `key`."""
    proc = _run_helper(helper, "get", key)
    if proc.returncode != 0:
        if _HELPER_NOT_FOUND in proc.stdout + proc.stderr:
            return None
        raise _helper_failure(proc)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise _helper_failure(proc) from None
    username, secret = data.get("Username", ""), data.get("Secret", "")
    if username == "<token>":  # docker's marker for an identity token
        return Credential(identity_token=secret)
    return Credential(username=username, password=secret) if (username or secret) else None


def _helper_store(helper: str, key: str, credential: Credential) -> None:
    payload = json.dumps({"ServerURL": key, "Username": credential.username, "Secret": credential.password})
    proc = _run_helper(helper, "store", payload)
    if proc.returncode != 0:
        raise AuthError(f"error storing credentials - err: exit status {proc.returncode}, "
                        f"out: `{(proc.stdout + proc.stderr).strip()}`")


# ---- challenges, tokens -------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """One parsed ``WWW-Authenticate`` challenge: scheme in lower case, its auth-params."""

    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="…",service="…",scope="a:b:pull,push"`` (RFC 6750 auth-params; quoted
    values may hold commas and backslash escapes). None for an empty header."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        name = rest[i:eq].strip().lower()
        i = eq + 1
        value, i = _read_param_value(rest, i)
        params[name] = value
    return Challenge(scheme=scheme.lower(), params=params)


def _read_param_value(s: str, i: int) -> tuple[str, int]:
    """Read a token or quoted-string starting at `s[i]`; returns (value, index after it)."""
    if i < len(s) and s[i] == '"':
        out, i = [], i + 1
        while i < len(s) and s[i] != '"':
            if s[i] == "\\" and i + 1 < len(s):
                i += 1
            out.append(s[i])
            i += 1
        return "".join(out), i + 1
    end = s.find(",", i)
    end = len(s) if end < 0 else end
    return s[i:end].strip(), end


def registry_error_text(response: httpx.Response) -> str:
    """A registry or token-server error as distribution formats it: ``<code>: <message>``
    (``manifest unknown: manifest unknown``), ``unauthorized: <details>`` for Docker Hub's token
    errors, else the HTTP status line. Reads the (small) response body."""
    try:
        data = json.loads(response.read() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = {}
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = str(errors[0].get("code", "unknown")).lower().replace("_", " ")
            return f"{code}: {errors[0].get('message', '')}"
        if data.get("details"):
            return f"unauthorized: {data['details']}"
    return f"{response.status_code} {response.reason_phrase}"


class RegistryAuth(httpx.Auth):
    """Authentication for every request to one registry endpoint (use with a sync httpx.Client).

    The first 401 teaches it the endpoint's challenge (or `learn` does, from a ``/v2/`` ping);
    later requests carry credentials up front. Bearer tokens are fetched from the realm for
    `scopes` (anonymously, with Basic credentials, or with an OAuth refresh token) and cached per
    scope until they expire. A token server refusing the credentials raises AuthError with its
    message (``unauthorized: incorrect username or password``).
    """

    def __init__(self, credential: Credential | None, scopes: tuple[str, ...]) -> None:
        self.credential = credential
        self.scopes = scopes
        self.challenge: Challenge | None = None
        self._tokens: dict[tuple[str, str, tuple[str, ...]], tuple[str, float]] = {}
        self._fetched = 0  # tokens fetched so far

    def learn(self, response: httpx.Response) -> None:
        """Remember the challenge of a 401 response (from a ping sent without this auth)."""
        if response.status_code == 401:
            self.challenge = parse_challenge(response.headers.get("WWW-Authenticate", "")) or self.challenge

    def auth_flow(self, request: httpx.Request) -> _Flow[None]:
        fetched = self._fetched
        authorized = yield from self._authorize(request, refresh=False)
        response = yield request
        if response.status_code != 401:
            return
        seen, fresh = _authority(self.challenge), self._fetched != fetched
        self.learn(response)
        # Retry only with something new: a first challenge, a changed one, or a cached token that
        # may have gone stale. Otherwise the caller maps the 401.
        nothing_new = authorized and _authority(self.challenge) == seen and (fresh or not self._is_bearer())
        if self.challenge is None or nothing_new:
            return
        if (yield from self._authorize(request, refresh=True)):
            yield request

    def _is_bearer(self) -> bool:
        return self.challenge is not None and self.challenge.scheme == "bearer"

    def _authorize(self, request: httpx.Request, *, refresh: bool) -> _Flow[bool]:
        """Set the Authorization header for the known challenge; False when there is nothing to send."""
        if self.challenge is None:
            return False
        if self.challenge.scheme == "basic":
            if self.credential is None or not self.credential.username:
                return False
            request.headers["Authorization"] = basic_header(self.credential)
            return True
        if not self._is_bearer():
            return False
        token = yield from self._bearer_token(refresh=refresh)
        request.headers["Authorization"] = f"Bearer {token}"
        return True

    def _bearer_token(self, *, refresh: bool) -> _Flow[str]:
        """A token for the current challenge and scopes: cached unless expired or `refresh`."""
        assert self.challenge is not None
        realm = self.challenge.params.get("realm", "")
        service = self.challenge.params.get("service", "")
        scopes = self.scopes or tuple(filter(None, [self.challenge.params.get("scope", "")]))
        key = (realm, service, scopes)
        cached = self._tokens.get(key)
        if cached and not refresh and cached[1] > time.monotonic():
            return cached[0]
        if not realm:
            raise AuthError("bearer challenge without a realm")
        response = yield self._token_request(realm, service, scopes)
        response.read()
        if response.status_code != 200:
            raise AuthError(registry_error_text(response))
        token, lifetime = _parse_token_response(response)
        self._tokens[key] = (token, time.monotonic() + lifetime - 5)
        self._fetched += 1
        return token

    def _token_request(self, realm: str, service: str, scopes: tuple[str, ...]) -> httpx.Request:
        """GET the realm (with Basic credentials when known), or POST the OAuth refresh-token form."""
        cred = self.credential
        if cred and cred.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": cred.identity_token,
                    "service": service, "client_id": "katadocker", "scope": " ".join(scopes)}
            return httpx.Request("POST", realm, data=form)
        params = [("service", service)] if service else []
        params += [("scope", s) for s in scopes]
        headers = {}
        if cred and cred.username:
            params.append(("account", cred.username))
            headers["Authorization"] = basic_header(cred)
        return httpx.Request("GET", realm, params=params, headers=headers)


def _authority(challenge: Challenge | None) -> tuple[str, str, str] | None:
    """Who issues credentials for a challenge (scheme, realm, service); `error`/`scope` aside."""
    if challenge is None:
        return None
    return challenge.scheme, challenge.params.get("realm", ""), challenge.params.get("service", "")


def _parse_token_response(response: httpx.Response) -> tuple[str, float]:
    """(token, lifetime in seconds) from a token server's JSON (``token`` or ``access_token``)."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AuthError(f"token server at {response.url.host} answered with invalid JSON") from None
    token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
    if not token:
        raise AuthError(f"token server at {response.url.host} returned no token")
    lifetime = data.get("expires_in") or _TOKEN_MIN_LIFETIME
    return token, max(float(lifetime), _TOKEN_MIN_LIFETIME)


def basic_header(credential: Credential) -> str:
    """The HTTP Basic Authorization header value for a username/password credential."""
    raw = f"{credential.username}:{credential.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


# ---- login / logout -----------------------------------------------------------------------------


def login(settings: Settings, server: str, username: str, password: str) -> str:
    """Verify `username`/`password` against `server`'s ``/v2/`` and store them; return "Login Succeeded".

    `server` is "" or a Docker Hub name for Docker Hub, else a host or URL. Credentials go to the
    credential helper configured for the server (``credHelpers``/``credsStore``; the file then keeps
    an empty entry, as docker does), else base64 into ``auths``. Refused credentials raise AuthError
    with the registry's message; nothing is stored then.
    """
    from katadocker.image.registry import verify_login  # registry.py builds on this module

    key = credential_key(server)
    credential = Credential(username=username, password=password)
    verify_login(settings, key, credential)
    config = _load_config(settings)
    auths = config.setdefault("auths", {})
    helper = _helper_for(config, key)
    if helper:
        _helper_store(helper, key, credential)
        auths[key] = {}
    else:
        auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    _save_config(settings, config)
    return "Login Succeeded"


def logout(settings: Settings, server: str) -> str:
    """Forget the credentials for `server` (file entry and helper); return docker's message.

    Like docker, entries written with an http:// or https:// prefix are removed too, and a helper
    that has nothing to erase is not an error.
    """
    key = credential_key(server)
    variants = [key] if key == DOCKER_HUB_KEY else [key, f"http://{key}", f"https://{key}"]
    config = _load_config(settings)
    helper = _helper_for(config, key)
    auths = config.get("auths") or {}
    if any(v in auths for v in variants):
        for v in variants:
            auths.pop(v, None)
        _save_config(settings, config)
    if helper:
        _run_helper(helper, "erase", key)
    return f"Removing login credentials for {key}"

