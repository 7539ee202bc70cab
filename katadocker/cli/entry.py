"""The ``katadocker`` program's entry point, kept light on purpose.

Before the command line's own imports (typer, click, the command modules: ~0.1 s), a verb that
starts a container gets its monitor's interpreter started, so that the two start up in parallel,
and the monitor starts a VM that boots meanwhile (engine/monitor_prestart.py, vm/early.py).
Everything else is katadocker.cli.main's.
"""

from __future__ import annotations

import sys

#: The verbs that start a container, at top level or under ``container``.
STARTING_VERBS = frozenset({"run", "start"})
#: The global options that take a value (katadocker.cli.main.global_options): skipped, with it,
#: when looking for the verb.
GLOBAL_VALUE_OPTIONS = frozenset({"-l", "--log-level", "--config", "--root"})


def leading_options(args: list[str]) -> tuple[dict[str, str], int | None]:
    """The global options before the verb in `args`, as {name: value} ("" for a flag), and the
    verb's index (None when there is no verb)."""
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        if arg[:1] != "-" or arg == "-":
            return options, i
        name, equals, value = arg.partition("=")
        if not equals and name in GLOBAL_VALUE_OPTIONS:
            i += 1
            value = args[i] if i < len(args) else ""
        options[name] = value
        i += 1
    return options, None


def invoked_verb(args: list[str]) -> str | None:
    """The first word of `args` after the global options (``run`` in ``--root R run -d x``); None
    when there is none."""
    _, verb = leading_options(args)
    return None if verb is None else args[verb]


def starts_a_container(args: list[str]) -> bool:
    """Whether `args` invoke ``run`` or ``start``, at top level or as ``container run|start``."""
    _, i = leading_options(args)
    verb = None if i is None else args[i]
    if verb == "container":
        verb = invoked_verb(args[i + 1:])
    return verb in STARTING_VERBS


def main() -> None:
    if starts_a_container(sys.argv[1:]):
        from katadocker.engine import monitor_prestart

        monitor_prestart.prestart(leading_options(sys.argv[1:])[0].get("--root"))
    from katadocker.cli.main import main as cli_main

    cli_main()
