"""The JSON error shape of the API: {"error": {"code", "message", "field"?}}."""

from flask import jsonify


class ApiError(Exception):
    """Raised by API views and helpers; rendered by the blueprint's error handler."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(status: int, code: str, message: str, field: str | None = None, headers=None):
    body = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    response = jsonify(error=body)
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response
