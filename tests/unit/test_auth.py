"""Credentials from docker's config dir, challenge parsing, and the endpoint (scheme) each registry
is spoken to on — where credentials may be sent. No network."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from katadocker.config import Settings
from katadocker.errors import AuthError
from katadocker.image.auth import (
    DOCKER_HUB_KEY,
    Challenge,
    Credential,
    credential_key,
    get_credential,
    logout,
    parse_challenge,
)
from katadocker.image.reference import parse_reference
from katadocker.image.registry import is_insecure, open_repository
from katadocker.state.paths import StateRoot


def settings(tmp_path: Path, config: dict | None = None, **kw: tuple[str, ...]) -> Settings:
    (tmp_path / "docker").mkdir(exist_ok=True)
    if config is not None:
        (tmp_path / "docker" / "config.json").write_text(json.dumps(config))
    return Settings(state=StateRoot(tmp_path / "state"), docker_config=tmp_path / "docker", **kw)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def write_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> None:
    """Install docker-credential-<name> (a shell script; stdin in $input) first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    helper = bin_dir / f"docker-credential-{name}"
    helper.write_text(f"#!/bin/sh\ninput=$(cat)\n{body}\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


# ---- challenges ----------------------------------------------------------------------------------


def test_parse_bearer_challenge_with_commas_in_quoted_values() -> None:
    header = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
              'scope="repository:library/nginx:pull,push"')
    assert parse_challenge(header) == Challenge("bearer", {
        "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
        "scope": "repository:library/nginx:pull,push"})


def test_parse_challenge_tokens_escapes_and_case() -> None:
    assert parse_challenge('Basic realm="a \\"quoted\\" realm", charset=UTF-8') == Challenge(
        "basic", {"realm": 'a "quoted" realm', "charset": "UTF-8"})
    assert parse_challenge("BEARER Realm=x") == Challenge("bearer", {"realm": "x"})
    assert parse_challenge("") is None


# ---- credential keys and lookup ------------------------------------------------------------------


@pytest.mark.parametrize(("server", "key"), [
    ("", DOCKER_HUB_KEY), ("docker.io", DOCKER_HUB_KEY), ("index.docker.io", DOCKER_HUB_KEY),
    ("https://index.docker.io/v1/", DOCKER_HUB_KEY), ("registry-1.docker.io", DOCKER_HUB_KEY),
    ("localhost:5000", "localhost:5000"), ("https://ghcr.io/v2/", "ghcr.io"),
    ("http://[::1]:5000", "[::1]:5000"),
])
def test_credential_key(server: str, key: str) -> None:
    assert credential_key(server) == key


def test_auths_entries_base64_plain_identity_token_and_url_keys(tmp_path: Path) -> None:
    s = settings(tmp_path, {"auths": {
        DOCKER_HUB_KEY: {"auth": b64("hubuser:hub:pass")},  # only the first ':' separates
        "https://ghcr.io/v1/": {"username": "gh", "password": "pw"},
        "quay.io": {"identitytoken": "refresh-me"},
        "empty.example": {},
    }})
    assert get_credential(s, "docker.io") == Credential("hubuser", "hub:pass")
    assert get_credential(s, "ghcr.io") == Credential("gh", "pw")
    assert get_credential(s, "quay.io") == Credential(identity_token="refresh-me")
    assert get_credential(s, "empty.example") is None
    assert get_credential(s, "other.example") is None


def test_missing_config_means_no_credentials_and_malformed_is_an_error(tmp_path: Path) -> None:
    assert get_credential(settings(tmp_path), "ghcr.io") is None
    (tmp_path / "docker" / "config.json").write_text("{not json")
    with pytest.raises(AuthError, match="error loading docker config file"):
        get_credential(settings(tmp_path), "ghcr.io")


def test_cred_helpers_win_over_creds_store_and_fall_back_to_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_helper(tmp_path, monkeypatch, "one", """
[ "$1" = get ] && [ "$input" = "special.example" ] && exec echo '{"Username":"u1","Secret":"s1"}'
echo "credentials not found in native keychain"; exit 1""")
    write_helper(tmp_path, monkeypatch, "store", """
[ "$input" = "https://index.docker.io/v1/" ] && exec echo '{"Username":"<token>","Secret":"idtok"}'
echo "credentials not found in native keychain"; exit 1""")
    s = settings(tmp_path, {"credsStore": "store", "credHelpers": {"special.example": "one"},
                            "auths": {"filed.example": {"auth": b64("f:p")}}})
    assert get_credential(s, "special.example") == Credential("u1", "s1")
    assert get_credential(s, "docker.io") == Credential(identity_token="idtok")
    assert get_credential(s, "filed.example") == Credential("f", "p")
    assert get_credential(s, "nowhere.example") is None


def test_failing_or_missing_helper_is_an_auth_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_helper(tmp_path, monkeypatch, "broken", 'echo "keychain locked"; exit 3')
    with pytest.raises(AuthError) as e:
        get_credential(settings(tmp_path, {"credsStore": "broken"}), "ghcr.io")
    assert e.value.message == "error getting credentials - err: exit status 3, out: `keychain locked`"
    with pytest.raises(AuthError, match='exec: "docker-credential-absent": executable file not found'):
        get_credential(settings(tmp_path, {"credsStore": "absent"}), "ghcr.io")


def test_logout_removes_scheme_variants_and_keeps_other_keys(tmp_path: Path) -> None:
    auths = {"ghcr.io": {"auth": b64("a:b")}, "https://ghcr.io": {"auth": b64("a:b")},
             "quay.io": {"auth": b64("c:d")}}
    s = settings(tmp_path, {"auths": auths, "psFormat": "table {{.ID}}"})
    assert logout(s, "ghcr.io") == "Removing login credentials for ghcr.io"
    config = json.loads((tmp_path / "docker" / "config.json").read_text())
    assert config == {"auths": {"quay.io": {"auth": b64("c:d")}}, "psFormat": "table {{.ID}}"}
    assert logout(s, "docker.io") == f"Removing login credentials for {DOCKER_HUB_KEY}"


# ---- which endpoint, which scheme ------------------------------------------------------------------


@pytest.mark.parametrize(("host", "insecure"), [
    ("localhost:5000", True), ("localhost", True), ("127.0.0.1:5000", True), ("127.8.9.10", True),
    ("[::1]:5000", True), ("ghcr.io", False), ("10.1.2.3:5000", True), ("myregistry:5000", True),
    ("myregistry:5001", False), ("plain.example", True), ("192.168.1.1", False),
])
def test_plain_http_for_loopback_and_insecure_registries(tmp_path: Path, host: str, insecure: bool) -> None:
    s = settings(tmp_path, insecure_registries=("10.0.0.0/8", "myregistry:5000", "http://plain.example"))
    assert is_insecure(s, host) is insecure


def test_endpoints_mirrors_first_for_docker_hub_only(tmp_path: Path) -> None:
    s = settings(tmp_path, registry_mirrors=("http://127.0.0.1:5000/", "https://mirror.example"))
    with open_repository(s, parse_reference("nginx")) as hub:
        assert [e.base_url for e in hub.endpoints] == [
            "http://127.0.0.1:5000", "https://mirror.example", "https://registry-1.docker.io"]
        assert hub.endpoints[0].auth.scopes == ("repository:library/nginx:pull",)
    with open_repository(s, parse_reference("ghcr.io/o/r:1")) as other:
        assert [e.base_url for e in other.endpoints] == ["https://ghcr.io"]


def test_mirrors_do_not_get_docker_hub_credentials(tmp_path: Path) -> None:
    s = settings(tmp_path, {"auths": {DOCKER_HUB_KEY: {"auth": b64("hub:secret")}}},
                 registry_mirrors=("http://127.0.0.1:5000",))
    with open_repository(s, parse_reference("nginx")) as hub:
        assert [e.auth.credential for e in hub.endpoints] == [None, Credential("hub", "secret")]
