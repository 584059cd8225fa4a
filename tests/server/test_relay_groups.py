"""How the relay cuts one site's outbox rows into AMQP messages (no broker needed)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from argo_server.outbox import ENVELOPE_TYPE, PendingMessage
from argo_server.relay import MAX_MESSAGE_BYTES, message_groups

OTHER_TYPE = "argobalsam.balsam.v1.SomethingElse"


def _message(number: int, size: int, message_type: str = ENVELOPE_TYPE) -> PendingMessage:
    return PendingMessage(number, "vesta", message_type, b"x" * size, {})


def test_small_envelopes_share_a_message_and_a_large_one_goes_alone() -> None:
    limit = 100
    messages = [_message(1, 40), _message(2, 40), _message(3, 40), _message(4, 150), _message(5, 10),
                _message(6, 10, OTHER_TYPE), _message(7, 10)]
    groups = message_groups(messages, limit)
    assert [[m.id for m in group] for group in groups] == [[1, 2], [3], [4], [5], [6], [7]]


def test_the_default_limit_keeps_a_full_relay_batch_of_ordinary_envelopes_in_one_message() -> None:
    assert len(message_groups([_message(n, 400) for n in range(500)], MAX_MESSAGE_BYTES)) == 1


@given(st.lists(st.tuples(st.integers(0, 300), st.booleans()), max_size=60), st.integers(1, 400))
def test_groups_keep_order_and_respect_the_limit(shape: list[tuple[int, bool]], limit: int) -> None:
    messages = [_message(n, size, ENVELOPE_TYPE if envelope else OTHER_TYPE)
                for n, (size, envelope) in enumerate(shape)]
    groups = message_groups(messages, limit)
    assert [m for group in groups for m in group] == messages  # nothing lost, duplicated or reordered
    for group in groups:
        assert group
        if len(group) > 1:
            assert all(m.message_type == ENVELOPE_TYPE for m in group)
            assert sum(len(m.body) for m in group) <= limit
    # greedy: a group ends only where the next envelope would not fit in it
    for first, second in zip(groups, groups[1:], strict=False):
        following = second[0]
        if following.message_type == ENVELOPE_TYPE and all(m.message_type == ENVELOPE_TYPE for m in first):
            assert sum(len(m.body) for m in first) + len(following.body) > limit or len(first[0].body) > limit
