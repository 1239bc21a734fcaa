"""The error a request check raises (the API's status, error type and message), and request ids."""

from __future__ import annotations

import secrets

from core.errors import ResearchOrchestratorError


def new_request_id() -> str:
    """A ``request-id`` shaped like the API's (``req_011C...``)."""
    return "req_011C" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")[:20]


class InvalidRequest(ResearchOrchestratorError):
    """A request the API refuses: 400 ``invalid_request_error`` unless said otherwise (404 for a model)."""

    def __init__(self, message: str, *, status: int = 400, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
