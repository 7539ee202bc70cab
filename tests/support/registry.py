"""A real registry for tests: Debian's ``docker-registry`` (distribution 2.8) on a free loopback port.

Modes (`start_registry`):

- ``anonymous``: anyone pulls and pushes.
- ``basic``: htpasswd auth (``htpasswd -Bbn``) for `USERNAME`/`PASSWORD`.
- ``token``: bearer tokens exactly as Docker Hub does them: the registry answers 401 with
  ``Bearer realm=…,service=…,scope=…``; `TokenServer` (in this process) issues RS256 JWTs signed by
  a key whose certificate the registry trusts (``auth: token: rootcertbundle``). Anonymous clients
  get ``pull`` on every repository except those under ``private/``; `USERNAME` gets everything;
  a wrong password gets Docker Hub's 401 ``{"details": "incorrect username or password"}``.
  Keys, certificates and signatures come from the ``openssl`` CLI (no Python crypto library needed).

``redirect_blobs=True`` adds distribution's ``redirect`` storage middleware: blob GETs answer 307 to
`BlobCdn`, a plain static file server on another port that records request headers and, like
some CDNs, ignores ``Range`` (always answers 200).

Images are written by `write_oci_layout` / `write_oci_index` and pushed with `push_oci_layout`
(``skopeo copy``); `blob_path` reaches a blob on the registry's disk (to corrupt it).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import secrets
import socket
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.images import put_blob, sha256_digest

USERNAME = "testuser"
PASSWORD = "testpassword"
#: An OAuth refresh token the token server accepts for USERNAME (docker's ``identitytoken``).
IDENTITY_TOKEN = "katadocker-test-refresh-token"
SERVICE = "katadocker-test-registry"
ISSUER = "katadocker-test-issuer"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- OCI image layouts -------------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutImage:
    """Digests of one image written into a layout (the layer is gzip-compressed)."""

    manifest_digest: str
    config_digest: str
    layer_digest: str
    layer_size: int


def _layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _write_image(layout: Path, files: dict[str, bytes], config: dict) -> tuple[LayoutImage, int]:
    """Write one image's blobs; returns it and the size of its manifest."""
    tar = _layer_tar(files)
    layer = gzip.compress(tar, mtime=0)
    full_config = {"architecture": "amd64", "os": "linux", **config,
                   "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]}}
    config_raw = json.dumps(full_config, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put_blob(layout, config_raw), "size": len(config_raw)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put_blob(layout, layer), "size": len(layer)}],
    }).encode()
    image = LayoutImage(put_blob(layout, manifest), sha256_digest(config_raw), sha256_digest(layer),
                        len(layer))
    return image, len(manifest)


def _write_index_json(layout: Path, media_type: str, digest: str, size: int, tag: str) -> None:
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    entry = {"mediaType": media_type, "digest": digest, "size": size,
             "annotations": {"org.opencontainers.image.ref.name": tag}}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))


def write_oci_layout(layout: Path, files: dict[str, bytes], config: dict, tag: str = "latest") -> LayoutImage:
    """Write an OCI image layout holding one image: a single gzip layer with `files` (path -> bytes),
    the image config `config` (architecture/os default to linux/amd64; rootfs is filled in)."""
    layout.mkdir(parents=True, exist_ok=True)
    image, size = _write_image(layout, files, config)
    _write_index_json(layout, OCI_MANIFEST, image.manifest_digest, size, tag)
    return image


def write_oci_index(layout: Path, images: dict[str, dict[str, bytes]],
                    tag: str = "latest") -> tuple[str, dict[str, LayoutImage]]:
    """Write a multi-platform layout: an OCI index with one image per platform (``linux/arm64/v8``
    -> files). Returns the index digest and each platform's image."""
    layout.mkdir(parents=True, exist_ok=True)
    written, entries = {}, []
    for plat, files in images.items():
        os_, arch, *variant = plat.split("/")
        image, size = _write_image(layout, files, {"os": os_, "architecture": arch,
                                                   **({"variant": variant[0]} if variant else {})})
        platform = {"os": os_, "architecture": arch, **({"variant": variant[0]} if variant else {})}
        entries.append({"mediaType": OCI_MANIFEST, "digest": image.manifest_digest, "size": size,
                        "platform": platform})
        written[plat] = image
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    digest = put_blob(layout, index)
    _write_index_json(layout, OCI_INDEX, digest, len(index), tag)
    return digest, written


def push_oci_layout(layout_dir: Path, registry_url: str, repo_tag: str, format: str = "oci",
                    creds: str | None = None) -> None:
    """Copy the layout's image (or index, with every platform) to ``<registry>/<repo_tag>`` with
    skopeo over plain HTTP. `format` is "oci" or "v2s2" (Docker schema 2); `creds` is ``user:pass``."""
    host = registry_url.split("://", 1)[-1].rstrip("/")
    cmd = ["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false", "--format", format]
    if creds:
        cmd += ["--dest-creds", creds]
    subprocess.run([*cmd, f"oci:{layout_dir}", f"docker://{host}/{repo_tag}"],
                   check=True, capture_output=True, timeout=120)


def blob_path(storage: Path, digest: str) -> Path:
    """Where the filesystem driver keeps blob `digest` under the registry's storage root."""
    hexpart = digest.split(":", 1)[1]
    return storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"


# ---- token server ------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _libtrust_key_id(cert: Path) -> str:
    """distribution's key ID (libtrust): base32 of the first 240 bits of sha256(DER public key),
    in groups of four separated by ':'."""
    pem = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem,
                         check=True, capture_output=True).stdout
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))


@dataclass
class TokenRequest:
    """One request the token server answered."""

    method: str
    scopes: list[str]
    user: str  # "" for anonymous, "!" for refused credentials


@dataclass
class TokenServer:
    """Docker Hub's token endpoint (``/token``), signing JWTs with `key` (certificate `cert`)."""

    key: Path
    cert: Path
    port: int = field(default_factory=free_port)
    #: The response field carrying the token: Docker Hub sends "token"; OAuth servers "access_token".
    token_field: str = "token"
    requests: list[TokenRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def start(self) -> None:
        self._kid = _libtrust_key_id(self.cert)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), partial(_TokenHandler, self))
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def sign(self, user: str, scopes: list[str]) -> str:
        """A JWT granting `user` ("" = anonymous) what it may do within `scopes`."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self._kid}
        claims = {"iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": secrets.token_hex(8), "access": [a for s in scopes if (a := _grant(user, s))]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True, capture_output=True).stdout
        return f"{signing_input}.{_b64url(signature)}"


def _grant(user: str, scope: str) -> dict | None:
    """The access claim for one ``type:name:actions`` scope: users get all, anonymous pull only
    outside ``private/``."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    wanted = actions.split(",")
    allowed = wanted if user else [a for a in wanted if a == "pull" and not name.startswith("private/")]
    return {"type": kind, "name": name, "actions": allowed} if allowed else None


class _TokenHandler(BaseHTTPRequestHandler):
    def __init__(self, server_state: TokenServer, *args: object) -> None:
        self.state = server_state
        super().__init__(*args)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        user = ""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            user = name if (name, password) == (USERNAME, PASSWORD) else "!"
        self._answer("GET", user, query.get("scope", []))

    def do_POST(self) -> None:
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        ok = form.get("grant_type") == ["refresh_token"] and form.get("refresh_token") == [IDENTITY_TOKEN]
        self._answer("POST", USERNAME if ok else "!", " ".join(form.get("scope", [])).split())

    def _answer(self, method: str, user: str, scopes: list[str]) -> None:
        self.state.requests.append(TokenRequest(method, scopes, user))
        if user == "!":
            return self._json(401, {"details": "incorrect username or password"})
        token = self.state.sign(user, scopes)
        self._json(200, {self.state.token_field: token, "expires_in": 300,
                         "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# ---- blob CDN ----------------------------------------------------------------------------------


@dataclass
class BlobCdn:
    """A static file server over the registry's storage root (the target of blob redirects).
    Records each request's path and headers; ignores Range, answering 200 with the whole file."""

    root: Path
    port: int = field(default_factory=free_port)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cdn = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def send_head(self):  # type: ignore[no-untyped-def]
                cdn.requests.append((self.path, dict(self.headers)))
                return super().send_head()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port),
                                           partial(Handler, directory=str(self.root)))
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


# ---- the registry ------------------------------------------------------------------------------


@dataclass
class RunningRegistry:
    """A started docker-registry; `stop()` ends it and its helper servers."""

    host: str  # 127.0.0.1:PORT
    storage: Path
    mode: str
    process: subprocess.Popen
    token_server: TokenServer | None = None
    cdn: BlobCdn | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def creds(self) -> str | None:
        """``user:password`` for skopeo when the registry needs credentials."""
        return None if self.mode == "anonymous" else f"{USERNAME}:{PASSWORD}"

    def push(self, layout: Path, repo_tag: str, format: str = "oci") -> None:
        """push_oci_layout to this registry, with its credentials."""
        push_oci_layout(layout, self.url, repo_tag, format=format, creds=self.creds)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for helper in (self.token_server, self.cdn):
            if helper:
                helper.stop()


def _auth_config(mode: str, workdir: Path) -> tuple[dict, TokenServer | None]:
    """The registry's ``auth`` section for `mode`, and the token server it needs (started)."""
    if mode == "anonymous":
        return {}, None
    if mode == "basic":
        line = subprocess.run(["htpasswd", "-Bbn", USERNAME, PASSWORD], check=True, capture_output=True,
                              text=True).stdout.strip()
        (workdir / "htpasswd").write_text(line + "\n")
        return {"htpasswd": {"realm": "katadocker-test", "path": str(workdir / "htpasswd")}}, None
    if mode != "token":
        raise ValueError(f"unknown registry mode {mode!r}")
    key, cert = workdir / "token.key", workdir / "token.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=katadocker-test-token-issuer"],
                   check=True, capture_output=True)
    server = TokenServer(key, cert)
    server.start()
    return {"token": {"realm": server.realm, "service": SERVICE, "issuer": ISSUER,
                      "rootcertbundle": str(cert)}}, server


def start_registry(workdir: Path, mode: str = "anonymous", *,
                   redirect_blobs: bool = False) -> RunningRegistry:
    """Start ``docker-registry serve`` on a free 127.0.0.1 port with storage under `workdir`;
    returns once ``/v2/`` answers. `mode`: "anonymous", "basic" or "token" (see module doc)."""
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    port = free_port()
    auth, token_server = _auth_config(mode, workdir)
    config: dict = {
        "version": "0.1",
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "katadocker-tests"},
        "auth": auth,
    }
    cdn = None
    if redirect_blobs:
        cdn = BlobCdn(storage)
        cdn.start()
        config["middleware"] = {"storage": [{"name": "redirect", "options": {"baseurl": cdn.url}}]}
    (workdir / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    log = open(workdir / "registry.log", "wb")  # noqa: SIM115 -- owned by the child process
    process = subprocess.Popen(["docker-registry", "serve", str(workdir / "config.yml")],
                               stdout=log, stderr=subprocess.STDOUT)
    log.close()
    running = RunningRegistry(f"127.0.0.1:{port}", storage, mode, process, token_server, cdn)
    _wait_ready(running, workdir / "registry.log")
    return running


def _wait_ready(registry: RunningRegistry, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if registry.process.poll() is not None:
            registry.stop()
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(f"{registry.url}/v2/", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    registry.stop()
    raise RuntimeError(f"docker-registry did not answer within {timeout}s: {log.read_text()[-2000:]}")
