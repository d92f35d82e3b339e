"""Who may use the ops console: users with roles and per-user tokens (stored as SHA-256), logins
with a server-side session in an HttpOnly SameSite=Strict cookie, CSRF tokens on actions,
Bearer tokens for scripts, an authenticating proxy's user header believed only from trusted
addresses, the action log, the `skyfleet users` commands, and no secret in the logs."""

import asyncio
import hashlib
import logging
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from coordinator.console import fleet_api
from coordinator.console.app import create_console
from coordinator.ingest import StoreWriter
from coordinator.service import Coordinator, open_store
from coordinator.settings import CoordinatorSettings
from coordinator.store import reads
from coordinator.store.action_log import recent_actions
from coordinator.store.tables import ConsoleUser
from coordinator.store.users import revoke_user
from protos.base import utc_now
from skyfleet.cli import app as skyfleet_app
from tests.coordinators import add_console_user, coordinator_settings, make_candidate

ELSEWHERE = "192.0.2.10"
"""A client on another machine (TEST-NET-1): no loopback reads."""
PROXY = "10.0.0.5"
"""The authenticating proxy the tests trust."""

runner = CliRunner()


def store_at(url: str):
    """A store at `url` holding one target (a single candidate)."""
    engine = open_store(url)
    writer = StoreWriter(engine, None, match_radius_arcsec=2.0, moving_radius_arcsec=1800.0)
    writer.write("transient-candidate", [make_candidate("north", "n-1", 150.0, 20.0)], utc_now())
    return engine


@pytest.fixture
def store(tmp_path):
    engine = store_at(f"sqlite:///{tmp_path / 'access.sqlite3'}")
    yield engine
    engine.dispose()


def client(engine, *, host: str = ELSEWHERE, **settings: object) -> httpx.AsyncClient:
    """An HTTP client of a console on `engine`, calling from `host`; it keeps cookies."""
    settings.setdefault("trusted_proxies", [f"{PROXY}/32"])
    app = create_console(engine, CoordinatorSettings(**settings))
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://console")


def target_id(engine) -> int:
    """The id of the store's (first) target."""
    with engine.connect() as conn:
        return reads.target_views(conn)[0].target_id


def url(engine) -> str:
    """The database URL of an engine, as the `skyfleet users` commands take it."""
    return engine.url.render_as_string(hide_password=False)


async def log_in(http: httpx.AsyncClient, name: str, token: str) -> dict:
    response = await http.post("/api/login", json={"name": name, "token": token})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_viewer_reads_the_fleet_but_may_not_act(store):
    token = add_console_user(store, "vera", "viewer")
    async with client(store) as http:
        assert (await http.get("/api/summary")).status_code == 401
        me = await log_in(http, "vera", token)
        assert (me["role"], me["may_read"], me["may_act"]) == ("viewer", True, False)
        assert (await http.get("/api/summary")).status_code == 200
        assert (await http.get("/api/targets")).json()[0]["name"].startswith("SF J")
        refused = await http.post(
            f"/api/targets/{target_id(store)}/priority",
            json={"priority": 1},
            headers={"X-CSRF-Token": me["csrf_token"]},
        )
    assert refused.status_code == 403
    assert refused.json()["detail"] == ("vera is a viewer: actions need the operator or admin role")
    with store.connect() as conn:
        assert recent_actions(conn) == []


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    """A store with one target, on SQLite and on PostgreSQL."""
    url = (
        f"sqlite:///{tmp_path / 'access.sqlite3'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = store_at(url)
    yield engine
    engine.dispose()


async def test_an_operators_action_is_recorded_with_who_did_it(any_store):
    store = any_store
    token = add_console_user(store, "olga", "operator")
    admin = add_console_user(store, "ada", "admin")
    target = target_id(store)
    async with client(store) as http:
        me = await log_in(http, "olga", token)
        done = await http.post(
            f"/api/targets/{target}/priority",
            json={"priority": 2},
            headers={"X-CSRF-Token": me["csrf_token"], "X-Request-ID": "req-0001-abcd"},
        )
        assert (await http.get("/api/actions")).status_code == 403  # the log is for admins
        log = await http.get("/api/actions", headers={"Authorization": f"Bearer {admin}"})
    assert done.status_code == 200 and done.headers["X-Request-ID"] == "req-0001-abcd"
    assert log.status_code == 200
    [entry] = log.json()
    assert {k: v for k, v in entry.items() if k != "at"} == {
        "user_name": "olga",
        "role": "operator",
        "via": "session",
        "action": "target.priority",
        "target": f"target:{target}",
        "detail": "priority=2",
        "outcome": "done",
        "request_id": "req-0001-abcd",
    }


async def test_an_action_by_cookie_without_the_csrf_token_is_refused(store):
    token = add_console_user(store, "olga", "operator")
    path = f"/api/targets/{target_id(store)}/priority"
    async with client(store) as http:
        await log_in(http, "olga", token)
        missing = await http.post(path, json={"priority": 1})
        wrong = await http.post(path, json={"priority": 1}, headers={"X-CSRF-Token": "guess"})
        target = (await http.get("/api/targets")).json()[0]
    assert missing.status_code == wrong.status_code == 403
    assert "X-CSRF-Token" in missing.json()["detail"]
    assert target["priority"] == 5  # unchanged
    with store.connect() as conn:
        assert recent_actions(conn) == []


async def test_a_bearer_token_acts_without_a_csrf_token(store):
    token = add_console_user(store, "script", "operator")
    async with client(store) as http:
        response = await http.post(
            f"/api/targets/{target_id(store)}/mark",
            json={"mark": "dismissed"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200
    with store.connect() as conn:
        assert [(a.user_name, a.via, a.detail) for a in recent_actions(conn)] == [
            ("script", "bearer", "mark=dismissed")
        ]


async def test_a_wrong_token_or_name_is_refused_with_a_clear_message(store):
    add_console_user(store, "olga", "operator")
    async with client(store) as http:
        wrong_token = await http.post("/api/login", json={"name": "olga", "token": "guess"})
        wrong_name = await http.post("/api/login", json={"name": "nobody", "token": "guess"})
        bearer = await http.get("/api/summary", headers={"Authorization": "Bearer guess"})
    assert wrong_token.status_code == wrong_name.status_code == 401
    assert wrong_token.json()["detail"] == wrong_name.json()["detail"] == "wrong name or token"
    assert "set-cookie" not in wrong_token.headers
    assert bearer.status_code == 401
    assert bearer.json()["detail"] == "the Bearer token is not a console user's token"


async def test_a_revoked_user_is_refused_and_its_session_ends_at_once(store, tmp_path):
    token = add_console_user(store, "olga", "operator")
    path = f"/api/targets/{target_id(store)}/priority"
    async with client(store) as http:
        me = await log_in(http, "olga", token)
        revoked = runner.invoke(skyfleet_app, ["users", "revoke", "olga", "--database", url(store)])
        assert revoked.exit_code == 0, revoked.output
        assert (await http.get("/api/me")).json()["name"] is None
        action = await http.post(
            path, json={"priority": 1}, headers={"X-CSRF-Token": me["csrf_token"]}
        )
        login = await http.post("/api/login", json={"name": "olga", "token": token})
        bearer = await http.post(
            path, json={"priority": 1}, headers={"Authorization": f"Bearer {token}"}
        )
    assert action.status_code == 401
    assert (login.status_code, login.json()["detail"]) == (401, "user olga was revoked")
    assert bearer.status_code == 401
    assert bearer.json()["detail"] == "user olga was revoked: its token no longer works"


async def test_logging_out_ends_the_session_on_the_server(store):
    token = add_console_user(store, "olga", "operator")
    async with client(store) as http:
        await log_in(http, "olga", token)
        session = http.cookies["skyfleet_session"]
        assert (await http.post("/api/logout")).json() == {"logged_out": True}
        http.cookies.set("skyfleet_session", session)  # a copy of the cookie kept elsewhere
        me = (await http.get("/api/me")).json()
        assert (await http.get("/api/summary")).status_code == 401
    assert me["name"] is None and not me["may_read"]


@pytest.mark.parametrize("https", [False, True])
async def test_the_session_cookie_is_httponly_strict_and_secure_over_https(store, https):
    token = add_console_user(store, "olga", "operator")
    async with client(store, console_https=https) as http:
        response = await http.post("/api/login", json={"name": "olga", "token": token})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=43200" in cookie
    assert ("; secure" in cookie) is https


async def test_a_forged_proxy_header_from_an_untrusted_address_is_ignored(store):
    add_console_user(store, "ada", "admin")
    forged = {"X-Forwarded-User": "ada"}
    async with client(store, host=ELSEWHERE) as http:
        me = (await http.get("/api/me", headers=forged)).json()
        read = await http.get("/api/summary", headers=forged)
        act = await http.post(
            f"/api/targets/{target_id(store)}/priority", json={"priority": 1}, headers=forged
        )
    assert me["name"] is None
    assert read.status_code == act.status_code == 401


async def test_a_trusted_proxys_user_gets_the_console_users_role_and_acts_with_csrf(store):
    add_console_user(store, "olga", "operator")
    path = f"/api/targets/{target_id(store)}/priority"
    olga = {"X-Forwarded-User": "olga"}
    async with client(store, host=PROXY) as http:
        without_csrf = await http.post(path, json={"priority": 3}, headers=olga)
        me = (await http.get("/api/me", headers=olga)).json()
        done = await http.post(
            path, json={"priority": 3}, headers={**olga, "X-CSRF-Token": me["csrf_token"]}
        )
    assert without_csrf.status_code == 403
    assert (me["name"], me["role"], me["via"]) == ("olga", "operator", "proxy")
    assert done.status_code == 200
    with store.connect() as conn:
        assert [(a.user_name, a.via) for a in recent_actions(conn)] == [("olga", "proxy")]


async def test_a_proxys_unknown_user_gets_the_default_role_or_is_refused(store):
    pat = {"X-Forwarded-User": "pat@example.org"}
    async with client(store, host=PROXY) as http:
        me = (await http.get("/api/me", headers=pat)).json()
        read = await http.get("/api/summary", headers=pat)
    async with client(store, host=PROXY, proxy_unknown_users=False) as http:
        refused = await http.get("/api/summary", headers=pat)
    assert (me["name"], me["role"], me["may_act"]) == ("pat@example.org", "viewer", False)
    assert read.status_code == 200
    assert refused.status_code == 403
    assert "not a console user" in refused.json()["detail"]


async def test_unknown_ids_are_404(store):
    token = add_console_user(store, "olga", "operator")
    auth = {"Authorization": f"Bearer {token}"}
    async with client(store) as http:
        answers = [
            await http.get("/api/targets/9999", headers=auth),
            await http.get("/api/cutouts/transient-candidate:" + "0" * 32, headers=auth),
            await http.post("/api/targets/9999/priority", json={"priority": 1}, headers=auth),
            await http.post("/api/targets/9999/mark", json={"mark": "x"}, headers=auth),
            await http.post("/api/followups/nothing/cancel", headers=auth),
        ]
    assert [a.status_code for a in answers] == [404] * 5
    with store.connect() as conn:
        assert {a.outcome for a in recent_actions(conn)} == {"not-found"}


def test_users_add_prints_the_token_once_and_stores_only_its_digest(tmp_path):
    database = f"sqlite:///{tmp_path / 'users.sqlite3'}"
    added = runner.invoke(
        skyfleet_app, ["users", "add", "olga", "--role", "operator", "--database", database]
    )
    assert added.exit_code == 0, added.output
    token = added.stdout.strip().splitlines()[-1]
    assert len(token) == 43 and added.output.count(token) == 1
    listed = runner.invoke(skyfleet_app, ["users", "list", "--database", database])
    again = runner.invoke(
        skyfleet_app, ["users", "add", "olga", "--role", "admin", "--database", database]
    )
    engine = open_store(database)
    with engine.connect() as conn:
        stored = conn.execute(select(ConsoleUser.token_sha256)).scalar_one()
    engine.dispose()
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert stored == digest
    assert listed.exit_code == 0 and "olga" in listed.output and "operator" in listed.output
    assert token not in listed.output and digest not in listed.output
    assert again.exit_code == 1 and "exists" in again.output
    files = [Path(tmp_path / name) for name in ("users.sqlite3", "users.sqlite3-wal")]
    assert not any(token.encode() in f.read_bytes() for f in files if f.exists())


def test_users_revoke_of_an_unknown_user_says_so(tmp_path):
    database = f"sqlite:///{tmp_path / 'users.sqlite3'}"
    result = runner.invoke(skyfleet_app, ["users", "revoke", "nobody", "--database", database])
    assert result.exit_code == 1 and "no console user nobody" in result.output


@pytest.fixture
async def live_coordinator(nats_server, tmp_path):
    """A running coordinator whose console does not let loopback clients read unasked (the
    tests' clients are on loopback)."""
    running = Coordinator(
        coordinator_settings(
            nats_server.url, f"sqlite:///{tmp_path / 'live.sqlite3'}", loopback_reads=False
        )
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_a_revoked_users_live_events_stop(live_coordinator, monkeypatch):
    monkeypatch.setattr(fleet_api, "KEEPALIVE_S", 0.5)  # how often a stream asks again
    engine = live_coordinator.engine
    token = add_console_user(engine, "vera", "viewer")
    async with httpx.AsyncClient(base_url=live_coordinator.console_url, timeout=10) as http:
        await log_in(http, "vera", token)
        async with http.stream("GET", "/api/events") as events:
            lines = events.aiter_lines()
            assert (await asyncio.wait_for(anext(lines), 10)).startswith("event: summary")
            with engine.begin() as conn:
                revoke_user(conn, "vera", utc_now())
            rest = await asyncio.wait_for(drain(lines), 10)  # ends: no timeout
        again = await http.get("/api/events")
    assert all(not line.startswith("event: summary") for line in rest)
    assert again.status_code == 401


async def drain(lines) -> list[str]:
    return [line async for line in lines]


async def test_no_token_or_cookie_value_appears_in_the_coordinators_logs(live_coordinator, caplog):
    caplog.set_level(logging.DEBUG)
    token = add_console_user(live_coordinator.engine, "olga", "operator")
    secrets_seen: list[str] = [token]
    async with httpx.AsyncClient(base_url=live_coordinator.console_url, timeout=10) as http:
        # someone pastes a token into the name field: the name tried is not logged either
        await http.post("/api/login", json={"name": token, "token": token})
        await http.post("/api/login", json={"name": "olga", "token": token[:-1] + "x"})
        me = (await http.post("/api/login", json={"name": "olga", "token": token})).json()
        secrets_seen += [http.cookies["skyfleet_session"], me["csrf_token"]]
        headers = {"X-CSRF-Token": me["csrf_token"]}
        await http.post("/api/targets/1/priority", json={"priority": 1}, headers=headers)
        await http.post("/api/followups/none/cancel", headers={"Authorization": f"Bearer {token}"})
        await http.post("/api/targets/1/mark", json={"mark": "x"})  # no CSRF: refused
        await http.post("/api/logout")
    coordinator_records = [
        r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    ]
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in coordinator_records)
    assert "console login user=olga role=operator" in text
    assert "console action user=olga role=operator via=bearer action=followup.cancel" in text
    assert "console action refused user=olga" in text
    for secret in secrets_seen:
        assert secret not in text
