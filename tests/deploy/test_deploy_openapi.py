"""docs/openapi.yaml against the running HTTP API: schemathesis drives `serve`'s server (in-process) on the
emulator and checks that nothing answers 5xx and every answer conforms (status, content type, headers, body).

Both generation modes run: valid jobs (which reach the emulated cloud) and invalid ones (which must be 4xx).
A bounded number of examples keeps it quick; `pytest -m longrun` is the place for more.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from blueprint.app import build_app  # noqa: E402
from blueprint.devserver import make_server, running  # noqa: E402
from blueprint.localrun import LOCAL_TOKEN, Receiver  # noqa: E402
from emulator import Emulator  # noqa: E402
from tests.conftest import EmuClock, base_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.yaml")
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
                                deterministic=True, database="none")


@schemathesis.check
def no_server_error(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """No 5xx on an emulated cloud without faults: every generated mistake is the caller's, a 4xx."""
    not_a_server_error(ctx, response, case)


CHECKS = [no_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    """The dev server in front of an App on the emulator, with a virtual clock so `Wait` never sleeps."""
    with Emulator(image_seconds=30.0, quota=10_000) as emu:
        receiver = Receiver().start()
        try:
            app = build_app({**base_env(emu, receiver), "BLUEPRINT_ACCOUNT_ID": "100000000001"}, clock=EmuClock(emu))
            emu.scf.register("lighthouse-blueprint", app.handle)
            with running(make_server(app.handle, env={}, quiet=True)) as url:
                yield url
        finally:
            receiver.stop()
            emu.scf.shutdown()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_conforms_to_openapi(case: schemathesis.Case, api_url: str, session: requests.Session) -> None:
    case.call_and_validate(base_url=api_url, session=session, checks=CHECKS,
                           headers={"Authorization": f"Bearer {LOCAL_TOKEN}"}, timeout=30)


def test_document_matches_the_job_model() -> None:
    """The Job schema lists exactly the job's fields (README.md, the job table), and forbids others."""
    from blueprint.events import Job, JobModel

    document = schema.raw_schema["components"]["schemas"]["Job"]
    assert set(document["properties"]) == set(JobModel.model_fields) == set(Job.__dataclass_fields__)
    assert document["additionalProperties"] is False
    responses = {code for op in ("post",) for code in schema.raw_schema["paths"]["/blueprints"][op]["responses"]}
    assert {"202", "400", "401", "404", "409", "413", "415", "429", "502", "503"} <= responses
