"""``srgan-mlx serve``: a local web page and HTTP API to upscale photos, on the standard library's HTTP server; this
module is its lifecycle: listening, the connections it serves at once, its limits and its private folder.

Why ``http.server``: the page needs one upload route, a few JSON routes and static files, on the
user's own machine; the standard library does it with no dependency (a Gradio-sized framework
would add hundreds of MB to a ~300 MB install). Uploads are the raw request body, so no
multipart parsing is needed. The routes are :mod:`~srgan_mlx.serve.routes`, the callers' checks
:mod:`~srgan_mlx.serve.hosts`, the models and blends :mod:`~srgan_mlx.serve.model_cache`, the jobs
:mod:`~srgan_mlx.serve.jobs`. Everything the server writes goes into one private temporary folder,
removed when the server stops.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

from .. import defaults
from .hosts import peer
from .jobs import JobQueue
from .model_cache import Models
from .routes import Handler


@dataclass
class Limits:
    """What the server accepts (:mod:`srgan_mlx.defaults` has each default and says what it means)."""

    max_upload: int = defaults.MAX_UPLOAD
    max_pixels: int = defaults.MAX_PIXELS
    timeout: float = defaults.TIMEOUT
    min_upload_rate: float = defaults.MIN_UPLOAD_RATE
    max_connections: int = defaults.MAX_CONNECTIONS


class Server(ThreadingHTTPServer):
    """The HTTP server: its models, job queue, limits and private folder.

    One thread per connection, at most ``limits.max_connections`` at once (the next get 503 without a thread);
    a connection silent for ``limits.timeout`` seconds is closed, an upload that stalls or trickles gets 408.
    A client that leaves before its answer is one line on stderr (``log``), never a traceback."""

    daemon_threads = True

    def __init__(self, host: str, port: int, models: Models, limits: Limits, quality: int = defaults.QUALITY, log=None):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)
        self.host = host
        self.models = models
        self.limits = limits
        self.log = log or _log_line
        self.connections = 0
        self.connections_lock = threading.Lock()
        self.folder = Path(tempfile.mkdtemp(prefix="srgan-mlx-serve-"))
        self.queue = JobQueue(self.folder, models.upscaler, limits.max_pixels, quality)

    def process_request(self, request, client_address):
        """A thread for the connection, or 503 at once when ``max_connections`` are being served."""
        with self.connections_lock:
            full = self.connections >= self.limits.max_connections
            self.connections += 0 if full else 1
        if full:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self.connections_lock:
            self.connections -= 1

    def _refuse(self, request: socket.socket) -> None:
        limit = self.limits.max_connections
        body = json.dumps({"error": f"busy: {limit} connections are open (srgan-mlx serve --max-connections)"}).encode()
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Retry-After: 1\r\nConnection: close\r\n\r\n")
        try:
            request.setblocking(False)
            while request.recv(1 << 16):  # what the client sent already: unread, closing would reset the connection
                pass
        except OSError:
            pass
        try:
            request.settimeout(1)
            request.sendall(head.encode() + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address):
        """A client that went away is one line; anything else is the standard report."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            self.log(f"{peer(client_address)} left ({type(error).__name__})")
        else:
            super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.host if not self.host.startswith(("0.0.0.0", "::")) and self.host else defaults.HOST
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        """Stop the job worker and remove the private folder (everything the server wrote), even when a second
        Ctrl-C cuts the wait for the running job short."""
        try:
            self.queue.close()
        finally:
            self.server_close()
            shutil.rmtree(self.folder, ignore_errors=True)


def _log_line(message: str) -> None:
    """One line on stderr in one write (``print`` writes the text and its newline apart: handler threads' lines,
    or a reader between the two writes, could split it)."""
    sys.stderr.write(f"srgan-mlx serve: {message}\n")
    sys.stderr.flush()
