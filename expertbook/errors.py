"""The domain's input error: one shape for every rule, whichever entry point reports it."""


class FieldError(ValueError):
    """Bad input; `field` names it, `code` says what kind (the API's error code)."""

    def __init__(self, field: str, message: str, code: str = "invalid_field"):
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code
