"""Who may use ``srgan-mlx serve``: Host names that cannot be an attacker's domain (DNS rebinding), and no requests
from other sites (Origin, Sec-Fetch-Site)."""

import pytest

from srgan_mlx.serve.hosts import host_allowed
from serving import png_bytes


@pytest.mark.parametrize("headers, message", [
    ({"Host": "attacker.example:{port}"}, "Host 'attacker.example:{port}' is not this server"),
    ({"Host": "127.0.0.1:1"}, "Host '127.0.0.1:1' is not this server"),
    ({"Origin": "http://attacker.example"}, "requests from http://attacker.example"),
    ({"Origin": "null"}, "requests from null"),
    ({"Sec-Fetch-Site": "cross-site"}, "a cross-site request"),
])  # fmt: skip
def test_other_sites_are_refused(serve, photo, headers, message):
    """DNS rebinding (a foreign Host) and cross-site requests (another Origin) get 403 and start no job."""
    running = serve()
    port = running.server.port
    headers = {k: v.format(port=port) for k, v in headers.items()}
    status, error = running.json("POST", "/api/upscale", png_bytes(photo), headers)
    assert status == 403 and message.format(port=port) in error["error"]
    assert not running.server.queue.jobs
    status, _ = running.json("POST", "/api/upscale", png_bytes(photo), {"Origin": f"http://127.0.0.1:{port}"})
    assert status == 202


def test_host_names_allowed():
    assert host_allowed("127.0.0.1:8000", 8000, "127.0.0.1")
    assert host_allowed("localhost:8000", 8000, "127.0.0.1")
    assert host_allowed("[::1]:8000", 8000, "::1")
    assert not host_allowed("localhost:8001", 8000, "127.0.0.1")
    assert not host_allowed("rebind.attacker.example:8000", 8000, "127.0.0.1")
    assert not host_allowed(None, 8000, "127.0.0.1") and not host_allowed("", 8000, "127.0.0.1")
    assert host_allowed("myhost:8000", 8000, "myhost")
