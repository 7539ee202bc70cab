"""Image verbs: pull, images, rmi, tag, image inspect, history, image prune, save, load, login, logout.

Flags, columns and messages are docker 28's. Only typer is imported at module level; the engine and
the renderers are imported inside the commands so that start-up stays fast.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from katadocker.cli.app import COMMON, FormatOpt, ShortFormatOpt, command

# Column titles of docker's image and history tables (cli/command/formatter).
IMAGE_HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
IMAGES_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t"
                "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}")
IMAGES_DIGEST_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t"
                       "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}")
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"

FilterOpt = Annotated[list[str] | None, typer.Option("-f", "--filter", help="Provide filter values")]
# `prune` has -f for --force, so its --filter has no short form (as docker's).
PruneFilterOpt = Annotated[list[str] | None, typer.Option("--filter", help="Provide filter values")]
ImagesArg = Annotated[list[str], typer.Argument(metavar="IMAGE [IMAGE...]")]


# ---- rendering ----------------------------------------------------------------------------------------


def _since(created: int) -> str:
    """docker's ``CreatedSince``: ``3 days ago``, empty for an unknown (zero) creation time."""
    from katadocker.cli import render

    return render.time_ago(created) if created > 0 else ""


# ---- pull ---------------------------------------------------------------------------------------------


class _TerminalProgress:
    """docker's terminal pull display: one redrawn line per layer, with a bar while it moves."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._lines: dict[str, str] = {}
        self._console = Console()
        self._live = Live(console=self._console, refresh_per_second=8, transient=False)

    def __enter__(self) -> _TerminalProgress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def __call__(self, event: Any) -> None:
        from rich.text import Text

        from katadocker.cli import render

        if event.id is None:
            self._live.console.print(event.status, highlight=False)
            return
        text = f"{event.id}: {event.status}"
        if event.total:
            width = 50
            done = min(width, width * event.current // event.total)
            bar = "=" * max(done - 1, 0) + (">" if done else "") + " " * (width - done)
            text += f" [{bar}] {render.human_size(event.current, 4)}/{render.human_size(event.total, 4)}"
        self._lines[event.id] = text
        self._live.update(Text("\n".join(self._lines.values())))


def _plain_progress(event: Any) -> None:
    """docker's non-terminal output: events with byte counts are dropped, the rest are lines."""
    if event.current or event.total:
        return
    typer.echo(event.line())


@command("pull", panel=COMMON, group="image")
def pull(
    name: str = typer.Argument(..., metavar="NAME[:TAG|@DIGEST]"),
    all_tags: bool = typer.Option(False, "-a", "--all-tags",
                                  help="Download all tagged images in the repository"),
    platform: str = typer.Option(None, "--platform", envvar="DOCKER_DEFAULT_PLATFORM",
                                 help="Set platform if server is multi-platform capable", show_default=False),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Suppress verbose output"),
    disable_content_trust: bool = typer.Option(True, "--disable-content-trust", hidden=True,
                                               help="Skip image verification"),
) -> None:
    """Download an image from a registry"""
    from katadocker.cli import context
    from katadocker.engine import images
    from katadocker.image.reference import parse_reference

    ref = parse_reference(name)
    if not quiet and not all_tags and not ref.tag and not ref.digest:
        typer.echo("Using default tag: latest")
    if quiet:
        pulled = images.pull_image(context.settings(), name, platform, lambda e: None, all_tags)
    elif sys.stdout.isatty():
        with _TerminalProgress() as progress:
            pulled = images.pull_image(context.settings(), name, platform, progress, all_tags)
    else:
        pulled = images.pull_image(context.settings(), name, platform, _plain_progress, all_tags)
    typer.echo(pulled)


# ---- images -------------------------------------------------------------------------------------------


def image_rows(summary: Any, digests: bool, no_trunc: bool) -> list[dict[str, Any]]:
    """docker's row expansion of one image: a row per repo:tag (times each digest of that repository
    with `digests`), rows for digest-only repositories, else one ``<none>`` row."""
    from katadocker.cli import render
    from katadocker.image.reference import parse_reference

    tags: dict[str, list[str]] = {}
    repo_digests: dict[str, list[str]] = {}
    for t in summary.repo_tags:
        ref = parse_reference(t)
        tags.setdefault(ref.familiar_name, []).append(ref.tag)
    for d in summary.repo_digests:
        ref = parse_reference(d)
        repo_digests.setdefault(ref.familiar_name, []).append(ref.digest)
    pairs: list[tuple[str, str, str]] = []
    for repo, repo_tags in tags.items():
        ds = repo_digests.pop(repo, [])  # a tagged repository's digests never get rows of their own
        ds = ds if digests else []
        pairs += [(repo, tag, d) for tag in repo_tags for d in (ds or ["<none>"])]
    for repo, ds in repo_digests.items():
        pairs += [(repo, "<none>", d) for d in ds] if digests else [(repo, "<none>", "<none>")]
    if not pairs:
        pairs = [("<none>", "<none>", "<none>")]
    image_id = summary.id if no_trunc else summary.id.removeprefix("sha256:")[:12]
    common = {"ID": image_id, "CreatedSince": _since(summary.created),
              "CreatedAt": render.created_at(summary.created), "Size": render.human_size(summary.size),
              "Containers": "N/A", "SharedSize": "N/A", "UniqueSize": "N/A"}
    return [{"Repository": r, "Tag": t, "Digest": d, **common} for r, t, d in pairs]


@command("images", panel=COMMON, group="image", group_name="ls", group_aliases=("list",))
def images_(
    repository: str = typer.Argument(None, metavar="[REPOSITORY[:TAG]]", show_default=False),
    all_: bool = typer.Option(False, "-a", "--all",
                              help="Show all images (default hides intermediate images)"),
    digests: bool = typer.Option(False, "--digests", help="Show digests"),
    filter_: FilterOpt = None,
    format_: FormatOpt = None,
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only show image IDs"),
) -> None:
    """List images"""
    from katadocker.cli import context, render
    from katadocker.engine import images

    filters = images.parse_filters(list(filter_ or []), images.IMAGE_FILTERS)
    if repository:
        filters.setdefault("reference", []).append(repository)
    summaries = images.list_images(context.settings(), all_, filters)
    rows = [row for s in summaries for row in image_rows(s, digests, no_trunc)]
    default = IMAGES_DIGEST_TABLE if digests else IMAGES_TABLE
    render.print_list("{{.ID}}" if quiet else format_, rows, IMAGE_HEADERS, default)


# ---- rmi, tag, prune ----------------------------------------------------------------------------------


def _delete_line(item: Any, lower: bool = False) -> str:
    word = "Untagged" if item.untagged else "Deleted"
    return f"{word.lower() if lower else word}: {item.untagged or item.deleted}"


@command("rmi", group="image", group_name="rm", group_aliases=("remove",))
def rmi(
    images_arg: ImagesArg,
    force: bool = typer.Option(False, "-f", "--force", help="Force removal of the image"),
    no_prune: bool = typer.Option(False, "--no-prune", help="Do not delete untagged parents"),
) -> None:
    """Remove one or more images"""
    from katadocker.cli import context
    from katadocker.cli.main import report_error
    from katadocker.engine import images
    from katadocker.errors import KatadockerError

    del no_prune  # katadocker images have no parents
    failed = False
    for name in images_arg:
        try:
            items = images.remove_image(context.settings(), name, force)
        except KatadockerError as e:
            report_error(e)
            failed = True
            continue
        for item in items:
            typer.echo(_delete_line(item))
    if failed:
        raise typer.Exit(1)


@command("tag", group="image")
def tag(
    source: str = typer.Argument(..., metavar="SOURCE_IMAGE[:TAG]"),
    target: str = typer.Argument(..., metavar="TARGET_IMAGE[:TAG]"),
) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"""
    from katadocker.cli import context
    from katadocker.engine import images

    images.tag_image(context.settings(), source, target)


@command("prune", panel=None, group="image")
def prune(
    all_: bool = typer.Option(False, "-a", "--all", help="Remove all unused images, not just dangling ones"),
    filter_: PruneFilterOpt = None,
    force: bool = typer.Option(False, "-f", "--force", help="Do not prompt for confirmation"),
) -> None:
    """Remove unused images"""
    from katadocker.cli import context, render
    from katadocker.engine import images

    filters = images.parse_filters(list(filter_ or []), images.PRUNE_FILTERS)
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if all_ else "WARNING! This will remove all dangling images.")
    if not force and not render.confirm(warning):
        return
    items, reclaimed = images.prune_images(context.settings(), all_, filters)
    if items:
        typer.echo("Deleted Images:\n" + "\n".join(_delete_line(i, lower=True) for i in items) + "\n")
    typer.echo(f"Total reclaimed space: {render.human_size(reclaimed, 4)}")


# ---- inspect, history ---------------------------------------------------------------------------------


@command("inspect", panel=None, group="image")
def image_inspect(
    names: ImagesArg,
    format_: ShortFormatOpt = None,
) -> None:
    """Display detailed information on one or more images"""
    from katadocker.cli import context
    from katadocker.cli.inspect_out import print_objects
    from katadocker.engine import images
    from katadocker.errors import NoSuchImage

    found, missing = [], []
    for name in names:
        try:
            found.append(images.inspect_image(context.settings(), name))
        except NoSuchImage:
            missing.append(name)
    print_objects(found, format_, blank_if_none=True)
    if missing:
        sys.stderr.write("".join(f"Error: No such image: {m}\n" for m in missing))
        raise typer.Exit(1)


def history_rows(items: list[Any], human: bool, no_trunc: bool) -> list[dict[str, Any]]:
    """docker's history columns for each entry: with `human`, sizes in go-units and times as
    ``3 days ago``, else bytes and RFC 3339 local times; CREATED BY cut to 45 columns unless
    `no_trunc`."""
    import time

    from katadocker.cli import render

    rows = []
    for h in items:
        created_by = h.created_by.replace("\t", " ")
        if not no_trunc:
            created_by = render.ellipsis(created_by, 45)
        image_id = h.id if no_trunc or h.id == "<missing>" else h.id.removeprefix("sha256:")[:12]
        created_at = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(h.created))
        created_at = created_at[:-2] + ":" + created_at[-2:]
        rows.append({"ID": image_id, "CreatedSince": _since(h.created) if human else created_at,
                     "CreatedAt": created_at, "CreatedBy": created_by, "Comment": h.comment,
                     "Size": render.human_size(h.size) if human else str(h.size)})
    return rows


@command("history", group="image")
def history(
    name: str = typer.Argument(..., metavar="IMAGE"),
    format_: FormatOpt = None,
    human: bool = typer.Option(True, "-H", "--human/--no-human",
                               help="Print sizes and dates in human readable format"),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only show image IDs"),
) -> None:
    """Show the history of an image"""
    from katadocker.cli import context, render
    from katadocker.engine import images

    rows = history_rows(images.image_history(context.settings(), name), human, no_trunc)
    render.print_list("{{.ID}}" if quiet else format_, rows, HISTORY_HEADERS, HISTORY_TABLE)


# ---- save, load ---------------------------------------------------------------------------------------


@command("save", group="image")
def save(
    names: ImagesArg,
    output: str = typer.Option(None, "-o", "--output", help="Write to a file, instead of STDOUT",
                               show_default=False),
) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)"""
    import os
    from pathlib import Path

    from katadocker.cli import context
    from katadocker.engine import archive
    from katadocker.errors import ClientError

    if not output:
        if sys.stdout.isatty():
            raise ClientError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        archive.save_images(context.settings(), names, sys.stdout.buffer)
        return
    dest = Path(output)
    tmp = dest.with_name(f".{dest.name}.katadocker-tmp")
    try:
        with open(tmp, "wb") as f:
            archive.save_images(context.settings(), names, f)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@command("load", group="image")
def load(
    input_: str = typer.Option(None, "-i", "--input", help="Read from tar archive file, instead of STDIN",
                               show_default=False),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Suppress the load output"),
) -> None:
    """Load an image from a tar archive or STDIN"""
    from katadocker.cli import context
    from katadocker.engine import archive
    from katadocker.errors import ClientError

    del quiet  # there is no progress output to suppress; the "Loaded image" lines always print
    if input_:
        with open(input_, "rb") as f:
            lines = archive.load_images(context.settings(), f)
    elif sys.stdin.isatty():
        raise ClientError("requested load from stdin, but stdin is empty")
    else:
        lines = archive.load_images(context.settings(), sys.stdin.buffer)
    if lines:
        typer.echo("\n".join(lines))


# ---- login, logout ------------------------------------------------------------------------------------


def _credentials(username: str | None, password: str | None, password_stdin: bool) -> tuple[str, str]:
    """Username and password from the flags, stdin or interactive prompts, with docker's checks."""
    from katadocker.errors import ClientError

    if password and password_stdin:
        raise ClientError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise ClientError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if username and password:
        return username, password
    if not sys.stdin.isatty():
        raise ClientError("Cannot perform an interactive login from a non TTY device")
    username = username or typer.prompt("Username", prompt_suffix=": ")
    password = password or typer.prompt("Password", prompt_suffix=": ", hide_input=True)
    return username, password


@command("login", panel=COMMON)
def login(
    server: str = typer.Argument("", metavar="[SERVER]", show_default=False),
    username: str = typer.Option(None, "-u", "--username", help="Username", show_default=False),
    password: str = typer.Option(None, "-p", "--password", help="Password or Personal Access Token (PAT)",
                                 show_default=False),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Take the Password or Personal Access Token (PAT) from stdin"),
) -> None:
    """Authenticate to a registry. Defaults to Docker Hub if no server is specified."""
    from katadocker.cli import context
    from katadocker.engine import images

    user, secret = _credentials(username, password, password_stdin)
    typer.echo(images.login(context.settings(), server, user, secret))


@command("logout", panel=COMMON)
def logout(server: str = typer.Argument("", metavar="[SERVER]", show_default=False)) -> None:
    """Log out from a registry. If no server is specified, the default is defined by the daemon."""
    from katadocker.cli import context
    from katadocker.engine import images

    typer.echo(images.logout(context.settings(), server))
