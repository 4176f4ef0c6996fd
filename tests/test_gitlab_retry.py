"""How long the bot waits before retrying: pure function of GitLab's answer, with literals."""

from __future__ import annotations

import httpx

from bot.gitlab import retry_after_seconds

NOW = 1_700_000_000.0
# GitLab sends these on every answer, whatever its status (user_and_ip_rate_limits.md,
# "Headers returned for all requests"); Reset is the Unix time the window ends.
RATE_LIMIT = {
    "RateLimit-Limit": "2000",
    "RateLimit-Name": "throttle_authenticated_api",
    "RateLimit-Observed": "12",
    "RateLimit-Remaining": "1988",
    "RateLimit-Reset": str(int(NOW) + 3000),
}


def _answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers={**RATE_LIMIT, **headers})


def test_a_502_or_500_with_the_usual_rate_limit_headers_asks_for_no_wait() -> None:
    assert retry_after_seconds(_answer(502), now=NOW) is None
    assert retry_after_seconds(_answer(500), now=NOW) is None
    assert retry_after_seconds(_answer(503), now=NOW) is None


def test_a_429_is_waited_out_by_retry_after_or_else_the_window_reset() -> None:
    assert retry_after_seconds(_answer(429, **{"Retry-After": "7"}), now=NOW) == 7.0
    assert retry_after_seconds(_answer(429), now=NOW) == 3000.0


def test_an_explicit_retry_after_is_honoured_on_any_status() -> None:
    assert retry_after_seconds(_answer(503, **{"Retry-After": "5"}), now=NOW) == 5.0
    date = "Tue, 14 Nov 2023 22:13:40 GMT"  # NOW + 20 s
    assert retry_after_seconds(_answer(503, **{"Retry-After": date}), now=NOW) == 20.0


def test_a_garbled_retry_after_is_no_request_to_wait() -> None:
    assert retry_after_seconds(_answer(502, **{"Retry-After": "soon"}), now=NOW) is None
