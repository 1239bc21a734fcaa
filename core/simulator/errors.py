"""The error a request check raises: the API's status, error type and message."""

from __future__ import annotations


class InvalidRequest(Exception):
    """A request the API refuses: 400 ``invalid_request_error`` unless said otherwise (404 for a model)."""

    def __init__(self, message: str, *, status: int = 400, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
