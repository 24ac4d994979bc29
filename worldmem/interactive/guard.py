"""The request guard in front of every route of the exploration server: only the page's own
origin may connect.

Every request must name a loopback Host (or the host the server was bound to), and a
websocket whose Origin is another site (a page the user happens to visit, a DNS-rebinding
attack) is refused with HTTP 403 before it gets a session; the ``server.allowed_origins``
list widens this. Every HTTP response gets ``SECURITY_HEADERS``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket

from fastapi.responses import PlainTextResponse
from starlette.datastructures import Headers, MutableHeaders

from worldmem.config import ServerConfig

__all__ = ["LOOPBACK_HOSTS", "RequestGuard", "SECURITY_HEADERS", "WILDCARD_HOSTS"]

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # bound to every interface
# the page loads its own script and style, draws PNG frames (blobs) and opens its websocket
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _host_name(value: str) -> str:
    """The host of a Host header or an origin's netloc: lower case, no port, no brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    return value.split(":", 1)[0] if value.count(":") == 1 else value  # else bare IPv6


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class RequestGuard:
    """ASGI middleware in front of every route.

    Refuses (HTTP 403, naming what was wrong) a request whose Host is not a loopback name,
    the host the server is bound to or an allowed origin's host (a DNS-rebinding page names
    its own domain), and a websocket whose Origin header is neither the request's own
    scheme://host nor in ``cfg.allowed_origins`` (another site's page opening it). A missing
    Origin (a script, not a browser) is accepted. Bound to every interface (0.0.0.0, ::),
    any IP-address Host and this machine's name are accepted too: an address cannot be
    rebound. Adds ``SECURITY_HEADERS`` to every HTTP response.
    """

    def __init__(self, app, cfg: ServerConfig):
        from urllib.parse import urlsplit

        self.app = app
        self.origins = {_origin_key(o) for o in cfg.allowed_origins}
        bound = _host_name(cfg.host)
        self.any_address = bound in WILDCARD_HOSTS
        hosts = {*LOOPBACK_HOSTS, bound, *(urlsplit(o).hostname or "" for o in self.origins)}
        if self.any_address:
            hosts |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        self.hosts = hosts - {"", *WILDCARD_HOSTS}

    def refusal(self, scope) -> str | None:
        """Why this request is refused, or None."""
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not host:
            return "the request has no Host header"
        name = _host_name(host)
        if name not in self.hosts and not (self.any_address and _is_ip(name)):
            return (
                f"Host {host!r} is not this server (expected {', '.join(sorted(self.hosts))}, "
                "any port)"
            )
        origin = headers.get("origin")
        if scope["type"] == "websocket" and origin is not None:
            own = f"{'https' if scope.get('scheme') == 'wss' else 'http'}://{host}"
            if _origin_key(origin) not in {_origin_key(own), *self.origins}:
                return (
                    f"websocket Origin {origin!r} is not this page's ({own}); "
                    "add it to server.allowed_origins to allow it"
                )
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is not None:
            log.warning("refused %s %s: %s", scope["type"], scope.get("path"), reason)
            if scope["type"] == "http" or "websocket.http.response" in scope.get("extensions", {}):
                response = PlainTextResponse(
                    f"403 forbidden: {reason}", status_code=403, headers=SECURITY_HEADERS
                )
                await response(scope, receive, send)
            else:  # the server answers the handshake with 403 itself
                await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS.items():
                    headers.setdefault(k, v)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _origin_key(origin: str) -> str:
    return origin.strip().rstrip("/").lower()
