"""Who may use ``srgan-mlx serve``: requests whose ``Host`` is not this server's (DNS rebinding) and requests from
another origin (``Origin``, ``Sec-Fetch-Site``: a web page trying to use the server) are refused."""

from __future__ import annotations

import ipaddress
import socket
from http import HTTPStatus
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> tuple[str, int | None]:
    """``example:8000`` -> ("example", 8000); ``[::1]:80`` -> ("::1", 80); no port -> None."""
    parts = urlsplit("//" + value)
    try:
        return (parts.hostname or ""), parts.port
    except ValueError:
        return "", -1


def host_allowed(value: str | None, port: int, bound: str) -> bool:
    """Whether a request's ``Host`` names this server: its port, and a name that cannot be an attacker's domain
    (DNS rebinding): ``localhost``, an IP address, the name it was bound to, or this machine's name."""
    if not value:
        return False
    hostname, given_port = _split_host(value)
    if (given_port or 80) != port or not hostname:
        return False
    try:
        ipaddress.ip_address(hostname)
        return True
    except ValueError:
        pass
    names = {"localhost", bound.lower(), socket.gethostname().lower()}
    return hostname.lower() in names


def refusal(method: str, headers, port: int, bound: str) -> tuple[HTTPStatus, str] | None:
    """Why a request is refused (400 without a Host, 403 unless it names this server as its Host and comes from no
    other site: Origin, Sec-Fetch-Site), or None: it may be served."""
    host = headers.get("Host")
    if not host:
        return HTTPStatus.BAD_REQUEST, "refused: no Host header (HTTP/1.1 requests name the server)"
    if not host_allowed(host, port, bound):
        return HTTPStatus.FORBIDDEN, f"refused: Host {host!r} is not this server"
    origin = headers.get("Origin")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        return HTTPStatus.FORBIDDEN, f"refused: requests from {origin} (another site) are not served"
    if method != "GET" and headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return HTTPStatus.FORBIDDEN, "refused: a cross-site request"
    return None


def peer(address) -> str:
    """A client's address as log lines name it: ``host:port``, ``[v6 host]:port``."""
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
