"""The registry client and login against a real docker-registry on loopback (no mocks).

Fixtures `registry`, `auth_registry`, `token_registry`, `redirecting_registry` come from
tests/support/registry_fixtures.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from katadocker.config import Settings
from katadocker.errors import AuthError, DigestMismatch, ManifestUnknown, PullAccessDenied, RegistryError
from katadocker.image.auth import Credential, get_credential, login, logout
from katadocker.image.reference import parse_reference
from katadocker.image.registry import (
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
    Repository,
    open_repository,
)
from katadocker.state.paths import StateRoot
from tests.support.registry import (
    IDENTITY_TOKEN,
    PASSWORD,
    USERNAME,
    LayoutImage,
    RunningRegistry,
    blob_path,
    free_port,
    write_oci_index,
    write_oci_layout,
)

pytestmark = pytest.mark.registry

FILES = {"etc/hello.txt": b"hello from the registry tests\n", "bin/data": bytes(range(256)) * 512}
CONFIG = {"config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}}


def settings(tmp_path: Path, auths: dict | None = None, mirrors: tuple[str, ...] = (),
             **config: object) -> Settings:
    """Settings with a private docker config dir holding `auths` (and other config keys)."""
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir(exist_ok=True)
    if auths is not None or config:
        (docker_config / "config.json").write_text(json.dumps({"auths": auths or {}, **config}))
    return Settings(state=StateRoot(tmp_path / "state"), docker_config=docker_config,
                    registry_mirrors=mirrors)


def user_auths(host: str) -> dict:
    return {host: {"auth": base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()}}


def pushed(registry: RunningRegistry, tmp_path: Path, repo_tag: str, fmt: str = "oci") -> LayoutImage:
    image = write_oci_layout(tmp_path / "layout", FILES, CONFIG)
    registry.push(tmp_path / "layout", repo_tag, format=fmt)
    return image


def repo(s: Settings, registry: RunningRegistry, name: str) -> Repository:
    return open_repository(s, parse_reference(f"{registry.host}/{name}"))


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


# ---- anonymous -----------------------------------------------------------------------------------


def test_oci_manifest_and_blobs_by_tag_and_digest(registry: RunningRegistry, tmp_path: Path) -> None:
    image = pushed(registry, tmp_path, "anon/oci:v1")
    with repo(settings(tmp_path), registry, "anon/oci") as r:
        raw, media_type, digest = r.get_manifest("v1")
        assert (media_type, digest) == (MEDIA_TYPE_OCI_MANIFEST, image.manifest_digest)
        assert r.get_manifest(digest) == (raw, media_type, digest)
        manifest = json.loads(raw)
        assert manifest["layers"][0]["digest"] == image.layer_digest
        progress: list[tuple[int, int | None]] = []
        r.fetch_blob(image.layer_digest, tmp_path / "layer", lambda *p: progress.append(p))
        r.fetch_blob(image.config_digest, tmp_path / "config")
    assert sha256(tmp_path / "layer") == image.layer_digest
    assert progress[-1] == (image.layer_size, image.layer_size)
    assert json.loads((tmp_path / "config").read_bytes())["config"]["Cmd"] == ["/bin/sh"]


def test_docker_v2s2_manifest(registry: RunningRegistry, tmp_path: Path) -> None:
    image = pushed(registry, tmp_path, "anon/v2s2:v1", fmt="v2s2")
    with repo(settings(tmp_path), registry, "anon/v2s2") as r:
        raw, media_type, digest = r.get_manifest("v1")
        layer = json.loads(raw)["layers"][0]
        r.fetch_blob(layer["digest"], tmp_path / "layer")
    assert media_type == MEDIA_TYPE_DOCKER_MANIFEST
    assert digest == "sha256:" + hashlib.sha256(raw).hexdigest() != image.manifest_digest
    assert layer["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert sha256(tmp_path / "layer") == layer["digest"] == image.layer_digest


def test_two_platform_index(registry: RunningRegistry, tmp_path: Path) -> None:
    index_digest, images = write_oci_index(tmp_path / "layout", {
        "linux/amd64": {"arch": b"amd64\n"}, "linux/arm64/v8": {"arch": b"arm64\n"}})
    registry.push(tmp_path / "layout", "anon/multi:v1")
    with repo(settings(tmp_path), registry, "anon/multi") as r:
        raw, media_type, digest = r.get_manifest("v1")
        entries = json.loads(raw)["manifests"]
        child = next(e for e in entries if e["platform"]["architecture"] == "arm64")
        _, child_type, child_digest = r.get_manifest(child["digest"])
    assert (media_type, digest) == (MEDIA_TYPE_OCI_INDEX, index_digest)
    assert {(e["platform"]["architecture"], e["platform"].get("variant")) for e in entries} == {
        ("amd64", None), ("arm64", "v8")}
    assert (child_type, child_digest) == (MEDIA_TYPE_OCI_MANIFEST, images["linux/arm64/v8"].manifest_digest)


def test_unknown_repository_and_tag_have_dockers_messages(registry: RunningRegistry, tmp_path: Path) -> None:
    """distribution answers MANIFEST_UNKNOWN for a missing repository too, and docker says so."""
    pushed(registry, tmp_path, "anon/known:v1")
    s = settings(tmp_path)
    with repo(s, registry, "anon/known") as r, pytest.raises(ManifestUnknown) as unknown:
        r.get_manifest("nope")
    assert unknown.value.message == (
        f"manifest for {registry.host}/anon/known:nope not found: manifest unknown: manifest unknown")
    with repo(s, registry, "anon/missing") as r, pytest.raises(ManifestUnknown):
        r.get_manifest("latest")


def test_corrupted_blob_is_a_digest_mismatch(registry: RunningRegistry, tmp_path: Path) -> None:
    image = pushed(registry, tmp_path, "anon/corrupt:v1")
    stored = blob_path(registry.storage, image.layer_digest)
    original = stored.read_bytes()
    stored.write_bytes(bytes(b ^ 0xFF for b in original[:64]) + original[64:])
    try:
        with repo(settings(tmp_path), registry, "anon/corrupt") as r, pytest.raises(DigestMismatch) as e:
            r.fetch_blob(image.layer_digest, tmp_path / "layer")
    finally:
        stored.write_bytes(original)
    assert f"expected {image.layer_digest}" in e.value.message
    assert not (tmp_path / "layer").exists()


def test_partial_blob_resumes_with_range(registry: RunningRegistry, tmp_path: Path) -> None:
    """A correct prefix is completed; a wrong prefix of the same length is *kept* (the registry
    only sent the rest), which the digest check then catches: proof that Range was used."""
    image = pushed(registry, tmp_path, "anon/resume:v1")
    whole = blob_path(registry.storage, image.layer_digest).read_bytes()
    half = len(whole) // 2
    dest = tmp_path / "layer"
    dest.write_bytes(whole[:half])
    progress: list[tuple[int, int | None]] = []
    with repo(settings(tmp_path), registry, "anon/resume") as r:
        r.fetch_blob(image.layer_digest, dest, lambda *p: progress.append(p))
        assert dest.read_bytes() == whole
        assert progress[0] == (half, len(whole))
        dest.write_bytes(b"\0" * half)
        with pytest.raises(DigestMismatch):
            r.fetch_blob(image.layer_digest, dest)
        assert not dest.exists()
        dest.write_bytes(whole)  # already complete: the registry answers 416, the file is verified
        r.fetch_blob(image.layer_digest, dest)
        assert dest.read_bytes() == whole


def test_unreachable_registry_names_the_host(tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"
    with open_repository(settings(tmp_path), parse_reference(f"{host}/a/b")) as r, \
            pytest.raises(RegistryError) as e:
        r.get_manifest("latest")
    assert e.value.message.startswith(f'registry {host} is unreachable: Get "http://{host}/v2/"')
    assert "\n" not in e.value.message


def test_mirrors_fall_through_to_one_that_has_the_image(
        registry: RunningRegistry, token_registry: RunningRegistry, tmp_path: Path) -> None:
    """docker.io names go to the mirrors first: a dead one and one lacking the repository are skipped."""
    image = pushed(registry, tmp_path, "library/mirrored:v1")
    dead = f"http://127.0.0.1:{free_port()}"
    s = settings(tmp_path, mirrors=(dead, token_registry.url, registry.url + "/"))
    with open_repository(s, parse_reference("mirrored:v1")) as r:
        _, _, digest = r.get_manifest("v1")
        r.fetch_blob(image.layer_digest, tmp_path / "layer")
    assert digest == image.manifest_digest
    assert sha256(tmp_path / "layer") == image.layer_digest


# ---- basic auth ----------------------------------------------------------------------------------


def test_basic_auth_with_credentials_from_config(auth_registry: RunningRegistry, tmp_path: Path) -> None:
    image = pushed(auth_registry, tmp_path, "basic/app:v1")
    with repo(settings(tmp_path, user_auths(auth_registry.host)), auth_registry, "basic/app") as r:
        assert r.get_manifest("v1")[2] == image.manifest_digest
        r.fetch_blob(image.layer_digest, tmp_path / "layer")
    assert sha256(tmp_path / "layer") == image.layer_digest


def test_basic_auth_without_or_with_wrong_credentials(auth_registry: RunningRegistry, tmp_path: Path) -> None:
    pushed(auth_registry, tmp_path, "basic/denied:v1")
    with repo(settings(tmp_path), auth_registry, "basic/denied") as r, pytest.raises(PullAccessDenied):
        r.get_manifest("v1")
    wrong = {auth_registry.host: {"username": USERNAME, "password": "wrong"}}
    with repo(settings(tmp_path, wrong), auth_registry, "basic/denied") as r, pytest.raises(AuthError) as e:
        r.get_manifest("v1")
    assert e.value.message.endswith("unauthorized: authentication required")


def test_blob_redirect_drops_authorization_and_restarts_when_range_is_ignored(
        redirecting_registry: RunningRegistry, tmp_path: Path) -> None:
    reg = redirecting_registry
    assert reg.cdn is not None
    image = pushed(reg, tmp_path, "redirect/app:v1")
    whole = blob_path(reg.storage, image.layer_digest).read_bytes()
    dest = tmp_path / "layer"
    dest.write_bytes(b"\0" * 100)  # junk prefix: a server ignoring Range must make us start over
    with repo(settings(tmp_path, user_auths(reg.host)), reg, "redirect/app") as r:
        r.fetch_blob(image.layer_digest, dest)
    assert dest.read_bytes() == whole
    path, headers = reg.cdn.requests[-1]
    assert path.endswith(image.layer_digest.split(":")[1] + "/data")
    assert headers.get("Range") == "bytes=100-"
    assert "Authorization" not in headers


# ---- bearer tokens -------------------------------------------------------------------------------


def test_bearer_anonymous_pull_caches_the_token(token_registry: RunningRegistry, tmp_path: Path) -> None:
    assert token_registry.token_server is not None
    image = pushed(token_registry, tmp_path, "public/app:v1")
    before = len(token_registry.token_server.requests)
    with repo(settings(tmp_path), token_registry, "public/app") as r:
        r.get_manifest("v1")
        r.fetch_blob(image.config_digest, tmp_path / "config")
        r.fetch_blob(image.layer_digest, tmp_path / "layer")
    asked = token_registry.token_server.requests[before:]
    assert [(q.method, q.scopes, q.user) for q in asked] == [("GET", ["repository:public/app:pull"], "")]
    assert sha256(tmp_path / "layer") == image.layer_digest


def test_bearer_private_repository_needs_credentials(token_registry: RunningRegistry, tmp_path: Path) -> None:
    assert token_registry.token_server is not None
    image = pushed(token_registry, tmp_path, "private/app:v1")
    before = len(token_registry.token_server.requests)
    with repo(settings(tmp_path), token_registry, "private/app") as r, pytest.raises(PullAccessDenied) as e:
        r.get_manifest("v1")  # what Docker Hub does for a missing repository: 401, insufficient scope
    assert len(token_registry.token_server.requests) == before + 1  # no second try with the same token
    assert e.value.message == (
        f"pull access denied for {token_registry.host}/private/app, repository does not exist or may "
        "require 'docker login': denied: requested access to the resource is denied")
    with repo(settings(tmp_path, user_auths(token_registry.host)), token_registry, "private/app") as r:
        assert r.get_manifest("v1")[2] == image.manifest_digest


def test_bearer_wrong_password(token_registry: RunningRegistry, tmp_path: Path) -> None:
    pushed(token_registry, tmp_path, "private/wrong:v1")
    wrong = {token_registry.host: {"username": USERNAME, "password": "nope"}}
    with repo(settings(tmp_path, wrong), token_registry, "private/wrong") as r, pytest.raises(AuthError) as e:
        r.get_manifest("v1")
    assert e.value.message == (f'Get "{token_registry.url}/v2/private/wrong/manifests/v1": '
                               "unauthorized: incorrect username or password")


def test_bearer_identity_token_and_access_token(token_registry: RunningRegistry, tmp_path: Path) -> None:
    """An ``identitytoken`` is exchanged with OAuth's refresh_token grant; the answer's token may be
    in ``access_token``."""
    server = token_registry.token_server
    assert server is not None
    image = pushed(token_registry, tmp_path, "private/oauth:v1")
    auths = {token_registry.host: {"identitytoken": IDENTITY_TOKEN}}
    server.token_field = "access_token"
    try:
        with repo(settings(tmp_path, auths), token_registry, "private/oauth") as r:
            assert r.get_manifest("v1")[2] == image.manifest_digest
    finally:
        server.token_field = "token"
    assert server.requests[-1].method == "POST"


def test_credential_helper(token_registry: RunningRegistry, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``credHelpers`` runs docker-credential-<name> get with the host on stdin."""
    image = pushed(token_registry, tmp_path, "private/helper:v1")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-test"
    helper.write_text(f"""#!/bin/sh
server=$(cat)
[ "$1" = get ] || exit 1
if [ "$server" = "{token_registry.host}" ]; then
  echo '{{"ServerURL":"{token_registry.host}","Username":"{USERNAME}","Secret":"{PASSWORD}"}}'
else
  echo "credentials not found in native keychain"; exit 1
fi
""")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")
    s = settings(tmp_path, {}, credHelpers={token_registry.host: "test"})
    with repo(s, token_registry, "private/helper") as r:
        assert r.get_manifest("v1")[2] == image.manifest_digest


# ---- login / logout ------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["auth_registry", "token_registry"])
def test_login_stores_and_logout_removes(fixture: str, tmp_path: Path,
                                         request: pytest.FixtureRequest) -> None:
    reg: RunningRegistry = request.getfixturevalue(fixture)
    s = settings(tmp_path)
    assert login(s, reg.url, USERNAME, PASSWORD) == "Login Succeeded"
    config = json.loads((s.docker_config / "config.json").read_text())
    assert base64.b64decode(config["auths"][reg.host]["auth"]).decode() == f"{USERNAME}:{PASSWORD}"
    assert (s.docker_config / "config.json").stat().st_mode & 0o777 == 0o600
    assert get_credential(s, reg.host) is not None
    assert logout(s, reg.host) == f"Removing login credentials for {reg.host}"
    assert get_credential(s, reg.host) is None


def test_login_with_wrong_password_stores_nothing(
        auth_registry: RunningRegistry, token_registry: RunningRegistry, tmp_path: Path) -> None:
    s = settings(tmp_path)
    with pytest.raises(AuthError) as basic:
        login(s, auth_registry.host, USERNAME, "wrong")
    assert basic.value.message == (
        f"login attempt to {auth_registry.url}/v2/ failed with status: 401 Unauthorized")
    with pytest.raises(AuthError) as bearer:
        login(s, token_registry.host, USERNAME, "wrong")
    assert bearer.value.message == (
        f'Get "{token_registry.url}/v2/": unauthorized: incorrect username or password')
    assert not (s.docker_config / "config.json").exists()


def test_login_through_a_credential_store(auth_registry: RunningRegistry, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``credsStore`` the secret goes to the helper; the file keeps an empty entry."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    store = tmp_path / "store.json"
    helper = bin_dir / "docker-credential-test"
    helper.write_text(f"""#!/bin/sh
input=$(cat)
case "$1" in
  store) printf '%s' "$input" > {store} ;;
  get) [ -s {store} ] && exec cat {store}
       echo "credentials not found in native keychain"; exit 1 ;;
  erase) rm -f {store} ;;
esac
""")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    s = settings(tmp_path, {}, credsStore="test")
    login(s, auth_registry.host, USERNAME, PASSWORD)
    assert json.loads(store.read_text())["Secret"] == PASSWORD
    assert json.loads((s.docker_config / "config.json").read_text())["auths"] == {auth_registry.host: {}}
    assert get_credential(s, auth_registry.host) == Credential(USERNAME, PASSWORD)
    logout(s, auth_registry.host)
    assert not store.exists()
