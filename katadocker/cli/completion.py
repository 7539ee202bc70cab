"""Shell completion scripts for bash, zsh and fish, generated from the click command tree.

Each script is a fixed engine for its shell plus a data section generated here: one entry per
(key, command path), where the keys are

- ``sub PATH``: the subcommands of a group (``katadocker``, ``katadocker image``, ...);
- ``flags PATH``: every option string of the command, ``--help`` included;
- ``vflags PATH``: the option strings that take a value (the engine skips the word after them);
- ``args PATH``: one *value spec* per positional argument; ``rest PATH``: the spec for every
  position after them (a trailing variadic argument);
- ``opt PATH FLAG``: the value items of an option (click choices, or a live-object kind);
- ``stop PATH``: present when options end at the first positional (``run IMAGE CMD --flag``).

A value spec is a comma-joined list of items: ``@container``, ``@image``, ``@network``,
``@volume`` (live names, listed by calling katadocker itself at completion time), ``@file``,
``@none``, or a literal word (a click choice). The engines walk the words typed before the cursor
as click would parse them (global options, management groups, values of options, ``--``) to find
the command path and the index of the positional being completed.

Output is deterministic (everything sorted) so that the generated files can be committed.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

ROOT = "katadocker"
FILENAMES = {"bash": "katadocker.bash", "fish": "katadocker.fish", "zsh": "_katadocker"}

# How each live-object kind is listed at completion time: cheap, quiet, names only.
LIST_COMMANDS = {
    "container": "ps -a --format '{{.Names}}'",
    "image": "images --format '{{.Repository}}:{{.Tag}}'",
    "network": "network ls --format '{{.Name}}'",
    "volume": "volume ls -q",
}

# Value items naming live objects (listed at completion time by LIST_COMMANDS).
CONTAINER, IMAGE, NETWORK, VOLUME = "@container", "@image", "@network", "@volume"
_CONTAINER_VERBS = ("attach", "commit", "cp", "diff", "exec", "export", "inspect", "kill", "logs", "pause",
                    "port", "remove", "rename", "restart", "rm", "start", "stats", "stop", "top", "unpause",
                    "update", "wait")
_CONTAINER_ARGS = {verb: (CONTAINER,) for verb in _CONTAINER_VERBS} | {"create": (IMAGE,), "run": (IMAGE,)}
_IMAGE_ARGS = {verb: (IMAGE,) for verb in ("history", "inspect", "push", "remove", "rm", "save")} | {
    "tag": (IMAGE, IMAGE)}

# The live objects named by the positional arguments of each verb, by management group ("" for the
# top level): one value spec per click argument, in order; arguments beyond the tuple complete nothing.
_VERB_ARGS: dict[str, dict[str, tuple[str, ...]]] = {
    "": _CONTAINER_ARGS | {verb: _IMAGE_ARGS[verb] for verb in ("history", "push", "save", "tag")}
        | {"inspect": (f"{CONTAINER},{IMAGE}",), "rmi": (IMAGE,)},
    "container": _CONTAINER_ARGS,
    "image": _IMAGE_ARGS,
    "network": {verb: (NETWORK,) for verb in ("inspect", "remove", "rm")}
        | {verb: (NETWORK, CONTAINER) for verb in ("connect", "disconnect")},
    "volume": {"inspect": (VOLUME,), "remove": (VOLUME,), "rm": (VOLUME,)},
}
ARGUMENT_KINDS: dict[tuple[str, ...], tuple[str, ...]] = {
    (*filter(None, (group,)), verb): spec
    for group, verbs in _VERB_ARGS.items() for verb, spec in verbs.items()
}

# The value items of options whose values click cannot enumerate, by any of the option's long names.
OPTION_KINDS = {
    "--config": "@file", "--env-file": "@file", "--input": "@file", "--label-file": "@file",
    "--output": "@file", "--root": "@file",
    "--net": NETWORK, "--network": NETWORK, "--volumes-from": CONTAINER,
}


@dataclass(frozen=True)
class Node:
    """What completion needs to know about one command of the tree."""

    path: tuple[str, ...]  # the words after ROOT: (), ("image",), ("image", "rm")
    subcommands: tuple[str, ...]
    flags: tuple[str, ...]
    value_flags: tuple[str, ...]
    arguments: tuple[str, ...]  # one value spec per position
    rest: str | None  # the value spec for every further position, if the last argument is variadic
    option_values: tuple[tuple[str, tuple[str, ...]], ...]  # (flag, items), for each flag with items
    interspersed: bool  # False: options end at the first positional argument


def cli_command() -> click.Command:
    """The click command tree of katadocker, with every command module registered."""
    import typer

    from katadocker.cli.main import app

    return typer.main.get_command(app)


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[Node]:
    """Yield a Node for `command` and each of its visible descendants, in sorted path order."""
    yield _node(command, path)
    for name, sub in _visible_subcommands(command):
        yield from walk(sub, (*path, name))


def _visible_subcommands(command: click.Command) -> list[tuple[str, click.Command]]:
    commands = getattr(command, "commands", {})
    return sorted((name, cmd) for name, cmd in commands.items() if not cmd.hidden)


def _node(command: click.Command, path: tuple[str, ...]) -> Node:
    ctx = click.Context(command, info_name=path[-1] if path else ROOT, **command.context_settings)
    # Not get_params(): it warns about duplicate option strings, which is the command's own problem.
    params = [*command.params, *filter(None, (command.get_help_option(ctx),))]
    options = [p for p in params if isinstance(p, click.Option) and not p.hidden]
    arguments = [p for p in params if isinstance(p, click.Argument)]
    specs = _argument_specs(path, arguments)
    variadic = bool(arguments) and arguments[-1].nargs == -1
    interspersed = ctx.allow_interspersed_args or isinstance(command, click.Group)
    return Node(
        path=path,
        subcommands=tuple(name for name, _ in _visible_subcommands(command)),
        flags=tuple(sorted({s for o in options for s in (*o.opts, *o.secondary_opts)})),
        value_flags=tuple(sorted({s for o in options if _takes_value(o) for s in o.opts})),
        arguments=specs[:-1] if variadic else specs,
        rest=specs[-1] if variadic else None,
        option_values=tuple(sorted((flag, items) for o in options if (items := _option_items(o))
                                   for flag in o.opts)),
        interspersed=interspersed,
    )


def _takes_value(option: click.Option) -> bool:
    return not (option.is_flag or option.count)


def _choices(param: click.Parameter) -> tuple[str, ...]:
    if isinstance(param.type, click.Choice):
        return tuple(sorted(str(c) for c in param.type.choices))
    return ()


def _option_items(option: click.Option) -> tuple[str, ...]:
    """The value items of a value-taking option: its choices, else its kind from OPTION_KINDS."""
    if not _takes_value(option):
        return ()
    kinds = tuple(OPTION_KINDS[s] for s in option.opts if s in OPTION_KINDS)
    return _choices(option) or kinds[:1]


def _argument_specs(path: tuple[str, ...], arguments: list[click.Argument]) -> tuple[str, ...]:
    """One value spec per argument: its choices, else its live-object kinds, else ``@none``."""
    kinds = ARGUMENT_KINDS.get(path, ())
    return tuple(",".join(_choices(arg)) or (kinds[i] if i < len(kinds) else "@none")
                 for i, arg in enumerate(arguments))


def spec_entries(nodes: list[Node]) -> list[tuple[str, tuple[str, ...]]]:
    """The data section of a script: (key, words) pairs, non-empty, in a fixed order."""
    entries: list[tuple[str, tuple[str, ...]]] = []
    for node in nodes:
        where = " ".join((ROOT, *node.path))
        entries += [(f"sub {where}", node.subcommands), (f"flags {where}", node.flags),
                    (f"vflags {where}", node.value_flags), (f"args {where}", node.arguments),
                    (f"rest {where}", (node.rest,) if node.rest else ()),
                    (f"stop {where}", () if node.interspersed else ("1",))]
        entries += [(f"opt {where} {flag}", items) for flag, items in node.option_values]
    return [(key, words) for key, words in entries if words]


def _sh_case(key: str, words: tuple[str, ...]) -> str:
    return f"        ({shlex.quote(key)}) __katadocker_reply=({' '.join(map(shlex.quote, words))}) ;;"


def _sh_data(entries: list[tuple[str, tuple[str, ...]]]) -> str:
    """The data functions in the `case` syntax that bash and zsh share."""
    spec = "\n".join(_sh_case(key, words) for key, words in entries)
    lists = "\n".join(f"        ({kind}) katadocker {cmd} ;;" for kind, cmd in sorted(LIST_COMMANDS.items()))
    return _SH_DATA.replace("@SPEC@", spec).replace("@LISTS@", lists)


def _fish_quote(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_case(key: str, words: tuple[str, ...]) -> str:
    return f"        case {_fish_quote(key)}\n            printf '%s\\n' {' '.join(map(_fish_quote, words))}"


def _fish_data(entries: list[tuple[str, tuple[str, ...]]]) -> str:
    """The data functions in fish's `switch` syntax."""
    spec = "\n".join(_fish_case(key, words) for key, words in entries)
    lists = "\n".join(f"        case {kind}\n            katadocker {cmd} 2>/dev/null </dev/null"
                      for kind, cmd in sorted(LIST_COMMANDS.items()))
    return _FISH_DATA.replace("@SPEC@", spec).replace("@LISTS@", lists)


def generate(shell: str, root: click.Command) -> str:
    """The completion script for `shell` ("bash", "zsh" or "fish") of the tree `root`.

    Raises ValueError for another shell.
    """
    entries = spec_entries(list(walk(root)))
    if shell == "bash":
        return _HEADER.format(shell="bash") + _sh_data(entries) + _BASH_ENGINE
    if shell == "zsh":
        return "#compdef katadocker\n" + _HEADER.format(shell="zsh") + _sh_data(entries) + _ZSH_ENGINE
    if shell == "fish":
        return _HEADER.format(shell="fish") + _fish_data(entries) + _FISH_ENGINE
    raise ValueError(f"unsupported shell {shell!r}: expected one of {', '.join(sorted(FILENAMES))}")


def write_all(directory: Path, root: click.Command) -> list[Path]:
    """Write every shell's script into `directory` under its FILENAMES name; return the paths."""
    paths = []
    for shell, name in sorted(FILENAMES.items()):
        path = directory / name
        path.write_text(generate(shell, root))
        paths.append(path)
    return paths


def main(argv: list[str]) -> int:
    """`python -m katadocker.cli.completion DIR`: regenerate the committed scripts in DIR."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m katadocker.cli.completion DIRECTORY\n")
        return 2
    for path in write_all(Path(argv[0]), cli_command()):
        print(f"wrote {path}")
    return 0


_HEADER = """\
# katadocker completion for {shell}: commands, subcommands, flags, and the names of live containers,
# images, networks and volumes. Generated from the CLI definition by scripts/gen-completions (or
# `katadocker completion {shell}`): do not edit.

"""

_SH_DATA = """\
# Set __katadocker_reply to the completion data for key $1 (see katadocker/cli/completion.py).
__katadocker_spec() {
    case "$1" in
@SPEC@
        (*) __katadocker_reply=() ;;
    esac
}

# Print the names of the live objects of kind $1, one a line.
__katadocker_list() {
    case "$1" in
@LISTS@
    esac 2>/dev/null </dev/null
}
"""

_FISH_DATA = """\
# Print the completion data for key $argv[1], one word a line (see katadocker/cli/completion.py).
function __katadocker_spec
    switch "$argv[1]"
@SPEC@
    end
end

# Print the names of the live objects of kind $argv[1], one a line.
function __katadocker_list
    switch "$argv[1]"
@LISTS@
    end
end
"""

_BASH_ENGINE = r"""
# Append the candidates for value items "$@" to `cands` (@kind: live names; @file: paths).
__katadocker_values() {
    local item
    local -a lines
    for item in "$@"; do
        case $item in
            (@file) compopt -o filenames 2>/dev/null; mapfile -t lines < <(compgen -f -- "$cur") ;;
            (@*) mapfile -t lines < <(__katadocker_list "${item#@}") ;;
            (*) lines=("$item") ;;
        esac
        cands+=("${lines[@]}")
    done
}

# Set `words` and `cword` from COMP_WORDS and COMP_CWORD, rejoining what readline split at the word
# breaks in `breaks` (the ':' of image:tag, the '=' of --flag=value).
__katadocker_join_words() {
    local i w
    words=()
    for (( i = 0; i < ${#COMP_WORDS[@]}; i++ )); do
        w=${COMP_WORDS[i]}
        if (( i > 0 )) && { __katadocker_is_break "$w" || __katadocker_is_break "${COMP_WORDS[i-1]}"; }; then
            words[${#words[@]}-1]+=$w
        else
            words+=("$w")
        fi
        (( i == COMP_CWORD )) && cword=$(( ${#words[@]} - 1 ))
    done
}

__katadocker_is_break() {
    [[ ${#1} == 1 && $breaks == *"$1"* ]]
}

# Set COMPREPLY to the candidates "$@" that start with `cur`, without the part of `cur` up to its
# last word break (readline replaces only the text after it).
__katadocker_reply_matching() {
    local c ch i p prefix=
    for (( i = 0; i < ${#breaks}; i++ )); do
        ch=${breaks:i:1}
        [[ $cur == *"$ch"* ]] || continue
        p=${cur%"${cur##*"$ch"}"}
        (( ${#p} > ${#prefix} )) && prefix=$p
    done
    COMPREPLY=()
    for c in "$@"; do
        [[ -n $c && $c == "$cur"* && $c != *'<none>'* ]] && COMPREPLY+=("${c#"$prefix"}")
    done
}

# Walk the words before the cursor as click parses them; set `cmdpath` (the command), `npos` (the
# index of the positional argument at the cursor), `endopts`, and `flag` when the cursor is on the
# value of that option.
__katadocker_walk() {
    local word skip=0
    for word in "${words[@]:1:cword-1}"; do
        if (( skip )); then skip=0; continue; fi
        if (( !endopts )) && [[ $word == -?* ]]; then
            if [[ $word == -- ]]; then endopts=1; continue; fi
            __katadocker_spec "vflags $cmdpath"
            if [[ $word != *=* && " ${__katadocker_reply[*]} " == *" $word "* ]]; then skip=1; fi
            continue
        fi
        __katadocker_spec "sub $cmdpath"
        if (( npos == 0 )) && [[ " ${__katadocker_reply[*]} " == *" $word "* ]]; then
            cmdpath+=" $word"
            continue
        fi
        (( npos += 1 ))
        __katadocker_spec "stop $cmdpath"
        (( ${#__katadocker_reply[@]} )) && endopts=1
    done
    (( skip )) && flag=$word
    return 0
}

# Append to `cands` the candidates for positional argument `npos` of `cmdpath`.
__katadocker_positional() {
    local -a items
    __katadocker_spec "args $cmdpath"
    if (( npos < ${#__katadocker_reply[@]} )); then
        IFS=, read -ra items <<< "${__katadocker_reply[npos]}"
    else
        __katadocker_spec "rest $cmdpath"
        IFS=, read -ra items <<< "${__katadocker_reply[0]-}"
    fi
    __katadocker_values "${items[@]}"
}

_katadocker() {
    local -a words cands __katadocker_reply
    local cword cur cmdpath=katadocker flag= breaks=${COMP_WORDBREAKS//[^:=]/}
    local -i npos=0 endopts=0
    __katadocker_join_words
    cur=${words[cword]}
    __katadocker_walk
    if [[ -n $flag ]]; then
        __katadocker_spec "opt $cmdpath $flag"
        __katadocker_values "${__katadocker_reply[@]}"
    elif (( !endopts )) && [[ $cur == -*=* ]]; then
        flag=${cur%%=*}
        __katadocker_spec "opt $cmdpath $flag"
        __katadocker_values "${__katadocker_reply[@]}"
        (( ${#cands[@]} )) && cands=("${cands[@]/#/$flag=}")
    elif (( !endopts )) && [[ $cur == -* ]]; then
        __katadocker_spec "flags $cmdpath"
        cands=("${__katadocker_reply[@]}")
    else
        __katadocker_spec "sub $cmdpath"
        if (( npos == 0 && ${#__katadocker_reply[@]} )); then
            cands=("${__katadocker_reply[@]}")
        else
            __katadocker_positional
        fi
    fi
    __katadocker_reply_matching "${cands[@]}"
}

complete -F _katadocker katadocker
"""

_ZSH_ENGINE = r"""
# Append the candidates for value items "$@" to `cands`; set want_files for @file.
__katadocker_values() {
    local item
    for item in "$@"; do
        case $item in
            (@file) want_files=1 ;;
            (@*) cands+=(${(f)"$(__katadocker_list ${item#@})"}) ;;
            (*) cands+=("$item") ;;
        esac
    done
}

# Walk the words before the cursor as click parses them; set `cmdpath` (the command), `npos` (the
# index of the positional argument at the cursor), `endopts`, and `flag` when the cursor is on the
# value of that option.
__katadocker_walk() {
    local word
    integer skip=0
    for word in "${(@)words[2,CURRENT-1]}"; do
        if (( skip )); then skip=0; continue; fi
        if (( !endopts )) && [[ $word == -?* ]]; then
            if [[ $word == -- ]]; then endopts=1; continue; fi
            __katadocker_spec "vflags $cmdpath"
            if [[ $word != *=* ]] && (( ${__katadocker_reply[(Ie)$word]} )); then skip=1; fi
            continue
        fi
        __katadocker_spec "sub $cmdpath"
        if (( npos == 0 && ${__katadocker_reply[(Ie)$word]} )); then
            cmdpath+=" $word"
            continue
        fi
        (( npos += 1 ))
        __katadocker_spec "stop $cmdpath"
        (( ${#__katadocker_reply} )) && endopts=1
    done
    (( skip )) && flag=$word
    return 0
}

# Append to `cands` the candidates for positional argument `npos` of `cmdpath`.
__katadocker_positional() {
    local spec
    __katadocker_spec "args $cmdpath"
    if (( npos < ${#__katadocker_reply} )); then
        spec=${__katadocker_reply[npos+1]}
    else
        __katadocker_spec "rest $cmdpath"
        spec=${__katadocker_reply[1]-}
    fi
    __katadocker_values ${(s:,:)spec}
}

_katadocker() {
    local -a cands __katadocker_reply
    local cur=${words[CURRENT]} cmdpath=katadocker flag=
    integer npos=0 endopts=0 want_files=0 ret=1
    __katadocker_walk
    if [[ -n $flag ]]; then
        __katadocker_spec "opt $cmdpath $flag"
        __katadocker_values "${__katadocker_reply[@]}"
    elif (( !endopts )) && [[ $cur == -*=* ]]; then
        flag=${cur%%=*}
        compset -P '*='
        __katadocker_spec "opt $cmdpath $flag"
        __katadocker_values "${__katadocker_reply[@]}"
    elif (( !endopts )) && [[ $cur == -* ]]; then
        __katadocker_spec "flags $cmdpath"
        cands=("${__katadocker_reply[@]}")
    else
        __katadocker_spec "sub $cmdpath"
        if (( npos == 0 && ${#__katadocker_reply} )); then
            cands=("${__katadocker_reply[@]}")
        else
            __katadocker_positional
        fi
    fi
    cands=(${cands:#*"<none>"*})
    (( want_files )) && _files && ret=0
    (( ${#cands} )) && compadd -- "${cands[@]}" && ret=0
    return $ret
}

if [[ ${funcstack[1]-} == _katadocker ]]; then
    _katadocker "$@"
else
    compdef _katadocker katadocker
fi
"""

_FISH_ENGINE = r"""
# Print the candidates for value items $argv (@kind: live names; @file: paths).
function __katadocker_values
    for item in $argv
        switch $item
            case @file
                __fish_complete_path (commandline -ct)
            case '@*'
                __katadocker_list (string sub -s 2 -- $item)
            case '*'
                printf '%s\n' $item
        end
    end
end

# Print the candidates for the command line before the cursor, walking its words as click parses
# them (global options, management groups, values of options, `--`).
function __katadocker_complete
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cur (commandline -ct)
    set -l cmdpath katadocker
    set -l skip 0
    set -l endopts 0
    set -l npos 0
    set -l flag
    for word in $tokens
        if test $skip -eq 1
            set skip 0
            continue
        end
        if test $endopts -eq 0; and string match -q -- '-?*' "$word"
            set -l vflags (__katadocker_spec "vflags $cmdpath")
            if test "$word" = --
                set endopts 1
            else if not string match -q -- '*=*' "$word"; and contains -- "$word" $vflags
                set skip 1
                set flag "$word"
            end
            continue
        end
        if test $npos -eq 0; and contains -- "$word" (__katadocker_spec "sub $cmdpath")
            set cmdpath "$cmdpath $word"
            continue
        end
        set npos (math $npos + 1)
        set -l stop (__katadocker_spec "stop $cmdpath")
        if set -q stop[1]
            set endopts 1
        end
    end
    if test $skip -eq 1
        __katadocker_values (__katadocker_spec "opt $cmdpath $flag")
    else if test $endopts -eq 0; and string match -q -- '-*=*' "$cur"
        set flag (string split -m 1 = -- "$cur")[1]
        for value in (__katadocker_values (__katadocker_spec "opt $cmdpath $flag"))
            printf '%s\n' "$flag=$value"
        end
    else if test $endopts -eq 0; and string match -q -- '-*' "$cur"
        __katadocker_spec "flags $cmdpath"
    else
        set -l subs (__katadocker_spec "sub $cmdpath")
        if test $npos -eq 0; and set -q subs[1]
            printf '%s\n' $subs
        else
            set -l args (__katadocker_spec "args $cmdpath")
            set -l spec (__katadocker_spec "rest $cmdpath")
            if test $npos -lt (count $args)
                set spec $args[(math $npos + 1)]
            end
            if set -q spec[1]
                __katadocker_values (string split , -- $spec[1])
            end
        end
    end
end

complete -c katadocker -f -a '(__katadocker_complete | string match -v -- "*<none>*")'
"""

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
