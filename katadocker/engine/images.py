"""Image verbs: pull, list, remove, tag, inspect, history, prune, login, logout.

Every function takes the invocation's Settings and returns plain data; nothing here prints. Names
are returned the way docker's API returns them, in familiar form (``nginx:latest``,
``nginx@sha256:…``); the store keeps them in full form (``docker.io/library/nginx:latest``).
Semantics follow docker 28's daemon (graphdriver image store), cited per function. Save and load
live in `katadocker.engine.archive`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from katadocker.config import Settings
from katadocker.engine import events
from katadocker.errors import ClientError, Conflict, InvalidArgument, NoSuchImage
from katadocker.filters import parse_filters as _parse_filters
from katadocker.image.reference import Reference, parse_reference
from katadocker.image.store import ImageRecord, ImageStore
from katadocker.state import clock

if TYPE_CHECKING:
    from katadocker.image.platform import Platform

IMAGE_FILTERS = frozenset({"dangling", "label", "before", "since", "reference", "until"})
PRUNE_FILTERS = frozenset({"label", "until"})


def _store(settings: Settings) -> ImageStore:
    return ImageStore(settings.state)


def _familiar(full: str) -> str:
    """``docker.io/library/nginx:latest`` -> ``nginx:latest``."""
    return parse_reference(full).familiar


def _created_seconds(record: ImageRecord) -> int:
    """The config's creation time in Unix seconds (0 when absent or malformed)."""
    try:
        return max(clock.parse_ns(record.created) // 1_000_000_000, 0)
    except ValueError:
        return 0


# ---- pull, login, logout ------------------------------------------------------------------------


def pull_image(settings: Settings, ref_str: str, platform: str | None, on_event: Callable[[Any], None],
               all_tags: bool = False) -> str:
    """Pull `ref_str` (``latest`` by default) for `platform` (host's when None); return the reference
    docker prints last: the full name pulled (``docker.io/library/nginx:latest``), or with
    `all_tags` the repository's (``docker.io/library/nginx``).

    With `all_tags`, every tag the registry lists is pulled (a tag or digest in `ref_str` is then
    refused: ClientError with docker's text). `on_event` receives image.pull's progress events.
    Raises InvalidReference, InvalidArgument (platform) and the registry's errors.
    """
    from katadocker.image.platform import parse_platform

    ref = parse_reference(ref_str)
    plat = parse_platform(platform) if platform else None
    if not all_tags:
        return _pull_logged(settings, ref.with_default_tag(), plat, on_event).reference
    if ref.tag or ref.digest:
        raise ClientError("tag can't be used with --all-tags/-a")
    _pull_all_tags(settings, ref, plat, on_event)
    return str(ref)


def _pull_all_tags(settings: Settings, repo_ref: Reference, platform: Platform | None,
                   on_event: Callable[[Any], None]) -> None:
    """docker's pull of a whole repository: each tag in the registry's order with its own progress
    and ``Digest:`` lines; in place of each tag's ``Status:`` line, one for the repository at the
    end (``Downloaded newer image`` when any tag now names a different image than before)."""
    from katadocker.image.pull import PullEvent
    from katadocker.image.registry import open_repository

    with open_repository(settings, repo_ref) as repo:
        tags = repo.list_tags()

    def without_status(event: PullEvent) -> None:
        if event.id is not None or not event.status.startswith("Status: "):
            on_event(event)

    newer = False
    for tag in tags:
        tag_ref = replace(repo_ref, tag=tag)
        before = _image_id(settings, tag_ref)
        newer |= _pull_logged(settings, tag_ref, platform, without_status).image_id != before
    news = "Downloaded newer image for" if newer else "Image is up to date for"
    on_event(PullEvent(None, f"Status: {news} {repo_ref.familiar}"))


def _pull_logged(settings: Settings, ref: Reference, platform: Platform | None,
                 on_event: Callable[[Any], None]) -> Any:
    """image.pull.pull, then docker's ``pull`` event (ID ``busybox:latest``, name ``busybox``)."""
    from katadocker.image.pull import pull

    result = pull(settings, ref, platform, on_event)
    events.image(settings.state, "pull", ref.familiar, ref.familiar_name)
    return result


def _image_id(settings: Settings, ref: Reference) -> str | None:
    """The ID of the image `ref` names in the store, None when it names none."""
    try:
        return _store(settings).get(str(ref)).id
    except NoSuchImage:
        return None


def login(settings: Settings, server: str, username: str, password: str) -> str:
    """Check the credentials against `server` ("" = Docker Hub), store them; return docker's message."""
    from katadocker.image import auth

    return auth.login(settings, server, username, password)


def logout(settings: Settings, server: str) -> str:
    """Forget the credentials for `server` ("" = Docker Hub); return docker's message."""
    from katadocker.image import auth

    return auth.logout(settings, server)


# ---- list ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSummary:
    """One image as docker's ``GET /images/json`` reports it. `id` is ``sha256:<hex>``; `created` is
    Unix seconds; `size` is the unpacked size in bytes; names are familiar."""

    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    created: int
    size: int
    labels: dict[str, str] = field(default_factory=dict)


def parse_filters(values: list[str], allowed: frozenset[str]) -> dict[str, list[str]]:
    """``["dangling=true", "label=a"]`` -> ``{"dangling": ["true"], "label": ["a"]}`` with each value
    trimmed; docker's errors as katadocker.filters.parse_filters (whose parsing this is)."""
    return {key: [v.strip() for v in vals] for key, vals in _parse_filters(values, allowed).items()}


def go_path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``: ``*`` and ``?`` never match ``/``; ``[...]`` classes with ``^`` negation.

    A malformed pattern matches nothing (docker's filter then shows no images)."""
    regex = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            regex.append("[^/]*")
        elif c == "?":
            regex.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            regex.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                return False
            body = pattern[i + 1:end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            regex.append(("[^" if negate else "[") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            regex.append(re.escape(c))
        i += 1
    try:
        return re.fullmatch("".join(regex), name) is not None
    except re.error:
        return False


def _reference_matches(patterns: list[str], familiar: str) -> bool:
    """docker's FamiliarMatch against any pattern: the familiar string, then the familiar name."""
    name = parse_reference(familiar).familiar_name
    return any(go_path_match(p, familiar) or go_path_match(p, name) for p in patterns)


def _parse_until(value: str, now: float) -> float:
    """docker's `until`: Unix seconds, an RFC 3339 time, or a Go duration before now (``24h``)."""
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    if m := re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)", value):
        units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        total = sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", m.group(1)))
        return now - total
    try:
        return clock.parse_ns(value) / 1e9
    except ValueError:
        raise InvalidArgument(f"invalid filter 'until={value}'") from None


def _labels_match(wanted: list[str], labels: dict[str, str]) -> bool:
    """Every ``key`` or ``key=value`` in `wanted` holds for `labels`."""
    for w in wanted:
        key, sep, val = w.partition("=")
        if key not in labels or (sep and labels[key] != val):
            return False
    return True


def _summary(record: ImageRecord) -> ImageSummary:
    return ImageSummary(
        id=record.id,
        repo_tags=[_familiar(t) for t in record.repo_tags],
        repo_digests=[_familiar(d) for d in record.repo_digests],
        created=_created_seconds(record),
        size=record.size,
        labels=dict((record.config.get("config") or {}).get("Labels") or {}),
    )


def _dangling_wanted(filters: dict[str, list[str]]) -> bool | None:
    """The `dangling` filter's value (None when absent); InvalidArgument for anything but a boolean."""
    values = filters.get("dangling")
    if not values:
        return None
    wanted = set()
    for v in values:
        if v.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"Invalid filter 'dangling={v}'")
        wanted.add(v.lower() in ("true", "1"))
    if len(wanted) > 1:
        raise InvalidArgument("invalid filter 'dangling': conflicting values")
    return wanted.pop()


def _time_bounds(store: ImageStore, filters: dict[str, list[str]]) -> tuple[float, float]:
    """(exclusive lower, exclusive upper) creation-time bounds from since/before/until."""
    lower, upper = float("-inf"), float("inf")
    for ref in filters.get("since", []):
        lower = max(lower, _created_seconds(store.get(ref)))
    for ref in filters.get("before", []):
        upper = min(upper, _created_seconds(store.get(ref)))
    for value in filters.get("until", []):
        upper = min(upper, _parse_until(value, time.time()) + 1e-9)
    return lower, upper


def _filtered(summary: ImageSummary, filters: dict[str, list[str]], dangling: bool | None,
              bounds: tuple[float, float]) -> ImageSummary | None:
    """The summary if it passes the filters (with only the names matching `reference`), else None."""
    if dangling is not None and (not summary.repo_tags) != dangling:
        return None
    if not bounds[0] < summary.created < bounds[1]:
        return None
    if not _labels_match(filters.get("label", []), summary.labels):
        return None
    patterns = filters.get("reference")
    if not patterns:
        return summary
    tags = [t for t in summary.repo_tags if _reference_matches(patterns, t)]
    digests = [d for d in summary.repo_digests if _reference_matches(patterns, d)]
    if not tags and not digests:
        return None
    return ImageSummary(summary.id, tags, digests, summary.created, summary.size, summary.labels)


def list_images(settings: Settings, all: bool = False,
                filters: dict[str, list[str]] | None = None) -> list[ImageSummary]:
    """The images ``docker images`` shows, newest first, after `filters` (see parse_filters).

    As docker 28's graphdriver store: dangling images (no tag) are listed too; `all` would add
    intermediate build images, which katadocker does not create. `reference` keeps only the names
    that match (Go glob on the familiar string or name); `before`/`since` name an image.
    """
    del all  # no intermediate images exist; the flag is accepted for compatibility
    filters = filters or {}
    store = _store(settings)
    dangling = _dangling_wanted(filters)
    bounds = _time_bounds(store, filters)
    out = [s for r in store.list() if (s := _filtered(_summary(r), filters, dangling, bounds)) is not None]
    out.sort(key=lambda s: (s.created, s.id), reverse=True)
    return out


# ---- remove, tag, prune -------------------------------------------------------------------------


@dataclass(frozen=True)
class DeleteItem:
    """One line of docker's image delete report: exactly one of `untagged` (a familiar name) or
    `deleted` (an image ID or a layer's chain ID) is set."""

    untagged: str = ""
    deleted: str = ""


def containers_by_image(settings: Settings) -> dict[str, list[tuple[str, bool]]]:
    """Image ID -> (container ID, running) of every container created from it."""
    from katadocker.state.containers import ContainerStore

    out: dict[str, list[tuple[str, bool]]] = {}
    for r in ContainerStore(settings.state).all():
        out.setdefault(r.config.get("Image", ""), []).append((r.id, r.running))
    return out


def image_users(settings: Settings, image_id: str) -> list[tuple[str, bool]]:
    """(container ID, running) for every container created from `image_id`."""
    return containers_by_image(settings).get(image_id, [])


def _refs(record: ImageRecord) -> list[Reference]:
    """Every name of the image, sorted as docker's reference store returns them."""
    refs = [parse_reference(n) for n in (*record.repo_tags, *record.repo_digests)]
    return sorted(refs, key=lambda r: r.familiar)


def is_id_prefix(image_id: str, s: str) -> bool:
    """True when `s` names `image_id` by ID: the full ``sha256:…`` form or a prefix of its hex."""
    return image_id.startswith(s) or image_id.removeprefix("sha256:").startswith(s)


def _single_reference(refs: list[Reference]) -> bool:
    """docker's isSingleReference: at most one tag, and every digest ref in that tag's repository."""
    tags = [r for r in refs if not r.digest]
    if len(tags) > 1 or not refs:
        return False
    names = {r.name for r in refs if r.digest}
    single = tags[0] if tags else refs[0]
    return not names or names == {single.name}


def _delete_conflict(record: ImageRecord, message: str, *, hard: bool) -> Conflict:
    how = "cannot be forced" if hard else "must be forced"
    return Conflict(f"conflict: unable to delete {record.short_id} ({how}) - {message}")


def _check_conflicts(settings: Settings, record: ImageRecord, *, soft: bool, references: bool) -> None:
    """docker's checkImageDeleteConflict: a running container always conflicts; with `soft`, names
    (when `references`) and stopped containers do too."""
    users = image_users(settings, record.id)
    running = [cid for cid, up in users if up]
    if running:
        raise _delete_conflict(record, f"image is being used by running container {running[0][:12]}",
                               hard=True)
    if soft and references and (record.repo_tags or record.repo_digests):
        raise _delete_conflict(record, "image is referenced in multiple repositories", hard=False)
    if soft and users:
        raise _delete_conflict(record, f"image is being used by stopped container {users[0][0][:12]}",
                               hard=False)


def _chain_ids(diff_ids: list[str]) -> list[str]:
    """The layers' chain IDs (bottom first), as docker names layers in its delete reports."""
    chain: list[str] = []
    for d in diff_ids:
        chain.append(d if not chain else "sha256:" + hashlib.sha256(f"{chain[-1]} {d}".encode()).hexdigest())
    return chain


def _delete_record(settings: Settings, store: ImageStore,
                   record: ImageRecord) -> tuple[list[DeleteItem], int]:
    """Drop every name and the record, collect its now unused layers; return the report and the
    bytes of unpacked layers freed."""
    items = [DeleteItem(untagged=r.familiar) for r in _refs(record)]
    sizes = {d: store.layers.info(d).size for d in record.layers if store.layers.has(d)}
    store.remove(record.id)
    events.image(store.state, "delete", record.id, record.id)
    items.append(DeleteItem(deleted=record.id))
    removed = set(store.gc().layers)
    pairs = zip(record.layers, _chain_ids(record.layers), strict=True)
    freed = [(d, chain) for d, chain in pairs if d in removed]
    items += [DeleteItem(deleted=chain) for _, chain in reversed(freed)]
    return items, sum(sizes.get(d, 0) for d, _ in freed)


def _untag(store: ImageStore, record: ImageRecord, ref: Reference) -> tuple[list[DeleteItem], ImageRecord]:
    """Remove `ref`; if it was the repository's last tag, its digest refs go too (as docker)."""
    store.untag(ref)
    events.image(store.state, "untag", record.id, record.id)
    items = [DeleteItem(untagged=ref.familiar)]
    record = store.get(record.id)
    remaining = _refs(record)
    if not ref.digest and not any(not r.digest and r.name == ref.name for r in remaining):
        for r in remaining:
            if r.digest and r.name == ref.name:
                store.untag(r)
                events.image(store.state, "untag", record.id, record.id)
                items.append(DeleteItem(untagged=r.familiar))
        record = store.get(record.id)
    return items, record


def _remove_by_name(settings: Settings, store: ImageStore, record: ImageRecord, name: str,
                    force: bool) -> list[DeleteItem]:
    ref = parse_reference(name)
    ref = ref if ref.digest else ref.with_default_tag()
    if not force and _single_reference(_refs(record)) and (users := image_users(settings, record.id)):
        raise Conflict(f'conflict: unable to remove repository reference "{ref.familiar}" (must force) - '
                       f"container {users[0][0][:12]} is using its referenced image {record.short_id}")
    items, record = _untag(store, record, ref)
    users = image_users(settings, record.id)
    if _refs(record) or any(up for _, up in users) or (users and not force):
        return items  # still named, or kept (dangling) for the container using it, as docker does
    return items + _delete_record(settings, store, record)[0]


def _remove_by_id(settings: Settings, store: ImageStore, record: ImageRecord,
                  force: bool) -> list[DeleteItem]:
    items: list[DeleteItem] = []
    if _single_reference(_refs(record)):
        _check_conflicts(settings, record, soft=not force, references=False)
        for ref in _refs(record):
            store.untag(ref)
            events.image(store.state, "untag", record.id, record.id)
            items.append(DeleteItem(untagged=ref.familiar))
        record = store.get(record.id)
    _check_conflicts(settings, record, soft=not force, references=True)
    return items + _delete_record(settings, store, record)[0]


def remove_image(settings: Settings, name: str, force: bool = False) -> list[DeleteItem]:
    """``docker rmi NAME`` for one argument (docker's ImageDelete).

    By name: untag it; the image itself is deleted once its last name is gone (unless a container
    uses it). Refused without `force` when the image has no other tag and a container uses it.
    By ID (or ID prefix): delete the image and its names if it has at most one tag (its
    digest refs aside), else refused without `force` ("referenced in multiple repositories"); a
    running container always refuses. Raises NoSuchImage, AmbiguousImageID, Conflict.
    """
    store = _store(settings)
    record = store.get(name)
    if is_id_prefix(record.id, name):
        return _remove_by_id(settings, store, record, force)
    return _remove_by_name(settings, store, record, name, force)


def tag_image(settings: Settings, source: str, target: str) -> None:
    """``docker tag SOURCE TARGET``: name the image `source` also `target` (``latest`` by default)."""
    store = _store(settings)
    record = store.get(source)
    ref = parse_reference(target)
    if ref.digest:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    store.tag(record.id, ref.with_default_tag())
    events.image(settings.state, "tag", record.id, ref.with_default_tag().familiar)


def prune_images(settings: Settings, all: bool = False,
                 filters: dict[str, list[str]] | None = None) -> tuple[list[DeleteItem], int]:
    """``docker image prune``: delete dangling images (every image with `all`) that no container
    uses and that pass `label`/`until` filters; return the report and the unpacked bytes freed."""
    filters = filters or {}
    store = _store(settings)
    upper = min((_parse_until(v, time.time()) for v in filters.get("until", [])), default=float("inf"))
    used = containers_by_image(settings)
    items: list[DeleteItem] = []
    freed = 0
    for record in store.list():
        summary = _summary(record)
        if record.id in used or (summary.repo_tags and not all) or summary.created >= upper:
            continue
        if not _labels_match(filters.get("label", []), summary.labels):
            continue
        deleted, size = _delete_record(settings, store, record)
        items += deleted
        freed += size
    return items, freed


# ---- inspect, history ---------------------------------------------------------------------------

# docker 28's image Config (container.Config): keys always present, in the daemon's order.
_CONFIG_KEYS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False), ("AttachStdout", False),
    ("AttachStderr", False), ("ExposedPorts", None), ("Tty", False), ("OpenStdin", False),
    ("StdinOnce", False), ("Env", None), ("Cmd", None), ("Healthcheck", None), ("ArgsEscaped", None),
    ("Image", ""), ("Volumes", None), ("WorkingDir", ""), ("Entrypoint", None), ("OnBuild", None),
    ("Labels", None), ("StopSignal", None), ("Shell", None),
)
# Keys Go's encoder omits when empty (`omitempty`).
_OMIT_EMPTY = frozenset({"ExposedPorts", "Healthcheck", "ArgsEscaped", "StopSignal", "Shell"})


def _docker_config(oci: dict[str, Any]) -> dict[str, Any]:
    """The image config's ``config`` object in docker's inspect shape."""
    out = {}
    for key, default in _CONFIG_KEYS:
        value = oci.get(key, default)
        if key in _OMIT_EMPTY and not value:
            continue
        out[key] = value
    return out


def _graph_driver(store: ImageStore, record: ImageRecord) -> dict[str, Any]:
    """overlay2-like GraphDriver data: the top layer as UpperDir, the others (top first) as LowerDir."""
    paths = [str(store.layers.path(d)) for d in reversed(record.layers)]
    data: dict[str, str] = {}
    if len(paths) > 1:
        data["LowerDir"] = ":".join(paths[1:])
    if paths:
        data["UpperDir"] = paths[0]
    return {"Data": data, "Name": "overlay2"}


def inspect_image(settings: Settings, ref: str) -> dict[str, Any]:
    """``docker image inspect REF``: docker 28's JSON object for the image (keys in its order)."""
    store = _store(settings)
    record = store.get(ref)
    cfg = record.config
    out: dict[str, Any] = {
        "Id": record.id,
        "RepoTags": [_familiar(t) for t in record.repo_tags],
        "RepoDigests": [_familiar(d) for d in record.repo_digests],
        "Parent": "",
        "Comment": cfg.get("comment", ""),
        "Created": cfg.get("created") or clock.ZERO_TIME,
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": _docker_config(cfg.get("config") or {}),
        "Architecture": record.architecture,
    }
    if record.variant:
        out["Variant"] = record.variant
    out.update({
        "Os": record.os,
        "Size": record.size,
        "GraphDriver": _graph_driver(store, record),
        "RootFS": {"Type": "layers", "Layers": list(record.layers)},
        "Metadata": {"LastTagTime": clock.ZERO_TIME},
    })
    return out


@dataclass(frozen=True)
class HistoryItem:
    """One row of ``docker history`` (newest first): `id` is the image ID on the top row and
    ``<missing>`` below it; `created` is Unix seconds; `size` the layer's unpacked bytes (0 for
    entries that made no layer)."""

    id: str
    created: int
    created_by: str
    size: int
    comment: str
    tags: list[str] = field(default_factory=list)


def _history_seconds(entry: dict[str, Any]) -> int:
    try:
        return max(clock.parse_ns(entry.get("created", "")) // 1_000_000_000, 0)
    except ValueError:
        return 0


def image_history(settings: Settings, ref: str) -> list[HistoryItem]:
    """``docker history REF`` from the config's history: each entry without ``empty_layer`` owns the
    next layer (bottom first) and gets its size. Raises InvalidArgument when the history names
    more layers than the image has, as docker does."""
    store = _store(settings)
    record = store.get(ref)
    layers = iter(record.layers)
    rows: list[HistoryItem] = []
    for entry in record.config.get("history") or []:
        size = 0
        if not entry.get("empty_layer"):
            diff_id = next(layers, None)
            if diff_id is None:
                raise InvalidArgument("too many non-empty layers in History section")
            size = store.layers.info(diff_id).size if store.layers.has(diff_id) else 0
        rows.append(HistoryItem("<missing>", _history_seconds(entry), entry.get("created_by", ""), size,
                                entry.get("comment", "")))
    rows.reverse()
    if rows:
        tags = [_familiar(t) for t in record.repo_tags]
        top = rows[0]
        rows[0] = HistoryItem(record.id, top.created, top.created_by, top.size, top.comment, tags)
    return rows
