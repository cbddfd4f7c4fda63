"""The error type every handler raises; the server turns it into ZOHO's JSON envelope."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"code": self.code, "message": self.message}


def bad(code: int, message: str) -> ApiError:
    return ApiError(400, code, message)


def not_found(code: int, message: str) -> ApiError:
    return ApiError(404, code, message)
