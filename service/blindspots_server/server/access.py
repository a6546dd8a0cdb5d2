"""Who may read and write which project.

The default policy lets every caller see every project (no auth configured).
A token policy (see :mod:`.auth`) restricts each caller to its projects.
"""
from __future__ import annotations

from typing import Optional

import grpc

from .errors import PermissionDenied


class AccessPolicy:
    """Open access: no token needed, every project visible."""

    auth = False        # whether calls need a token

    def read_only(self, context: grpc.ServicerContext) -> bool:
        """Whether the caller may only read."""
        return False

    def projects(self, context: grpc.ServicerContext) -> Optional[list[str]]:
        """Projects the caller may access; None means all."""
        return None

    def allows(self, context: grpc.ServicerContext, project: str) -> bool:
        allowed = self.projects(context)
        return allowed is None or project in allowed

    def check(self, context: grpc.ServicerContext, project: str) -> None:
        """For projects the caller names (create, list): PERMISSION_DENIED naming it. Objects
        fetched by id use :meth:`allows` and look missing instead (no existence oracle)."""
        allowed = self.projects(context)
        if allowed is not None and project not in allowed:
            raise PermissionDenied(f"the caller's token does not grant access to project {project!r}")
