"""Who may use the console, and the headers that keep a browser from being turned against it.

* Bound to a loopback address, the console needs no token (only this machine reaches it) unless one is
  configured; any other bind address requires a token, generated and printed once unless configured.
* A token is presented once (``/login``, or ``?token=`` in the printed address, or ``Authorization: Bearer``
  for scripts); the browser then holds a session cookie (HttpOnly, SameSite=Strict, Secure over TLS).
* State-changing requests are POST and carry a CSRF token bound to the session (and a same-origin Origin).
* On loopback the Host header must name the console itself: a DNS-rebinding page cannot reach it.
* Every answer carries a strict Content-Security-Policy: scripts and styles only from the console itself.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

SESSION_COOKIE = "otsensor_console"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Guard:
    """The console's access rules for one bind address."""

    bind_host: str
    port: int
    token: str | None = None          # None: no token (loopback only)
    tls: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def local(self) -> bool:
        return is_loopback(self.bind_host)

    # -- sessions ---------------------------------------------------------------------------------------

    def _sign(self, sid: str, purpose: str) -> str:
        return hmac.new(self.secret, f"{purpose}:{sid}".encode(), hashlib.sha256).hexdigest()[:32]

    def new_session(self, authenticated: bool) -> str:
        sid = secrets.token_urlsafe(18)
        return f"{sid}.{int(authenticated)}.{self._sign(sid + str(int(authenticated)), 'session')}"

    def session_of(self, cookie_header: str | None) -> tuple[str, bool] | None:
        """(session, authenticated) from a valid session cookie, else None."""
        if not cookie_header:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except Exception:       # a malformed Cookie header is treated as no cookie  # noqa: BLE001
            return None
        morsel = jar.get(SESSION_COOKIE)
        if morsel is None:
            return None
        parts = morsel.value.split(".")
        if len(parts) != 3 or parts[1] not in ("0", "1"):
            return None
        sid, auth, sig = parts
        if not hmac.compare_digest(sig, self._sign(sid + auth, "session")):
            return None
        return morsel.value, auth == "1"

    def cookie(self, session: str) -> str:
        secure = "; Secure" if self.tls else ""
        return f"{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict{secure}"

    def csrf_token(self, session: str) -> str:
        return self._sign(session, "csrf")

    def csrf_ok(self, session: str | None, presented: str | None) -> bool:
        return bool(session and presented and hmac.compare_digest(presented, self.csrf_token(session)))

    # -- requests ---------------------------------------------------------------------------------------

    def token_ok(self, presented: str | None) -> bool:
        return bool(self.token and presented and hmac.compare_digest(presented.encode(), self.token.encode()))

    def authorized(self, session_auth: bool, bearer: str | None) -> bool:
        return self.token is None or session_auth or self.token_ok(bearer)

    def host_ok(self, host_header: str | None) -> bool:
        """On loopback, only Host names that are this console (defeats DNS rebinding); elsewhere the token rules."""
        if not self.local:
            return True
        if not host_header:
            return False
        names = {f"{h}:{self.port}" for h in ("127.0.0.1", "localhost", "[::1]", self.bind_host)}
        names |= {h if _has_port(h) else f"{h}:{self.port}" for h in self.allowed_hosts}
        return host_header.lower() in {n.lower() for n in names}

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        """A POST from a browser names its origin: it must be this console."""
        if origin is None:
            return True      # not a browser (scripts send the CSRF token instead)
        scheme = "https" if self.tls else "http"
        return origin == f"{scheme}://{host_header}"


def _has_port(host: str) -> bool:
    """``name:8800`` or ``[::1]:8800`` (an IPv6 address is written in brackets)."""
    return not host.endswith("]") and host.rsplit(":", 1)[-1].isdigit() and ":" in host
