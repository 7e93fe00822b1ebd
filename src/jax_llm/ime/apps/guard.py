"""What `jax-llm ime serve` answers at all: only requests addressed to it, from its own page or from a
client that is no page (curl, a script). A server on 127.0.0.1 is reachable from every web page the user
opens: a foreign page can POST a "simple" request (text/plain, no CORS preflight) to teach the user
dictionary, and a DNS-rebinding page (its own name, resolved to 127.0.0.1) can read predictions, which
reveal the words taught. Three checks, in this order, before any route runs:

- `Host` must name this server: 127.0.0.1, localhost, [::1] or the `--host` address, with its port, or a
  name given with `--allow-host`; else 421 (a rebinding page sends its own name).
- `Origin`, when a request carries one, must be the server's own (http:// and an allowed Host); else 403,
  on every path, reads too. Browsers send it on every cross-origin fetch; curl and scripts send none.
- A POST body must be `Content-Type: application/json`; else 415. A cross-origin page can send that type
  only after a CORS preflight, which this server never grants.

Starlette's TrustedHostMiddleware compares host names only (not the port) and answers in plain text; this
one answers as the API does, `{"error": "one line"}`.
"""

import ipaddress
import json
import re

from jax_llm.errors import UserError

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
ANY_ADDRESS = ("0.0.0.0", "::", "")  # listening everywhere: not a name a client should address
_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
_HOST = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[^:\[\]]+)(:(?P<port>[0-9]{1,5}))?")


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def parse_allowed(value: str, port: int) -> str:
    """`--allow-host` NAME or NAME:PORT (an IPv6 address in brackets) as `name:port`; the server's port
    when none is given."""
    m = _HOST.fullmatch(value.strip().lower())
    name = m and m["name"]
    ok = bool(m) and (_NAME.fullmatch(name) is not None if not name.startswith("[") else _is_ipv6(name[1:-1]))
    if not ok or name in ("0.0.0.0", "[::]") or (m["port"] and not 0 < int(m["port"]) <= 65535):
        raise UserError(f"--allow-host must be a host name or address, optionally with :PORT, got {value!r}")
    return f"{name}:{m['port'] or port}"


def allowed_hosts(listen_host: str, port: int, extra=()) -> list[str]:
    """The `Host` values this server answers: the loopback names, the address it listens on (unless that
    is every address), and the `--allow-host` names, each with its port."""
    names = list(LOOPBACK)
    own = _bracketed(listen_host.lower())
    if listen_host not in ANY_ADDRESS and own not in names:
        names.append(own)
    hosts = [f"{n}:{port}" for n in names]
    return hosts + [h for h in (parse_allowed(e, port) for e in extra) if h not in hosts]


def _refusal(status: int, message: str):
    body = json.dumps({"error": message}).encode()
    return ({"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         (b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")]},
            {"type": "http.response.body", "body": body})


def _with_port(host: str) -> str:
    """`host` lowercased, with ":80" where it names no port (http's)."""
    host = host.lower()
    return host if ":" in host.rsplit("]", 1)[-1] else host + ":80"


def refusal(method: str, headers: dict[str, str], hosts: list[str]) -> tuple[int, str] | None:
    """(status, one-line reason) for a request this server must not answer, or None."""
    if _with_port(headers.get("host", "")) not in hosts:
        return 421, f"Host {headers.get('host', '')!r} is not this server's (it answers {', '.join(hosts)})"[:300]
    origin = headers.get("origin")
    if origin is not None and not (origin.lower().startswith("http://") and _with_port(origin[7:]) in hosts):
        return 403, f"requests from another page (Origin {origin!r}) are refused"[:300]
    if method == "POST":
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return 415, f"a POST body must be Content-Type: application/json, got {media or 'none'!r}"[:300]
    return None


class Guard:
    """ASGI middleware: the refusals above, before `app` sees the request."""

    def __init__(self, app, hosts: list[str]):
        self.app, self.hosts = app, list(hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            refused = refusal(scope["method"], headers, self.hosts)
            if refused:
                for message in _refusal(*refused):
                    await send(message)
                return
        await self.app(scope, receive, send)
