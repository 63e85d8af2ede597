"""The ``Host`` check that keeps a local server out of reach of DNS rebinding.

A web page on any site can point its own domain name at 127.0.0.1 and then
talk to a server on the victim's machine as if it were its own origin: send
photos, read the answers, fetch the training photos' thumbnails. The browser
still sends the attacker's name in ``Host``, so the server refuses any name it
was not told about (as Jupyter does). It answers:

* an IP literal (any address, v4 or v6, with or without the port): rebinding
  needs a name, and an address in ``Host`` means the user typed it;
* a loopback name (``localhost``, which browsers resolve to loopback
  themselves);
* the names given with ``--allowed-host NAME`` (``*``: every name, for a
  server behind a proxy that checks names itself).

Anything else gets 421 Misdirected Request with a one-line reason.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Any

__all__ = ["LOOPBACK_NAMES", "HostCheck", "host_allowed", "host_name"]

#: Names that browsers resolve to loopback without asking DNS.
LOOPBACK_NAMES = frozenset({"localhost"})


def host_name(value: str) -> str:
    """The name or address of a ``Host`` header value: no port, brackets or final dot.

    Parameters
    ----------
    value
        ``name``, ``name:port``, ``1.2.3.4:port``, ``[v6]`` or ``[v6]:port``.
    """
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:  # name:port or v4:port; a bare v6 address has several
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(value: str, allowed: Iterable[str] = ()) -> bool:
    """Whether a server answers a request with this ``Host`` header value.

    Parameters
    ----------
    value
        The header's value.
    allowed
        Extra names (``--allowed-host``), case-insensitive; ``*`` allows all.
    """
    extra = {host_name(name) for name in allowed}
    if "*" in extra:
        return True
    name = host_name(value)
    return bool(name) and (_is_ip_literal(name) or name in LOOPBACK_NAMES or name in extra)


class HostCheck:
    """ASGI middleware: 421 for a ``Host`` that :func:`host_allowed` refuses.

    A request without a ``Host`` header (HTTP/1.0) has no name to rebind and
    is answered.
    """

    def __init__(self, app: Any, allowed: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = tuple(allowed)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = next((v for k, v in scope.get("headers", ()) if k == b"host"), None)
            if host is not None:
                text = host.decode("latin-1")
                if not host_allowed(text, self.allowed):
                    await self._refuse(scope, send, text)
                    return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: dict[str, Any], send: Any, host: str) -> None:
        shown = host if len(host) <= 80 else host[:77] + "..."
        detail = (
            f"Host {shown!r} is not served here: this server answers IP addresses, "
            "localhost and the names given with --allowed-host (DNS rebinding protection)"
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 421,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
