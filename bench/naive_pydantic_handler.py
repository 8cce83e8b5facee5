"""The second baseline: the hand-written handler plus the project's two chosen libraries, used once.

Everything `naive_handler.py` does, and `import pydantic, orjson` with one small model validated from the
timer Message (parsed by orjson). pydantic and orjson stay in the function by choice, so this is the floor
the function's own cold cost is measured from: function minus this handler.
"""

import orjson
import pydantic

from bench.naive_handler import create, make_client


class Job(pydantic.BaseModel):
    """The one field the hand-written handler reads, validated the way the function validates its jobs."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    InstanceId: str = pydantic.Field(min_length=1, max_length=64)


def main_handler(event, context):
    """Timer trigger: the Message is `{"InstanceId": ...}`; name the image after the instance and time."""
    job = Job.model_validate(orjson.loads(event["Message"]))
    stamp = event["Time"].replace("-", "").replace(":", "").replace("T", "-").rstrip("Z")
    resp = create(make_client(), job.InstanceId, f"{job.InstanceId}-{stamp}")
    return {"BlueprintId": resp.BlueprintId, "RequestId": resp.RequestId}
