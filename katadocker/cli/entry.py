"""The ``katadocker`` program's entry point, kept light on purpose.

Before the command line's own imports (typer, click, the command modules: ~0.1 s), a verb that
starts a container gets its monitor's interpreter started, so that the two start up in parallel
(engine/monitor_launch.py). Everything else is katadocker.cli.main's.
"""

from __future__ import annotations

import sys

#: The verbs that start a container, at top level or under ``container``.
STARTING_VERBS = frozenset({"run", "start"})
#: The global options that take a value (katadocker.cli.main.global_options): skipped, with it,
#: when looking for the verb.
GLOBAL_VALUE_OPTIONS = frozenset({"-l", "--log-level", "--config", "--root"})


def invoked_verb(args: list[str]) -> str | None:
    """The first word of `args` after the global options (``run`` in ``--root R run -d x``); None
    when there is none."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return None
        if arg[:1] != "-" or arg == "-":
            return arg
        i += 2 if arg in GLOBAL_VALUE_OPTIONS else 1
    return None


def starts_a_container(args: list[str]) -> bool:
    """Whether `args` invoke ``run`` or ``start``, at top level or as ``container run|start``."""
    verb = invoked_verb(args)
    if verb == "container":
        verb = invoked_verb(args[args.index("container") + 1:])
    return verb in STARTING_VERBS


def main() -> None:
    if starts_a_container(sys.argv[1:]):
        from katadocker.engine import monitor_launch

        monitor_launch.prestart()
    from katadocker.cli.main import main as cli_main

    cli_main()
