"""A scriptable HTTP receiver for the sink tests: answers can carry headers and bodies, and it records the
client's TCP port so tests can see a connection being reused (keep-alive across warm invocations)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from blueprint.localrun import Receiver

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


# The project's local receiver (scripted answers, keep-alive, client ports recorded) under the tests' name.
Hook = Receiver


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook().start()
    yield server
    server.stop()
