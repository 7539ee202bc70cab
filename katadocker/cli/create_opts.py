"""The flags `run` and `create` share (docker's names, short and long), declared once.

`shared_options` adds them to a command's signature (after its positional arguments, before its
own flags); the command receives them in ``**opts`` and `create_kwargs` turns them into
`katadocker.engine.containers.CreateOptions` keyword arguments (the networking and mount flags
through cli/network_opts.py and cli/mount_opts.py). Imports only typer at module level (fast
start-up).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from katadocker.cli import mount_opts, network_opts

StrList = list[str] | None


def _str(*decls: str, **kw: Any) -> Any:
    return Annotated[str | None, typer.Option(*decls, **kw)]


def _strs(*decls: str, **kw: Any) -> Any:
    return Annotated[StrList, typer.Option(*decls, **kw)]


def _bool(*decls: str, **kw: Any) -> Any:
    return Annotated[bool, typer.Option(*decls, **kw)]


#: (parameter name, annotation, default) of every shared flag, in help order. `--pull`'s help
#: names the verb, so `shared_options` fills it in.
SHARED: tuple[tuple[str, Any, Any], ...] = (
    ("rm", _bool("--rm", help="Automatically remove the container when it exits"), False),
    ("name", _str("--name", help="Assign a name to the container"), None),
    ("env", _strs("-e", "--env", help="Set environment variables"), None),
    ("env_file", _strs("--env-file", help="Read in a file of environment variables"), None),
    ("workdir", _str("-w", "--workdir", help="Working directory inside the container"), None),
    ("user", _str("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])"), None),
    ("entrypoint", _str("--entrypoint", help="Overwrite the default ENTRYPOINT of the image"), None),
    ("interactive", _bool("-i", "--interactive", help="Keep STDIN open even if not attached"), False),
    ("tty", _bool("-t", "--tty", help="Allocate a pseudo-TTY"), False),
    ("hostname", _str("-h", "--hostname", help="Container host name"), None),
    ("memory", _str("-m", "--memory", help="Memory limit"), None),
    ("cpus", _str("--cpus", help="Number of CPUs"), None),
    ("label", _strs("-l", "--label", help="Set meta data on a container"), None),
    ("label_file", _strs("--label-file", help="Read in a line delimited file of labels"), None),
    ("publish", _strs("-p", "--publish", help="Publish a container's port(s) to the host"), None),
    ("publish_all", _bool("-P", "--publish-all", help="Publish all exposed ports to random ports"), False),
    ("network", Annotated[str, typer.Option("--network", "--net", help="Connect a container to a network")],
     "bridge"),
    ("network_alias", network_opts.NetworkAlias, None),
    ("ip", network_opts.Ip, None),
    ("mac_address", network_opts.MacAddress, None),
    ("dns", network_opts.Dns, None),
    ("dns_search", network_opts.DnsSearch, None),
    ("dns_option", network_opts.DnsOption, None),
    ("add_host", network_opts.AddHost, None),
    ("volume", mount_opts.Volume, None),
    ("mount", mount_opts.Mount, None),
    ("tmpfs", mount_opts.Tmpfs, None),
    ("volumes_from", mount_opts.VolumesFrom, None),
    ("read_only", mount_opts.ReadOnly, False),
    ("stop_signal", _str("--stop-signal", help="Signal to stop the container"), None),
    ("stop_timeout", Annotated[int | None, typer.Option(
        "--stop-timeout", help="Timeout (in seconds) to stop a container")], None),
    ("pull", None, "missing"),
    ("platform", _str("--platform", envvar="DOCKER_DEFAULT_PLATFORM",
                      help="Set platform if server is multi-platform capable"), None),
    ("init", _bool("--init", help="Run an init inside the container that forwards signals and reaps "
                                  "processes"), False),
    ("attach", _strs("-a", "--attach", help="Attach to STDIN, STDOUT or STDERR"), None),
)


def shared_options(pull_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command whose signature ends in ``**opts`` the shared flags (inserted after its
    positional arguments); `pull_help` is the help of ``--pull``."""
    pull = Annotated[str, typer.Option("--pull", help=pull_help)]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values()
               if p.kind is not inspect.Parameter.VAR_KEYWORD]
        arguments = [p for p in own if _is_argument(p)]
        shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                    annotation=pull if name == "pull" else annotation)
                  for name, annotation, default in SHARED]
        flags = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p not in arguments]
        fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [*arguments, *shared, *flags], return_annotation=None)
        return fn

    return decorate


def _is_argument(p: inspect.Parameter) -> bool:
    """A positional (typer.Argument) parameter, in either declaration style."""
    from typer.models import ArgumentInfo

    return isinstance(p.default, ArgumentInfo) or any(
        isinstance(m, ArgumentInfo) for m in getattr(p.annotation, "__metadata__", ()))


def create_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    """``CreateOptions`` keyword arguments (minus image, args and attach) from the flags above."""
    return dict(
        name=opts["name"], env=opts["env"] or [], env_files=opts["env_file"] or [], workdir=opts["workdir"],
        user=opts["user"], entrypoint=opts["entrypoint"], hostname=opts["hostname"],
        labels=opts["label"] or [], label_files=opts["label_file"] or [], memory=opts["memory"],
        cpus=opts["cpus"], publish=opts["publish"] or [], publish_all=opts["publish_all"],
        network=opts["network"], auto_remove=opts["rm"], tty=opts["tty"],
        **network_opts.create_kwargs(opts["network_alias"], opts["ip"], opts["mac_address"], opts["dns"],
                                     opts["dns_search"], opts["dns_option"], opts["add_host"]),
        **mount_opts.create_kwargs(opts["volume"], opts["mount"], opts["tmpfs"], opts["volumes_from"],
                                   opts["read_only"]),
        interactive=opts["interactive"], stop_signal=opts["stop_signal"],
        stop_timeout=opts["stop_timeout"], pull=opts["pull"], platform=opts["platform"], init=opts["init"])
