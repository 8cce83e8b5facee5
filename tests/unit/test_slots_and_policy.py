"""Slot keys and the operator's policy: pinned formats and boundaries (mutation testing found these gaps).

The slot digest is a stored value: images made by one version are found by the next only if the key and
digest of a slot never change. These pins fail if anyone changes them by accident.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from blueprint.errors import AccessDenied, BadRequest
from blueprint.events import parse_job
from blueprint.policy import LIMIT, Command, Commands, Policy
from blueprint.slots import caller_slot, message_slot, request_slot, slot_digest, tick_slot, webhook_slot

TICK = datetime(2026, 11, 27, 3, tzinfo=timezone.utc)


def test_slot_keys_are_pinned() -> None:
    assert tick_slot("daily", TICK) == "timer|tick|daily|2026-11-27T03:00:00Z"
    assert caller_slot("http", "k") == "http|key|k"
    assert request_slot("invoke", "r-1") == "invoke|request|r-1"
    assert message_slot("m-1") == "queue|message|m-1"
    assert webhook_slot("msg-1") == "http|webhook|3a0de37932e8b19746f20b22414f862f"


def test_slot_digest_is_pinned() -> None:
    # A changed digest would make every retry across an upgrade miss the image its first try made.
    assert slot_digest("timer|tick|daily|2026-11-27T03:00:00Z") == "a700216f38a47c7925377dc6"


def test_keys_that_are_not_valid_utf8_still_get_a_stable_digest_of_their_own() -> None:
    # A header or message id may carry a lone surrogate (JSON allows "\ud800"): it must neither crash the
    # digest nor share one with another key.
    odd, other = "http|key|a\ud800", "http|key|a\ud801"
    assert slot_digest(odd) == slot_digest(odd) != slot_digest(other)
    assert slot_digest(odd) == "1f1e141b320dd4e99e608e8f"  # stored on images: pinned like the others
    assert webhook_slot("msg-\udcff") == "http|webhook|768b8be76adf0da0d62ebfcc228da808" != webhook_slot("msg-\udcfe")


def job(**fields: object):
    return parse_job({"InstanceId": "lhins-web00001", **fields})


def test_keep_at_the_floor_is_allowed_and_below_is_refused_with_the_code() -> None:
    policy = Policy(keep=3)
    policy.check_job(job(Keep=3))
    with pytest.raises(AccessDenied) as caught:
        policy.check_job(job(Keep=2))
    assert caught.value.code == LIMIT and "BLUEPRINT_KEEP=3" in caught.value.message


def test_max_instances_at_the_ceiling_is_allowed_and_above_is_refused_with_the_code() -> None:
    policy = Policy(max_instances=5)
    policy.check_job(job(MaxInstances=5))
    with pytest.raises(AccessDenied) as caught:
        policy.check_job(job(MaxInstances=6))
    assert caught.value.code == LIMIT and "BLUEPRINT_MAX_INSTANCES=5" in caught.value.message


@pytest.mark.parametrize(("floor", "asked", "kept"), [(None, 1, 1), (None, None, None), (3, None, 3), (3, 5, 5)])
def test_keep_for(floor: int | None, asked: int | None, kept: int | None) -> None:
    fields = {} if asked is None else {"Keep": asked}
    assert Policy(keep=floor).keep_for(job(**fields)) == kept


def test_refusals_say_which_list_refused() -> None:
    by_ids = Policy(allowed_instances=frozenset({"lhins-db000001"})).refusal("lhins-web00001", {})
    by_tags = Policy(allowed_tags=(("env", "prod"),)).refusal("lhins-web00001", {"env": "dev"})
    assert by_ids is not None and "BLUEPRINT_ALLOWED_INSTANCES" in by_ids.message
    assert by_tags is not None and "BLUEPRINT_ALLOWED_TAGS" in by_tags.message
    assert Policy(allowed_tags=(("env", "prod"),)).refusal("lhins-web00001", {"env": "prod"}) is None


# ---- commands (issue 15) ------------------------------------------------------------------------------------

PAIR = Policy(pre_command=Command.configured("BLUEPRINT_PRE_COMMAND", "sync"),
              post_command=Command.configured("BLUEPRINT_POST_COMMAND", "cmd-abcdefgh"),
              allowed_commands=frozenset({"cmd-allowed1"}), command_timeout=30)


def _job(**fields):
    return parse_job({"InstanceId": "lhins-web00001", **fields})


def test_a_configured_pair_is_the_default_and_consistent_false_opts_out() -> None:
    commands = PAIR.commands_for(_job())
    assert commands == Commands(Command("BLUEPRINT_PRE_COMMAND", text="sync"),
                                Command("cmd-abcdefgh", command_id="cmd-abcdefgh"), "accepted", 30)
    assert PAIR.commands_for(_job(Consistent=False)) is None
    assert PAIR.commands_for(_job(ForcePowerOff=True)) is None
    assert Policy().commands_for(_job()) is None
    assert PAIR.commands_for(_job(PostAfter="ready")).post_after == "ready"


def test_a_job_names_only_allowed_ids() -> None:
    chosen = PAIR.commands_for(_job(PreCommand="cmd-allowed1", PostCommand="cmd-allowed1"))
    assert chosen is not None and chosen.pre == Command("cmd-allowed1", command_id="cmd-allowed1")
    assert chosen.post == chosen.pre  # a job that names commands picks both itself
    post_only = PAIR.commands_for(_job(PostCommand="cmd-allowed1"))
    assert post_only is not None and post_only.pre is None
    for value in ("sync", "cmd-abcdefgh", "cmd-allowed1 ", "CMD-ALLOWED1", "cmd-allowed1\n"):
        with pytest.raises(AccessDenied) as refused:
            PAIR.commands_for(_job(PreCommand=value))
        assert refused.value.code == "UnauthorizedOperation.CommandNotAllowed"
        assert "sync" not in refused.value.message


def test_shell_text_is_403_even_beside_a_contradiction() -> None:
    with pytest.raises(AccessDenied):
        PAIR.commands_for(_job(PreCommand="rm -rf /", ForcePowerOff=True))
    with pytest.raises(BadRequest):
        PAIR.commands_for(_job(PreCommand="cmd-allowed1", PostCommand="cmd-allowed1", ForcePowerOff=True))
    with pytest.raises(AccessDenied):
        Policy().commands_for(_job(Consistent=True))


def test_a_pre_command_never_runs_without_its_post_command() -> None:
    paired = Policy(allowed_commands=frozenset({"cmd-plain001"}),
                    command_pairs={"cmd-freeze01": "cmd-thaw0001"})
    chosen = paired.commands_for(_job(PreCommand="cmd-freeze01"))
    assert chosen is not None and chosen.post == Command("cmd-thaw0001", command_id="cmd-thaw0001")
    refused = [{"PreCommand": "cmd-plain001"},  # a plain pre-command needs a post-command beside it
               {"PreCommand": "cmd-thaw0001", "PostCommand": "cmd-freeze01"},  # swapped
               {"PreCommand": "cmd-freeze01", "PostCommand": "cmd-plain001"},  # not its pair's post
               {"PostCommand": "cmd-freeze01"}]  # a pair's pre-command as a post-command
    for fields in refused:
        with pytest.raises(AccessDenied) as denied:
            paired.commands_for(_job(**fields))
        assert denied.value.code == "UnauthorizedOperation.CommandNotAllowed", fields
    assert paired.commands_for(_job(PostCommand="cmd-thaw0001")) is not None  # a thaw alone never pauses
