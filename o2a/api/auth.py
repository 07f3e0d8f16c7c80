"""API keys and roles (DESIGN.md §3): ``Authorization: Bearer KEY``, keys and roles from
``O2A_API_KEYS`` (``KEY:ROLE`` pairs, comma-separated). A viewer reads; an operator reads
and acts on orders; an integrator reads, submits, revises, cancels and manages the hub.
Keys are compared in constant time and never logged."""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path

from fastapi import Request

from o2a.api.errors import TmfError
from o2a.errors import InputError

KEYS_VARIABLE = "O2A_API_KEYS"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    INTEGRATOR = "integrator"


class Permission(StrEnum):
    READ = "read"
    OPERATE = "operate"
    """Operator actions: resolve, suspend, resume, abort (and cancel, as an operator)."""
    ORDER = "order"
    """Submit, revise, cancel, and the hub of event listeners."""


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.OPERATE}),
    Role.INTEGRATOR: frozenset({Permission.READ, Permission.ORDER}),
}


class ApiKeys:
    def __init__(self, roles: dict[str, Role]) -> None:
        if not roles:
            raise InputError(f"{KEYS_VARIABLE}: no API key configured")
        self._keys = [(key.encode(), role) for key, role in roles.items()]

    @classmethod
    def parse(cls, text: str) -> ApiKeys:
        """``KEY:ROLE,KEY:ROLE``; a malformed entry is refused naming its position, not
        its key."""
        roles: dict[str, Role] = {}
        for n, entry in enumerate((e.strip() for e in text.split(",")), start=1):
            if not entry:
                continue
            key, sep, role = entry.rpartition(":")
            if not sep or not key:
                raise InputError(f"{KEYS_VARIABLE}: entry {n} is not KEY:ROLE")
            try:
                roles[key] = Role(role.strip().lower())
            except ValueError:
                raise InputError(
                    f"{KEYS_VARIABLE}: entry {n} has role {role!r}; roles are "
                    + ", ".join(r.value for r in Role)
                ) from None
        return cls(roles)

    def key_for(self, role: Role) -> str | None:
        """A key of this role, for a client of the API on this host (the benchmark)."""
        return next((key.decode() for key, r in self._keys if r is role), None)

    def role_of(self, presented: str) -> Role | None:
        """Every key is compared, each in constant time, so timing tells nothing."""
        token = presented.encode()
        found: Role | None = None
        for key, role in self._keys:
            if hmac.compare_digest(key, token):
                found = role
        return found


def local_keys(var_dir: Path) -> tuple[ApiKeys, str]:
    """For `o2a up` with no keys configured: an integrator key and an operator key, kept
    under ``var/`` (mode 0600) in ``O2A_API_KEYS`` form and made once, so a restart keeps
    the keys the user was shown. Returns the keys and that text."""
    path = var_dir / "api-keys"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        text = ",".join(
            f"{secrets.token_urlsafe(24)}:{role.value}" for role in (Role.INTEGRATOR, Role.OPERATOR)
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
    text = path.read_text().strip()
    return ApiKeys.parse(text), text


def require(permission: Permission) -> Callable[[Request], Awaitable[Role]]:
    """A route dependency: 401 without a valid key, 403 for a role that may not."""

    async def check(request: Request) -> Role:
        keys: ApiKeys = request.app.state.keys
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        role = keys.role_of(token.strip()) if scheme.lower() == "bearer" and token else None
        if role is None:
            raise TmfError(401, "Unauthorized", "a valid API key is required (Bearer)")
        if permission not in GRANTS[role]:
            raise TmfError(403, "Forbidden", f"role {role.value} may not {permission.value}")
        request.state.role = role
        return role

    return check
