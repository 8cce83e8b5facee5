"""The one error type handlers raise; the server turns it into the Tencent error envelope."""

from __future__ import annotations

# Messages for codes whose text the docs quote or that tests read; others fall back to the code.
_MESSAGES: dict[str, str] = {
    "AuthFailure.SignatureFailure": (
        "The provided credentials could not be validated. Please check your signature is correct."
    ),
    "AuthFailure.SignatureExpire": "Timestamp and server time cannot differ by more than five minutes.",
    "AuthFailure.SecretIdNotFound": "The SecretId is not found, please ensure that your SecretId is correct.",
    "AuthFailure.InvalidAuthorization": "Authorization header is invalid.",
    "RequestLimitExceeded": "Your current request times equals to `%s` in a second, exceeds the limit.",
    "InvalidAction": "The requested action does not exist.",
    "NoSuchVersion": "The requested version does not exist or is not supported.",
    "NoSuchProduct": "The requested product does not exist.",
    "UnsupportedRegion": "The action does not support this region.",
}


class ApiError(Exception):
    """A cloud API error: `code` is the Tencent error code, `message` its text."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message if message is not None else _MESSAGES.get(code, code)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
