"""Fixtures: a started emulator (sample state, rate limits off) and a real Lighthouse client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from emu_helpers import lighthouse

from emulator import Emulator


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """A started emulator with the sample state; rate limits off unless a test sets them."""
    with Emulator(rate_limits=False) as started:
        yield started
    started.scf.shutdown()


@pytest.fixture
def lh(emu: Emulator) -> Any:
    """A real LighthouseClient for ap-guangzhou."""
    return lighthouse(emu)
