"""Bearer-token authentication and per-project authorization.

Tokens come from a JSON file (``auth_tokens_file``) or the ``tokens`` setting
(env BLINDSPOTS_TOKENS), both shaped ``{"<token>": ["projectA", ...]}``; the
project ``"*"`` grants every project. A token may instead be given
``{"projects": [...], "access": "read"}``: a read-only token (dashboards,
reports, people browsing) may call the methods of READ_METHODS only, and gets
PERMISSION_DENIED for the rest; ``"access": "write"`` (the default) may call
every method. Only SHA-256 digests of the tokens are
kept in memory, and a presented token is compared against every digest with
:func:`hmac.compare_digest`, so neither the lookup's timing nor a memory dump
reveals a token.

:class:`TokenAuthInterceptor` authenticates (UNAUTHENTICATED for a missing or
unknown token) and records the caller's projects in a context variable for the
duration of the call; :class:`TokenAccessPolicy` reads it to authorize
(PERMISSION_DENIED for another project). Health and reflection stay open so
load balancers and probes need no token.
"""
from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import grpc

from ..config import ServerConfig
from .access import AccessPolicy
from .handler_wrapping import wrap_handler

ALL_PROJECTS = "*"
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
SERVICE = "/blindspots.v1.Blindspots/"
# The methods a read-only token may call: they change nothing stored. Every other method (and any
# method added later until it is listed here) needs write access. Suggest is a write: it stores its
# picks, which later rounds leave out.
READ_METHODS = frozenset({"GetRun", "ListRuns", "GetPool", "ListPools", "GetDiagnosis", "ListDiagnoses", "GetJob",
                          "WatchJob", "GetRunMap", "ListRegionMembers", "ListLabels", "CompareRuns",
                          "ListSuggestionSets", "GetSuggestionSet", "ListJobs", "GetServerInfo"})
ACCESS_LEVELS = ("read", "write")

# The caller's grant while its call runs: None outside an authenticated call.
_caller: contextvars.ContextVar[Optional["Grant"]] = contextvars.ContextVar("blindspots_caller", default=None)


@dataclass(frozen=True)
class Grant:
    """What one token may access: every project, or the listed ones; read-only or not."""

    all_projects: bool
    projects: tuple[str, ...]
    read_only: bool = False


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """Token digests and their grants, parsed from ``{"token": ["project", ...]}`` or
    ``{"token": {"projects": [...], "access": "read" | "write"}}``."""

    def __init__(self, tokens: dict[str, list[str] | dict]):
        if not isinstance(tokens, dict) or not tokens:
            raise ValueError("the token table must be a non-empty JSON object {token: [projects]}")
        self._entries: list[tuple[bytes, Grant]] = []
        for token, given in tokens.items():
            if not isinstance(token, str) or len(token) < 16:
                raise ValueError("every token must be a string of at least 16 characters")
            access = "write"
            projects = given
            if isinstance(given, dict):
                unknown = set(given) - {"projects", "access"}
                access = given.get("access", "write")
                if unknown or access not in ACCESS_LEVELS:
                    raise ValueError("a token given as an object takes \"projects\" and \"access\" "
                                     f"({' or '.join(ACCESS_LEVELS)}) only")
                projects = given.get("projects")
            if isinstance(projects, str):
                projects = [projects]
            if (not isinstance(projects, list) or not projects
                    or not all(isinstance(p, str) and p for p in projects)):
                raise ValueError("every token needs a non-empty list of project names (or \"*\")")
            grant = Grant(all_projects=ALL_PROJECTS in projects,
                          projects=tuple(sorted(set(projects) - {ALL_PROJECTS})), read_only=access == "read")
            self._entries.append((_digest(token), grant))

    @classmethod
    def from_config(cls, config: ServerConfig) -> Optional["TokenTable"]:
        """The configured table, or None when auth is off (no file, no tokens)."""
        merged: dict[str, list[str]] = {}
        if config.auth_tokens_file:
            try:
                merged.update(json.loads(Path(config.auth_tokens_file).read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"auth_tokens_file {config.auth_tokens_file!r}: {exc}") from None
        if config.tokens:
            try:
                merged.update(json.loads(config.tokens))
            except json.JSONDecodeError as exc:
                raise ValueError(f"BLINDSPOTS_TOKENS is not JSON {{token: [projects]}}: {exc}") from None
        return cls(merged) if (config.auth_tokens_file or config.tokens) else None

    def lookup(self, token: str) -> Optional[Grant]:
        presented = _digest(token)
        found: Optional[Grant] = None
        for digest, grant in self._entries:       # no early exit: time does not depend on which matched
            if hmac.compare_digest(presented, digest):
                found = grant
        return found


def _bearer(metadata) -> Optional[str]:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Reject calls without a known bearer token; expose the token's grant to handlers.

    The check runs inside the wrapped handler, i.e. on the RPC worker thread
    that also runs the servicer, which is where the context variable is read.
    """

    def __init__(self, table: TokenTable):
        self._table = table

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_SERVICES):
            return handler
        token = _bearer(handler_call_details.invocation_metadata)
        grant = self._table.lookup(token) if token else None
        problem = ("missing bearer token: send metadata 'authorization: Bearer <token>'" if token is None
                   else "unknown bearer token" if grant is None else "")
        method = handler_call_details.method
        name = method[len(SERVICE):] if method.startswith(SERVICE) else method
        denied = (f"the caller's token is read-only; {name} needs a token with write access"
                  if grant is not None and grant.read_only and name not in READ_METHODS else "")

        def unary(fn, _streaming_request):
            def call(request, context):
                if problem:
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)
                if denied:
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, denied)
                reset = _caller.set(grant)
                try:
                    return fn(request, context)
                finally:
                    _caller.reset(reset)
            return call

        def streaming(fn, _streaming_request):
            def call(request, context):
                if problem:
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)
                if denied:
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, denied)
                # The generator runs on the same worker thread between yields,
                # so setting the variable around each step keeps it scoped.
                gen = fn(request, context)
                while True:
                    reset = _caller.set(grant)
                    try:
                        item = next(gen)
                    except StopIteration:
                        return
                    finally:
                        _caller.reset(reset)
                    yield item
            return call

        return wrap_handler(handler, unary, streaming)


class TokenAccessPolicy(AccessPolicy):
    """Each caller sees the projects its token grants; no grant, no project."""

    auth = True

    def read_only(self, context: grpc.ServicerContext) -> bool:
        grant = _caller.get()
        return grant is None or grant.read_only

    def projects(self, context: grpc.ServicerContext) -> Optional[list[str]]:
        grant = _caller.get()
        if grant is None:
            return []                      # fail closed: a call the interceptor did not see
        return None if grant.all_projects else list(grant.projects)


def auth_from_config(config: ServerConfig) -> tuple[AccessPolicy, list[grpc.ServerInterceptor]]:
    """The access policy and interceptors for the configured auth (open when none)."""
    table = TokenTable.from_config(config)
    if table is None:
        return AccessPolicy(), []
    return TokenAccessPolicy(), [TokenAuthInterceptor(table)]
