"""The container's process as docker defines it: command line, environment, user, working directory.

Pure functions over the image config, the user's options and the container's root directory; the
monitor turns their result into the agent's start request.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from katadocker.errors import InvalidArgument, KatadockerError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class NoCommand(InvalidArgument):
    def __init__(self) -> None:
        super().__init__("no command specified")


def combine_command(
    image_entrypoint: list[str] | None,
    image_cmd: list[str] | None,
    entrypoint: str | None,
    args: list[str],
) -> tuple[list[str], list[str]]:
    """Docker's rule for (Entrypoint, Cmd) of a new container.

    `entrypoint` is ``--entrypoint`` (None when not given; ``""`` clears the image's). Giving it also
    drops the image's CMD. `args` (the words after the image) replace CMD. Returns the container's
    Config.Entrypoint and Config.Cmd; the process argv is their concatenation.
    """
    if entrypoint is not None:
        ep = [entrypoint] if entrypoint else []
        cmd = list(args)
    else:
        ep = list(image_entrypoint or [])
        cmd = list(args) if args else list(image_cmd or [])
    return ep, cmd


def process_argv(entrypoint: list[str], cmd: list[str]) -> list[str]:
    """ENTRYPOINT + CMD, or docker's "no command specified"."""
    argv = [*entrypoint, *cmd]
    if not argv:
        raise NoCommand()
    return argv


def parse_env_file(text: str, lookup: dict[str, str]) -> list[str]:
    """Lines of an ``--env-file``: ``K=V`` kept verbatim, a bare ``K`` takes the host's value (dropped
    when unset), blank lines and ``#`` comments skipped (docker's ``opts.ParseEnvFile``)."""
    out = []
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        out.extend(expand_env_options([line], lookup))
    return out


def expand_env_options(values: list[str], lookup: dict[str, str]) -> list[str]:
    """``-e`` values: ``K=V`` as given; ``K`` takes the host's value and is dropped when unset."""
    out = []
    for v in values:
        key, sep, _ = v.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {v}")
        if sep:
            out.append(v)
        elif key in lookup:
            out.append(f"{key}={lookup[key]}")
    return out


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """`base` with each ``K=V`` of `overrides` replacing the same key in place or appended."""
    merged = list(base)
    index = {e.partition("=")[0]: i for i, e in enumerate(merged)}
    for e in overrides:
        key = e.partition("=")[0]
        if key in index:
            merged[index[key]] = e
        else:
            index[key] = len(merged)
            merged.append(e)
    return merged


def container_env(image_env: list[str], user_env: list[str]) -> list[str]:
    """Config.Env of a new container: the image's ENV, then the user's, with a default PATH."""
    env = merge_env(image_env, user_env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    return env


def process_env(config_env: list[str], hostname: str, tty: bool, home: str) -> list[str]:
    """The process environment: HOSTNAME (and TERM for a tty) first, the container's Env over them,
    HOME from the user's passwd entry when the container sets none."""
    defaults = [f"HOSTNAME={hostname}"] + (["TERM=xterm"] if tty else [])
    env = merge_env(defaults, config_env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    return env


# --- USER ----------------------------------------------------------------------------------------

class UserNotFound(KatadockerError):
    """USER names an account the container's /etc/passwd or /etc/group lacks."""


@dataclass(frozen=True)
class ExecUser:
    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)
    home: str = "/"


def _parse_colon_file(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def resolve_user(spec: str, passwd: str, group: str) -> ExecUser:
    """Resolve docker's USER forms against the container's own passwd/group texts.

    ``""`` → root; ``name``, ``uid``, ``name:group``, ``uid:gid`` and mixes. As in runc's
    ``GetExecUser``: a user found in passwd gets its primary gid and home, and—only when no group
    is given—the supplementary groups listing it; an unknown numeric uid runs with gid 0; an unknown
    name is docker's "unable to find user" error.
    """
    user_part, _, group_part = spec.partition(":")
    user_part = user_part or "0"
    users = [r for r in _parse_colon_file(passwd) if len(r) >= 4]
    found = None
    for r in users:
        if r[0] == user_part or (user_part.isdigit() and r[2] == user_part):
            found = r
            break
    if found is None and not user_part.isdigit():
        raise UserNotFound(f"unable to find user {user_part}: no matching entries in passwd file")
    uid = int(found[2]) if found else int(user_part)
    gid = int(found[3]) if found else 0
    home = found[5] if found and len(found) > 5 and found[5] else "/"
    groups_rows = [r for r in _parse_colon_file(group) if len(r) >= 3]
    sgids: list[int] = []
    if group_part:
        match = next((r for r in groups_rows if r[0] == group_part or r[2] == group_part), None)
        if match is None and not group_part.isdigit():
            raise UserNotFound(f"unable to find group {group_part}: no matching entries in group file")
        gid = int(match[2]) if match else int(group_part)
    elif found is not None:
        for r in groups_rows:
            members = r[3].split(",") if len(r) > 3 and r[3] else []
            if found[0] in members:
                sgids.append(int(r[2]))
    return ExecUser(uid, gid, sgids, home)


# --- paths inside the container root -------------------------------------------------------------

def secure_join(root: Path, path: str) -> Path:
    """`path` inside `root`, following symlinks as the container would see them (absolute targets and
    ``..`` never leave `root`). The result may not exist."""
    parts = [p for p in PurePosixPath(path).parts if p not in ("/", "", ".")]
    current = root
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise InvalidArgument(f"too many levels of symbolic links: {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            parts = [p for p in PurePosixPath(target).parts if p not in ("/", "", ".")] + parts
            continue
        current = candidate
    return current


def read_root_file(root: Path, path: str) -> str:
    """Text of a file in the container root, '' when missing."""
    try:
        return secure_join(root, path).read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return ""


def ensure_workdir(root: Path, workdir: str, uid: int, gid: int) -> None:
    """Create the working directory in the container root if missing (owned by the user, as docker
    does); docker's errors for a relative path or an existing non-directory."""
    if not workdir.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    target = secure_join(root, workdir)
    if target.exists():
        if not stat.S_ISDIR(target.stat().st_mode):
            raise InvalidArgument(f"Cannot mkdir: {workdir} is not a directory")
        return
    missing = []
    p = target
    while not p.exists() and p != root:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o755)
        os.chown(d, uid, gid)
