"""Issue 15 attacked: the commands around images under lost answers, failed calls, replays, odd fleets and
hostile jobs, against the emulator with the real SDKs.

The promises checked: a pre-command never runs twice without its post-command in between; the post-command
runs whenever the pre-command may have run, and not before the pre-command ended when that can be known;
at most one image per slot; every failure is reported; nothing is left paused without the pause mark.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import EmuClock, context, timer_event
from tests.functional.test_consistency import COMMANDS, JOB, POST, PRE, WEB, contents


@pytest.fixture
def app(make_app, emu):
    return make_app(clock=EmuClock(emu), **COMMANDS)


def day(n: int) -> str:
    return f"2026-11-{n:02d}T03:00:00Z"


def managed_images(emu, instance: str = WEB) -> list[dict[str, Any]]:
    return [b for b in emu.lighthouse.blueprints("ap-guangzhou")
            if any(t["Key"] == "scf-blueprint:instance" and t["Value"] == instance for t in b["Tags"])]


# ---- PostAfter "ready" ------------------------------------------------------------------------------------

def test_post_after_ready_still_prunes_to_keep(app, emu) -> None:
    # The images come back NORMAL from the quiescer: retention must still see them as made by this run.
    for n in (27, 28, 29):
        emu.advance(86_400)
        answer = app.handle(timer_event({**JOB, "PostAfter": "ready", "Keep": 1}, time_=day(n)), context())
        assert answer["Results"][0]["State"] == "NORMAL"
    assert len(managed_images(emu)) == 1
    assert contents(emu) == [PRE, POST] * 3
