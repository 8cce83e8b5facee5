"""Issue 18: a cold start pays only for what its trigger uses.

A fresh interpreter imports the handler and answers one timer invocation against the emulator; the modules
that a timer with a webhook does not use must still be unimported then. The same process then answers an
HTTP request, which does import the HTTP module: the check sees imports when they happen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import base_env, timer_event

ROOT = Path(__file__).resolve().parents[2]

# What a timer with a webhook sink never needs: the other sinks, HTTP, the chained-call envelope and fan-out,
# SCF Invoke, commands (TAT), copies, shares, tags, restores, listings, the other triggers' models, the local
# tools, thread pools (one instance, one page, one result: nothing runs side by side), and pydantic.
NOT_FOR_A_TIMER = [
    "blueprint.http", "blueprint.chained", "blueprint.dispatch", "blueprint.functions", "blueprint.tat",
    "blueprint.restore", "blueprint.copies", "blueprint.shares", "blueprint.tags", "blueprint.listing",
    "blueprint.triggers",
    "blueprint.sinks.cmq", "blueprint.sinks.chat", "blueprint.sinks.invoke", "blueprint.cli",
    "blueprint.devserver", "blueprint.localrun", "blueprint.deploy", "tencentcloud.scf", "tencentcloud.tat",
    "tencentcloud.tag", "concurrent.futures",
    # Its event, job and settings are read by plain code that takes what the pydantic models take (issue 18).
    "pydantic", "annotated_types",
    # Lighthouse is called by action name with plain JSON (blueprint.cloud.call_json): its SDK package's models
    # (1.6 MB of source) are never imported, on any path (issue 18).
    "tencentcloud.lighthouse",
]

CHILD = """
import json, sys
import handler
timer = json.loads(sys.argv[1])
context = {"request_id": "lazy", "function_name": "lighthouse-blueprint", "time_limit_in_ms": 60000}
answer = handler.main_handler(timer, context)
after_timer = sorted(sys.modules)
from blueprint import settings
settings_models = settings._model.cache_info().currsize
http = {"httpMethod": "GET", "path": "/blueprints/lhbp-00000000", "headers": {}, "body": "",
        "requestContext": {"stage": "release"}}
status = handler.main_handler(http, context)["statusCode"]
print(json.dumps({"answer": answer, "after_timer": after_timer, "after_http": sorted(sys.modules),
                  "status": status, "settings_models": settings_models}))
"""


def run_child(env: dict[str, str], event: dict[str, object]) -> dict[str, object]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    child_env = {**keep, **env, "PYTHONPATH": str(ROOT), "BLUEPRINT_LOG_LEVEL": "ERROR"}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(event)], env=child_env,  # noqa: S603
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_timer_leaves_what_it_does_not_use_unimported(emu, receiver) -> None:
    seen = run_child(base_env(emu, receiver), timer_event({"InstanceId": "lhins-web00001"}))
    answer = seen["answer"]
    assert isinstance(answer, dict) and answer["Results"][0]["BlueprintId"].startswith("lhbp-")
    loaded = set(seen["after_timer"])  # type: ignore[arg-type]
    assert "blueprint.sinks.webhook" in loaded  # the sink it uses
    imported = sorted(m for m in loaded if m.startswith(tuple(NOT_FOR_A_TIMER)))
    assert imported == [], f"a timer imported {imported}"
    # Its settings are plain values: read without building the pydantic model of the variables.
    assert seen["settings_models"] == 0
    # The HTTP request that follows does load the HTTP module (the check sees an import when it happens).
    assert seen["status"] == 401 and "blueprint.http" in set(seen["after_http"])  # type: ignore[arg-type]
    assert not [m for m in seen["after_http"] if m.startswith("tencentcloud.lighthouse")]  # type: ignore[attr-defined]
