"""AgentClient: the host's end of the agent link (a unix socket: QEMU's virtio-serial chardev).

Threading model: one reader thread per client decodes frames and files them under the process
they belong to; every public method may be called from any thread. Each process has its own
ordered event queue, read with `ProcessHandle.next_event()`: `Output` events (stdout/stderr
bytes, in order per stream) and finally one `ExitStatus`, which the agent sends only after all
the process's output. Flow control is by consumption: the agent may send a window of bytes per
stream, and the client returns credit for an `Output` only when `next_event()` hands it out, so an
unread process stalls only itself (and its queue never exceeds the window) while the link and the
other processes keep flowing.

Every wait takes a timeout and raises `VMError` when it passes or when the link dies.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from katadocker.agent import protocol
from katadocker.agent.protocol import ExitStatus, Frame, FrameType, Hello, ProcessSpec, StartError, Stream
from katadocker.errors import CommandNotExecutable, CommandNotFound, VMError


@dataclass(frozen=True)
class Output:
    """Bytes a process wrote on `stream` (STDOUT, or STDERR; a tty process has only STDOUT)."""

    stream: Stream
    data: bytes


Event = Output | ExitStatus


@dataclass(frozen=True)
class Completed:
    """Everything a process wrote and how it ended (see `ProcessHandle.collect`)."""

    stdout: bytes
    stderr: bytes
    exit: ExitStatus


class ProcessHandle:
    """A process started in the guest by `AgentClient.start` or `AgentClient.exec`."""

    def __init__(self, client: AgentClient, proc_id: int) -> None:
        self._client = client
        self.id = proc_id
        #: The process's pid as the agent sees it (set once the agent reports STARTED).
        self.pid = 0
        self._events: deque[Event] = deque()
        self._start_result: int | StartError | None = None
        self._stdin_credit = protocol.WINDOW
        #: Set once the EXIT event has been handed out by next_event().
        self.exit_status: ExitStatus | None = None

    def next_event(self, timeout: float | None) -> Event | None:
        """The process's next event, waiting up to `timeout` seconds (None: forever); None when
        nothing arrived in time. After the ExitStatus has been returned, returns it again."""
        if self.exit_status is not None:
            return self.exit_status
        with self._client._cond:
            self._client._wait_for(lambda: bool(self._events), timeout, None)
            if not self._events:
                return None
            event = self._events.popleft()
        if isinstance(event, Output):
            self._client._send(Frame(FrameType.CREDIT, self.id, event.stream, protocol.u32(len(event.data))))
        else:
            self.exit_status = event
        return event

    def collect(self, timeout: float) -> Completed:
        """Reads every event up to the exit, within `timeout` seconds in all; raises VMError after."""
        deadline = time.monotonic() + timeout
        out = {Stream.STDOUT: bytearray(), Stream.STDERR: bytearray()}
        while True:
            event = self.next_event(max(0.0, deadline - time.monotonic()))
            if isinstance(event, ExitStatus):
                return Completed(bytes(out[Stream.STDOUT]), bytes(out[Stream.STDERR]), event)
            if event is None:
                raise VMError(f"process {self.id} in the VM did not exit within {timeout:g} s")
            out[event.stream] += event.data

    def write_stdin(self, data: bytes, timeout: float) -> None:
        """Sends `data` to the process's stdin, waiting for the agent's credit (at most `timeout`
        seconds in all). Data for a process that has exited is discarded, as a pipe would."""
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while view:
            with self._client._cond:
                self._client._wait_for(
                    lambda: self._stdin_credit > 0 or self._exited(), deadline - time.monotonic(),
                    f"the VM's process {self.id} did not read its stdin within {timeout:g} s",
                )
                if self._exited():
                    return
                n = min(len(view), self._stdin_credit, protocol.DATA_CHUNK)
                self._stdin_credit -= n
            self._client._send(Frame(FrameType.DATA, self.id, Stream.STDIN, bytes(view[:n])))
            view = view[n:]

    def close_stdin(self) -> None:
        """Closes the process's stdin once what was written reaches it (ignored on a tty)."""
        self._client._send(Frame(FrameType.EOF, self.id, Stream.STDIN))

    def signal(self, signo: int) -> None:
        """Sends signal `signo` to the process."""
        self._client._send(Frame(FrameType.SIGNAL, self.id, 0, protocol.u32(signo)))

    def resize(self, rows: int, cols: int) -> None:
        """Sets the window size of the process's pty (the process gets SIGWINCH)."""
        self._client._send(Frame(FrameType.RESIZE, self.id, 0, protocol.resize_payload(rows, cols)))

    def _exited(self) -> bool:
        return self.exit_status is not None or any(isinstance(e, ExitStatus) for e in self._events)


class AgentClient:
    """A connection to one VM's agent. Use `AgentClient.connect()`; close with `close()`."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._procs: dict[int, ProcessHandle] = {}
        self._ids = itertools.count(1)
        self._hello: Hello | None = None
        self._pongs: set[int] = set()
        self._dead: str | None = None
        self._reader = threading.Thread(target=self._read_loop, name="agent-link", daemon=True)
        self._reader.start()

    @classmethod
    def connect(cls, sock_path: str, timeout: float) -> AgentClient:
        """Connects to the agent socket at `sock_path`, retrying until `timeout` seconds passed
        (QEMU creates the socket shortly after it starts); raises VMError after that."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(sock_path)
                return cls(sock)
            except OSError as e:
                sock.close()
                if time.monotonic() >= deadline:
                    raise VMError(f"cannot connect to the VM agent at {sock_path}: {e.strerror}") from e
                time.sleep(0.02)

    def wait_hello(self, timeout: float) -> Hello:
        """Waits for the agent's HELLO; raises VMError on timeout or an unsupported version."""
        with self._cond:
            self._wait_for(lambda: self._hello is not None, timeout,
                           f"the VM agent did not say hello within {timeout:g} s")
            hello = self._hello
        assert hello is not None
        if hello.version != protocol.PROTO_VERSION:
            raise VMError(
                f"the VM agent speaks protocol {hello.version}, katadocker {protocol.PROTO_VERSION}"
            )
        return hello

    def start(self, spec: ProcessSpec, timeout: float) -> ProcessHandle:
        """Prepares the container root and starts its main process (once per VM).

        Raises CommandNotFound (127) / CommandNotExecutable (126) with docker's message when the
        command cannot be run, VMError for any other failure or after `timeout` seconds."""
        return self._spawn(FrameType.START, spec, timeout)

    def exec(self, spec: ProcessSpec, timeout: float) -> ProcessHandle:
        """Starts another process in the started container; errors as for `start`."""
        return self._spawn(FrameType.EXEC, spec, timeout)

    def ping(self, timeout: float) -> float:
        """Round trip to the agent in seconds; raises VMError when no answer within `timeout`."""
        token = next(self._ids)
        began = time.monotonic()
        self._send(Frame(FrameType.PING, token))
        with self._cond:
            self._wait_for(lambda: token in self._pongs, timeout,
                           f"the VM agent did not answer a ping within {timeout:g} s")
            self._pongs.discard(token)
        return time.monotonic() - began

    def shutdown(self) -> None:
        """Asks the agent to kill what still runs, sync the file systems and power the VM off."""
        self._send(Frame(FrameType.SHUTDOWN))

    def close(self) -> None:
        """Closes the link; waits made after this raise VMError."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _spawn(self, ftype: FrameType, spec: ProcessSpec, timeout: float) -> ProcessHandle:
        handle = ProcessHandle(self, next(self._ids))
        with self._cond:
            self._procs[handle.id] = handle
        self._send(Frame(ftype, handle.id, 0, spec.encode()))
        with self._cond:
            try:
                self._wait_for(lambda: handle._start_result is not None, timeout,
                               f"the VM agent did not start {spec.args[0]!r} within {timeout:g} s")
            finally:
                if not isinstance(handle._start_result, int):
                    del self._procs[handle.id]
        result = handle._start_result
        if isinstance(result, StartError):
            if result.code == 127:
                raise CommandNotFound(result.message)
            if result.code == 126:
                raise CommandNotExecutable(result.message)
            raise VMError(result.message)
        return handle

    def _wait_for(self, ready: Callable[[], bool], timeout: float | None, message: str | None) -> None:
        """With `_cond` held: waits until ready() is true. Raises VMError when the link is dead,
        or, if `message` is given, when `timeout` passes (otherwise just returns)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not ready():
            if self._dead is not None:
                raise VMError(f"the link to the VM agent is closed: {self._dead}")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                if message is not None:
                    raise VMError(message)
                return
            self._cond.wait(remaining)

    def _send(self, frame: Frame) -> None:
        data = frame.encode()
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except OSError as e:
            raise VMError(f"cannot write to the VM agent: {e.strerror or e}") from e

    def _read_loop(self) -> None:
        decoder = protocol.FrameDecoder()
        reason = "the agent closed it"
        try:
            while data := self._sock.recv(1 << 16):
                frames = decoder.feed(data)
                with self._cond:
                    for frame in frames:
                        self._dispatch(frame)
                    self._cond.notify_all()
        except (OSError, VMError) as e:
            reason = str(e)
        with self._cond:
            self._dead = reason
            self._cond.notify_all()

    def _dispatch(self, frame: Frame) -> None:
        """Files one frame from the agent (called with `_cond` held)."""
        if frame.type == FrameType.HELLO:
            self._hello = Hello.decode(frame.payload)
            return
        if frame.type == FrameType.PONG:
            self._pongs.add(frame.proc)
            return
        handle = self._procs.get(frame.proc)
        if handle is None:
            return
        if frame.type == FrameType.STARTED:
            handle.pid = protocol.decode_u32(frame.payload)
            handle._start_result = handle.pid
        elif frame.type == FrameType.ERROR:
            handle._start_result = StartError.decode(frame.payload)
        elif frame.type == FrameType.DATA:
            handle._events.append(Output(Stream(frame.stream), frame.payload))
        elif frame.type == FrameType.CREDIT and frame.stream == Stream.STDIN:
            handle._stdin_credit += protocol.decode_u32(frame.payload)
        elif frame.type == FrameType.EXIT:
            handle._events.append(ExitStatus.decode(frame.payload))
            del self._procs[frame.proc]
