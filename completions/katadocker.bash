# katadocker completion for bash: commands, subcommands, flags, and the names of live containers,
# images, networks and volumes. Generated from the CLI definition by scripts/gen-completions (or
# `katadocker completion bash`): do not edit.

# Set __katadocker_reply to the completion data for key $1 (see katadocker/cli/completion.py).
__katadocker_spec() {
    case "$1" in
        ('sub katadocker') __katadocker_reply=(attach completion container cp create diff events exec export history image images info inspect kill load login logout logs network pause port ps pull rename restart rm rmi run save start stats stop system tag top unpause version volume wait) ;;
        ('flags katadocker') __katadocker_reply=(--config --debug --help --log-level --root --version -D -l -v) ;;
        ('vflags katadocker') __katadocker_reply=(--config --log-level --root -l) ;;
        ('opt katadocker --config') __katadocker_reply=(@file) ;;
        ('opt katadocker --root') __katadocker_reply=(@file) ;;
        ('flags katadocker attach') __katadocker_reply=(--detach-keys --help --no-stdin --sig-proxy) ;;
        ('vflags katadocker attach') __katadocker_reply=(--detach-keys) ;;
        ('args katadocker attach') __katadocker_reply=(@container) ;;
        ('flags katadocker completion') __katadocker_reply=(--help) ;;
        ('args katadocker completion') __katadocker_reply=(bash,fish,zsh) ;;
        ('sub katadocker container') __katadocker_reply=(attach cp create diff exec export inspect kill list logs ls pause port prune ps remove rename restart rm run start stats stop top unpause wait) ;;
        ('flags katadocker container') __katadocker_reply=(--help) ;;
        ('flags katadocker container attach') __katadocker_reply=(--detach-keys --help --no-stdin --sig-proxy) ;;
        ('vflags katadocker container attach') __katadocker_reply=(--detach-keys) ;;
        ('args katadocker container attach') __katadocker_reply=(@container) ;;
        ('flags katadocker container cp') __katadocker_reply=(--archive --follow-link --help --quiet -L -a -q) ;;
        ('args katadocker container cp') __katadocker_reply=(@container @none) ;;
        ('flags katadocker container create') __katadocker_reply=(--add-host --attach --cpus --dns --dns-opt --dns-option --dns-search --entrypoint --env --env-file --help --hostname --init --interactive --ip --label --label-file --mac-address --memory --mount --name --net --net-alias --network --network-alias --platform --publish --publish-all --pull --quiet --read-only --rm --stop-signal --stop-timeout --tmpfs --tty --user --volume --volumes-from --workdir -P -a -e -h -i -l -m -p -q -t -u -v -w) ;;
        ('vflags katadocker container create') __katadocker_reply=(--add-host --attach --cpus --dns --dns-opt --dns-option --dns-search --entrypoint --env --env-file --hostname --ip --label --label-file --mac-address --memory --mount --name --net --net-alias --network --network-alias --platform --publish --pull --stop-signal --stop-timeout --tmpfs --user --volume --volumes-from --workdir -a -e -h -l -m -p -u -v -w) ;;
        ('args katadocker container create') __katadocker_reply=(@image) ;;
        ('rest katadocker container create') __katadocker_reply=(@none) ;;
        ('stop katadocker container create') __katadocker_reply=(1) ;;
        ('opt katadocker container create --env-file') __katadocker_reply=(@file) ;;
        ('opt katadocker container create --label-file') __katadocker_reply=(@file) ;;
        ('opt katadocker container create --net') __katadocker_reply=(@network) ;;
        ('opt katadocker container create --network') __katadocker_reply=(@network) ;;
        ('opt katadocker container create --volumes-from') __katadocker_reply=(@container) ;;
        ('flags katadocker container diff') __katadocker_reply=(--help) ;;
        ('args katadocker container diff') __katadocker_reply=(@container) ;;
        ('flags katadocker container exec') __katadocker_reply=(--detach --detach-keys --env --env-file --help --interactive --privileged --tty --user --workdir -d -e -i -t -u -w) ;;
        ('vflags katadocker container exec') __katadocker_reply=(--detach-keys --env --env-file --user --workdir -e -u -w) ;;
        ('args katadocker container exec') __katadocker_reply=(@container) ;;
        ('rest katadocker container exec') __katadocker_reply=(@none) ;;
        ('stop katadocker container exec') __katadocker_reply=(1) ;;
        ('opt katadocker container exec --env-file') __katadocker_reply=(@file) ;;
        ('flags katadocker container export') __katadocker_reply=(--help --output -o) ;;
        ('vflags katadocker container export') __katadocker_reply=(--output -o) ;;
        ('args katadocker container export') __katadocker_reply=(@container) ;;
        ('opt katadocker container export --output') __katadocker_reply=(@file) ;;
        ('opt katadocker container export -o') __katadocker_reply=(@file) ;;
        ('flags katadocker container inspect') __katadocker_reply=(--format --help --size -f -s) ;;
        ('vflags katadocker container inspect') __katadocker_reply=(--format -f) ;;
        ('rest katadocker container inspect') __katadocker_reply=(@container) ;;
        ('flags katadocker container kill') __katadocker_reply=(--help --signal -s) ;;
        ('vflags katadocker container kill') __katadocker_reply=(--signal -s) ;;
        ('rest katadocker container kill') __katadocker_reply=(@container) ;;
        ('flags katadocker container list') __katadocker_reply=(--all --filter --format --help --last --latest --no-trunc --quiet --size -a -f -l -n -q -s) ;;
        ('vflags katadocker container list') __katadocker_reply=(--filter --format --last -f -n) ;;
        ('flags katadocker container logs') __katadocker_reply=(--details --follow --help --since --tail --timestamps --until -f -n -t) ;;
        ('vflags katadocker container logs') __katadocker_reply=(--since --tail --until -n) ;;
        ('args katadocker container logs') __katadocker_reply=(@container) ;;
        ('flags katadocker container ls') __katadocker_reply=(--all --filter --format --help --last --latest --no-trunc --quiet --size -a -f -l -n -q -s) ;;
        ('vflags katadocker container ls') __katadocker_reply=(--filter --format --last -f -n) ;;
        ('flags katadocker container pause') __katadocker_reply=(--help) ;;
        ('rest katadocker container pause') __katadocker_reply=(@container) ;;
        ('flags katadocker container port') __katadocker_reply=(--help) ;;
        ('args katadocker container port') __katadocker_reply=(@container @none) ;;
        ('flags katadocker container prune') __katadocker_reply=(--filter --force --help -f) ;;
        ('vflags katadocker container prune') __katadocker_reply=(--filter) ;;
        ('flags katadocker container ps') __katadocker_reply=(--all --filter --format --help --last --latest --no-trunc --quiet --size -a -f -l -n -q -s) ;;
        ('vflags katadocker container ps') __katadocker_reply=(--filter --format --last -f -n) ;;
        ('flags katadocker container remove') __katadocker_reply=(--force --help --volumes -f -v) ;;
        ('rest katadocker container remove') __katadocker_reply=(@container) ;;
        ('flags katadocker container rename') __katadocker_reply=(--help) ;;
        ('args katadocker container rename') __katadocker_reply=(@container @none) ;;
        ('flags katadocker container restart') __katadocker_reply=(--help --signal --time --timeout -s -t) ;;
        ('vflags katadocker container restart') __katadocker_reply=(--signal --time --timeout -s -t) ;;
        ('rest katadocker container restart') __katadocker_reply=(@container) ;;
        ('flags katadocker container rm') __katadocker_reply=(--force --help --volumes -f -v) ;;
        ('rest katadocker container rm') __katadocker_reply=(@container) ;;
        ('flags katadocker container run') __katadocker_reply=(--add-host --attach --cpus --detach --detach-keys --dns --dns-opt --dns-option --dns-search --entrypoint --env --env-file --help --hostname --init --interactive --ip --label --label-file --mac-address --memory --mount --name --net --net-alias --network --network-alias --platform --publish --publish-all --pull --quiet --read-only --rm --sig-proxy --stop-signal --stop-timeout --tmpfs --tty --user --volume --volumes-from --workdir -P -a -d -e -h -i -l -m -p -q -t -u -v -w) ;;
        ('vflags katadocker container run') __katadocker_reply=(--add-host --attach --cpus --detach-keys --dns --dns-opt --dns-option --dns-search --entrypoint --env --env-file --hostname --ip --label --label-file --mac-address --memory --mount --name --net --net-alias --network --network-alias --platform --publish --pull --stop-signal --stop-timeout --tmpfs --user --volume --volumes-from --workdir -a -e -h -l -m -p -u -v -w) ;;
        ('args katadocker container run') __katadocker_reply=(@image) ;;
        ('rest katadocker container run') __katadocker_reply=(@none) ;;
        ('stop katadocker container run') __katadocker_reply=(1) ;;
        ('opt katadocker container run --env-file') __katadocker_reply=(@file) ;;
        ('opt katadocker container run --label-file') __katadocker_reply=(@file) ;;
        ('opt katadocker container run --net') __katadocker_reply=(@network) ;;
        ('opt katadocker container run --network') __katadocker_reply=(@network) ;;
        ('opt katadocker container run --volumes-from') __katadocker_reply=(@container) ;;
        ('flags katadocker container start') __katadocker_reply=(--attach --detach-keys --help --interactive -a -i) ;;
        ('vflags katadocker container start') __katadocker_reply=(--detach-keys) ;;
        ('rest katadocker container start') __katadocker_reply=(@container) ;;
        ('flags katadocker container stats') __katadocker_reply=(--all --format --help --no-stream --no-trunc -a) ;;
        ('vflags katadocker container stats') __katadocker_reply=(--format) ;;
        ('rest katadocker container stats') __katadocker_reply=(@container) ;;
        ('flags katadocker container stop') __katadocker_reply=(--help --signal --time --timeout -s -t) ;;
        ('vflags katadocker container stop') __katadocker_reply=(--signal --time --timeout -s -t) ;;
        ('rest katadocker container stop') __katadocker_reply=(@container) ;;
        ('flags katadocker container top') __katadocker_reply=(--help) ;;
        ('args katadocker container top') __katadocker_reply=(@container) ;;
        ('rest katadocker container top') __katadocker_reply=(@none) ;;
        ('stop katadocker container top') __katadocker_reply=(1) ;;
        ('flags katadocker container unpause') __katadocker_reply=(--help) ;;
        ('rest katadocker container unpause') __katadocker_reply=(@container) ;;
        ('flags katadocker container wait') __katadocker_reply=(--help) ;;
        ('rest katadocker container wait') __katadocker_reply=(@container) ;;
        ('flags katadocker cp') __katadocker_reply=(--archive --follow-link --help --quiet -L -a -q) ;;
        ('args katadocker cp') __katadocker_reply=(@container @none) ;;
        ('flags katadocker create') __katadocker_reply=(--add-host --attach --cpus --dns --dns-opt --dns-option --dns-search --entrypoint --env --env-file --help --hostname --init --interactive --ip --label --label-file --mac-address --memory --mount --name --net --net-alias --network --network-alias --platform --publish --publish-all --pull --quiet --read-only --rm --stop-signal --stop-timeout --tmpfs --tty --user --volume --volumes-from --workdir -P -a -e -h -i -l -m -p -q -t -u -v -w) ;;
        ('vflags katadocker create') __katadocker_reply=(--add-host --attach --cpus --dns --dns-opt --dns-option --dns-search --entrypoint --env --env-file --hostname --ip --label --label-file --mac-address --memory --mount --name --net --net-alias --network --network-alias --platform --publish --pull --stop-signal --stop-timeout --tmpfs --user --volume --volumes-from --workdir -a -e -h -l -m -p -u -v -w) ;;
        ('args katadocker create') __katadocker_reply=(@image) ;;
        ('rest katadocker create') __katadocker_reply=(@none) ;;
        ('stop katadocker create') __katadocker_reply=(1) ;;
        ('opt katadocker create --env-file') __katadocker_reply=(@file) ;;
        ('opt katadocker create --label-file') __katadocker_reply=(@file) ;;
        ('opt katadocker create --net') __katadocker_reply=(@network) ;;
        ('opt katadocker create --network') __katadocker_reply=(@network) ;;
        ('opt katadocker create --volumes-from') __katadocker_reply=(@container) ;;
        ('flags katadocker diff') __katadocker_reply=(--help) ;;
        ('args katadocker diff') __katadocker_reply=(@container) ;;
        ('flags katadocker events') __katadocker_reply=(--filter --format --help --since --until -f) ;;
        ('vflags katadocker events') __katadocker_reply=(--filter --format --since --until -f) ;;
        ('flags katadocker exec') __katadocker_reply=(--detach --detach-keys --env --env-file --help --interactive --privileged --tty --user --workdir -d -e -i -t -u -w) ;;
        ('vflags katadocker exec') __katadocker_reply=(--detach-keys --env --env-file --user --workdir -e -u -w) ;;
        ('args katadocker exec') __katadocker_reply=(@container) ;;
        ('rest katadocker exec') __katadocker_reply=(@none) ;;
        ('stop katadocker exec') __katadocker_reply=(1) ;;
        ('opt katadocker exec --env-file') __katadocker_reply=(@file) ;;
        ('flags katadocker export') __katadocker_reply=(--help --output -o) ;;
        ('vflags katadocker export') __katadocker_reply=(--output -o) ;;
        ('args katadocker export') __katadocker_reply=(@container) ;;
        ('opt katadocker export --output') __katadocker_reply=(@file) ;;
        ('opt katadocker export -o') __katadocker_reply=(@file) ;;
        ('flags katadocker history') __katadocker_reply=(--format --help --human --no-human --no-trunc --quiet -H -q) ;;
        ('vflags katadocker history') __katadocker_reply=(--format) ;;
        ('args katadocker history') __katadocker_reply=(@image) ;;
        ('sub katadocker image') __katadocker_reply=(history inspect list load ls prune pull remove rm save tag) ;;
        ('flags katadocker image') __katadocker_reply=(--help) ;;
        ('flags katadocker image history') __katadocker_reply=(--format --help --human --no-human --no-trunc --quiet -H -q) ;;
        ('vflags katadocker image history') __katadocker_reply=(--format) ;;
        ('args katadocker image history') __katadocker_reply=(@image) ;;
        ('flags katadocker image inspect') __katadocker_reply=(--format --help -f) ;;
        ('vflags katadocker image inspect') __katadocker_reply=(--format -f) ;;
        ('rest katadocker image inspect') __katadocker_reply=(@image) ;;
        ('flags katadocker image list') __katadocker_reply=(--all --digests --filter --format --help --no-trunc --quiet -a -f -q) ;;
        ('vflags katadocker image list') __katadocker_reply=(--filter --format -f) ;;
        ('args katadocker image list') __katadocker_reply=(@none) ;;
        ('flags katadocker image load') __katadocker_reply=(--help --input --quiet -i -q) ;;
        ('vflags katadocker image load') __katadocker_reply=(--input -i) ;;
        ('opt katadocker image load --input') __katadocker_reply=(@file) ;;
        ('opt katadocker image load -i') __katadocker_reply=(@file) ;;
        ('flags katadocker image ls') __katadocker_reply=(--all --digests --filter --format --help --no-trunc --quiet -a -f -q) ;;
        ('vflags katadocker image ls') __katadocker_reply=(--filter --format -f) ;;
        ('args katadocker image ls') __katadocker_reply=(@none) ;;
        ('flags katadocker image prune') __katadocker_reply=(--all --filter --force --help -a -f) ;;
        ('vflags katadocker image prune') __katadocker_reply=(--filter) ;;
        ('flags katadocker image pull') __katadocker_reply=(--all-tags --help --platform --quiet -a -q) ;;
        ('vflags katadocker image pull') __katadocker_reply=(--platform) ;;
        ('args katadocker image pull') __katadocker_reply=(@none) ;;
        ('flags katadocker image remove') __katadocker_reply=(--force --help --no-prune -f) ;;
        ('rest katadocker image remove') __katadocker_reply=(@image) ;;
        ('flags katadocker image rm') __katadocker_reply=(--force --help --no-prune -f) ;;
        ('rest katadocker image rm') __katadocker_reply=(@image) ;;
        ('flags katadocker image save') __katadocker_reply=(--help --output -o) ;;
        ('vflags katadocker image save') __katadocker_reply=(--output -o) ;;
        ('rest katadocker image save') __katadocker_reply=(@image) ;;
        ('opt katadocker image save --output') __katadocker_reply=(@file) ;;
        ('opt katadocker image save -o') __katadocker_reply=(@file) ;;
        ('flags katadocker image tag') __katadocker_reply=(--help) ;;
        ('args katadocker image tag') __katadocker_reply=(@image @image) ;;
        ('flags katadocker images') __katadocker_reply=(--all --digests --filter --format --help --no-trunc --quiet -a -f -q) ;;
        ('vflags katadocker images') __katadocker_reply=(--filter --format -f) ;;
        ('args katadocker images') __katadocker_reply=(@none) ;;
        ('flags katadocker info') __katadocker_reply=(--format --help -f) ;;
        ('vflags katadocker info') __katadocker_reply=(--format -f) ;;
        ('flags katadocker inspect') __katadocker_reply=(--format --help --size --type -f -s) ;;
        ('vflags katadocker inspect') __katadocker_reply=(--format --type -f) ;;
        ('rest katadocker inspect') __katadocker_reply=(@container,@image) ;;
        ('flags katadocker kill') __katadocker_reply=(--help --signal -s) ;;
        ('vflags katadocker kill') __katadocker_reply=(--signal -s) ;;
        ('rest katadocker kill') __katadocker_reply=(@container) ;;
        ('flags katadocker load') __katadocker_reply=(--help --input --quiet -i -q) ;;
        ('vflags katadocker load') __katadocker_reply=(--input -i) ;;
        ('opt katadocker load --input') __katadocker_reply=(@file) ;;
        ('opt katadocker load -i') __katadocker_reply=(@file) ;;
        ('flags katadocker login') __katadocker_reply=(--help --password --password-stdin --username -p -u) ;;
        ('vflags katadocker login') __katadocker_reply=(--password --username -p -u) ;;
        ('args katadocker login') __katadocker_reply=(@none) ;;
        ('flags katadocker logout') __katadocker_reply=(--help) ;;
        ('args katadocker logout') __katadocker_reply=(@none) ;;
        ('flags katadocker logs') __katadocker_reply=(--details --follow --help --since --tail --timestamps --until -f -n -t) ;;
        ('vflags katadocker logs') __katadocker_reply=(--since --tail --until -n) ;;
        ('args katadocker logs') __katadocker_reply=(@container) ;;
        ('sub katadocker network') __katadocker_reply=(connect create disconnect inspect list ls prune remove rm) ;;
        ('flags katadocker network') __katadocker_reply=(--help) ;;
        ('flags katadocker network connect') __katadocker_reply=(--alias --help --ip) ;;
        ('vflags katadocker network connect') __katadocker_reply=(--alias --ip) ;;
        ('args katadocker network connect') __katadocker_reply=(@network @container) ;;
        ('flags katadocker network create') __katadocker_reply=(--attachable --driver --gateway --help --internal --ipv6 --label --opt --subnet -d -o) ;;
        ('vflags katadocker network create') __katadocker_reply=(--driver --gateway --label --opt --subnet -d -o) ;;
        ('args katadocker network create') __katadocker_reply=(@none) ;;
        ('flags katadocker network disconnect') __katadocker_reply=(--force --help -f) ;;
        ('args katadocker network disconnect') __katadocker_reply=(@network @container) ;;
        ('flags katadocker network inspect') __katadocker_reply=(--format --help -f) ;;
        ('vflags katadocker network inspect') __katadocker_reply=(--format -f) ;;
        ('rest katadocker network inspect') __katadocker_reply=(@network) ;;
        ('flags katadocker network list') __katadocker_reply=(--filter --format --help --no-trunc --quiet -f -q) ;;
        ('vflags katadocker network list') __katadocker_reply=(--filter --format -f) ;;
        ('flags katadocker network ls') __katadocker_reply=(--filter --format --help --no-trunc --quiet -f -q) ;;
        ('vflags katadocker network ls') __katadocker_reply=(--filter --format -f) ;;
        ('flags katadocker network prune') __katadocker_reply=(--filter --force --help -f) ;;
        ('vflags katadocker network prune') __katadocker_reply=(--filter) ;;
        ('flags katadocker network remove') __katadocker_reply=(--force --help -f) ;;
        ('rest katadocker network remove') __katadocker_reply=(@network) ;;
        ('flags katadocker network rm') __katadocker_reply=(--force --help -f) ;;
        ('rest katadocker network rm') __katadocker_reply=(@network) ;;
        ('flags katadocker pause') __katadocker_reply=(--help) ;;
        ('rest katadocker pause') __katadocker_reply=(@container) ;;
        ('flags katadocker port') __katadocker_reply=(--help) ;;
        ('args katadocker port') __katadocker_reply=(@container @none) ;;
        ('flags katadocker ps') __katadocker_reply=(--all --filter --format --help --last --latest --no-trunc --quiet --size -a -f -l -n -q -s) ;;
        ('vflags katadocker ps') __katadocker_reply=(--filter --format --last -f -n) ;;
        ('flags katadocker pull') __katadocker_reply=(--all-tags --help --platform --quiet -a -q) ;;
        ('vflags katadocker pull') __katadocker_reply=(--platform) ;;
        ('args katadocker pull') __katadocker_reply=(@none) ;;
        ('flags katadocker rename') __katadocker_reply=(--help) ;;
        ('args katadocker rename') __katadocker_reply=(@container @none) ;;
        ('flags katadocker restart') __katadocker_reply=(--help --signal --time --timeout -s -t) ;;
        ('vflags katadocker restart') __katadocker_reply=(--signal --time --timeout -s -t) ;;
        ('rest katadocker restart') __katadocker_reply=(@container) ;;
        ('flags katadocker rm') __katadocker_reply=(--force --help --volumes -f -v) ;;
        ('rest katadocker rm') __katadocker_reply=(@container) ;;
        ('flags katadocker rmi') __katadocker_reply=(--force --help --no-prune -f) ;;
        ('rest katadocker rmi') __katadocker_reply=(@image) ;;
        ('flags katadocker run') __katadocker_reply=(--add-host --attach --cpus --detach --detach-keys --dns --dns-opt --dns-option --dns-search --entrypoint --env --env-file --help --hostname --init --interactive --ip --label --label-file --mac-address --memory --mount --name --net --net-alias --network --network-alias --platform --publish --publish-all --pull --quiet --read-only --rm --sig-proxy --stop-signal --stop-timeout --tmpfs --tty --user --volume --volumes-from --workdir -P -a -d -e -h -i -l -m -p -q -t -u -v -w) ;;
        ('vflags katadocker run') __katadocker_reply=(--add-host --attach --cpus --detach-keys --dns --dns-opt --dns-option --dns-search --entrypoint --env --env-file --hostname --ip --label --label-file --mac-address --memory --mount --name --net --net-alias --network --network-alias --platform --publish --pull --stop-signal --stop-timeout --tmpfs --user --volume --volumes-from --workdir -a -e -h -l -m -p -u -v -w) ;;
        ('args katadocker run') __katadocker_reply=(@image) ;;
        ('rest katadocker run') __katadocker_reply=(@none) ;;
        ('stop katadocker run') __katadocker_reply=(1) ;;
        ('opt katadocker run --env-file') __katadocker_reply=(@file) ;;
        ('opt katadocker run --label-file') __katadocker_reply=(@file) ;;
        ('opt katadocker run --net') __katadocker_reply=(@network) ;;
        ('opt katadocker run --network') __katadocker_reply=(@network) ;;
        ('opt katadocker run --volumes-from') __katadocker_reply=(@container) ;;
        ('flags katadocker save') __katadocker_reply=(--help --output -o) ;;
        ('vflags katadocker save') __katadocker_reply=(--output -o) ;;
        ('rest katadocker save') __katadocker_reply=(@image) ;;
        ('opt katadocker save --output') __katadocker_reply=(@file) ;;
        ('opt katadocker save -o') __katadocker_reply=(@file) ;;
        ('flags katadocker start') __katadocker_reply=(--attach --detach-keys --help --interactive -a -i) ;;
        ('vflags katadocker start') __katadocker_reply=(--detach-keys) ;;
        ('rest katadocker start') __katadocker_reply=(@container) ;;
        ('flags katadocker stats') __katadocker_reply=(--all --format --help --no-stream --no-trunc -a) ;;
        ('vflags katadocker stats') __katadocker_reply=(--format) ;;
        ('rest katadocker stats') __katadocker_reply=(@container) ;;
        ('flags katadocker stop') __katadocker_reply=(--help --signal --time --timeout -s -t) ;;
        ('vflags katadocker stop') __katadocker_reply=(--signal --time --timeout -s -t) ;;
        ('rest katadocker stop') __katadocker_reply=(@container) ;;
        ('sub katadocker system') __katadocker_reply=(build-kernel df events info prepare prune) ;;
        ('flags katadocker system') __katadocker_reply=(--help) ;;
        ('flags katadocker system build-kernel') __katadocker_reply=(--force --help --jobs -j) ;;
        ('vflags katadocker system build-kernel') __katadocker_reply=(--jobs -j) ;;
        ('flags katadocker system df') __katadocker_reply=(--format --help --verbose -v) ;;
        ('vflags katadocker system df') __katadocker_reply=(--format) ;;
        ('flags katadocker system events') __katadocker_reply=(--filter --format --help --since --until -f) ;;
        ('vflags katadocker system events') __katadocker_reply=(--filter --format --since --until -f) ;;
        ('flags katadocker system info') __katadocker_reply=(--format --help -f) ;;
        ('vflags katadocker system info') __katadocker_reply=(--format -f) ;;
        ('flags katadocker system prepare') __katadocker_reply=(--help) ;;
        ('flags katadocker system prune') __katadocker_reply=(--all --filter --force --help --volumes -a -f) ;;
        ('vflags katadocker system prune') __katadocker_reply=(--filter) ;;
        ('flags katadocker tag') __katadocker_reply=(--help) ;;
        ('args katadocker tag') __katadocker_reply=(@image @image) ;;
        ('flags katadocker top') __katadocker_reply=(--help) ;;
        ('args katadocker top') __katadocker_reply=(@container) ;;
        ('rest katadocker top') __katadocker_reply=(@none) ;;
        ('stop katadocker top') __katadocker_reply=(1) ;;
        ('flags katadocker unpause') __katadocker_reply=(--help) ;;
        ('rest katadocker unpause') __katadocker_reply=(@container) ;;
        ('flags katadocker version') __katadocker_reply=(--format --help -f) ;;
        ('vflags katadocker version') __katadocker_reply=(--format -f) ;;
        ('sub katadocker volume') __katadocker_reply=(create inspect list ls prune remove rm) ;;
        ('flags katadocker volume') __katadocker_reply=(--help) ;;
        ('flags katadocker volume create') __katadocker_reply=(--driver --help --label --opt -d -o) ;;
        ('vflags katadocker volume create') __katadocker_reply=(--driver --label --opt -d -o) ;;
        ('args katadocker volume create') __katadocker_reply=(@none) ;;
        ('flags katadocker volume inspect') __katadocker_reply=(--format --help -f) ;;
        ('vflags katadocker volume inspect') __katadocker_reply=(--format -f) ;;
        ('rest katadocker volume inspect') __katadocker_reply=(@volume) ;;
        ('flags katadocker volume list') __katadocker_reply=(--filter --format --help --quiet -f -q) ;;
        ('vflags katadocker volume list') __katadocker_reply=(--filter --format -f) ;;
        ('flags katadocker volume ls') __katadocker_reply=(--filter --format --help --quiet -f -q) ;;
        ('vflags katadocker volume ls') __katadocker_reply=(--filter --format -f) ;;
        ('flags katadocker volume prune') __katadocker_reply=(--all --filter --force --help -a -f) ;;
        ('vflags katadocker volume prune') __katadocker_reply=(--filter) ;;
        ('flags katadocker volume remove') __katadocker_reply=(--force --help -f) ;;
        ('rest katadocker volume remove') __katadocker_reply=(@volume) ;;
        ('flags katadocker volume rm') __katadocker_reply=(--force --help -f) ;;
        ('rest katadocker volume rm') __katadocker_reply=(@volume) ;;
        ('flags katadocker wait') __katadocker_reply=(--help) ;;
        ('rest katadocker wait') __katadocker_reply=(@container) ;;
        (*) __katadocker_reply=() ;;
    esac
}

# Print the names of the live objects of kind $1, one a line.
__katadocker_list() {
    case "$1" in
        (container) katadocker ps -a --format '{{.Names}}' ;;
        (image) katadocker images --format '{{.Repository}}:{{.Tag}}' ;;
        (network) katadocker network ls --format '{{.Name}}' ;;
        (volume) katadocker volume ls -q ;;
    esac 2>/dev/null </dev/null
}

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
