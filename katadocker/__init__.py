"""katadocker: a Docker-compatible command line that runs every container in its own QEMU VM."""

__version__ = "0.1.0"
# The docker release whose CLI behaviour katadocker imitates (output, messages, exit codes).
DOCKER_COMPAT_VERSION = "28.2.2"
# The Engine API version katadocker reports (docker 28.2's).
API_VERSION = "1.50"
