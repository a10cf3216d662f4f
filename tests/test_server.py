"""``srgan-mlx serve``: the page and the API's routes against a real server on an ephemeral port, its limits (uploads,
silent and trickling clients, connections) and refusals, the private folder removed at close, the command's
signals and one-line errors, and the page in a real browser (its jobs: test_jobs.py; its callers: test_hosts.py)."""


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
from http.client import HTTPConnection
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from srgan_mlx import environment
from srgan_mlx.cli import main
from srgan_mlx.serve.server import Server
from serving import png_bytes


ROOT = Path(__file__).resolve().parents[1]


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
