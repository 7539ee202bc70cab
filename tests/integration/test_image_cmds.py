"""The image verbs through the real CLI against a real registry on loopback (docker 28's output)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.cli import Katadocker
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


def test_pull_prints_docker_lines_when_piped(kd: Katadocker, busybox_image: str) -> None:
    name = busybox_image.rsplit(":", 1)[0]
    r = kd("pull", name)
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[0] == "Using default tag: latest"
    assert lines[1] == "latest: Pulling from library/busybox"
    assert any(re.fullmatch(r"[0-9a-f]{12}: Pull complete", x) for x in lines)
    assert re.fullmatch(r"Digest: sha256:[0-9a-f]{64}", lines[-3])
    assert lines[-2] == f"Status: Downloaded newer image for {busybox_image}"
    assert lines[-1] == busybox_image
    again = kd("pull", busybox_image)
    assert f"Status: Image is up to date for {busybox_image}" in again.out


def test_pull_quiet_prints_only_the_reference(kd: Katadocker, busybox_image: str) -> None:
    r = kd("pull", "-q", busybox_image)
    assert (r.rc, r.out, r.err) == (0, busybox_image + "\n", "")


def test_pull_errors(kd: Katadocker, registry: RunningRegistry) -> None:
    bad = kd("pull", "Not/Valid")
    assert bad.rc == 1 and "invalid reference format" in bad.err
    missing = kd("pull", f"{registry.host}/library/nosuchrepo:latest")
    assert missing.rc == 1
    assert "Error response from daemon:" in missing.err
    assert "manifest unknown" in missing.err or "pull access denied" in missing.err


@pytest.fixture(scope="module")
def two_tags(busybox_image: str) -> str:
    """A repository holding the busybox image under the tags ``one`` and ``two``; its name."""
    repo = busybox_image.rsplit("/", 2)[0] + "/alltags/busybox"
    for tag in ("one", "two"):
        subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                        f"docker://{busybox_image}", f"docker://{repo}:{tag}"], check=True)
    return repo


def test_list_tags_follows_pages(two_tags: str, tmp_path: Path) -> None:
    from katadocker.config import Settings
    from katadocker.errors import PullAccessDenied
    from katadocker.image.reference import parse_reference
    from katadocker.image.registry import open_repository
    from katadocker.state.paths import StateRoot

    settings = Settings(state=StateRoot(tmp_path / "root"), docker_config=tmp_path / "docker")
    with open_repository(settings, parse_reference(two_tags)) as repo:
        assert repo.list_tags() == ["one", "two"]
        assert repo.list_tags(page_size=1) == ["one", "two"]  # two pages, joined through Link
    with open_repository(settings, parse_reference(two_tags + "-nosuch")) as repo, \
            pytest.raises(PullAccessDenied):
        repo.list_tags()


def test_pull_all_tags(kd: Katadocker, two_tags: str) -> None:
    r = kd("pull", "-a", two_tags)
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[0] == "one: Pulling from alltags/busybox"
    second = lines.index("two: Pulling from alltags/busybox")
    assert re.fullmatch(r"Digest: sha256:[0-9a-f]{64}", lines[second - 1])
    assert re.fullmatch(r"[0-9a-f]{12}: Already exists", lines[second + 1])
    assert re.fullmatch(r"Digest: sha256:[0-9a-f]{64}", lines[-3])
    assert lines[-2:] == [f"Status: Downloaded newer image for {two_tags}", two_tags]
    assert not any(x.startswith("Status:") for x in lines[:-2])
    assert kd.ok("images", "--format", "{{.Tag}}").split() == ["one", "two"]
    again = kd.ok("pull", "--all-tags", two_tags).splitlines()
    assert again[-2:] == [f"Status: Image is up to date for {two_tags}", two_tags]
    assert kd.ok("pull", "-qa", two_tags) == two_tags + "\n"
    tagged = kd("pull", "-a", two_tags + ":one")
    assert (tagged.rc, tagged.err.strip()) == (1, "tag can't be used with --all-tags/-a")


def test_images_table_quiet_digests_format(kd: Katadocker, busybox_image: str) -> None:
    kd.ok("pull", "-q", busybox_image)
    out = kd.ok("images").splitlines()
    assert re.match(r"REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$", out[0])
    repo = busybox_image.rsplit(":", 1)[0]
    assert out[1].split()[:2] == [repo, "latest"]
    image_id = json.loads(kd.ok("image", "inspect", busybox_image))[0]["Id"]
    assert kd.ok("images", "-q") == image_id[7:19] + "\n"
    assert kd.ok("images", "--no-trunc", "-q") == image_id + "\n"
    digests = kd.ok("images", "--digests").splitlines()
    assert "DIGEST" in digests[0] and "sha256:" in digests[1]
    assert kd.ok("images", "--format", "{{.Repository}}:{{.Tag}}") == busybox_image + "\n"
    assert kd.ok("images", "nosuch") == "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    assert kd.ok("image", "ls", "-f", "dangling=true", "-q") == ""


def test_tag_rmi_untag_semantics(kd: Katadocker, busybox_image: str) -> None:
    kd.ok("pull", "-q", busybox_image)
    kd.ok("tag", busybox_image, "mine:v1")
    kd.ok("tag", busybox_image, "other/app")
    image_id = json.loads(kd.ok("image", "inspect", "mine:v1"))[0]["Id"]
    by_id = kd("rmi", image_id[7:19])
    assert by_id.rc == 1
    assert (f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is referenced in "
            "multiple repositories") in by_id.err
    assert kd.ok("rmi", "mine:v1") == "Untagged: mine:v1\n"
    assert kd.ok("rmi", "other/app") == "Untagged: other/app:latest\n"
    out = kd.ok("rmi", busybox_image).splitlines()
    assert out[0] == f"Untagged: {busybox_image}"
    assert out[1].startswith(busybox_image.rsplit(":", 1)[0] + "@sha256:") or out[1].startswith("Untagged:")
    assert f"Deleted: {image_id}" in out
    assert kd.ok("images", "-q") == ""
    missing = kd("rmi", "nosuch")
    assert missing.rc == 1 and "No such image: nosuch:latest" in missing.err


def test_rmi_refused_while_a_container_uses_the_image(kd: Katadocker, busybox_image: str) -> None:
    kd.ok("pull", "-q", busybox_image)
    image_id = json.loads(kd.ok("image", "inspect", busybox_image))[0]["Id"]
    cid = "c" * 64
    container = kd.root / "containers" / cid
    container.mkdir(parents=True)
    (container / "config.json").write_text(json.dumps(
        {"Id": cid, "Name": "/user", "Created": "2024-01-01T00:00:00Z", "Image": image_id}))
    r = kd("rmi", busybox_image)
    assert r.rc == 1
    assert (f'conflict: unable to remove repository reference "{busybox_image}" (must force) - container '
            f"{cid[:12]} is using its referenced image {image_id[7:19]}") in r.err
    by_id = kd("rmi", image_id[7:19])
    assert by_id.rc == 1 and f"image is being used by stopped container {cid[:12]}" in by_id.err
    forced = kd.ok("rmi", "-f", busybox_image)  # docker: -f overrides a stopped container's use
    assert f"Untagged: {busybox_image}" in forced and f"Deleted: {image_id}" in forced


def test_image_inspect_fields_and_format(kd: Katadocker, busybox_image: str) -> None:
    kd.ok("pull", "-q", busybox_image)
    [obj] = json.loads(kd.ok("image", "inspect", busybox_image))
    assert obj["RepoTags"] == [busybox_image]
    assert obj["RepoDigests"][0].startswith(busybox_image.rsplit(":", 1)[0] + "@sha256:")
    assert (obj["Os"], obj["Architecture"], obj["RootFS"]["Type"]) == ("linux", "amd64", "layers")
    assert obj["Config"]["Cmd"] == ["sh"] and obj["Size"] > 0
    assert kd.ok("image", "inspect", "-f", "{{.Config.Cmd}}", busybox_image) == "[sh]\n"
    layers = kd.ok("image", "inspect", "-f", "{{json .RootFS.Layers}}", busybox_image)
    assert json.loads(layers) == obj["RootFS"]["Layers"]
    missing = kd("image", "inspect", "nosuch")
    assert (missing.rc, missing.out.strip()) == (1, "[]") and "No such image: nosuch" in missing.err


def test_history(kd: Katadocker, busybox_image: str) -> None:
    kd.ok("pull", "-q", busybox_image)
    out = kd.ok("history", busybox_image).splitlines()
    assert re.match(r"IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT", out[0])
    assert len(out) == 2 and "katadocker-tests layer 0" in out[1]
    assert kd.ok("history", "-q", busybox_image).strip() != ""
    assert kd.ok("history", "-H", busybox_image) == kd.ok("history", "--human=true", busybox_image)
    raw = kd.ok("history", "-H=false", "--format", "{{.Size}} {{.CreatedSince}}", busybox_image)
    assert re.fullmatch(r"\d+ \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d\n", raw)
    assert kd.ok("history", "--human=0", "--format", "{{.Size}}", busybox_image) == raw.split()[0] + "\n"
    bad = kd("history", "-H=maybe", busybox_image)
    assert bad.rc == 125
    assert bad.err.startswith('invalid argument "maybe" for "-H, --human" flag: strconv.ParseBool')


def test_prune(kd: Katadocker, busybox_image: str) -> None:
    kd.ok("pull", "-q", busybox_image)
    nothing = kd.ok("image", "prune", "-f")
    assert nothing == "Total reclaimed space: 0B\n"
    asked = kd("image", "prune", "-a", input="n\n")
    assert "Are you sure you want to continue? [y/N]" in asked.out
    assert kd.ok("images", "-q") != ""
    out = kd.ok("image", "prune", "-a", "-f")
    assert out.startswith("Deleted Images:\nuntagged: ") and "Total reclaimed space:" in out
    assert kd.ok("images", "-q") == ""


def test_save_refuses_a_terminal_and_round_trips(kd: Katadocker, busybox_image: str, tmp_path: Path) -> None:
    kd.ok("pull", "-q", busybox_image)
    before = json.loads(kd.ok("image", "inspect", busybox_image))[0]
    archive = tmp_path / "img.tar"
    kd.ok("save", "-o", str(archive), busybox_image)
    names = subprocess.run(["tar", "-tf", archive], capture_output=True, text=True, check=True).stdout.split()
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(names)
    kd.ok("rmi", busybox_image)
    assert kd.ok("load", "-i", str(archive)) == f"Loaded image: {busybox_image}\n"
    after = json.loads(kd.ok("image", "inspect", busybox_image))[0]
    assert (after["Id"], after["RootFS"]) == (before["Id"], before["RootFS"])
    kd.ok("tag", busybox_image, "copy:1")
    piped = subprocess.run(f"{' '.join(kd_cmd(kd))} save copy:1 | {' '.join(kd_cmd(kd))} load",
                           shell=True, capture_output=True, text=True, env=kd.env(), check=True)
    assert piped.stdout == "Loaded image: copy:1\n"


def kd_cmd(kd: Katadocker) -> list[str]:
    import sys

    return [sys.executable, "-m", "katadocker"]


PODMAN = ["podman", "--runtime", "/usr/sbin/runc", "--cgroup-manager", "cgroupfs"]


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_save_load_round_trip_with_podman(kd: Katadocker, busybox_image: str, tmp_path: Path) -> None:
    runroot = tempfile.mkdtemp(prefix="kdp-")  # podman refuses a runroot longer than 50 characters
    storage = ["--root", str(tmp_path / "podman-root"), "--runroot", runroot]
    kd.ok("pull", "-q", busybox_image)
    kd.ok("tag", busybox_image, "kdsave:1")
    ours = tmp_path / "ours.tar"
    kd.ok("save", "-o", str(ours), "kdsave:1")
    loaded = subprocess.run([*PODMAN, *storage, "load", "-i", str(ours)], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    theirs = tmp_path / "theirs.tar"
    subprocess.run([*PODMAN, *storage, "save", "--format", "docker-archive", "-o", str(theirs),
                    "kdsave:1"], check=True, capture_output=True)
    kd.ok("rmi", "kdsave:1", busybox_image)
    out = kd.ok("load", "-i", str(theirs))
    assert "Loaded image:" in out
    assert kd.ok("image", "inspect", "-f", "{{.Config.Cmd}}", out.split(": ", 1)[1].strip()) == "[sh]\n"
