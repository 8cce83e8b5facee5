"""Peak RSS of one handler invocation, to size `memorySize` in serverless.yml.

    python deploy/measure_rss.py [EVENT_FILE ...]

The emulator runs in this process; each event runs in a fresh child process (a cold container: imports,
clients, the run) that reports its own peak resident set (`VmHWM` of /proc/self/status; `ru_maxrss` would
count this process's memory too, which Linux carries over the fork), so the emulator's memory is not counted.
Without arguments it measures the sample timer event, a fleet timer event, a `Wait: true` job and a Function
URL request (the HTTP path, which loads the HTTP code and the pydantic models a timer does not).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVENTS: list[tuple[str, Any]] = [
    ("events/timer.json", None),
    ("events/timer-fleet.json", None),
    ("job with Wait: true", {"InstanceId": "lhins-web00001", "Wait": True, "ForcePowerOff": False}),
    ("events/function-url-post.json", None),
]
# The token the sample HTTP events carry (events/function-url-post.json).
HTTP_TOKEN = "local-dev-token"  # noqa: S105 (the sample events' own local token)


def _peak_kib() -> int:
    """The process's peak resident set so far, in KiB (VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the best there is


def child(event_json: str) -> None:
    """Run the handler once on the event and print the peak RSS in KiB (Linux reports KiB)."""
    sys.path.insert(0, str(ROOT))
    baseline = _peak_kib()
    import handler  # noqa: PLC0415 (measured on purpose)

    imported = _peak_kib()
    context = {"request_id": str(uuid.uuid4()), "function_name": "lighthouse-blueprint", "namespace": "default",
               "time_limit_in_ms": 120_000, "memory_limit_in_mb": 256, "tencentcloud_region": "ap-guangzhou"}
    answer = handler.main_handler(json.loads(event_json), context)
    peak = _peak_kib()
    text = json.dumps(answer)
    ok = "Error" not in text and (not isinstance(answer, dict) or answer.get("statusCode", 200) < 400)
    print(json.dumps({"interpreter_kib": baseline, "after_import_kib": imported, "peak_kib": peak, "ok": ok}))


def measure(events: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Start the emulator, run each event in a child, return the reports."""
    sys.path.insert(0, str(ROOT))
    from emulator import SECRET_ID, SECRET_KEY, Emulator  # noqa: PLC0415 (dev-only)

    reports = []
    for label, inline in events:
        # A fresh cloud per event: each measures a cold container meeting its own job, not the last one's images.
        with Emulator(image_seconds=2.0) as emu:
            env = {**os.environ, "TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
                   "TENCENTCLOUD_REGION": "ap-guangzhou", "BLUEPRINT_API_ENDPOINT": emu.url,
                   "BLUEPRINT_HTTP_TOKEN": HTTP_TOKEN, "PYTHONDONTWRITEBYTECODE": "x"}
            event = inline if inline is not None else json.loads((ROOT / label).read_text())
            done = subprocess.run([sys.executable, __file__, "--child", json.dumps(event)],  # noqa: S603
                                  env=env, capture_output=True, text=True, check=True, timeout=300)
            reports.append({"event": label, **json.loads(done.stdout.strip().splitlines()[-1])})
    return reports


def main(argv: list[str]) -> int:
    """Entry point."""
    if argv[:1] == ["--child"]:
        child(argv[1])
        return 0
    events = [(name, None) for name in argv] or DEFAULT_EVENTS
    for report in measure(events):
        print(f"{report['event']}: peak RSS {report['peak_kib'] / 1024:.1f} MiB "
              f"(interpreter {report['interpreter_kib'] / 1024:.1f}, after imports "
              f"{report['after_import_kib'] / 1024:.1f}; handler ok: {report['ok']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
