"""The one error hierarchy of katadocker.

The engine raises these; only the CLI turns them into messages and exit codes. Each class
says how docker would present the failure: `daemon` errors are printed as
``Error response from daemon: <message>`` (docker's daemon-side failures), the others as
``Error: <message>`` or a bare message. `exit_code` is the code a non-`run` command exits with;
`docker run` maps failures before the container started to 125 (see cli/).
"""

from __future__ import annotations


class KatadockerError(Exception):
    """Base class: a failure katadocker reports to the user as one clear line."""

    #: True when docker would report this failure as coming from the daemon.
    daemon = True
    #: Exit code of a non-`run` command failing with this error.
    exit_code = 1
    #: What docker's client puts before a non-daemon message ("Error: " for `No such object`;
    #: most client-side failures, like `invalid reference format`, are printed bare).
    client_prefix = ""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Extra diagnostics shown with --debug (helper command lines, console tail, ...).
        self.detail = detail


class InvalidArgument(KatadockerError):
    """A value given by the user is malformed (docker answers 400)."""


class InvalidReference(InvalidArgument):
    """An image reference that docker's grammar rejects."""

    daemon = False


class NotFound(KatadockerError):
    """The named object does not exist (docker answers 404)."""


class NoSuchContainer(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such container: {ref}")
        self.ref = ref


class NoSuchImage(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}")
        self.ref = ref


class NoSuchObject(NotFound):
    """`inspect` found neither container nor image (nor network, volume)."""

    daemon = False
    client_prefix = "Error: "

    def __init__(self, ref: str) -> None:
        super().__init__(f"No such object: {ref}")
        self.ref = ref


class Conflict(KatadockerError):
    """The request conflicts with the current state (docker answers 409)."""


class RegistryError(KatadockerError):
    """A registry refused or failed a request, or answered with bad content."""


class PullAccessDenied(RegistryError):
    def __init__(self, familiar_name: str) -> None:
        super().__init__(
            f"pull access denied for {familiar_name}, repository does not exist or may require "
            "'docker login': denied: requested access to the resource is denied"
        )


class ManifestUnknown(RegistryError):
    def __init__(self, familiar_ref: str) -> None:
        super().__init__(f"manifest for {familiar_ref} not found: manifest unknown: manifest unknown")


class DigestMismatch(RegistryError):
    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"digest mismatch for {what}: expected {expected}, got {actual}")


class AuthError(RegistryError):
    """Credentials were refused or could not be obtained."""


class UnsafeLayer(KatadockerError):
    """A layer archive holds an entry that would write outside its target."""


class VMError(KatadockerError):
    """The virtual machine or one of its helpers failed (boot, virtiofsd, agent link)."""


class CommandNotFound(KatadockerError):
    """The container's command does not exist (exit 127, as docker)."""

    exit_code = 127


class CommandNotExecutable(KatadockerError):
    """The container's command exists but cannot be executed (exit 126, as docker)."""

    exit_code = 126


class UsageError(KatadockerError):
    """The command line itself is wrong (flag errors: exit 125 for every command, as docker)."""

    daemon = False
    exit_code = 125


class NoMatchingManifest(RegistryError):
    """An image index has no manifest for the requested platform."""

    def __init__(self, platform: str) -> None:
        super().__init__(f"no matching manifest for {platform} in the manifest list entries")
        self.platform = platform


class PortAllocated(Conflict):
    """A published host port is already taken (docker's port allocator text)."""

    def __init__(self, host_address: str) -> None:
        super().__init__(f"Bind for {host_address} failed: port is already allocated")
        self.host_address = host_address


class NoPublicPort(KatadockerError):
    """``port C 81`` for a port that is not published (docker 28's client-side text)."""

    daemon = False
    client_prefix = "Error: "

    def __init__(self, port: str, container: str) -> None:
        super().__init__(f"No public port '{port}' published for {container}")


class NoSuchNetwork(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"network {ref} not found")
        self.ref = ref


class NetworkError(KatadockerError):
    """Setting up or tearing down a network namespace, bridge, veth, TAP or NAT rule failed."""


class BadLayer(KatadockerError):
    """A layer archive is corrupt (bad compression, truncated tar) or holds an entry it cannot apply."""


class AmbiguousImageID(InvalidArgument):
    """A short image ID prefix matches more than one image."""

    def __init__(self, prefix: str) -> None:
        super().__init__(f"multiple IDs found with provided prefix: {prefix}")
        self.prefix = prefix


class PlatformMismatch(NotFound):
    """A single-platform image was pulled with a ``--platform`` it does not have."""

    def __init__(self, familiar_ref: str, wanted: str, actual: str) -> None:
        super().__init__(f"image with reference {familiar_ref} was found but does not match the specified "
                         f"platform: wanted {wanted}, actual: {actual}")


class ClientError(KatadockerError):
    """A failure docker's client reports itself, without the daemon prefix (exit 1): bad flag
    combinations, refusing to write an archive to a terminal, an interactive login without a TTY."""

    daemon = False
