"""The baseline: the CreateBlueprint handler a user writes by hand from the API document.

Module-level SDK imports, credentials from SCF's variables, one LighthouseClient (pointed at
BLUEPRINT_API_ENDPOINT when set, as the benchmark's emulator needs), one CreateBlueprint from the timer
Message, and the answer returned. No validation, no idempotency, no retries, no delivery: this is the
floor the function is measured against, not a recommendation.
"""

import json
import os
from urllib.parse import urlsplit

from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.lighthouse.v20200324 import lighthouse_client, models


def make_client(env=None):
    """A LighthouseClient from SCF's credential variables (`env` defaults to os.environ)."""
    env = os.environ if env is None else env
    cred = credential.Credential(env["TENCENTCLOUD_SECRETID"], env["TENCENTCLOUD_SECRETKEY"],
                                 env.get("TENCENTCLOUD_SESSIONTOKEN"))
    endpoint = env.get("BLUEPRINT_API_ENDPOINT")
    if endpoint:
        parts = urlsplit(endpoint)
        http = HttpProfile(protocol=parts.scheme, endpoint=parts.netloc, reqTimeout=10)
    else:
        http = HttpProfile(endpoint="lighthouse.tencentcloudapi.com", reqTimeout=10)
    region = env.get("TENCENTCLOUD_REGION", "ap-guangzhou")
    return lighthouse_client.LighthouseClient(cred, region, ClientProfile(httpProfile=http))


def create(client, instance_id, name):
    """One CreateBlueprint; returns the SDK's response."""
    req = models.CreateBlueprintRequest()
    req.BlueprintName = name
    req.InstanceId = instance_id
    return client.CreateBlueprint(req)


def main_handler(event, context):
    """Timer trigger: the Message is `{"InstanceId": ...}`; name the image after the instance and time."""
    job = json.loads(event["Message"])
    stamp = event["Time"].replace("-", "").replace(":", "").replace("T", "-").rstrip("Z")
    resp = create(make_client(), job["InstanceId"], f"{job['InstanceId']}-{stamp}")
    return {"BlueprintId": resp.BlueprintId, "RequestId": resp.RequestId}
