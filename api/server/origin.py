"""Requests that other web pages make through the user's browser are refused.

A server on loopback without an API key trusts whoever can reach it, and every web page the
user opens can: a form post or a `no-cors` fetch needs no CORS preflight, so any site could
upload into the inbox or run questions (it cannot read the answers, but it need not), and a
DNS-rebinding page (the attacker's name, made to point at 127.0.0.1 once its script is
loaded) is the server's own origin to the browser, so it can read everything.

`SameOrigin` refuses both. A state-changing request (POST, PUT, PATCH, DELETE) that a browser
marks as coming from another site (`Sec-Fetch-Site`), or whose `Origin` is not the server it
was sent to (`Host`), gets 403. A request sent to a name that is not the server's own gets
400: a rebinding page's requests carry its name in `Host`. Programs (curl, the CLI, OpenAI
clients, scripts) send neither header, and keep working.
"""

import ipaddress
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.server.errors import error_body
from api.service import Settings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ANY_ADDRESS = {"0.0.0.0", "::", ""}
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


class SameOrigin:
    """ASGI middleware: refuses requests to another name, and changes from another page.

    Args:
        hosts: the names the server answers to besides localhost and IP addresses; None for
            any name.
    """

    def __init__(self, app: ASGIApp, *, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(Request(scope)) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    def _refusal(self, request: Request) -> JSONResponse | None:
        host = request.headers.get("host")
        if host is not None and not self._answers_to(host_name(host)):
            port = (request.scope.get("server") or ("", 8000))[1]
            detail = (
                "this server does not answer to the name this request was sent to (its Host "
                f"header) — open it at http://localhost:{port}/, or add the name to "
                "ARCHIVIST_ALLOWED_HOSTS (comma-separated)"
            )
            return _refuse(request, 400, detail, "unknown-host")
        if request.method in UNSAFE_METHODS and from_another_page(request):
            detail = (
                "another web page sent this request through your browser: changes are accepted "
                "only from Archivist's own page and from programs (curl, scripts) — use the "
                "page at this server's address (behind a reverse proxy, pass the browser's Host "
                "header on)"
            )
            return _refuse(request, 403, detail, "cross-origin")
        return None

    def _answers_to(self, name: str) -> bool:
        return self.hosts is None or name in self.hosts or name == "localhost" or _is_ip(name)


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The names a server with these settings answers to besides localhost and IP addresses;
    None for any: `*` in ARCHIVIST_ALLOWED_HOSTS, or an API key and no names configured (a
    rebinding page never holds the key, so the key alone keeps it out)."""
    if "*" in settings.allowed_hosts or (settings.api_key and not settings.allowed_hosts):
        return None
    own = host_name(settings.host)
    return frozenset(settings.allowed_hosts) | ({own} - _ANY_ADDRESS)


def from_another_page(request: Request) -> bool:
    """Whether a browser sent this request for a page of another origin."""
    site = request.headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):  # same-site: another port, or a sibling subdomain
        return True
    origin = request.headers.get("origin")
    if origin is None:  # not a browser, or a browser that marks only cross-site requests
        return False
    return _authority(origin) != _without_default_port(request.headers.get("host", ""))


def host_name(host: str) -> str:
    """The name in a Host header or setting, without its port: "[::1]:8000" -> "::1"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _refuse(request: Request, status: int, detail: str, reason: str) -> JSONResponse:
    return JSONResponse(error_body(request, detail, reason), status)


def _is_ip(name: str) -> bool:
    # An address cannot be rebound: a page whose origin is an address came from that address.
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _authority(origin: str) -> str | None:
    """The host and port of an Origin ("localhost:8000"); None for "null" or not http(s)."""
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        return None
    return _without_default_port(parts.netloc)


def _without_default_port(host: str) -> str:
    host = host.strip().lower()
    for port in _DEFAULT_PORTS.values():
        host = host.removesuffix(port)
    return host
