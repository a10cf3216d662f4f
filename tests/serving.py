"""A running ``srgan-mlx serve`` for the tests (test_server, test_jobs, test_hosts, test_convert_model): a
:class:`Server` in a thread with a small HTTP client; ``conftest``'s ``serve``, ``models`` and ``photo`` fixtures
start one."""

import io
import json
import threading
import time
from http.client import HTTPConnection

import numpy as np
from click.testing import CliRunner
from PIL import Image

from srgan_mlx.cli import main
from srgan_mlx.serve.server import Server

def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class Running:
    """A :class:`Server` serving in a thread, with a small HTTP client."""

    def __init__(self, server: Server):
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    def request(self, method, path, body=None, headers=None):
        connection = HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        headers = {"Host": f"127.0.0.1:{self.server.port}", **(headers or {})}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, dict(response.getheaders()), data

    def json(self, method, path, body=None, headers=None):
        status, _, data = self.request(method, path, body, headers)
        return status, json.loads(data)

    def finished(self, job_id, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, job = self.json("GET", f"/api/jobs/{job_id}")
            assert status == 200, job
            if job["status"] in ("done", "failed", "cancelled"):
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish")

    def stop(self):
        self.server.shutdown()
        self.server.close()
        self.thread.join(timeout=10)


def upscale_with_cli(tmp_path, image, *options):
    source = tmp_path / "cli_in.png"
    image.save(source)
    out = tmp_path / "cli_out.png"
    result = CliRunner().invoke(main, ["upscale", str(source), "-o", str(out), "--quiet", *map(str, options)])
    assert result.exit_code == 0, result.output
    return np.asarray(Image.open(out))
