"""A small W3C WebDriver client for the browser test: ChromeDriver driving headless Chromium, over HTTP with
the standard library (no Selenium to install). Only what the test uses: open a page, find elements, type into
them (a file input takes a path), click, run JavaScript, pointer drags, screenshots."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from http.client import HTTPConnection
from pathlib import Path

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CHROME_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
    "--window-size=1280,1000",
]  # fmt: skip


def find_browser() -> tuple[str, str] | None:
    """(browser, chromedriver) paths, or None where either is not installed."""
    driver = shutil.which("chromedriver")
    browser = next((path for path in map(shutil.which, BROWSERS) if path), None)
    return (browser, driver) if browser and driver else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One headless Chromium session; ``downloads`` is where it saves downloaded files. Chromium and its driver get
    a temp dir of their own, removed by :meth:`quit`: Chromium removes its ``scoped_dir`` folders as it exits,
    sometimes after the session has ended, so in the tests' temp dir they could outlive the test. It is a short
    path under /tmp: with a folder under pytest's ``tmp_path`` Chromium did not start (likely the 107-byte limit
    on the paths of the Unix sockets it puts there)."""

    def __init__(self, browser: str, driver: str, profile: Path, downloads: Path):
        self.port = free_port()
        self.scratch = Path(tempfile.mkdtemp(prefix="chromium-", dir="/tmp"))
        env = {**os.environ, "TMPDIR": str(self.scratch)}
        self.process = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.process.kill()
                shutil.rmtree(self.scratch, ignore_errors=True)
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.1)
        options = {
            "binary": browser, "args": [*CHROME_FLAGS, f"--user-data-dir={profile}"],
            "prefs": {"download.default_directory": str(downloads), "download.prompt_for_download": False},
        }  # fmt: skip
        capabilities = {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}
        self.session = self._call("POST", "/session", {"capabilities": capabilities})["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        connection = HTTPConnection("127.0.0.1", self.port, timeout=120)
        connection.request(method, path, json.dumps(body) if body is not None else None,
                           {"Content-Type": "application/json"})  # fmt: skip
        answer = json.loads(connection.getresponse().read())
        connection.close()
        value = answer.get("value")
        if isinstance(value, dict) and "error" in value:
            raise RuntimeError(f"webdriver {method} {path}: {value['error']}: {value.get('message', '')[:300]}")
        return value

    def call(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, element: str, text: str) -> None:
        self.call("POST", f"/element/{element}/value", {"text": text})

    def click(self, element: str) -> None:
        self.call("POST", f"/element/{element}/click", {})

    def run(self, script: str, *args):
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait_for(self, script: str, *args, timeout: float = 120):
        """Poll the JavaScript ``script`` (a function body returning a value) until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.run(script, *args)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for: {script}")

    def drag(self, element: str, dx: int, dy: int = 0) -> None:
        """Press the pointer at the middle of ``element``, move it by (dx, dy), release."""
        origin = {ELEMENT: element}
        actions = [{"type": "pointerMove", "duration": 0, "origin": origin, "x": 0, "y": 0},
                   {"type": "pointerDown", "button": 0},
                   {"type": "pointerMove", "duration": 200, "origin": "pointer", "x": dx, "y": dy},
                   {"type": "pointerUp", "button": 0}]  # fmt: skip
        self.call("POST", "/actions", {"actions": [{"type": "pointer", "id": "mouse", "parameters":
                                                    {"pointerType": "mouse"}, "actions": actions}]})  # fmt: skip
        self.call("DELETE", "/actions")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("GET", "/screenshot")))

    def quit(self) -> None:
        try:
            self.call("DELETE", "")
        finally:
            self.process.terminate()
            self.process.wait(timeout=10)
            shutil.rmtree(self.scratch, ignore_errors=True)
