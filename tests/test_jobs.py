"""The job queue of ``srgan-mlx serve``, through its HTTP API: a job's pixels are ``srgan-mlx upscale``'s, results
convert between formats, uploads are checked before they are queued, an upload serves a later job again, concurrent
jobs do not mix, and waiting and running jobs can be cancelled."""


import io
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from srgan_mlx.files.model_io import load_generator
from serving import png_bytes, upscale_with_cli


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
