"""Output helpers every command uses: `--format` handling, docker's tables, sizes and durations.

Layouts are docker's: tables go through Go's tabwriter as docker configures it
(``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``: minimum cell width 10, padding 3, the last cell of a
line unpadded); `--format` values follow docker's formatter (``table``/``table <template>``/``json``/
a Go template, with ``\\t`` and ``\\n`` escapes); sizes and durations are go-units'.
"""

from __future__ import annotations

import re
import sys
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from katadocker.cli import gotemplate
from katadocker.units import bytes_size, human_duration, human_size  # noqa: F401  (re-exported)

TABLE_PREFIX = "table"


# ---------------------------------------------------------------------------------------------------------
# --format
# ---------------------------------------------------------------------------------------------------------


def template_or_text(fmt: str | None, data: Any, text_fn: Callable[[Any], str]) -> None:
    """Print `data` for a single-object command (`version`, `info`): as `text_fn(data)` when `fmt` is
    None, as one JSON line for ``json``, else through the Go template `fmt`, followed by a newline.

    Dicts stand for docker's structs, so a field missing from them is an error (as in docker).
    """
    if fmt is None:
        text = text_fn(data)
    elif fmt == "json":
        text = format_json(data)
    else:
        text = gotemplate.render(fmt, data, missing_key="error")
    _write(text if text.endswith("\n") else text + "\n")


def format_json(obj: Any, *, escape_html: bool = False) -> str:
    """docker's ``{{json .}}``: compact JSON, HTML characters kept unless `escape_html`
    (docker's list contexts marshal themselves with HTML escaping: ``-\\u003e``)."""
    return gotemplate.go_json(obj, escape_html=escape_html)


def expand_format(fmt: str) -> tuple[bool, str]:
    """docker's preFormat: (is a table, the template) with ``table`` removed, surrounding spaces
    trimmed and the two-character escapes ``\\t`` ``\\n`` turned into TAB and LF."""
    is_table = fmt.startswith(TABLE_PREFIX)
    body = fmt[len(TABLE_PREFIX):] if is_table else fmt
    return is_table, body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")


def format_list(fmt: str | None, rows: Sequence[Any], headers: Mapping[str, str], default: str) -> str:
    """Render a list command's rows as docker's formatter does; returns the text to print.

    `fmt` None, "" or ``table`` uses `default` (a ``table …`` template); ``json`` prints each row
    as one JSON object per line (keys sorted, HTML escaped, like docker's MarshalJSON); a ``table …``
    template prints a header (the template run on `headers`, field -> HEADER, with docker's
    header functions) and the rows, aligned by the tabwriter; any other template prints one line per row.
    """
    if not fmt or fmt == TABLE_PREFIX:
        fmt = default
    if fmt == "json":
        return "".join(format_json(_sorted_top(row), escape_html=True) + "\n" for row in rows)
    is_table, body = expand_format(fmt)
    template = gotemplate.parse(body)
    lines = "".join(_execute_row(template, row) + "\n" for row in rows)
    if not is_table:
        return lines
    header = gotemplate.parse(body, gotemplate.HEADER_FUNCS).execute(dict(headers))
    return tabwrite(header + "\n" + lines)


def _execute_row(template: gotemplate.Template, row: Any) -> str:
    """One row; rows stand for docker's structs, so a missing field is an error, reported as docker's
    formatter does (``template parsing error: …``)."""
    try:
        return template.execute(row, missing_key="error")
    except gotemplate.TemplateError as e:
        if e.message.startswith("template parsing error: "):
            raise
        raise gotemplate.TemplateError(f"template parsing error: {e.message}") from None


CONTINUE = "Are you sure you want to continue?"


def confirm(warning: str) -> bool:
    """docker's prune prompt: `warning`, then ``Are you sure you want to continue? [y/N] `` on stdout
    (`warning` may end with that question already); True when a line read from stdin says y/yes.
    Like docker it reads stdin even when it is not a terminal, so ``echo y | … prune`` works."""
    question = warning if warning.endswith(CONTINUE) else f"{warning}\n{CONTINUE}"
    sys.stdout.write(question + " [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


QUIET_WINS = "WARNING: Ignoring custom format, because both --format and --quiet are set.\n"


def quiet_wins(quiet: bool, fmt: str | None) -> str | None:
    """docker's rule for list commands: ``-q`` beats ``--format`` (with a warning on stderr).
    Returns the format to use (None when quiet)."""
    if quiet and fmt:
        sys.stderr.write(QUIET_WINS)
    return None if quiet else fmt


def print_list(fmt: str | None, rows: Sequence[Any], headers: Mapping[str, str], default: str) -> None:
    """`format_list` written to stdout."""
    _write(format_list(fmt, rows, headers, default))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A docker table: a header line of the column titles, then one line per row of
    ``str(row[key])`` cells (missing keys empty), aligned by the tabwriter; ends with a newline."""
    lines = ["\t".join(header for header, _ in columns)]
    lines += ["\t".join(_cell(row.get(key)) for _, key in columns) for row in rows]
    return tabwrite("".join(line + "\n" for line in lines))


def _cell(value: Any) -> str:
    return "" if value is None else gotemplate.format_value(value)


def _sorted_top(row: Any) -> Any:
    return dict(sorted(row.items())) if isinstance(row, Mapping) else row


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------------------
# Go's text/tabwriter (docker's fork: East Asian wide characters count two columns)
# ---------------------------------------------------------------------------------------------------------


def tabwrite(text: str, *, minwidth: int = 10, padding: int = 3) -> str:
    """Align TAB-terminated cells as Go's tabwriter with padchar ' ' and no flags.

    A column block is a run of consecutive lines that have a TAB-terminated cell in that column;
    its width is max(minwidth, widest cell + padding). The last cell of each line is not padded.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    _format_block(lines, 0, len(lines), [], out, minwidth, padding)
    return "\n".join(out)


def _format_block(lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str],
                  minwidth: int, padding: int) -> None:
    """Go's Writer.format: fix the width of column len(widths) block by block, recursively."""
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _write_lines(lines, line0, this, widths, out)
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, display_width(lines[this][column]) + padding)
            this += 1
        _format_block(lines, line0, this, [*widths, width], out, minwidth, padding)
        line0 = this
    _write_lines(lines, line0, line1, widths, out)


def _write_lines(lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str]) -> None:
    for cells in lines[line0:line1]:
        text = []
        for j, cell in enumerate(cells):
            text.append(cell)
            if j < len(widths) and j < len(cells) - 1:
                text.append(" " * (widths[j] - display_width(cell)))
        out.append("".join(text))


def display_width(s: str) -> int:
    """Terminal columns of `s` (go-runewidth): wide/fullwidth characters 2, combining marks 0."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in s)


def ellipsis(s: str, max_width: int) -> str:
    """docker's formatter.Ellipsis: `s` if it fits in `max_width` columns, else cut and end with "…"."""
    if display_width(s) <= max_width:
        return s
    out, width = "", 0
    for c in s:
        width += display_width(c)
        if width > max_width - 1:
            break
        out += c
    return out + "…"


def to_epoch(ts: float | datetime | str) -> float:
    """Seconds since the epoch of a Unix time, an aware datetime or an RFC 3339 string
    (nanosecond fractions and a trailing ``Z`` accepted, as docker writes them)."""
    if isinstance(ts, datetime):
        return ts.timestamp()
    if isinstance(ts, str):
        return _parse_rfc3339(ts)
    return float(ts)


_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?$")


def _parse_rfc3339(s: str) -> float:
    m = _RFC3339.match(s)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {s!r}")
    base, fraction, zone = m.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(base + zone).timestamp() + (float("0." + fraction) if fraction else 0.0)


def time_ago(ts: float | datetime | str, now: float | None = None) -> str:
    """docker's ``RunningFor``/``CreatedSince``: ``HumanDuration(now - ts) + " ago"``."""
    current = time.time() if now is None else now
    return human_duration(current - to_epoch(ts)) + " ago"


def created_at(ts: float | datetime | str) -> str:
    """docker's ``CreatedAt``: Go's ``time.Unix(ts).String()`` in local time:
    ``2024-01-02 15:04:05 +0100 CET``."""
    local = datetime.fromtimestamp(int(to_epoch(ts))).astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S %z ") + (local.tzname() or "")


# ---------------------------------------------------------------------------------------------------------
# version and info
# ---------------------------------------------------------------------------------------------------------


def version_text(report: Mapping[str, Any]) -> str:
    """`docker version`'s layout (tabwriter minwidth 20, padding 1) for `engine.system.version_report()`:
    a Client: block, then a Server: block with the engine's details and one entry per component."""
    lines = _version_client(report["Client"])
    server = report.get("Server")
    if server:
        lines += ["", *_version_server(server)]
    return tabwrite("\n".join(lines), minwidth=20, padding=1)


def _platform_suffix(section: Mapping[str, Any]) -> str:
    name = (section.get("Platform") or {}).get("Name", "")
    return f" {name}" if name else ""


def _version_client(client: Mapping[str, Any]) -> list[str]:
    api = client.get("APIVersion", "")
    default_api = client.get("DefaultAPIVersion", api)
    downgraded = f" (downgraded from {default_api})" if api != default_api else ""
    return [
        "Client:" + _platform_suffix(client),
        f" Version:\t{client.get('Version', '')}",
        f" API version:\t{api}{downgraded}",
        f" Go version:\t{client.get('GoVersion', '')}",
        f" Git commit:\t{client.get('GitCommit', '')}",
        f" Built:\t{client.get('BuildTime', '')}",
        f" OS/Arch:\t{client.get('Os', '')}/{client.get('Arch', '')}",
        f" Context:\t{client.get('Context', '')}",
    ]


def _version_server(server: Mapping[str, Any]) -> list[str]:
    lines = [
        "Server:" + _platform_suffix(server),
        " Engine:",
        f"  Version:\t{server.get('Version', '')}",
        f"  API version:\t{server.get('APIVersion', '')} (minimum version {server.get('MinAPIVersion', '')})",
        f"  Go version:\t{server.get('GoVersion', '')}",
        f"  Git commit:\t{server.get('GitCommit', '')}",
        f"  Built:\t{server.get('BuildTime', '')}",
        f"  OS/Arch:\t{server.get('Os', '')}/{server.get('Arch', '')}",
        f"  Experimental:\t{gotemplate.format_value(bool(server.get('Experimental')))}",
    ]
    for component in server.get("Components") or []:
        lines += [f" {component['Name']}:", f"  Version:\t{component.get('Version', '')}"]
        details = component.get("Details") or {}
        lines += [f"  {key}:\t{details[key]}" for key in sorted(details)]
    return lines


def info_text(report: Mapping[str, Any]) -> str:
    """`docker info`'s layout for `engine.system.info_report()`: Client: and Server: sections,
    one `` Key: value`` line per field, lists indented below their title."""
    lines = [
        "Client:",
        f" Version:    {report.get('ServerVersion', '')}",
        " Context:    default",
        " Debug Mode: false",
        "",
        "Server:",
        f" Containers: {report.get('Containers', 0)}",
        f"  Running: {report.get('ContainersRunning', 0)}",
        f"  Paused: {report.get('ContainersPaused', 0)}",
        f"  Stopped: {report.get('ContainersStopped', 0)}",
        f" Images: {report.get('Images', 0)}",
        f" Server Version: {report.get('ServerVersion', '')}",
        f" Storage Driver: {report.get('Driver', '')}",
        f" Runtimes: {' '.join(sorted(report.get('Runtimes') or {}))}",
        f" Default Runtime: {report.get('DefaultRuntime', '')}",
        *_info_list("Security Options", report.get("SecurityOptions")),
        f" Kernel Version: {report.get('KernelVersion', '')}",
        f" Operating System: {report.get('OperatingSystem', '')}",
        f" OSType: {report.get('OSType', '')}",
        f" Architecture: {report.get('Architecture', '')}",
        f" CPUs: {report.get('NCPU', '')}",
        f" Total Memory: {bytes_size(report.get('MemTotal', 0))}",
        f" Name: {report.get('Name', '')}",
        f" ID: {report.get('ID', '')}",
        f" Docker Root Dir: {report.get('DockerRootDir', '')}",
        " Debug Mode: false",
        " Experimental: false",
    ]
    registry = report.get("RegistryConfig") or {}
    lines += _info_list("Insecure Registries", registry.get("InsecureRegistryCIDRs"))
    lines += _info_list("Registry Mirrors", registry.get("Mirrors"))
    lines.append(" Live Restore Enabled: false")
    lines += _info_mapping("Katadocker", report.get("Katadocker"), indent=1)
    return "\n".join(lines) + "\n"


def _info_list(title: str, items: Sequence[Any] | None) -> list[str]:
    """A title line and its items indented below it; nothing when there are no items."""
    if not items:
        return []
    return [f" {title}:", *(f"  {item}" for item in items)]


def _info_mapping(title: str, mapping: Mapping[str, Any] | None, indent: int) -> list[str]:
    """A title and its `key: value` lines, nested mappings indented one more step."""
    if not mapping:
        return []
    pad = " " * indent
    lines = [f"{pad}{title}:"]
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            lines += _info_mapping(key, value, indent + 1)
        else:
            lines.append(f"{pad} {key}: {gotemplate.format_value(value)}")
    return lines
