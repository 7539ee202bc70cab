"""Real test images: OCI image layouts written from directory trees, and the two images the tests
and the demo use.

- busybox: Debian's busybox-static with every applet linked, a passwd/group with a non-root user.
- nginx: a real Debian root filesystem built by ``mmdebstrap --variant=minbase --include=nginx-light``,
  configured as docker's nginx image is (logs to stdout/stderr, ``daemon off``, STOPSIGNAL SIGQUIT).

Layouts are pushed to a real registry with ``skopeo`` (OCI or Docker v2s2 manifests). Building the
nginx root takes about a minute, so it is cached (``KATADOCKER_TEST_CACHE``, default
``/var/cache/katadocker-test``) keyed by the build command.

Also a command line for scripts: ``python -m tests.support.images push {busybox|nginx} REGISTRY/REPO:TAG``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("KATADOCKER_TEST_CACHE", "/var/cache/katadocker-test"))
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# A fixed timestamp keeps layouts reproducible: same tree, same digests.
EPOCH = 1700000000
CREATED = "2023-11-14T22:13:20Z"


@dataclass
class ImageSpec:
    """The parts of an OCI image config the tests set (docker's `Config` keys)."""

    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=lambda: [PATH_ENV])
    workdir: str = ""
    user: str = ""
    exposed_ports: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str | None = None
    volumes: list[str] = field(default_factory=list)
    architecture: str = "amd64"
    os: str = "linux"

    def config(self, diff_ids: list[str]) -> dict:
        """The OCI image config JSON for layers with these diff IDs."""
        cfg: dict = {"Env": self.env}
        if self.cmd is not None:
            cfg["Cmd"] = self.cmd
        if self.entrypoint is not None:
            cfg["Entrypoint"] = self.entrypoint
        if self.workdir:
            cfg["WorkingDir"] = self.workdir
        if self.user:
            cfg["User"] = self.user
        if self.exposed_ports:
            cfg["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.labels:
            cfg["Labels"] = self.labels
        if self.stop_signal:
            cfg["StopSignal"] = self.stop_signal
        if self.volumes:
            cfg["Volumes"] = {v: {} for v in self.volumes}
        return {
            "created": CREATED,
            "architecture": self.architecture,
            "os": self.os,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": CREATED, "created_by": f"katadocker-tests layer {i}"}
                        for i in range(len(diff_ids))],
        }


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(layout: Path, data: bytes) -> str:
    """Store `data` in the OCI layout's blob directory; returns its digest."""
    digest = sha256_digest(data)
    path = layout / "blobs" / "sha256" / digest.split(":")[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def tar_directory(root: Path) -> bytes:
    """An uncompressed tar of `root`'s contents (sorted, numeric owners kept, fixed mtimes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                full = Path(dirpath) / name
                info = tar.gettarinfo(str(full), arcname=str(full.relative_to(root)))
                info.mtime = EPOCH
                info.uname = info.gname = ""
                if info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def write_layout(layout: Path, layers: list[bytes], spec: ImageSpec, tag: str = "latest") -> str:
    """Write an OCI image layout holding one image made of the given uncompressed layer tars
    (stored gzip-compressed). Returns the manifest digest."""
    if layout.exists():
        shutil.rmtree(layout)
    layout.mkdir(parents=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    diff_ids, descriptors = [], []
    for raw in layers:
        diff_ids.append(sha256_digest(raw))
        packed = gzip.compress(raw, compresslevel=6, mtime=0)
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": put_blob(layout, packed), "size": len(packed)})
    config = json.dumps(spec.config(diff_ids), sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put_blob(layout, config), "size": len(config)},
        "layers": descriptors,
    }, sort_keys=True).encode()
    manifest_digest = put_blob(layout, manifest)
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (layout / "index.json").write_text(json.dumps(index))
    return manifest_digest


def push(layout: Path, dest: str, *, fmt: str = "oci", creds: str | None = None, tag: str = "latest") -> None:
    """Copy the layout's image to `dest` (``host:port/repo:tag``) with skopeo, over plain HTTP.
    `fmt` is "oci" or "v2s2" (Docker's schema 2 manifests)."""
    cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--format", fmt]
    if creds:
        cmd += ["--dest-creds", creds]
    subprocess.run([*cmd, f"oci:{layout}:{tag}", f"docker://{dest}"], check=True)


# ---- busybox -------------------------------------------------------------------------------

BUSYBOX = Path("/bin/busybox")


def busybox_rootfs(root: Path) -> Path:
    """A minimal root filesystem: static busybox with all applets, users root(0), app(1000),
    daemon(1) and groups, /tmp with the sticky bit."""
    if not BUSYBOX.exists():
        raise RuntimeError("busybox-static is not installed (apt-get install busybox-static)")
    for d in ("bin", "etc", "tmp", "root", "home/app", "var/log", "proc", "sys", "dev"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    listing = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    applets = listing.stdout.split()
    for applet in applets:
        link = root / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (root / "tmp").chmod(0o1777)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "app:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc/group").write_text(
        "root:x:0:\ndaemon:x:1:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n")
    os.chown(root / "home/app", 1000, 1000)
    return root


def busybox_layout(layout: Path, spec: ImageSpec | None = None, extra_layers: list[bytes] = ()) -> str:
    """Write the busybox image (default CMD ["sh"]) as an OCI layout; returns the manifest digest."""
    with tempfile.TemporaryDirectory() as tmp:
        base = tar_directory(busybox_rootfs(Path(tmp)))
    return write_layout(layout, [base, *extra_layers], spec or ImageSpec(cmd=["sh"]))


# ---- nginx ---------------------------------------------------------------------------------

# Docker's nginx image sends the logs to the container's stdout/stderr; Debian's writes files.
NGINX_HOOKS = [
    'ln -sf /dev/stdout "$1/var/log/nginx/access.log"',
    'ln -sf /dev/stderr "$1/var/log/nginx/error.log"',
    'rm -rf "$1/usr/share/doc" "$1/usr/share/man" "$1/usr/share/locale"',
    'rm -rf "$1/var/cache/apt" "$1/var/lib/apt/lists"',
]
NGINX_SPEC = ImageSpec(cmd=["nginx", "-g", "daemon off;"], exposed_ports=["80/tcp"], stop_signal="SIGQUIT",
                       labels={"maintainer": "katadocker tests"})


def nginx_rootfs_tar() -> Path:
    """The cached nginx root filesystem tar, built with mmdebstrap on first use (~1 minute).
    The cache file is named by a hash of the build command, so changing the command rebuilds it."""
    cmd = ["mmdebstrap", "--quiet", "--variant=minbase", "--include=nginx-light", "--mode=root"]
    cmd += [f"--customize-hook={hook}" for hook in NGINX_HOOKS]
    tar = CACHE / f"nginx-rootfs-{hashlib.sha256(repr(cmd).encode()).hexdigest()[:12]}.tar"
    if tar.exists():
        return tar
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = tar.with_suffix(".tmp.tar")
    subprocess.run([*cmd, "bookworm", str(tmp)], check=True)
    tmp.rename(tar)
    return tar


def nginx_layout(layout: Path) -> str:
    """Write the nginx image as an OCI layout (one layer: the mmdebstrap root); returns the digest."""
    return write_layout(layout, [nginx_rootfs_tar().read_bytes()], NGINX_SPEC)


def main(argv: list[str]) -> int:
    """``push busybox|nginx DEST [--format oci|v2s2]``: build the image and push it to DEST."""
    if len(argv) < 3 or argv[0] != "push" or argv[1] not in ("busybox", "nginx"):
        print(__doc__, file=sys.stderr)
        return 2
    fmt = argv[4] if len(argv) > 4 and argv[3] == "--format" else "oci"
    with tempfile.TemporaryDirectory() as tmp:
        layout = Path(tmp) / "layout"
        (nginx_layout if argv[1] == "nginx" else busybox_layout)(layout)
        push(layout, argv[2], fmt=fmt)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
