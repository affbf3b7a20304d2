"""Socket I/O that ends by a deadline: a wrapper of httpcore2's network backend for the export transport.

httpx2's timeouts bound each step of a request (connecting, each read, each write), not the request as a whole: a
server that trickles its answer a byte at a time, or takes in the request body a packet at a time, keeps one
request going for as long as it likes. :class:`DeadlineBackend` gives every blocking step (connect, TLS handshake,
each ``recv()``, each ``send()``) at most the time left before its :attr:`~DeadlineBackend.deadline`, and past it
raises httpcore2's timeout for that step, so a request ends by the deadline whatever the server does. Name
resolution is the one step it cannot cut short (``getaddrinfo()`` takes no timeout).

httpcore2 (and so this module) is imported only when the transport builds its client, not with ``carrot_ai``.
"""

from __future__ import annotations

import math
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore2

# A request body is written to a TLS-in-TLS stream (an HTTPS proxy) in pieces this large, each given the time left.
_PIECE_BYTES = 16 * 1024


class DeadlineBackend(httpcore2.NetworkBackend):
    """Delegate to ``inner``, cutting every blocking step at :attr:`deadline` (a ``time.monotonic()`` time)."""

    def __init__(self, inner: httpcore2.NetworkBackend) -> None:
        self.inner = inner
        self.deadline = math.inf  # set by the transport for each attempt, one request at a time

    def time_left(self, timeout: float | None, expired: type[Exception]) -> float:
        """The timeout for the next blocking step: ``timeout`` cut to the time left; raise ``expired`` if none."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise expired("the deadline passed")
        return left if timeout is None else min(timeout, left)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        timeout = self.time_left(timeout, httpcore2.ConnectTimeout)
        stream = self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return DeadlineStream(stream, self, direct=True)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        timeout = self.time_left(timeout, httpcore2.ConnectTimeout)
        return DeadlineStream(self.inner.connect_unix_socket(path, timeout, socket_options), self, direct=True)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class DeadlineStream(httpcore2.NetworkStream):
    """One connection of a :class:`DeadlineBackend`.

    ``direct``: the stream writes straight to its socket (plain TCP, or TLS over TCP), so a write can be done here
    ``send()`` by ``send()``, each with the time left; httpcore2's own loop gives every ``send()`` the full timeout.
    """

    def __init__(self, inner: httpcore2.NetworkStream, backend: DeadlineBackend, *, direct: bool) -> None:
        self._inner = inner
        self._backend = backend
        self._direct = direct

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._backend.time_left(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        time_left = self._backend.time_left
        view = memoryview(buffer)
        sock = self._inner.get_extra_info("socket") if self._direct else None
        if not isinstance(sock, socket.socket):
            while view:
                self._inner.write(bytes(view[:_PIECE_BYTES]), time_left(timeout, httpcore2.WriteTimeout))
                view = view[_PIECE_BYTES:]
            return
        try:
            while view:
                sock.settimeout(time_left(timeout, httpcore2.WriteTimeout))
                view = view[sock.send(view) :]
        except TimeoutError as exc:  # before OSError, of which it is a subclass
            raise httpcore2.WriteTimeout(exc) from exc
        except OSError as exc:
            raise httpcore2.WriteError(exc) from exc

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        # TLS over a TLS socket (to an HTTPS proxy) is done in memory: its socket is the outer one, not to write to.
        nested = isinstance(self._inner.get_extra_info("socket"), ssl.SSLSocket)
        timeout = self._backend.time_left(timeout, httpcore2.ConnectTimeout)
        stream = self._inner.start_tls(ssl_context, server_hostname, timeout)
        return DeadlineStream(stream, self._backend, direct=self._direct and not nested)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)
