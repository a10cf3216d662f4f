"""``srgan-mlx serve``: the HTTP API against a real server on an ephemeral port, its limits and refusals,
concurrent requests, cancelling, and the same pixels as ``srgan-mlx upscale``."""

import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from http.client import HTTPConnection
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import srgan_mlx  # noqa: F401  (loads the BLAS before mlx)
from srgan_mlx import environment
from srgan_mlx.cli import main
from srgan_mlx.files.model_io import load_generator
from srgan_mlx.networks.weights_io import save_module
from srgan_mlx.serve.hosts import host_allowed
from srgan_mlx.serve.model_cache import Models
from srgan_mlx.serve.server import Limits, Server

ROOT = Path(__file__).resolve().parents[1]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((40, 30), Image.BICUBIC)


@pytest.fixture
def models(tmp_path, tiny_generator):
    """Two tiny x4 generators of one shape saved as files: ``fidelity`` and ``realistic``."""
    paths = {}
    for name, seed in (("fidelity", 0), ("realistic", 1)):
        generator = tiny_generator(4, seed=seed)
        paths[name] = tmp_path / "models" / f"{name}.safetensors"
        save_module(paths[name], generator, "generator", generator.config())
    return paths


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


@pytest.fixture
def serve(models):
    """``serve(**limits, tile=None)``: a running server offering ``realistic`` (default, with the realism dial)
    and ``fidelity``; stopped after the test."""
    started = []

    def start(tile=None, **limits):
        generators = {"realistic": load_generator(models["realistic"]), "fidelity": load_generator(models["fidelity"])}
        served = Models(generators, ("fidelity", generators["fidelity"]), tile=tile)
        running = Running(Server("127.0.0.1", 0, served, Limits(**limits)))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def upscale_with_cli(tmp_path, image, *options):
    source = tmp_path / "cli_in.png"
    image.save(source)
    out = tmp_path / "cli_out.png"
    result = CliRunner().invoke(main, ["upscale", str(source), "-o", str(out), "--quiet", *map(str, options)])
    assert result.exit_code == 0, result.output
    return np.asarray(Image.open(out))


def test_models_and_page(serve):
    running = serve()
    status, info = running.json("GET", "/api/models")
    assert status == 200
    assert info["models"] == [{"name": "realistic", "scale": 4, "realism": True},
                              {"name": "fidelity", "scale": 4, "realism": False}]  # fmt: skip
    assert info["default"] == "realistic" and info["formats"] == ["png", "jpg", "webp"]
    for path, kind in (("/", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css")):
        status, headers, body = running.request("GET", path)
        assert status == 200 and headers["Content-Type"].startswith(kind) and body
    status, error = running.json("GET", "/etc/passwd")
    assert status == 404 and "no such page" in error["error"]


@pytest.mark.parametrize("realism", [None, 0.3])
def test_same_pixels_as_the_command_line(serve, models, photo, tmp_path, realism):
    """A job's PNG equals ``srgan-mlx upscale`` with the same model and realism, bit for bit."""
    running = serve()
    query = "name=photo.png" + ("" if realism is None else f"&realism={realism}")
    status, job = running.json("POST", f"/api/upscale?{query}", png_bytes(photo))
    assert status == 202 and job["status"] in ("queued", "running") and job["width"] == 40 and job["height"] == 30
    job = running.finished(job["id"])
    assert job["status"] == "done", job
    status, headers, body = running.request("GET", job["result"])
    assert status == 200 and headers["Content-Type"] == "image/png"
    expected_name = "photo_x4.png" if realism is None else f"photo_x4_realism{realism:g}.png"
    assert headers["Content-Disposition"] == f'attachment; filename="{expected_name}"'
    options = ["--model", models["realistic"]]
    if realism is not None:
        options += ["--realism", realism, "--fidelity-model", models["fidelity"]]
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))), upscale_with_cli(tmp_path, photo, *options))
    status, headers, bicubic = running.request("GET", job["bicubic"])
    assert status == 200 and Image.open(io.BytesIO(bicubic)).size == (160, 120)


def test_wait_answers_the_image_and_formats_convert(serve, photo):
    running = serve()
    status, headers, body = running.request("POST", "/api/upscale?wait=1&format=jpg&name=a%20b.png", png_bytes(photo))
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(body)).format == "JPEG" and Image.open(io.BytesIO(body)).size == (160, 120)
    assert headers["Content-Disposition"] == 'attachment; filename="a_b_x4.jpg"'
    status, job = running.json("POST", "/api/upscale?name=p.png", png_bytes(photo))
    job = running.finished(job["id"])
    status, headers, body = running.request("GET", f"{job['result']}?format=webp")
    assert status == 200 and Image.open(io.BytesIO(body)).format == "WEBP"
    status, error = running.json("GET", f"{job['result']}?format=gif")
    assert status == 400 and "unknown format 'gif'" in error["error"]


def huge_png_header(width, height):
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb's header), with one tiny IDAT."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("body, status, message", [
    (b"", 415, "photo.png: empty upload (0 bytes)"),
    (b"not an image at all", 415, "photo.png: not a readable image"),
    ("truncated", 415, "photo.png: not a readable image"),
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", 415, "photo.png: not a readable image"),
    (huge_png_header(100, 100), 413, "photo.png: 100x100 is 10,000 pixels, over this server's limit of 4,096"),
    (huge_png_header(100_000, 100_000), 413,  # Pillow's own guard (179 MP) does not speak first: the server's limit
     "photo.png: 100000x100000 is 10,000,000,000 pixels, over this server's limit of 4,096 (srgan-mlx serve "
     "--max-pixels)"),
])  # fmt: skip
def test_bad_uploads_are_clear_errors_and_the_server_goes_on(serve, photo, body, status, message):
    running = serve(max_pixels=64 * 64)
    if body == "truncated":
        body = png_bytes(photo)[:200]
    got, error = running.json("POST", "/api/upscale?name=photo.png", body)
    assert got == status and message in error["error"], error
    got, job = running.json("POST", "/api/upscale?name=next.png", png_bytes(photo))
    assert got == 202 and running.finished(job["id"])["status"] == "done"


def test_limits_upload_size_and_pixels(serve, photo):
    running = serve(max_upload=4000, max_pixels=30 * 30)
    status, error = running.json("POST", "/api/upscale", b"x" * 4001)
    assert status == 413 and "upload of 4,001 bytes is over this server's limit of 4,000" in error["error"]
    small = png_bytes(photo.resize((20, 20)))
    status, error = running.json("POST", "/api/upscale?name=big.png", png_bytes(photo.resize((31, 30))))
    assert status == 413 and "big.png: 31x30 is 930 pixels, over this server's limit of 900" in error["error"]
    status, job = running.json("POST", "/api/upscale", small)
    assert status == 202


@pytest.mark.parametrize("query, message", [
    ("model=nope", "unknown model 'nope'; this server has realistic, fidelity"),
    ("model=fidelity&realism=0.5", "model 'fidelity' has no realism dial"),
    ("realism=1.5", "realism must be between 0 and 1"),
    ("realism=lots", "realism must be a number"),
    ("format=gif", "unknown format 'gif'"),
])  # fmt: skip
def test_bad_parameters(serve, photo, query, message):
    status, error = serve().json("POST", f"/api/upscale?{query}", png_bytes(photo))
    assert status == 400 and message in error["error"]


def test_job_routes(serve, photo):
    running = serve()
    assert running.json("GET", "/api/jobs/0123456789abcdef")[0] == 404
    assert running.json("GET", "/api/upscale")[0] == 405
    status, job = running.json("POST", "/api/upscale?name=p.png", png_bytes(photo))
    status, again = running.json("POST", f"/api/upscale?source={job['id']}&realism=0")
    assert status == 202 and again["name"] == "p.png"
    assert running.finished(again["id"])["status"] == "done"
    status, error = running.json("POST", "/api/upscale?source=ffffffffffffffff")
    assert status == 404


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


def raw_exchange(port, data, timeout=30.0):
    """Send raw bytes on a new connection and return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        client.sendall(data)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


def status_and_error(answer):
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


def test_a_request_without_host_or_with_a_bad_length_is_a_400(serve):
    running = serve()
    port = running.server.port
    status, error = status_and_error(raw_exchange(port, b"GET /api/models HTTP/1.0\r\n\r\n"))
    assert status == 400 and error == "refused: no Host header (HTTP/1.1 requests name the server)"
    for length in ("-5", "+5", "1e3", "lots"):
        status, error = running.json("POST", "/api/upscale", b"", {"Content-Length": length})
        assert status == 400 and error["error"] == f"bad Content-Length {length!r} (a number of bytes)", length
    assert running.json("GET", "/api/models")[0] == 200


def test_a_silent_upload_gets_408_and_the_server_goes_on(serve, photo):
    """A client that declares a body and sends nothing: 408 after the timeout, not a worker held for ever."""
    running = serve(timeout=1)
    port = running.server.port
    started = time.monotonic()
    answer = raw_exchange(port, f"POST /api/upscale?name=a.png HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                "Content-Length: 1000\r\n\r\n".encode())  # fmt: skip
    status, error = status_and_error(answer)
    assert status == 408 and error.startswith("upload timed out: 0 of 1,000 bytes in 1 s"), error
    assert time.monotonic() - started < 10
    status, job = running.json("POST", "/api/upscale?name=b.png", png_bytes(photo))
    assert status == 202


def test_a_trickling_upload_gets_408(serve):
    """Each part comes within the timeout, but the whole is far slower than the least rate: 408 at the deadline
    (the timeout plus the size at that rate), not when the client pleases."""
    running = serve(timeout=1, min_upload_rate=1000)
    port = running.server.port
    client = socket.create_connection(("127.0.0.1", port), timeout=30)
    client.sendall(f"POST /api/upscale HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 3000\r\n\r\n".encode())
    started = time.monotonic()
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.25):
            try:
                client.sendall(b"x" * 25)  # 100 bytes/s, a part every 0.25 s
            except OSError:
                return

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    finally:
        stop.set()
        sender.join()
        client.close()
    status, error = status_and_error(answer)
    assert status == 408 and " of 3,000 bytes in 4 s" in error, error
    assert 3.5 < time.monotonic() - started < 10


def wait_for(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_client_that_leaves_is_one_log_line(serve, photo, capfd):
    """Gone in the middle of its upload, or before its answer (reset while its job ran): one line each on
    stderr, no traceback, and the server goes on."""
    running = serve()
    port = running.server.port
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(f"POST /api/upscale HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 1000\r\n\r\n"
                       "only ten b".encode())  # fmt: skip
    seen = []

    def lines():
        seen.extend(capfd.readouterr().err.splitlines())
        return seen

    wait_for(lambda: any("left" in line for line in lines()))
    body = png_bytes(photo)
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(f"POST /api/upscale?wait=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}"
                   "\r\n\r\n".encode() + body)  # fmt: skip
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # a reset: the answer cannot be written
    wait_for(lambda: sum("left" in line for line in lines()) >= 2)
    time.sleep(0.5)
    lines()
    assert len(seen) == 2 and "Traceback" not in "\n".join(seen), seen
    assert seen[0].startswith("srgan-mlx serve: 127.0.0.1:") and seen[0].endswith(
        "left before the answer to POST /api/upscale (ConnectionResetError)"), seen
    assert "left before the answer to POST /api/upscale (" in seen[1] or " left (" in seen[1], seen
    assert running.json("GET", "/api/models")[0] == 200


def test_connections_over_the_cap_get_503(serve):
    running = serve(max_connections=2)
    port = running.server.port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]  # each holds a thread and a slot
    try:
        wait_for(lambda: running.server.connections == 2)
        status, error = running.json("GET", "/api/models")
        assert status == 503 and error["error"] == "busy: 2 connections are open (srgan-mlx serve --max-connections)"
        idle.pop().close()
        wait_for(lambda: running.server.connections == 1)
        assert running.json("GET", "/api/models")[0] == 200
    finally:
        for client in idle:
            client.close()


def test_host_names_allowed():
    assert host_allowed("127.0.0.1:8000", 8000, "127.0.0.1")
    assert host_allowed("localhost:8000", 8000, "127.0.0.1")
    assert host_allowed("[::1]:8000", 8000, "::1")
    assert not host_allowed("localhost:8001", 8000, "127.0.0.1")
    assert not host_allowed("rebind.attacker.example:8000", 8000, "127.0.0.1")
    assert not host_allowed(None, 8000, "127.0.0.1") and not host_allowed("", 8000, "127.0.0.1")
    assert host_allowed("myhost:8000", 8000, "myhost")


def test_concurrent_uploads_do_not_mix(serve, models, photo, tmp_path):
    """Four clients at once: each gets the upscale of its own image; jobs wait in order."""
    running = serve()
    images = [photo.rotate(90 * i) for i in range(4)]
    answers = [None] * 4

    def client(i):
        answers[i] = running.request("POST", f"/api/upscale?wait=1&name={i}.png", png_bytes(images[i]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    generator = load_generator(models["realistic"])
    from srgan_mlx.upscaling.upscaler import Upscaler

    upscaler = Upscaler(generator)
    for image, (status, _, body) in zip(images, answers):
        assert status == 200
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))), np.asarray(upscaler(image)))


def test_cancel_a_waiting_and_a_running_job(serve, photo):
    running = serve(tile=4)  # many tiles: the running job sees the cancel between two of them
    big = png_bytes(photo.resize((64, 64)))
    _, first = running.json("POST", "/api/upscale?name=first.png", big)
    _, second = running.json("POST", "/api/upscale?name=second.png", big)
    assert running.json("GET", f"/api/jobs/{second['id']}")[1]["position"] >= 1
    status, cancelled = running.json("DELETE", f"/api/jobs/{second['id']}")
    assert status == 200 and cancelled["status"] == "cancelled"
    deadline = time.monotonic() + 60
    while running.json("GET", f"/api/jobs/{first['id']}")[1]["status"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.01)
    running.json("DELETE", f"/api/jobs/{first['id']}")
    assert running.finished(first["id"])["status"] in ("cancelled", "done")
    status, error = running.json("GET", f"/api/jobs/{second['id']}/result")
    assert status == 409 and "has no result (status cancelled)" in error["error"]
    _, third = running.json("POST", "/api/upscale?name=third.png", png_bytes(photo))
    assert running.finished(third["id"])["status"] == "done"


def test_everything_written_goes_into_one_folder_removed_at_close(serve, photo):
    running = serve()
    folder = running.server.folder
    _, job = running.json("POST", "/api/upscale?name=../../escape.png", png_bytes(photo))
    job = running.finished(job["id"])
    assert job["status"] == "done" and job["filename"] == "escape_x4.png"
    assert {p.parent for p in folder.rglob("*")} == {folder}
    running.stop()
    assert not folder.exists()


STOPS = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]


@pytest.mark.parametrize("signum", STOPS, ids=lambda s: signal.Signals(s).name)
def test_serve_command_stops_on_ctrl_c_sigterm_and_sighup_and_leaves_nothing(models, photo, tmp_path, signum):
    """Stopped with an upload done and a job running, by Ctrl-C, SIGTERM (kill, docker stop, systemd) or SIGHUP
    (a closed terminal): exit 0, no traceback, and its private folder with every upload and result removed."""
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    process = subprocess.Popen(
        [sys.executable, "-m", "srgan_mlx", "serve", "--port", "0", "--model", str(models["realistic"]),
         "--fidelity-model", str(models["fidelity"]), "--max-memory", "1MB"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith("srgan-mlx serve: http://127.0.0.1:") and "models: realistic;" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        connection = HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/models")
        assert json.loads(connection.getresponse().read())["models"][0]["realism"] is True
        headers = {"Host": f"127.0.0.1:{port}"}
        connection.request("POST", "/api/upscale?name=a.png&wait=1", png_bytes(photo), headers)
        assert connection.getresponse().read()[:4] == b"\x89PNG"  # a finished job: upload, bicubic, result
        connection.request("POST", "/api/upscale?name=b.png", png_bytes(photo.resize((200, 150))), headers)
        assert json.loads(connection.getresponse().read())["status"] in ("queued", "running")  # one still at work
        folder, = temp.glob("srgan-mlx-serve-*")
        assert len(list(folder.iterdir())) >= 4
    finally:
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    name = signal.Signals(signum).name
    assert stderr.splitlines()[-1] == ("stopping" if signum == signal.SIGINT else f"stopping ({name})")
    assert not list(temp.iterdir())


def test_serve_warns_when_bound_beyond_this_machine(models):
    process = subprocess.Popen(
        [sys.executable, "-m", "srgan_mlx", "serve", "--host", "0.0.0.0", "--port", "0", "--model",
         str(models["realistic"])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout.readline().startswith("srgan-mlx serve: http://127.0.0.1:")
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert "--host 0.0.0.0: anyone who can reach this machine" in stderr


def test_the_page_in_a_real_browser(serve, tmp_path):
    """Headless Chromium: upload samples/astronaut.png, wait for the result, drag the before/after divider, zoom to
    100% and pan, turn the realism dial, download PNG and JPEG (checked: 4x the size), and see a bad file fail
    alone. Screenshots of each state go to $SRGAN_MLX_SCREENSHOTS when set."""
    from webdriver import Browser, find_browser

    found = find_browser()
    if found is None:
        pytest.skip("no Chromium and chromedriver installed (Debian: apt-get install chromium chromium-driver)")
    shots = Path(os.environ.get(environment.SCREENSHOTS, tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    downloads = tmp_path / "downloads"
    running = serve()
    browser = Browser(*found, tmp_path / "profile", downloads)
    card = "document.querySelector('.card')"
    try:
        browser.open(running.server.url)
        browser.wait_for("return document.querySelector('#model').options.length === 2")
        dial_shown = "return getComputedStyle(document.querySelector('#realism-control')).display !== 'none'"
        assert browser.run(dial_shown) is True
        browser.screenshot(shots / "1-start.png")
        browser.type(browser.find("#files"), str(ROOT / "samples" / "astronaut.png"))
        browser.wait_for(f"return !{card}.querySelector('.download').hidden")
        assert browser.run(f"return {card}.querySelector('.after').naturalWidth") == 512
        assert "128×128 → 512×512" in browser.run(f"return {card}.querySelector('.status').textContent")
        browser.screenshot(shots / "2-done.png")

        browser.drag(browser.find(".card .stage"), -150)
        divider = float(browser.run(f"return {card}.querySelector('.slider').value"))
        assert divider < 45, divider
        clip = browser.run(f"return {card}.querySelector('.after-clip').style.clipPath")
        assert clip.startswith("inset(0px 0px 0px ") and float(clip[18:-2]) == pytest.approx(divider, abs=1), clip

        browser.click(browser.find(".card .zoom"))
        assert browser.run(f"return {card}.classList.contains('zoomed')")
        shown = browser.run(f"return {card}.querySelector('.after').getBoundingClientRect().width")
        assert shown == pytest.approx(512, abs=1)  # one image pixel per screen pixel
        first = browser.run(f"return {card}.querySelector('.after').style.transform")
        browser.drag(browser.find(".card .stage"), 120, 80)
        moved = browser.run(f"return {card}.querySelector('.after').style.transform")
        assert moved != first and moved == browser.run(f"return {card}.querySelector('.before').style.transform")
        browser.screenshot(shots / "3-zoom.png")
        browser.click(browser.find(".card .zoom"))

        browser.run("const r = document.querySelector('#realism'); r.value = '0.5';"
                    "r.dispatchEvent(new Event('input')); r.dispatchEvent(new Event('change'));")
        browser.wait_for(f"return {card}.querySelector('.tag-after').textContent.includes('realism 0.5')")
        for fmt, name in (("png", "astronaut_x4_realism0.5.png"), ("jpg", "astronaut_x4_realism0.5.jpg")):
            browser.run(f"const f = document.querySelector('#format'); f.value = '{fmt}';"
                        "f.dispatchEvent(new Event('change'));")  # fmt: skip
            browser.click(browser.find(".card .download"))
            target = downloads / name
            deadline = time.monotonic() + 60
            while not target.is_file() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.3)
            with Image.open(target) as image:
                assert image.size == (512, 512) and image.format == ("PNG" if fmt == "png" else "JPEG")

        broken = tmp_path / "broken.png"
        broken.write_bytes(b"this is not a picture")
        browser.type(browser.find("#files"), str(broken))
        browser.wait_for(f"return !{card}.querySelector('.error').hidden")
        error = browser.run(f"return {card}.querySelector('.error').textContent")
        assert error == "broken.png: not a readable image", error
        assert browser.run("return document.querySelectorAll('.card')[1].querySelector('.download').hidden") is False
        browser.screenshot(shots / "4-error.png")

        browser.run("const m = document.querySelector('#model'); m.value = 'fidelity';"
                    "m.dispatchEvent(new Event('change'));")  # fmt: skip
        assert browser.run(dial_shown) is False  # no dial for the dial's own fidelity end
    finally:
        browser.quit()


def test_two_models_of_one_name_are_refused(models, tmp_path, monkeypatch):
    """The page names models by file or folder: two that would share a name (here two files called realistic, or a
    fidelity end named like a served model) are refused in one line, before any server starts."""

    def stop_at_once(self):
        raise KeyboardInterrupt  # a server that did start stops at once (exit 0)

    monkeypatch.setattr(Server, "serve_forever", stop_at_once)
    other = tmp_path / "other" / "realistic.safetensors"
    other.parent.mkdir()
    shutil.copy(models["realistic"], other)
    for extra in (["--model", str(other)], ["--fidelity-model", str(other)]):
        result = CliRunner().invoke(main, ["serve", "--port", "0", "--model", str(models["realistic"]), *extra])
        assert result.exit_code == 1, result.output
        assert result.output == (f"error: {models['realistic']} and {other} would both be called 'realistic' on the "
                                 "page: export one under another file name (srgan-mlx export)\n")  # fmt: skip


def test_a_port_in_use_is_a_one_line_error(models):
    """Another program on the port: one line naming it, exit 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port), "--model", str(models["realistic"])])
    assert result.exit_code == 1, result.output
    assert result.output == f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
