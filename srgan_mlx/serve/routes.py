"""The HTTP routes of ``srgan-mlx serve``: the page's files and the API, one :class:`Handler` per request.

API (the page uses nothing else; every error is JSON ``{"error": "..."}`` with a 4xx/5xx status):

* ``GET /api/models``: the models, their scale, whether the realism dial applies, the limits.
* ``POST /api/upscale?model=NAME&realism=R&format=png|jpg|webp&name=FILE.png`` with the image file's
  bytes as the body (or ``source=JOB`` and no body: the upload of an earlier job again) -> ``202``
  and the job. ``&wait=1`` answers with the upscaled image itself once done (for ``curl``).
* ``GET /api/jobs/ID``: status (``queued``, ``running``, ``done``, ``failed``, ``cancelled``), queue
  position, tiles done, error; ``GET /api/jobs/ID/result``: the image (``?format=jpg``: re-encoded from the
  job's own, e.g. a PNG made once for the page and downloaded as JPEG); ``GET /api/jobs/ID/bicubic``:
  a bicubic upscale of the input at the same size (PNG), for comparison; ``DELETE /api/jobs/ID``: cancel.

Safety: requests whose ``Host`` is not this server's (DNS rebinding) and requests from another
origin (``Origin``, ``Sec-Fetch-Site``: a web page trying to use the server) are refused with 403;
uploads above ``max_upload`` bytes (413) or ``max_pixels`` pixels (413, read from the header before
decoding) are refused; the client never names a file-system path; everything written goes into
one private temporary folder, removed when the server stops.
"""

from __future__ import annotations

import json
import shutil
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..defaults import FORMAT_EXTENSIONS, OUTPUT_FORMATS
from ..errors import UserError
from ..files.image_io import TooLarge
from .hosts import peer, refusal
from .jobs import Job

PAGE_FILES = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
              "/style.css": ("style.css", "text/css; charset=utf-8")}  # fmt: skip
"""The page's files (inside the package, in ``srgan_mlx/serve/web/``), by URL path."""
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
"""The media type of each output format."""


def format_named(name: str) -> str:
    """The output format a query names: ``jpeg`` is ``jpg`` (as the extensions have it), any case."""
    name = name.lower()
    return FORMAT_EXTENSIONS.get(f".{name}", name)


class HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    """One request: the caller checked (:func:`~srgan_mlx.serve.hosts.refusal`), then routed; every error is JSON.
    ``self.server`` is the :class:`~srgan_mlx.serve.server.Server` (its models, queue, limits and log)."""

    protocol_version = "HTTP/1.1"
    server_version = "srgan-mlx"

    def setup(self):
        self.timeout = self.server.limits.timeout  # every read: a silent client is closed (408 in an upload)
        super().setup()

    def log_message(self, format, *args):  # noqa: A002  (quiet: the terminal shows the URL and errors only)
        pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PUT(self):
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        try:
            try:
                refused = refusal(method, self.headers, self.server.port, self.server.host)
                if refused:
                    self.close_connection = True
                    raise HTTPError(*refused)
                url = urlsplit(self.path)
                self._route(method, url.path, {k: v[-1] for k, v in parse_qs(url.query).items()})
            except HTTPError as exc:
                if method != "GET":
                    self.close_connection = True  # its body may be unread
                self._json({"error": str(exc)}, exc.status)
            except (ConnectionError, TimeoutError):
                raise
            except Exception as exc:  # one bad request never stops the server
                self._json({"error": f"internal error: {type(exc).__name__}: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR)
        except (ConnectionError, TimeoutError) as exc:  # the client left, or stopped reading, before its answer
            self.close_connection = True
            self.server.log(f"{peer(self.client_address)} left before the answer to {method} {urlsplit(self.path).path} "
                            f"({type(exc).__name__})")  # fmt: skip

    def _route(self, method: str, path: str, query: dict[str, str]) -> None:
        if path in PAGE_FILES and method == "GET":
            return self._page(path)
        if path == "/api/models" and method == "GET":
            return self._json({
                "models": self.server.models.describe(), "default": self.server.models.default,
                "formats": list(OUTPUT_FORMATS), "max_upload": self.server.limits.max_upload,
                "max_pixels": self.server.limits.max_pixels,
            })  # fmt: skip
        if path == "/api/upscale":
            if method != "POST":
                raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, "POST the image file's bytes to /api/upscale")
            return self._upscale(query)
        parts = path.strip("/").split("/")
        if len(parts) in (3, 4) and parts[:2] == ["api", "jobs"]:
            try:
                job = self.server.queue.get(parts[2])
            except KeyError:
                raise HTTPError(HTTPStatus.NOT_FOUND, f"no job {parts[2]!r} (finished jobs are kept a while)") from None
            what = parts[3] if len(parts) == 4 else None
            if method == "DELETE" and what is None:
                return self._json(self._describe(self.server.queue.cancel(job.id)))
            if method == "GET" and what is None:
                return self._json(self._describe(job))
            if method == "GET" and what in ("result", "bicubic"):
                return self._job_file(job, what, query.get("format"))
        raise HTTPError(HTTPStatus.NOT_FOUND, f"no such page or API route: {method} {path}")

    def _page(self, path: str) -> None:
        name, content_type = PAGE_FILES[path]
        body = resources.files(__package__).joinpath("web", name).read_bytes()
        self._send(HTTPStatus.OK, body, content_type)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise HTTPError(HTTPStatus.LENGTH_REQUIRED, "send the image with a Content-Length (no chunked uploads)")
        declared = self.headers.get("Content-Length", "0").strip()
        if not (declared.isascii() and declared.isdigit()):  # "-5", "+5", "1e3", "lots": not a length
            self.close_connection = True
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {declared!r} (a number of bytes)")
        length = int(declared)
        limit = self.server.limits.max_upload
        if length > limit:
            self.close_connection = True  # the body is not read
            raise HTTPError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"upload of {length:,} bytes is over this server's limit of {limit:,} (srgan-mlx serve --max-upload)",
            )
        return self._read_exactly(length)

    def _read_exactly(self, length: int) -> bytes:
        """The body's ``length`` bytes; 408 when the client is silent for ``timeout`` seconds or has not sent it all
        within ``timeout`` plus its size at ``min_upload_rate``; ``ConnectionError`` when it closed the connection."""
        limits = self.server.limits
        started = time.monotonic()
        deadline = started + limits.timeout + length / limits.min_upload_rate
        parts, received = [], 0
        try:
            while received < length:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(min(limits.timeout, left))
                part = self.rfile.read1(min(length - received, 1 << 20))
                if not part:
                    raise ConnectionResetError(f"closed after {received:,} of {length:,} bytes")
                parts.append(part)
                received += len(part)
        except TimeoutError:
            self.close_connection = True
            seconds = time.monotonic() - started
            raise HTTPError(
                HTTPStatus.REQUEST_TIMEOUT,
                f"upload timed out: {received:,} of {length:,} bytes in {seconds:.0f} s (the server waits "
                f"{limits.timeout:g} s for each part and {limits.min_upload_rate / 1024:g} KB/s in all)",
            ) from None
        finally:
            self.connection.settimeout(limits.timeout)
        return b"".join(parts)

    def _upscale(self, query: dict[str, str]) -> None:
        data = self._read_body()
        models = self.server.models
        model = query.get("model", models.default)
        fmt = format_named(query.get("format", OUTPUT_FORMATS[0]))
        name = query.get("name") or "image"
        try:
            realism = float(query["realism"]) if query.get("realism", "") != "" else None
        except ValueError:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"realism must be a number, got {query['realism']!r}") from None
        try:
            models.check(model, realism)
            source = query.get("source")
            if source is not None and data:
                raise UserError("give either an image body or source=JOB, not both")
            job = self.server.queue.submit(data if source is None else None, name, model, realism, fmt, source)
        except KeyError:
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no job {query.get('source')!r} to take the upload from") from None
        except TooLarge as exc:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc)) from None
        except UserError as exc:
            unreadable = "not a readable image" in str(exc) or "empty upload" in str(exc)
            raise HTTPError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE if unreadable else HTTPStatus.BAD_REQUEST, str(exc)) from None
        if query.get("wait") in ("1", "true", "yes"):
            self.server.queue.wait(job)
            if job.status != "done":
                raise HTTPError(HTTPStatus.UNPROCESSABLE_ENTITY, job.error or f"job {job.status}")
            return self._job_file(job, "result")
        self._json(self._describe(job), HTTPStatus.ACCEPTED)

    def _describe(self, job: Job) -> dict:
        done, total = job.tiles
        width, height = job.size
        base = f"/api/jobs/{job.id}"
        return {
            "id": job.id, "name": job.name, "model": job.model, "realism": job.realism, "format": job.format,
            "status": job.status, "position": self.server.queue.position(job), "tiles": [done, total],
            "progress": done / total if total else 0.0, "error": job.error, "width": width, "height": height,
            "scale": job.scale, "seconds": job.seconds,
            "bicubic": f"{base}/bicubic" if job.bicubic is not None else None,
            "result": f"{base}/result" if job.status == "done" else None,
            "filename": job.download_name() if job.status == "done" else None,
        }  # fmt: skip

    def _job_file(self, job: Job, what: str, fmt: str | None = None) -> None:
        """The result (``fmt``: in another format than the job's) or the bicubic comparison image."""
        if what == "bicubic":
            if job.bicubic is None:
                raise HTTPError(HTTPStatus.CONFLICT, f"job {job.id} has no bicubic image yet (status {job.status})")
            return self._send(HTTPStatus.OK, job.bicubic, IMAGE_TYPES["png"])  # always a PNG
        if job.status != "done":
            raise HTTPError(HTTPStatus.CONFLICT, f"job {job.id} has no result (status {job.status})")
        fmt = format_named(fmt or job.format)
        try:
            path = self.server.queue.result(job, fmt)
        except UserError as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        disposition = f'attachment; filename="{job.download_name(fmt)}"'
        self._send(HTTPStatus.OK, path, IMAGE_TYPES[fmt], disposition)

    def _json(self, value: dict, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes | Path, content_type: str, disposition: str | None = None) -> None:
        size = body.stat().st_size if isinstance(body, Path) else len(body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(size))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'")
        if disposition:
            self.send_header("Content-Disposition", disposition)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if isinstance(body, Path):
            with body.open("rb") as file:
                shutil.copyfileobj(file, self.wfile, 1 << 20)
        else:
            self.wfile.write(body)
