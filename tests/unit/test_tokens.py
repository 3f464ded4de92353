"""Enterprise API tokens (signed claims with the user's token generation) and each worker's copy
of its users' token states, which must never keep a state that may be stale."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import pytest

from resolver.services.accounts import TokenState, TokenStates
from resolver.services.tokens import TokenError, TokenExpired, Tokens, token_digest
from resolver.store.notifications import notification_payloads, parse_payload, split_users, user_line

KEY = b"k" * 32


def test_a_token_carries_the_generation_it_was_issued_with():
    tokens = Tokens(KEY, 60)
    token, expires = tokens.issue(7, 3, "acme", 5, now=1000.0)
    claims = tokens.verify(token, now=1059.0)
    assert (claims.user_id, claims.enterprise_id, claims.username, claims.generation) == (7, 3, "acme", 5)
    assert claims.expires == expires == 1060.0
    with pytest.raises(TokenExpired):
        tokens.verify(token, now=1060.0)


def test_two_tokens_issued_in_one_second_differ():
    tokens = Tokens(KEY, 60)
    first, _ = tokens.issue(7, 3, "acme", 0, now=1000.0)
    second, _ = tokens.issue(7, 3, "acme", 0, now=1000.0)
    assert first != second and token_digest(first) != token_digest(second)


def test_a_token_issued_before_generations_existed_is_of_the_first():
    payload = base64.urlsafe_b64encode(orjson.dumps({"u": 7, "e": 3, "n": "acme", "x": 2000})).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(KEY, payload, hashlib.sha256).digest()).rstrip(b"=")
    claims = Tokens(KEY, 60).verify(f"{payload.decode()}.{signature.decode()}", now=1000.0)
    assert claims.generation == 0 and claims.user_id == 7


@pytest.mark.parametrize("token", ["", "x", "a.b", "e30.e30", "令牌.签名"])
def test_tokens_not_signed_here_are_refused(token):
    with pytest.raises(TokenError) as caught:
        Tokens(KEY, 60).verify(token, now=0.0)
    assert not isinstance(caught.value, TokenExpired)


def test_another_key_signs_other_tokens():
    token, _ = Tokens(b"o" * 32, 60).issue(7, 3, "acme", 0, now=1000.0)
    with pytest.raises(TokenError):
        Tokens(KEY, 60).verify(token, now=1000.0)


def test_a_state_accepts_its_generation_unless_logged_out():
    state = TokenState(3, False, 2, frozenset({b"gone"}))
    assert state.accepts(2, b"kept")
    assert not state.accepts(1, b"kept") and not state.accepts(3, b"kept")
    assert not state.accepts(2, b"gone")


STATE = TokenState(3, False, 1, frozenset())
NEWER = TokenState(3, False, 2, frozenset())


def test_nothing_is_kept_or_answered_while_untrusted():
    states = TokenStates()
    states.finish(7, STATE, states.begin())
    assert states.get(7) == (False, None)
    states.trusted = True
    assert states.get(7) == (False, None)
    states.finish(7, STATE, states.begin())
    assert states.get(7) == (True, STATE)
    states.trusted = False
    assert states.get(7) == (False, None)


def test_a_read_that_began_before_a_change_is_not_kept():
    states = TokenStates()
    states.trusted = True
    started = states.begin()
    states.invalidate([7])
    states.finish(7, STATE, started)
    assert states.get(7) == (False, None)
    states.finish(7, NEWER, states.begin())
    assert states.get(7) == (True, NEWER)


def test_a_change_of_another_user_does_not_stop_a_read_being_kept():
    states = TokenStates()
    states.trusted = True
    started = states.begin()
    states.invalidate([8])
    states.finish(7, STATE, started)
    assert states.get(7) == (True, STATE)


def test_a_read_that_began_before_a_reconnect_is_not_kept():
    states = TokenStates()
    states.trusted = True
    states.finish(8, STATE, states.begin())
    started = states.begin()
    states.clear()
    states.finish(7, STATE, started)
    assert states.get(7) == (False, None) and states.get(8) == (False, None)


def test_a_failed_read_keeps_nothing_and_the_change_log_empties_when_no_read_runs():
    states = TokenStates()
    states.trusted = True
    states.begin()
    states.invalidate([7])
    states.finish(7, None, None)
    assert states.get(7) == (False, None)
    assert states._invalidated == {} and states._reading == 0


def test_a_deleted_user_is_remembered_as_none():
    states = TokenStates()
    states.trusted = True
    states.finish(7, None, states.begin())
    assert states.get(7) == (True, None)


def test_the_number_of_kept_states_is_bounded():
    states = TokenStates(max_entries=10)
    states.trusted = True
    for user_id in range(25):
        states.finish(user_id, STATE, states.begin())
        assert len(states) <= 10


def test_user_lines_travel_with_handle_keys_and_are_told_apart():
    keys = ["88.123.45/a", "0.na/88.123.45"]
    payloads = notification_payloads([*keys, user_line(7), user_line(12)], sent_at=1.0)
    parsed = [split_users(parse_payload(p)[1]) for p in payloads]
    assert parsed == [(keys, [7, 12])]
    assert split_users(keys) == (keys, [])
    assert split_users(["user:x", "88.123/b"]) == (["88.123/b"], [])
