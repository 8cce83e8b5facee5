"""Run a deployed package the way SCF does: unzipped, in a fresh interpreter of the function's runtime.

Each invocation starts `<python> -S runner.py request.json answer.json` in the unzipped code directory with
the function's environment (and only that: nothing of the emulator's own environment leaks in). `-S` keeps
the interpreter's own site-packages off `sys.path`, so a package that forgot a dependency fails here as it
would in the cloud. The runner imports the handler module, calls `handler(event, context)` and writes the
answer as JSON; whatever the function prints is its log.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tempfile
import threading
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.errors import ApiError

# Runtime names -> the interpreter to look for on PATH.
PYTHONS = {
    "Python2.7": "python2.7",
    "Python3.6": "python3.6",
    "Python3.7": "python3.7",
    "Python3.9": "python3.9",
    "Python3.10": "python3.10",
}
LOG_LIMIT = 64 * 1024  # what the emulator keeps of one invocation's output

RUNNER = '''\
import importlib, json, sys, traceback

def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        request = json.load(f)
    module_name, _, function_name = request["handler"].rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        answer = {"ok": True, "value": function(request["event"], request["context"])}
        text = json.dumps(answer)
    except BaseException as err:
        traceback.print_exc()
        text = json.dumps({"ok": False, "errorType": type(err).__name__, "errorMessage": str(err)})
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(text)

main()
'''


class FunctionFailed(Exception):
    """The function raised, timed out or could not start; the message is what SCF would report."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class RunResult:
    """What one run of a deployed package gave back."""

    value: Any
    log: str
    duration_ms: float


class PackageRunner:
    """Unzips each code version once and runs invocations in fresh interpreters."""

    def __init__(self, runtimes: Mapping[str, str] | None = None) -> None:
        self._given = dict(runtimes or {})
        self._checked: dict[str, str] = {}
        self._lock = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def _root(self) -> Path:
        with self._lock:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="emulator-scf-")
            return Path(self._tmp.name)

    def close(self) -> None:
        """Delete the unzipped code (idempotent)."""
        with self._lock:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def interpreter(self, runtime: str) -> str:
        """The executable that runs `runtime`, checked once.

        Raises:
            ApiError: FailedOperation.InvokeFunction when the runtime is not Python, or no working interpreter
                of that version is on PATH (or given as `runtimes=`).
        """
        with self._lock:
            if runtime in self._checked:
                return self._checked[runtime]
        command = self._given.get(runtime) or PYTHONS.get(runtime)
        if command is None:
            raise ApiError("FailedOperation.InvokeFunction",
                           f"The emulator runs Python functions only; `{runtime}` cannot be run here.")
        path = shutil.which(command) or command
        wanted = runtime.removeprefix("Python")
        problem = _version_problem(path, wanted)
        if problem:
            raise ApiError("FailedOperation.InvokeFunction",
                           f"No working `{PYTHONS.get(runtime, command)}` to run a {runtime} function: {problem}. "
                           f"Put one on PATH (or start the emulator with --runtime {runtime}=/path/to/python).")
        with self._lock:
            self._checked[runtime] = path
        return path

    def code_dir(self, code: bytes) -> Path:
        """The directory holding `code` unzipped (shared by every invocation of that version)."""
        import hashlib  # noqa: PLC0415 (only when a package actually runs)

        target = self._root / hashlib.sha256(code).hexdigest()[:16]
        with self._lock:
            if not target.is_dir():
                staging = target.with_suffix(".part")
                shutil.rmtree(staging, ignore_errors=True)
                with zipfile.ZipFile(io.BytesIO(code)) as archive:
                    archive.extractall(staging)
                staging.rename(target)
        return target

    def run(self, *, runtime: str, handler: str, code: bytes, env: Mapping[str, str], event: Any,
            context: Mapping[str, Any], timeout: float) -> RunResult:
        """Run one invocation.

        Raises:
            ApiError: the runtime cannot be run here (see `interpreter`).
            FunctionFailed: the handler raised, timed out or could not be imported.
        """
        python = self.interpreter(runtime)
        code_dir = self.code_dir(code)
        work = Path(tempfile.mkdtemp(prefix="call-", dir=self._root))
        try:
            (work / "runner.py").write_text(RUNNER, encoding="utf-8")
            request = {"handler": handler, "event": event, "context": dict(context)}
            (work / "request.json").write_text(json.dumps(request), encoding="utf-8")
            started = time.perf_counter()
            process_env = {**env, "PYTHONPATH": str(code_dir), "USER_CODE_ROOT": str(code_dir), "HOME": str(work)}
            log = _execute([python, "-S", str(work / "runner.py"), str(work / "request.json"),
                            str(work / "answer.json")], code_dir, process_env, timeout)
            duration = (time.perf_counter() - started) * 1000
            return RunResult(_answer(work / "answer.json", log), log, duration)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _version_problem(path: str, wanted: str) -> str:
    """"" when `path` runs and is Python `wanted`; otherwise what went wrong."""
    try:
        done = subprocess.run([path, "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],  # noqa: S603
                              capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{path} could not be started ({err})"
    if done.returncode != 0:
        return f"{path} failed: {(done.stderr or done.stdout).strip()[:200]}"
    if done.stdout.strip() != wanted:
        return f"{path} is Python {done.stdout.strip()}, not {wanted}"
    return ""


def _execute(command: list[str], cwd: Path, env: Mapping[str, str], timeout: float) -> str:
    """Run the interpreter; returns its output (the function's log).

    Raises:
        FunctionFailed: on timeout.
    """
    try:
        done = subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, timeout=timeout,  # noqa: S603
                              check=False)
    except subprocess.TimeoutExpired as err:
        partial = bytes(err.stdout or b"") + bytes(err.stderr or b"")
        raise FunctionFailed(f"Task timed out after {timeout:g} seconds",
                             partial.decode("utf-8", "replace")[-LOG_LIMIT:]) from err
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    return output[-LOG_LIMIT:]


def _answer(path: Path, log: str) -> Any:
    """The handler's return value from the runner's answer file.

    Raises:
        FunctionFailed: the handler raised, or the interpreter died before answering.
    """
    if not path.is_file():
        tail = log.strip().splitlines()[-1:] or ["no output"]
        raise FunctionFailed(f"the function's interpreter exited without an answer: {tail[0]}", log)
    answer = json.loads(path.read_text(encoding="utf-8"))
    if not answer["ok"]:
        raise FunctionFailed(json.dumps({"errorCode": -1, "errorMessage": answer["errorMessage"],
                                         "errorType": answer["errorType"]}), log)
    return answer["value"]
