"""Bearer tokens: rotation, constant-time comparison against every token, `none` only on purpose and loudly."""

from __future__ import annotations

import orjson
import pytest

from blueprint.events import HttpRequest
from blueprint.http import Authenticator
from tests.conftest import context, http_event

JOB = {"InstanceId": "lhins-web00001", "DryRun": True}


def status(app, event) -> int:
    return int(app.handle(event, context())["statusCode"])


def test_auth_none_is_logged_at_start(make_app, log_stream) -> None:
    app = make_app(BLUEPRINT_HTTP_TOKEN=None, BLUEPRINT_HTTP_AUTH="none")
    warnings = [orjson.loads(line) for line in log_stream.getvalue().splitlines()]
    assert any(w["level"] == "WARNING" and "authentication is OFF" in w["message"] for w in warnings)
    assert status(app, http_event(body=JOB, token=None)) == 202


def test_no_token_is_not_open_and_is_logged(make_app, log_stream) -> None:
    # Logged when an HTTP request comes, not at start: a function with only a timer needs no token (issue 16).
    app = make_app(BLUEPRINT_HTTP_TOKEN=None)
    assert "every HTTP request is refused" not in log_stream.getvalue()
    for token in (None, "", "local-dev-token", "anything-at-all"):
        assert status(app, http_event(body=JOB, token=token)) == 401
    assert "every HTTP request is refused" in log_stream.getvalue()


def test_rotation_accepts_each_and_nothing_else(make_app) -> None:
    app = make_app(BLUEPRINT_HTTP_TOKEN="token-one-aaaa,token-two-bbbb")
    assert status(app, http_event(body=JOB, token="token-one-aaaa")) == 202
    assert status(app, http_event(body={**JOB, "InstanceId": "lhins-db000001"}, token="token-two-bbbb")) == 202
    for wrong in ("token-one-aaaa,token-two-bbbb", "token-one-aaa", "token-one-aaaab", "TOKEN-ONE-AAAA",
                  "token-one-aaaa token-two-bbbb"):
        assert status(app, http_event(body=JOB, token=wrong)) == 401, wrong


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "bearer token-one-aaaa", "BEARER  token-one-aaaa",
                                    "Token token-one-aaaa", "token-one-aaaa", "Basic dG9rZW4="])
def test_scheme_handling(header: str) -> None:
    auth = Authenticator("token", tokens=["token-one-aaaa"], now=lambda: 0.0)
    req = HttpRequest.model_validate({"httpMethod": "POST", "headers": {"Authorization": header}})
    accepted = header.lower().split()[0] == "bearer" and header.rsplit(maxsplit=1)[-1] == "token-one-aaaa"
    try:
        auth.check(req, b"")
        assert accepted
    except Exception:
        assert not accepted


def test_every_token_is_compared(monkeypatch) -> None:
    """Timing: the loop never stops at the first match, so which token matched is not observable."""
    import blueprint.http as http_module

    seen: list[bytes] = []
    real = http_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append(b)
        return real(a, b)

    monkeypatch.setattr(http_module.hmac, "compare_digest", spy)
    auth = Authenticator("token", tokens=["first-token-1", "second-token-2", "third-token-3"], now=lambda: 0.0)
    auth.check(HttpRequest.model_validate({"httpMethod": "POST", "headers": {"authorization": "Bearer first-token-1"}}),
               b"")
    assert len(seen) == 3 and len({len(s) for s in seen}) == 1  # equal-length digests, all three compared
