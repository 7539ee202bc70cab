"""The acceptance suite's snippets: docker shell one-liners as READMEs, CI files and tutorials write
them, each checking what a script would parse (IDs, `ps -q`, `--format` output, `inspect -f`, exit
codes, stderr texts).

Each runs in bash through harness.sh with `docker` aliased to the implementation under test and
`$BUSYBOX` (an image reference), `$REG` (the test registry's host:port) set; helpers `fail`,
`expect_eq ACTUAL EXPECTED`, `expect_re REGEX ACTUAL`, `expect_in NEEDLE TEXT` (case-insensitive).
Containers and networks a snippet makes are named ``compat-…`` (the driver removes leftovers).
`VM` marks the snippets that start a container (they boot a VM under katadocker).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Snippet:
    name: str
    script: str
    vm: bool = False


SNIPPETS: tuple[Snippet, ...] = (
    # ---- images -------------------------------------------------------------------------------
    Snippet("pull_quiet_prints_reference", """
out=$(docker pull -q "$BUSYBOX") || fail "pull failed"
expect_eq "$(echo "$out" | tail -n1)" "$BUSYBOX" "last line of pull -q"
"""),
    Snippet("pull_missing_repository_fails", """
err=$(docker pull "$REG/nosuch/thing" 2>&1 >/dev/null); rc=$?
expect_eq "$rc" 1 "exit code"
expect_in "nosuch/thing" "$err"
"""),
    Snippet("images_format_repository_tag", """
docker pull -q "$BUSYBOX" >/dev/null
docker images --format '{{.Repository}}:{{.Tag}}' | grep -qx "$BUSYBOX" || fail "$BUSYBOX not listed"
"""),
    Snippet("images_quiet_is_short_id", """
docker pull -q "$BUSYBOX" >/dev/null
expect_re '[0-9a-f]{12}' "$(docker images -q "$BUSYBOX" | head -n1)" "images -q"
"""),
    Snippet("image_inspect_os_arch", """
docker pull -q "$BUSYBOX" >/dev/null
expect_eq "$(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$BUSYBOX")" "linux/amd64"
"""),
    Snippet("tag_then_rmi_untags", """
docker pull -q "$BUSYBOX" >/dev/null
docker tag "$BUSYBOX" compat-tag/bb:v1 || fail "tag failed"
[ -n "$(docker images -q compat-tag/bb:v1)" ] || fail "tag not listed"
expect_in "Untagged:" "$(docker rmi compat-tag/bb:v1)"
"""),
    Snippet("rmi_missing_image", """
err=$(docker rmi compat-nosuch:1 2>&1); rc=$?
expect_eq "$rc" 1 "exit code"
expect_in "No such image" "$err"
"""),
    # ---- errors and global behaviour ------------------------------------------------------------
    Snippet("inspect_missing_object", """
out=$(docker inspect compat-nosuch 2>/tmp/compat-err.$$); rc=$?
err=$(cat /tmp/compat-err.$$); rm -f /tmp/compat-err.$$
expect_eq "$rc" 1 "exit code"
expect_eq "$out" "[]" "stdout"
expect_in "no such object" "$err"
"""),
    Snippet("unknown_flag_is_125", """
docker run --compat-nosuch-flag "$BUSYBOX" true 2>/dev/null; rc=$?
expect_eq "$rc" 125 "exit code"
"""),
    Snippet("invalid_reference_format", """
err=$(docker pull 'busybox@foo' 2>&1); rc=$?
[ "$rc" -ne 0 ] || fail "pull of a bad reference succeeded"
expect_in "invalid reference format" "$err"
"""),
    Snippet("version_format_fields", """
[ -n "$(docker version --format '{{.Client.Version}}')" ] || fail "no client version"
expect_eq "$(docker version --format '{{.Server.Os}}')" linux
"""),
    Snippet("info_format_fields", """
expect_eq "$(docker info --format '{{.OSType}}')" linux
expect_re '[0-9]+' "$(docker info --format '{{.NCPU}}')" "NCPU"
"""),
    Snippet("system_df_types", """
types=$(docker system df --format '{{.Type}}' | head -n3 | tr '\\n' ,)
expect_eq "$types" "Images,Containers,Local Volumes,"
"""),
    # ---- containers without starting them -------------------------------------------------------
    Snippet("create_prints_id_and_is_created", """
cid=$(docker create --name compat-created "$BUSYBOX" true) || fail "create failed"
expect_re '[0-9a-f]{64}' "$cid" "create output"
expect_eq "$(docker inspect -f '{{.State.Status}}' "$cid")" created
expect_eq "$(docker rm compat-created)" compat-created "rm echo"
"""),
    Snippet("create_name_conflict", """
docker create --name compat-dup "$BUSYBOX" true >/dev/null || fail "first create failed"
err=$(docker create --name compat-dup "$BUSYBOX" true 2>&1); rc=$?
docker rm compat-dup >/dev/null
expect_eq "$rc" 125 "exit code"
expect_in "already in use" "$err"
"""),
    Snippet("ps_filter_name_format_id", """
cid=$(docker create --name compat-psf "$BUSYBOX" true)
expect_eq "$(docker ps -a --filter name=compat-psf --format '{{.ID}}')" "${cid:0:12}"
expect_eq "$(docker ps -aq --no-trunc --filter name=compat-psf)" "$cid"
docker rm compat-psf >/dev/null
"""),
    Snippet("ps_label_filter_names", """
docker create --name compat-lbl --label app=compat "$BUSYBOX" true >/dev/null
expect_eq "$(docker ps -a --filter label=app=compat --format '{{.Names}}')" compat-lbl
expect_eq "$(docker inspect -f '{{index .Config.Labels "app"}}' compat-lbl)" compat
docker rm compat-lbl >/dev/null
"""),
    Snippet("ps_header_when_empty", """
expect_eq "$(docker ps --filter name=compat-nothing-here | head -n1 | awk '{print $1, $2}')" "CONTAINER ID"
"""),
    Snippet("inspect_config_env", """
docker create --name compat-env -e FOO=bar "$BUSYBOX" true >/dev/null
docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' compat-env | grep -qx FOO=bar \\
    || fail "FOO missing"
docker rm compat-env >/dev/null
"""),
    Snippet("rename_then_inspect_name", """
docker create --name compat-old "$BUSYBOX" true >/dev/null
docker rename compat-old compat-new || fail "rename failed"
expect_eq "$(docker inspect -f '{{.Name}}' compat-new)" /compat-new
docker rm compat-new >/dev/null
"""),
    Snippet("rm_missing_container", """
err=$(docker rm compat-nosuch 2>&1); rc=$?
expect_eq "$rc" 1 "exit code"
expect_in "No such container: compat-nosuch" "$err"
"""),
    Snippet("rm_force_missing_is_ok", """
docker rm -f compat-nosuch; rc=$?
expect_eq "$rc" 0 "exit code"
"""),
    Snippet("logs_missing_container", """
err=$(docker logs compat-nosuch 2>&1); rc=$?
expect_eq "$rc" 1 "exit code"
expect_in "No such container" "$err"
"""),
    Snippet("container_prune_force", """
docker create --name compat-prune "$BUSYBOX" true >/dev/null
out=$(docker container prune -f)
expect_in "Total reclaimed space:" "$(echo "$out" | tail -n1)"
[ -z "$(docker ps -aq --filter name=compat-prune)" ] || fail "compat-prune survived"
"""),
    Snippet("events_since_until", """
t0=$(date +%s)
docker create --name compat-ev "$BUSYBOX" true >/dev/null
docker rm compat-ev >/dev/null
sleep 1
acts=$(docker events --since "$t0" --until "$(date +%s)" --filter container=compat-ev --format '{{.Action}}')
expect_eq "$(echo $acts)" "create destroy" "actions"
"""),
    Snippet("network_create_inspect_rm", """
docker network create compat-net >/dev/null || fail "network create failed"
expect_eq "$(docker network inspect -f '{{.Name}}' compat-net)" compat-net
docker network ls --format '{{.Name}}' | grep -qx compat-net || fail "not listed"
expect_eq "$(docker network rm compat-net)" compat-net
"""),
    # ---- running containers (VMs under katadocker) ----------------------------------------------
    Snippet("run_exit_code", """
docker run --rm "$BUSYBOX" sh -c 'exit 3'; rc=$?
expect_eq "$rc" 3 "exit code"
""", vm=True),
    Snippet("run_stdout_and_stderr_separate", """
out=$(docker run --rm "$BUSYBOX" sh -c 'echo out; echo err >&2' 2>/dev/null)
expect_eq "$out" out "stdout"
""", vm=True),
    Snippet("run_env_and_workdir", """
expect_eq "$(docker run --rm -e FOO=bar -w /tmp "$BUSYBOX" sh -c 'echo $FOO $(pwd)')" "bar /tmp"
""", vm=True),
    Snippet("run_stdin_pipe", """
expect_eq "$(echo hello | docker run --rm -i "$BUSYBOX" cat)" hello
""", vm=True),
    Snippet("run_command_not_found_127", """
docker run --rm "$BUSYBOX" compat-nosuchcmd 2>/dev/null; rc=$?
expect_eq "$rc" 127 "exit code"
""", vm=True),
    Snippet("run_not_executable_126", """
docker run --rm "$BUSYBOX" /etc 2>/dev/null; rc=$?
expect_eq "$rc" 126 "exit code"
""", vm=True),
    Snippet("run_detached_then_inspect_and_rm", """
cid=$(docker run -d --name compat-d "$BUSYBOX" sleep 300) || fail "run -d failed"
expect_re '[0-9a-f]{64}' "$cid" "run -d output"
expect_eq "$(docker inspect -f '{{.State.Running}}' "$cid")" true
expect_eq "$(docker ps -q --filter name=compat-d)" "${cid:0:12}" "ps -q"
expect_in "Up " "$(docker ps --filter name=compat-d --format '{{.Status}}')"
expect_eq "$(docker rm -f compat-d)" compat-d "rm -f echo"
""", vm=True),
    Snippet("run_name_conflict_125", """
docker run -d --name compat-x "$BUSYBOX" sleep 300 >/dev/null || fail "first run failed"
err=$(docker run -d --name compat-x "$BUSYBOX" sleep 300 2>&1); rc=$?
docker rm -f compat-x >/dev/null
expect_eq "$rc" 125 "exit code"
expect_in "is already in use" "$err"
""", vm=True),
    Snippet("logs_tail_and_wait", """
cid=$(docker run -d --name compat-logs "$BUSYBOX" sh -c 'echo one; echo two; exit 7')
expect_eq "$(docker wait "$cid")" 7 "wait"
expect_eq "$(docker logs --tail 1 compat-logs)" two "logs --tail 1"
expect_eq "$(docker inspect -f '{{.State.ExitCode}}' compat-logs)" 7
docker rm compat-logs >/dev/null
""", vm=True),
    Snippet("stop_without_handler_is_137", """
docker run -d --name compat-stop "$BUSYBOX" sleep 300 >/dev/null
expect_eq "$(docker stop -t 1 compat-stop)" compat-stop "stop echo"
expect_eq "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' compat-stop)" "exited 137"
docker rm compat-stop >/dev/null
""", vm=True),
    Snippet("rm_f_all_ps_aq", """
docker run -d --name compat-all1 "$BUSYBOX" sleep 300 >/dev/null
docker create --name compat-all2 "$BUSYBOX" true >/dev/null
docker rm -f $(docker ps -aq --filter name=compat-all) >/dev/null
expect_eq "$(docker ps -aq --filter name=compat-all)" "" "leftovers"
""", vm=True),
    Snippet("events_die_exit_code", """
t0=$(date +%s)
docker run --rm --name compat-die "$BUSYBOX" sh -c 'exit 4'
sleep 1
code=$(docker events --since "$t0" --until "$(date +%s)" --filter event=die --filter container=compat-die \\
       --format '{{.Actor.Attributes.exitCode}}')
expect_eq "$code" 4 "die exitCode"
""", vm=True),
)
