"""Console sessions: a browser signs in once with its API key and then carries a signed
cookie instead of the key; every form it gets carries a CSRF token bound to that session.

The cookie holds a random session ID, the role and an expiry, signed with HMAC-SHA256 under
``O2A_CONSOLE_SECRET`` when it is set (so the API's replicas behind one address, and a
restarted API, accept each other's sessions) or else under a secret of this process (a
restart signs everyone out). It never holds the key. A browser that has not signed in gets
an anonymous session (no role) so that the sign-in form itself carries a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

from o2a.api.auth import Role
from o2a.errors import InputError

COOKIE = "o2a_console"
LIFETIME_SECONDS = 8 * 3600
"""A working shift; then the browser signs in again."""
SECRET_VARIABLE = "O2A_CONSOLE_SECRET"
MIN_SECRET_BYTES = 32
"""As strong as the per-process secret it replaces."""


def configured_secret() -> bytes | None:
    """The shared secret, checked when the API starts so a weak one is a clear refusal,
    not a failing request later."""
    text = os.environ.get(SECRET_VARIABLE, "")
    if not text:
        return None
    secret = text.encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise InputError(
            f"{SECRET_VARIABLE} must be at least {MIN_SECRET_BYTES} bytes "
            f"(it has {len(secret)}); e.g. `python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`"
        )
    return secret


@dataclass(frozen=True)
class Session:
    sid: str
    role: Role | None
    """None: not signed in yet (the sign-in form's own session)."""
    expires: int
    """Unix seconds."""


class SessionSigner:
    def __init__(self, secret: bytes | None = None) -> None:
        root = secret or secrets.token_bytes(32)
        # Separate keys for separate uses: a cookie signature is never a valid CSRF token.
        self._cookie_key = hmac.digest(root, b"o2a console cookie", hashlib.sha256)
        self._csrf_key = hmac.digest(root, b"o2a console csrf", hashlib.sha256)

    def new(self, role: Role | None, now: float | None = None) -> Session:
        """A fresh session ID on every sign-in, so an ID seen before sign-in is worthless."""
        start = int(now if now is not None else time.time())
        return Session(secrets.token_urlsafe(16), role, start + LIFETIME_SECONDS)

    def dump(self, session: Session) -> str:
        payload = json.dumps(
            {
                "s": session.sid,
                "r": session.role.value if session.role else None,
                "e": session.expires,
            },
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def load(self, value: str, now: float | None = None) -> Session | None:
        """None for anything not signed under this secret, malformed or expired."""
        body, _, signature = value.partition(".")
        try:
            payload = _unb64(body)
            valid = hmac.compare_digest(_unb64(signature), self._sign(payload))
            if not valid:
                return None
            data = json.loads(payload)
            session = Session(
                str(data["s"]), Role(data["r"]) if data["r"] else None, int(data["e"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > (now if now is not None else time.time()) else None

    def csrf_token(self, session: Session) -> str:
        return _b64(hmac.digest(self._csrf_key, session.sid.encode(), hashlib.sha256))

    def csrf_valid(self, session: Session, token: str) -> bool:
        return hmac.compare_digest(self.csrf_token(session).encode(), token.encode())

    def _sign(self, payload: bytes) -> bytes:
        return hmac.digest(self._cookie_key, payload, hashlib.sha256)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
