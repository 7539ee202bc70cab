"""Output helpers: docker's formatter goldens, tabwriter layout, go-units sizes and durations."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from katadocker.cli import render
from katadocker.cli.gotemplate import TemplateError
from katadocker.engine.system import version_report

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED",
              "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "Size": "SIZE"}
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_ROW = {"ID": "containerID1", "Image": "ubuntu", "Command": '""', "RunningFor": "24 hours ago",
          "Status": "", "Ports": "", "Names": "foobar_baz"}
IMAGES_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
                  "Size": "SIZE"}
IMAGES_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t"
                "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}")


def test_ps_default_table_golden() -> None:
    # cli/command/formatter/container_test.go
    assert render.format_list(None, [PS_ROW], PS_HEADERS, PS_TABLE) == (
        "CONTAINER ID   IMAGE     COMMAND   CREATED        STATUS    PORTS     NAMES\n"
        'containerID1   ubuntu    ""        24 hours ago                       foobar_baz\n')


def test_images_default_table_golden() -> None:
    # cli/command/formatter/image_test.go
    rows = [{"Repository": "image", "Tag": "tag1", "ID": "imageID1", "CreatedSince": "24 hours ago",
             "Size": "0B"},
            {"Repository": "<none>", "Tag": "<none>", "ID": "imageID3", "CreatedSince": "24 hours ago",
             "Size": "0B"}]
    assert render.format_list("table", rows, IMAGES_HEADERS, IMAGES_TABLE) == (
        "REPOSITORY   TAG       IMAGE ID   CREATED        SIZE\n"
        "image        tag1      imageID1   24 hours ago   0B\n"
        "<none>       <none>    imageID3   24 hours ago   0B\n")


def test_empty_list_prints_only_the_header() -> None:
    assert render.format_list(None, [], PS_HEADERS, PS_TABLE) == (
        "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n")


def test_custom_table_template_with_escapes_and_header_functions() -> None:
    rows = [{"ID": "abc", "Names": "web"}, {"ID": "defghi", "Names": "db"}]
    fmt = "table {{.ID}}\\t{{upper .Names}}"
    assert render.format_list(fmt, rows, PS_HEADERS, PS_TABLE) == (
        "CONTAINER ID   NAMES\n"
        "abc            WEB\n"
        "defghi         DB\n")


def test_plain_template_one_line_per_row() -> None:
    rows = [{"ID": "a", "Names": "x"}, {"ID": "b", "Names": "y"}]
    assert render.format_list("{{.ID}}: {{.Names}}", rows, PS_HEADERS, PS_TABLE) == "a: x\nb: y\n"
    assert render.format_list("  {{.ID}}\\n ", rows[:1], PS_HEADERS, PS_TABLE) == "a\n\n"


def test_json_format_is_ndjson_sorted_and_html_escaped() -> None:
    rows = [{"Ports": "0.0.0.0:8080->80/tcp", "ID": "a", "Command": '"top"'},
            {"ID": "b", "Ports": "", "Command": ""}]
    assert render.format_list("json", rows, PS_HEADERS, PS_TABLE) == (
        '{"Command":"\\"top\\"","ID":"a","Ports":"0.0.0.0:8080-\\u003e80/tcp"}\n'
        '{"Command":"","ID":"b","Ports":""}\n')


def test_row_template_errors_are_reported_as_docker_does() -> None:
    with pytest.raises(TemplateError) as exc:
        render.format_list("{{.Nope}}", [{"ID": "a"}], PS_HEADERS, PS_TABLE)
    assert exc.value.message == ('template parsing error: template: :1:2: executing "" at <.Nope>: '
                                 'map has no entry for key "Nope"')
    with pytest.raises(TemplateError, match="^template parsing error: template: :1: unclosed action$"):
        render.format_list("{{.ID", [{"ID": "a"}], PS_HEADERS, PS_TABLE)


def test_print_list_writes_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    render.print_list("{{.ID}}", [{"ID": "a"}], PS_HEADERS, PS_TABLE)
    assert capsys.readouterr().out == "a\n"


def test_expand_format() -> None:
    assert render.expand_format("table {{.ID}}\\t{{.Names}}") == (True, "{{.ID}}\t{{.Names}}")
    assert render.expand_format(" {{.ID}}\\n") == (False, "{{.ID}}\n")


def test_table_from_columns() -> None:
    rows = [{"NAME": "bridge", "DRIVER": "bridge", "SCOPE": "local", "ID": "0123456789ab"},
            {"NAME": "a-much-longer-name", "DRIVER": "bridge", "SCOPE": None, "ID": "ba9876543210"}]
    columns = [("NETWORK ID", "ID"), ("NAME", "NAME"), ("DRIVER", "DRIVER"), ("SCOPE", "SCOPE")]
    assert render.table(rows, columns) == (
        "NETWORK ID     NAME                 DRIVER    SCOPE\n"
        "0123456789ab   bridge               bridge    local\n"
        "ba9876543210   a-much-longer-name   bridge    \n")


@pytest.mark.parametrize(("text", "expected"), [
    ("a\tb\tc\n", "a         b         c\n"),
    ("a\tb\n\nlonger-than-ten\tx\n", "a         b\n\nlonger-than-ten   x\n"),
    ("no tabs here\n", "no tabs here\n"),
    ("a\tb\tc\nxx\n" "yyyyyyyyyyyy\tz\n", "a         b         c\nxx\nyyyyyyyyyyyy   z\n"),
    ("a\t\tc\n", "a                   c\n"),
    ("名前\tx\n", "名前      x\n"),
    ("a\tb\nccccccccccccc\n", "a         b\nccccccccccccc\n"),
])
def test_tabwrite(text: str, expected: str) -> None:
    assert render.tabwrite(text) == expected


def test_tabwrite_column_blocks_are_independent() -> None:
    # A line with fewer cells ends the block of the columns it lacks (Go's tabwriter).
    text = "a\tb\tc\nloooooooooong\tb\nx\tyyyyyyyyyyyyyy\tz\n"
    assert render.tabwrite(text) == (
        "a               b         c\n"
        "loooooooooong   b\n"
        "x               yyyyyyyyyyyyyy   z\n")


def test_tabwrite_version_settings() -> None:
    assert render.tabwrite(" Version:\t1\n", minwidth=20, padding=1) == " Version:           1\n"


@pytest.mark.parametrize(("s", "width", "expected"), [
    ("/docker-entrypoint.sh nginx -g 'daemon off;'", 20, "/docker-entrypoint.…"),
    ("short", 20, "short"),
    ("exactly-twenty-chars", 20, "exactly-twenty-chars"),
    ("日本語の文字列です", 10, "日本語の…"),
])
def test_ellipsis(s: str, width: int, expected: str) -> None:
    assert render.ellipsis(s, width) == expected


@pytest.mark.parametrize(("n", "expected"), [
    (0, "0B"), (1, "1B"), (999, "999B"), (1000, "1kB"), (1024, "1.02kB"), (1234, "1.23kB"),
    (72_900_000, "72.9MB"), (187_000_000, "187MB"), (1_048_576, "1.05MB"), (3.42e9, "3.42GB"),
    (5.372e12, "5.37TB"), (999_950, "1e+03kB"),
])
def test_human_size(n: float, expected: str) -> None:
    assert render.human_size(n) == expected


@pytest.mark.parametrize(("n", "expected"), [
    (0, "0B"), (1024, "1KiB"), (8_335_450_112, "7.763GiB"), (1_048_576 * 1.5, "1.5MiB"),
])
def test_bytes_size(n: float, expected: str) -> None:
    assert render.bytes_size(n) == expected


MINUTE, HOUR, DAY = 60, 3600, 86400
WEEK, MONTH, YEAR = 7 * DAY, 30 * DAY, 365 * DAY


@pytest.mark.parametrize(("seconds", "expected"), [
    # go-units duration_test.go
    (0.45, "Less than a second"), (1, "1 second"), (45, "45 seconds"), (59, "59 seconds"),
    (60, "About a minute"), (119, "About a minute"), (3 * MINUTE, "3 minutes"),
    (35 * MINUTE + 40, "35 minutes"),
    (59 * MINUTE + 59, "59 minutes"), (HOUR, "About an hour"), (HOUR + 29 * MINUTE, "About an hour"),
    (HOUR + 30 * MINUTE, "2 hours"), (3 * HOUR, "3 hours"), (3 * HOUR + 50 * MINUTE, "4 hours"),
    (47 * HOUR, "47 hours"), (48 * HOUR, "2 days"), (7 * DAY, "7 days"), (13 * DAY + 5 * HOUR, "13 days"),
    (2 * WEEK, "2 weeks"), (2 * WEEK + 4 * DAY, "2 weeks"), (4 * WEEK + 3 * DAY, "4 weeks"),
    (MONTH, "4 weeks"),
    (MONTH + 2 * WEEK, "6 weeks"), (2 * MONTH, "2 months"), (3 * MONTH + WEEK, "3 months"),
    (23 * MONTH, "23 months"), (24 * MONTH, "24 months"), (24 * MONTH + 2 * WEEK, "2 years"),
    (3 * YEAR + 2 * MONTH, "3 years"),
])
def test_human_duration(seconds: float, expected: str) -> None:
    assert render.human_duration(seconds) == expected


def test_time_ago_accepts_epochs_datetimes_and_rfc3339() -> None:
    now = datetime(2024, 1, 2, 15, 0, 0, tzinfo=UTC).timestamp()
    assert render.time_ago(now - 2, now=now) == "2 seconds ago"
    assert render.time_ago(datetime(2024, 1, 2, 14, 58, 30, tzinfo=UTC), now=now) == "About a minute ago"
    assert render.time_ago("2024-01-02T12:00:00.123456789Z", now=now) == "3 hours ago"
    assert render.time_ago("2024-01-02T13:00:00+01:00", now=now) == "3 hours ago"
    assert render.time_ago("2023-12-19T15:00:00Z", now=now) == "2 weeks ago"
    assert render.time_ago(time.time()) == "Less than a second ago"
    with pytest.raises(ValueError):
        render.to_epoch("yesterday")


def test_created_at_is_go_time_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert render.created_at(1704204245) == "2024-01-02 15:04:05 +0100 CET"
        assert render.created_at("2024-07-01T10:00:00Z") == "2024-07-01 12:00:00 +0200 CEST"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_template_or_text(capsys: pytest.CaptureFixture[str]) -> None:
    data = {"Server": {"Version": "28.2.2", "Os": "linux", "Arch": "amd64"}, "Html": "a<b"}
    render.template_or_text(None, data, lambda d: "text for " + d["Server"]["Version"])
    render.template_or_text("json", data, str)
    render.template_or_text("{{.Server.Os}}/{{.Server.Arch}}", data, str)
    render.template_or_text("{{json .Server}}", data, str)
    assert capsys.readouterr().out == (
        "text for 28.2.2\n"
        '{"Server":{"Version":"28.2.2","Os":"linux","Arch":"amd64"},"Html":"a<b"}\n'
        "linux/amd64\n"
        '{"Version":"28.2.2","Os":"linux","Arch":"amd64"}\n')
    with pytest.raises(TemplateError, match='map has no entry for key "Nope"'):
        render.template_or_text("{{.Server.Nope}}", data, str)


def test_format_json() -> None:
    assert render.format_json({"a": "<x>"}) == '{"a":"<x>"}'
    assert render.format_json({"a": "<x>"}, escape_html=True) == '{"a":"\\u003cx\\u003e"}'


def test_version_text_layout() -> None:
    report = version_report()
    text = render.version_text(report)
    lines = text.splitlines()
    assert lines[0] == "Client: katadocker"
    assert lines[1] == f" Version:           {report['Client']['Version']}"
    assert lines[2] == f" API version:       {report['Client']['APIVersion']}"
    assert lines[6] == f" OS/Arch:           linux/{report['Client']['Arch']}"
    assert lines[7] == " Context:           default"
    assert lines[8] == ""
    assert lines[9] == "Server: katadocker"
    assert lines[10] == " Engine:"
    assert lines[12] == (f"  API version:      {report['Server']['APIVersion']} "
                         f"(minimum version {report['Server']['MinAPIVersion']})")
    component = report["Server"]["Components"][0]
    assert lines[-2:] == [" katadocker:", f"  Version:          {component['Version']}"]


def test_version_text_downgraded_api_and_component_details() -> None:
    report = {"Client": {"Version": "1", "APIVersion": "1.40", "DefaultAPIVersion": "1.50", "Os": "linux",
                         "Arch": "arm64", "Context": "default"},
              "Server": {"Version": "2", "Components": [{"Name": "runc", "Version": "1.1",
                                                        "Details": {"GitCommit": "abc"}}]}}
    text = render.version_text(report)
    assert " API version:       1.40 (downgraded from 1.50)" in text.splitlines()
    assert text.endswith(" runc:\n  Version:          1.1\n  GitCommit:        abc")


def test_info_text_layout() -> None:
    report = {"ID": "", "Containers": 3, "ContainersRunning": 1, "ContainersPaused": 0,
              "ContainersStopped": 2, "Images": 4, "Driver": "overlay2",
              "DockerRootDir": "/var/lib/katadocker", "ServerVersion": "28.2.2",
              "OperatingSystem": "Debian GNU/Linux 12 (bookworm)", "OSType": "linux",
              "Architecture": "x86_64",
              "KernelVersion": "6.1.0", "NCPU": 2, "MemTotal": 8_335_450_112, "Name": "host",
              "SecurityOptions": ["name=vm"],
              "RegistryConfig": {"Mirrors": [], "InsecureRegistryCIDRs": ["127.0.0.0/8"]},
              "Runtimes": {"katadocker": {"path": "qemu-system-x86_64"}}, "DefaultRuntime": "katadocker",
              "Katadocker": {"Accelerator": "tcg", "Kernel": {"Path": "/k", "Built": True}}}
    text = render.info_text(report)
    for line in ["Server:", " Containers: 3", "  Running: 1", "  Paused: 0", "  Stopped: 2", " Images: 4",
                 " Server Version: 28.2.2", " Storage Driver: overlay2", " Runtimes: katadocker",
                 " Security Options:", "  name=vm", " Kernel Version: 6.1.0", " OSType: linux",
                 " Architecture: x86_64", " CPUs: 2", " Total Memory: 7.763GiB", " Name: host",
                 " Docker Root Dir: /var/lib/katadocker", " Insecure Registries:", "  127.0.0.0/8",
                 " Katadocker:", "  Accelerator: tcg", "  Kernel:", "   Path: /k", "   Built: true"]:
        assert line in text.splitlines()
    assert " Registry Mirrors:" not in text
    assert text.endswith("\n")
