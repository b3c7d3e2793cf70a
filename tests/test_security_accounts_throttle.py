"""Failed log-ins are throttled per client address and per account (issue 9, point 2).

Through the real app on both database backends: the log-in form and the token API
answer 429 with Retry-After; the counts are in the database, so a second app on the same
database (another worker, or the service after a restart) sees them; one address cannot
lock an account out; parallel guesses over real HTTP cannot slip past the limit.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from segmap.server.app import create_app
from segmap.server.settings import Settings
from server_fixtures import PASSWORD, Api, ThreadedServer

TOKEN = "/api/v1/auth/token"


@dataclass(frozen=True)
class Limit:
    """A documented default (docs/security.md): ``failures`` per ``window_s`` seconds."""

    failures: int
    window_s: int


ADDRESS_LIMIT = Limit(5, 15 * 60)
ACCOUNT_LIMIT = Limit(20, 15 * 60)


@pytest.fixture()
def from_address(api: Api) -> Iterator[Any]:
    """Clients of the app that come from a given address (closed afterwards)."""
    made: list[TestClient] = []

    def client(address: str) -> TestClient:
        c = TestClient(api.app, client=(address, 40000))
        made.append(c.__enter__())
        return c

    yield client
    for c in made:
        c.__exit__(None, None, None)


def token_attempt(client: Any, username: str, password: str) -> Any:
    """``POST /api/v1/auth/token`` with these credentials."""
    return client.post(TOKEN, json={"username": username, "password": password})


def fail(client: Any, username: str, times: int) -> None:
    """``times`` wrong passwords, each answered 401."""
    for _ in range(times):
        r = token_attempt(client, username, "wrong password")
        assert r.status_code == 401, r.text


def assert_throttled(r: Any) -> None:
    """A 429 with a Retry-After of at most the window, and a sentence saying when."""
    assert r.status_code == 429, r.text
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= max(ADDRESS_LIMIT.window_s, ACCOUNT_LIMIT.window_s)
    assert "too many failed log-ins" in r.text.lower() and "try again in" in r.text


def test_token_api_throttles_an_address_without_locking_the_account(
    api: Api, from_address: Any
) -> None:
    api.make_user("alice")
    attacker = from_address("203.0.113.7")
    fail(attacker, "alice", ADDRESS_LIMIT.failures)
    r = token_attempt(attacker, "alice", "another guess")
    assert_throttled(r)
    assert r.json()["retry_after_s"] == int(r.headers["Retry-After"])
    # Not even the right password gets through from there: guessing on cannot succeed.
    assert_throttled(token_attempt(attacker, "alice", PASSWORD))
    # Alice, elsewhere, is not locked out by one address.
    assert token_attempt(from_address("198.51.100.1"), "alice", PASSWORD).status_code == 200


def test_unknown_usernames_are_throttled_alike(api: Api, from_address: Any) -> None:
    """Counting only real accounts would tell which names exist."""
    api.make_user("alice")
    answers = []
    for name, address in (("alice", "192.0.2.1"), ("ghost", "192.0.2.2")):
        client = from_address(address)
        fail(client, name, ADDRESS_LIMIT.failures)
        r = token_attempt(client, name, "x")
        answers.append((r.status_code, r.json()["detail"]))
    assert answers[0] == answers[1] and answers[0][0] == 429


def test_log_in_form_is_throttled_with_retry_after(api: Api, from_address: Any) -> None:
    api.make_user("alice")
    browser = from_address("203.0.113.9")

    def submit(password: str) -> Any:
        found = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/login").text)
        assert found is not None
        data = {"username": "alice", "password": password, "csrf_token": found.group(1)}
        return browser.post("/login", data=data, follow_redirects=False)

    for _ in range(ADDRESS_LIMIT.failures):
        assert submit("wrong").status_code == 401
    r = submit(PASSWORD)
    assert_throttled(r)
    assert "Too many failed log-ins from your address" in r.text  # the page, in a sentence
    assert browser.get("/api/v1/me").status_code == 401


def test_counts_hold_across_workers_and_restarts(
    api: Api, from_address: Any, settings: Settings
) -> None:
    api.make_user("alice")
    fail(from_address("203.0.113.20"), "alice", ADDRESS_LIMIT.failures)
    # A second app on the same database: another worker, or the service started again.
    other = create_app(settings)
    try:
        with TestClient(other, client=("203.0.113.20", 40001)) as client:
            assert_throttled(token_attempt(client, "alice", PASSWORD))
    finally:
        other.state.database.dispose()


def test_account_limit_across_many_addresses_only_delays(api: Api, from_address: Any) -> None:
    api.make_user("alice")
    api.make_user("bob")
    per_address = ADDRESS_LIMIT.failures
    addresses = -(-ACCOUNT_LIMIT.failures // per_address)  # enough to reach the account limit
    for n in range(addresses):
        fail(from_address(f"10.0.{n}.1"), "alice", per_address)
    fresh = from_address("10.9.9.9")
    r = token_attempt(fresh, "alice", PASSWORD)
    assert_throttled(r)
    assert "for this account" in r.json()["detail"]
    # Only that account: bob logs in from the same fresh address.
    assert token_attempt(fresh, "bob", PASSWORD).status_code == 200


def test_a_successful_log_in_clears_the_account_count(api: Api, from_address: Any) -> None:
    api.make_user("alice")
    per_address = ADDRESS_LIMIT.failures
    below = ACCOUNT_LIMIT.failures // per_address - 1  # addresses' worth just below the limit
    for n in range(below):
        fail(from_address(f"10.1.{n}.1"), "alice", per_address)
    assert token_attempt(from_address("10.1.200.1"), "alice", PASSWORD).status_code == 200
    # Without the reset these would reach the account's limit.
    fail(from_address("10.1.201.1"), "alice", per_address)
    assert token_attempt(from_address("10.1.202.1"), "alice", PASSWORD).status_code == 200


def test_parallel_guesses_over_real_http_cannot_pass_the_limit(
    api: Api, threaded_server: ThreadedServer
) -> None:
    """Counted before the (slow) password check, so a burst gets no more tries."""
    api.make_user("alice")
    burst = 3 * ADDRESS_LIMIT.failures

    def guess(n: int) -> int:
        r = httpx.post(
            threaded_server.url + TOKEN,
            json={"username": "alice", "password": f"guess {n}"},
            timeout=60,
        )
        return r.status_code

    with ThreadPoolExecutor(max_workers=burst) as pool:
        codes = list(pool.map(guess, range(burst)))
    assert codes.count(401) == ADDRESS_LIMIT.failures, codes
    assert codes.count(429) == burst - ADDRESS_LIMIT.failures, codes


def _basic(username: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def test_dicomweb_basic_guesses_are_throttled_like_any_log_in(api: Api, from_address: Any) -> None:
    # DICOMweb tools send Basic credentials with every request; a wrong pair must count
    # as a failed log-in, or the DICOMweb root would be an unthrottled password oracle.
    api.make_user("alice")
    token = api.make_user("owner")
    made = api.client.post(
        "/api/v1/projects", json={"id": "lab", "name": "Lab"}, headers=api.auth(token)
    )
    assert made.status_code == 201, made.text
    studies = "/dicomweb/projects/lab/studies"
    attacker = from_address("203.0.113.9")
    for _ in range(ADDRESS_LIMIT.failures):
        r = attacker.get(studies, headers=_basic("alice", "wrong password"))
        assert r.status_code == 401, r.text
        assert r.headers["WWW-Authenticate"].startswith("Basic")
    # Over the limit even the right password is not checked, so guessing on cannot win.
    throttled = attacker.get(studies, headers=_basic("alice", PASSWORD))
    assert_throttled(throttled)
    assert throttled.headers["content-type"].startswith("application/json")
    # Another address still logs in as alice: one machine cannot lock the account out.
    r = from_address("198.51.100.4").get(studies, headers=_basic("alice", PASSWORD))
    assert r.status_code == 404, r.text  # alice is no member of "lab": it does not exist for her
