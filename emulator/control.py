"""The control path `/_emulator/...`: JSON in and out, for tests in other processes.

GET  /_emulator/calls                      -> [Call, ...]
GET  /_emulator/state                      -> instances, blueprints, messages, invocations, faults, now
POST /_emulator/faults   {"kind": "fail"|"drop"|"delay"|"http_status"|"clear", "action": ..., ...}
POST /_emulator/advance  {"seconds": 30}   -> {"now": ...}
POST /_emulator/reset    {}                -> back to the initial state
POST /_emulator/scf/timer {"FunctionName": ..., "TriggerName": ..., "Namespace": "default"}
                                           -> {"FunctionRequestId": ...} (the timer fired, invocation async)
GET  /_emulator/tat                        -> TAT runs, invocations, commands, agents, scripts
POST /_emulator/tat/script  {"instance": "lhins-..." | "*", "exit_code": 0, "output": "", "duration": 1, ...}
POST /_emulator/tat/agent   {"instance": "lhins-...", "agent_status": "Offline", "installed": true, ...}
POST /_emulator/tat/command {"Content": "plain script", "CommandName": ..., "Region": ..., "CommandId": ...}
POST /_emulator/tat/clear   {}             -> forget the scripted outcomes
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from emulator.errors import ApiError
from emulator.server import JSON, HttpRequest, Reply

if TYPE_CHECKING:
    from emulator.core import Emulator


def _json(data: Any, status: int = 200) -> Reply:
    return Reply(status=status, body=json.dumps(data).encode("utf-8"), content_type=JSON)


def _faults(emu: Emulator, body: dict[str, Any]) -> Any:
    kind = body.get("kind")
    action = body.get("action", "*")
    if kind == "clear":
        emu.faults.clear()
    elif kind == "fail":
        emu.faults.fail(action, body["code"], times=body.get("times", 1), message=body.get("message"),
                        skip=int(body.get("skip", 0)))
    elif kind == "drop":
        emu.faults.drop(action, times=body.get("times", 1), after=bool(body.get("after", False)),
                        skip=int(body.get("skip", 0)))
    elif kind == "delay":
        emu.faults.delay(action, float(body["seconds"]), times=body.get("times"))
    elif kind == "http_status":
        emu.faults.http_status(action, int(body["status"]), times=body.get("times", 1))
    elif kind == "garble":
        emu.faults.garble(action, times=body.get("times", 1), after=bool(body.get("after", False)),
                          body=str(body.get("body", "<html>502</html>")).encode("utf-8"),
                          content_type=str(body.get("content_type", "text/html")), skip=int(body.get("skip", 0)))
    else:
        raise ValueError(f"unknown fault kind {kind!r}")
    return emu.faults.pending()


def _advance(emu: Emulator, body: dict[str, Any]) -> Any:
    emu.advance(float(body.get("seconds", 0)))
    return {"now": emu.now()}


def _reset(emu: Emulator, body: dict[str, Any]) -> Any:
    emu.reset()
    return {"ok": True}


def _timer(emu: Emulator, body: dict[str, Any]) -> Any:
    request_id = emu.scf.fire_timer(str(body["FunctionName"]), str(body["TriggerName"]),
                                    namespace=str(body.get("Namespace", "default")))
    return {"FunctionRequestId": request_id}


_SCRIPT_FIELDS = ("exit_code", "output", "duration", "status", "error_info", "match", "times")
_AGENT_FIELDS = ("agent_status", "installed", "environment", "version", "support_features")


def _only(body: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    unknown = set(body) - set(allowed) - {"instance"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    return {key: body[key] for key in allowed if key in body}


def _tat_script(emu: Emulator, body: dict[str, Any]) -> Any:
    emu.tat.script(body.get("instance", "*"), **_only(body, _SCRIPT_FIELDS))
    return emu.tat.snapshot()["scripts"]


def _tat_agent(emu: Emulator, body: dict[str, Any]) -> Any:
    emu.tat.set_agent(body["instance"], **_only(body, _AGENT_FIELDS))
    return emu.tat.snapshot()["agents"]


def _tat_command(emu: Emulator, body: dict[str, Any]) -> Any:
    fields = dict(body)
    return emu.tat.add_command(fields.pop("Content"), **fields)


def _tat_clear(emu: Emulator, body: dict[str, Any]) -> Any:
    emu.tat.clear_scripts()
    return {"ok": True}


_GET: dict[str, Callable[[Emulator], Any]] = {
    "calls": lambda emu: emu.calls_json(),
    "state": lambda emu: emu.snapshot(),
    "tat": lambda emu: emu.tat.snapshot(),
}
_POST: dict[str, Callable[[Emulator, dict[str, Any]], Any]] = {
    "faults": _faults,
    "advance": _advance,
    "reset": _reset,
    "scf/timer": _timer,
    "tat/script": _tat_script,
    "tat/agent": _tat_agent,
    "tat/command": _tat_command,
    "tat/clear": _tat_clear,
}


def handle(emu: Emulator, request: HttpRequest) -> Reply:
    """Serve one control call; 404 for unknown paths, 400 for bad bodies."""
    name = request.path.removeprefix("/_emulator/").strip("/")
    try:
        if request.method == "GET" and name in _GET:
            return _json(_GET[name](emu))
        if request.method == "POST" and name in _POST:
            body = json.loads(request.body or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            return _json(_POST[name](emu, body))
    except ApiError as err:
        return _json({"error": f"{err.code}: {err.message}"}, status=409)
    except (ValueError, KeyError, TypeError) as err:
        return _json({"error": f"{type(err).__name__}: {err}"}, status=400)
    return _json({"error": f"no control endpoint {request.method} {request.path}"}, status=404)
