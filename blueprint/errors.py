"""One error root for the function: each class knows its HTTP status and whether a retry can help.

Cloud error codes are translated into these in one table (`blueprint.cloud.ERROR_TABLE`); HTTP answers are
rendered from them in one place (`blueprint.http`). The `code` shown to callers is the Tencent-style code
(the cloud's own code when the cloud said no), so a user who knows the Lighthouse API recognises it.
"""

from __future__ import annotations

from blueprint.logs import redact

__all__ = [
    "AccessDenied",
    "AgentUnavailable",
    "BadRequest",
    "BlueprintError",
    "CloudError",
    "CloudRejected",
    "CloudUnavailable",
    "CommandFailed",
    "CommandInterrupted",
    "ConfigError",
    "DeadlineExceeded",
    "DeliveryError",
    "DiskQuotaExceeded",
    "InstanceBusy",
    "InstanceNotFound",
    "InvalidInstanceState",
    "MethodNotAllowed",
    "NotFound",
    "NotSent",
    "PayloadTooLarge",
    "QuotaExceeded",
    "RecordsFailed",
    "SlotExpired",
    "Throttled",
    "Unauthorized",
    "UnsupportedMediaType",
    "scrubbed",
]


class BlueprintError(Exception):
    """Root of every error the function raises on purpose."""

    status: int = 500
    retryable: bool = False
    code: str = "InternalError"

    def __init__(self, message: str, *, code: str | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.request_id = request_id

    def as_dict(self) -> dict[str, str]:
        """The `{"Code", "Message"}` pair used in error envelopes and result messages."""
        return {"Code": self.code, "Message": self.message}


class BadRequest(BlueprintError):
    """The job or request is malformed: fix it, do not retry."""

    status = 400
    code = "InvalidParameter"


class Unauthorized(BlueprintError):
    """No or wrong credentials on an HTTP request."""

    status = 401
    code = "AuthFailure"


class AccessDenied(BlueprintError):
    """The instance is not in the allowlist, or the cloud denied the run role."""

    status = 403
    code = "UnauthorizedOperation"


class NotFound(BlueprintError):
    """The resource or route does not exist."""

    status = 404
    code = "ResourceNotFound"


class MethodNotAllowed(BlueprintError):
    """The path exists, the method does not."""

    status = 405
    code = "UnsupportedOperation.MethodNotAllowed"


class PayloadTooLarge(BlueprintError):
    """The request body is over the limit."""

    status = 413
    code = "RequestSizeLimitExceeded"


class UnsupportedMediaType(BlueprintError):
    """The body is declared as something other than JSON."""

    status = 415
    code = "UnsupportedMediaType"


class ConfigError(BlueprintError):
    """An environment variable has a bad value: the function cannot start."""

    code = "FailedOperation.Configuration"


class DeadlineExceeded(BlueprintError):
    """The function ran out of time before the work finished; a later call can finish it."""

    status = 503
    retryable = True
    code = "FailedOperation.Timeout"


class NotSent(DeadlineExceeded):
    """A cloud call was never sent: the rate limit had no room for it before the deadline (the next invocation,
    which looks first for what this one did, sends it)."""


class DeliveryError(BlueprintError):
    """A result sink did not accept a message after its retries."""

    status = 502
    retryable = True
    code = "FailedOperation.DeliveryFailed"


class SlotExpired(BlueprintError):
    """A chained call arrived after its slot's deadline: a later run covers it, a retry would not help."""

    status = 410
    code = "FailedOperation.SlotExpired"


class RecordsFailed(BlueprintError):
    """Some records of a queue batch failed: raised so the platform retries (or dead-letters) the batch."""

    status = 502
    retryable = True
    code = "FailedOperation.QueueRecords"


class CloudError(BlueprintError):
    """The cloud API answered with an error (or could not be reached)."""

    status = 502
    code = "FailedOperation"


class CloudRejected(CloudError):
    """The cloud refused the operation for a reason a retry will not fix."""


class CloudUnavailable(CloudError):
    """The cloud failed on its side or could not be reached: a retry can help."""

    status = 503
    retryable = True
    code = "InternalError"


class Throttled(CloudError):
    """The cloud's rate limit for an action was hit."""

    status = 429
    retryable = True
    code = "RequestLimitExceeded"


class InstanceBusy(CloudError):
    """Another operation on the instance has not finished yet."""

    status = 409
    retryable = True
    code = "UnsupportedOperation.LatestOperationUnfinished"


class InvalidInstanceState(CloudError):
    """The instance is in a state that refuses an image (e.g. being created or terminated)."""

    status = 409
    code = "UnsupportedOperation.InvalidInstanceState"


class AgentUnavailable(CloudError):
    """The instance's automation agent (TAT) is offline or not installed: no command can run there now."""

    status = 409
    code = "ResourceUnavailable.AgentStatusNotOnline"


class CommandFailed(BlueprintError):
    """An operator's command (TAT) did not end with exit code 0 on an instance, or could not be started."""

    status = 502
    code = "FailedOperation.PreCommandFailed"


class CommandInterrupted(CommandFailed):
    """An operator's command was cut short by the cloud, not by itself (a lost answer, a failed call), or may
    still be running: a retry can help (it runs the post-command first)."""

    status = 503
    retryable = True


class QuotaExceeded(CloudError):
    """The region's custom image quota is full."""

    status = 409
    code = "LimitExceeded.BlueprintQuotaLimitExceeded"


class DiskQuotaExceeded(CloudError):
    """A data disk has as many backup points as its quota allows."""

    status = 409
    code = "LimitExceeded.DiskBackupQuotaLimitExceeded"


class InstanceNotFound(CloudError):
    """The instance id does not exist in that region."""

    status = 404
    code = "ResourceNotFound.InstanceIdNotFound"


def scrubbed(err: BlueprintError) -> BlueprintError:
    """A copy of `err` that is safe to raise to the platform: redacted message, no cause, no context.

    SCF's runtime prints the whole chained traceback of what a handler raises; the chain of a translated
    cloud error holds the SDK's exception, whose text may quote credentials. Raise the copy outside any
    `except` block, so Python does not attach the handled exception as its `__context__`.
    """
    clean = type(err)(redact(err.message), code=err.code, request_id=err.request_id)
    clean.__cause__ = None
    clean.__context__ = None
    clean.__suppress_context__ = True
    return clean
