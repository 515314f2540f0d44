"""API keys over REST: made once and shown once, hashed, listed, revoked; roles refused with
403 naming the role needed (and recorded); tenants kept apart; a superadmin sees every
tenant; FLOWLOG_TOKENS stay admins of their tenants."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import asyncpg
import pytest

from flowlog.access import keys as api_keys
from flowlog.access.keys import KeyRecord
from flowlog.access.ring import LOOKUPS_AT_ONCE
from flowlog.access.roles import Role
from flowlog.access.store import KeyStore
from flowlog.api import keys
from flowlog.eventstore import EventStore, create_pool
from flowlog.workflow.caller import Caller
from flowlog.workflow.errors import Code
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import FLOWS, A, B, create, ok, refused, total

KEYS = "/api/v1/keys"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def first_key(database_url: str, *, tenant: str = "acme", role: Role = Role.ADMIN,
                    name: str = "root") -> str:  # fmt: skip
    """A key made on the database, as ``flowlog keys create`` makes the first one."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        secret = api_keys.new_secret()
        await KeyStore(EventStore(pool)).create(
            key_id=api_keys.new_id(), secret=secret, tenant=tenant, name=name, role=role,
            expires_at=None, caller=Caller(actor="cli:test"),
        )  # fmt: skip
        return secret
    finally:
        await pool.close()


async def until(condition: Any, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        assert loop.time() < deadline, "not within the time"
        await asyncio.sleep(0.02)


async def make_key(service: Service, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    data: dict[str, Any] = await ok(await service.client.post(KEYS, json=body, headers=headers))
    return data


@pytest.fixture
async def acme(make_service: MakeService, database_url: str) -> tuple[Service, str]:
    """An installation that had no access control, then got its first admin key."""
    service = await make_service()
    root = await first_key(database_url)
    await until(lambda: _enabled(service))
    return service, root


async def _enabled(service: Service) -> bool:
    return service.app[keys.ACCESS].enabled


async def test_the_first_key_closes_an_open_server_in_every_process(
    acme: tuple[Service, str],
) -> None:
    service, root = acme
    await refused(await service.client.get(FLOWS), 401, Code.UNAUTHORIZED)
    await ok(await service.client.get(FLOWS, headers=bearer(root)), paged=True)


async def test_a_key_is_shown_once_and_kept_only_as_its_digest(
    acme: tuple[Service, str], database_url: str
) -> None:
    service, root = acme
    made = await make_key(service, bearer(root), name="reader", role="viewer")
    assert made["key"].startswith("flk_")
    assert len(made["key"]) > 40
    assert made["prefix"] == made["key"][:12]
    assert made["role"] == "viewer"
    assert made["tenant"] == "acme"
    assert made["status"] == "active"
    assert made["createdBy"] == "key:root"
    listed = (await ok(await service.client.get(KEYS, headers=bearer(root)), paged=True))["data"]
    assert {k["name"] for k in listed["keys"]} == {"root", "reader"}
    assert all("key" not in k for k in listed["keys"])
    conn = await asyncpg.connect(database_url)
    try:
        dump = str(await conn.fetch("SELECT * FROM api_keys")) + str(
            await conn.fetch("SELECT data FROM events WHERE stream_id LIKE 'key-%'")
        )
    finally:
        await conn.close()
    assert made["key"] not in dump
    assert hashlib.sha256(made["key"].encode()).hexdigest() in dump


async def test_a_viewer_reads_and_is_refused_what_an_operator_does(
    acme: tuple[Service, str], database_url: str
) -> None:
    service, root = acme
    flow_id = await create(service.client, headers=bearer(root), start=False)
    viewer = (await make_key(service, bearer(root), name="reader", role="viewer"))["key"]
    await ok(await service.client.get(FLOWS + flow_id, headers=bearer(viewer)))
    answer = await service.client.post(
        FLOWS + "start", json={"workFlowId": flow_id}, headers=bearer(viewer)
    )
    refusal = await refused(answer, 403, Code.ROLE_REQUIRED)
    assert "operator" in refusal["message"]
    assert "viewer" in refusal["message"]
    assert refusal["data"] == {"roleNeeded": "operator", "role": "viewer"}
    # Nothing happened, and the refusal is in the log, with who and what.
    detail = await ok(await service.client.get(FLOWS + flow_id, headers=bearer(root)))
    assert detail["info"]["status"] == "Initializing"
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT stream_id, type, data, metadata FROM events WHERE type = 'AccessRefused'"
        )
    finally:
        await conn.close()
    assert row is not None
    assert row["stream_id"] == "refusals-" + b"acme".hex() + "/key:reader"
    assert '"needed": "operator"' in row["data"]
    assert '"key:reader"' in row["metadata"]
    # An operator may; not an admin's route.
    operator = (await make_key(service, bearer(root), name="ops", role="operator"))["key"]
    await ok(await service.client.post(FLOWS + "start", json={"workFlowId": flow_id},
                                       headers=bearer(operator)))  # fmt: skip
    await refused(await service.client.get(KEYS, headers=bearer(operator)), 403,
                  Code.ROLE_REQUIRED)  # fmt: skip


class _Unheard(KeyStore):
    """A store of another process whose changes nobody has heard yet (its notification is on
    the way, or lost)."""

    async def changed(self, key_id: str) -> None:
        pass


async def test_a_key_made_through_another_process_works_at_once(
    acme: tuple[Service, str], database_url: str
) -> None:
    service, _ = acme
    ring = service.app[keys.ACCESS]
    reloads = ring.reloads
    secret = api_keys.new_secret()
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        await _Unheard(EventStore(pool)).create(
            key_id=api_keys.new_id(), secret=secret, tenant="acme", name="elsewhere",
            role=Role.VIEWER, expires_at=None, caller=Caller(actor="cli:test"),
        )  # fmt: skip
    finally:
        await pool.close()
    for _ in range(2):
        await ok(await service.client.get(FLOWS, headers=bearer(secret)), paged=True)
    assert ring.reloads == reloads, "found by a reload, not by its digest"
    # As an attacker would try: a key's form that nobody made, one character off a real key,
    # a key too long, a NUL (no HTTP client sends it: asked of the ring). None is anyone, and
    # none is remembered.
    off = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for forged in (api_keys.new_secret(), off, secret + "A"):
        await refused(await service.client.get(FLOWS, headers=bearer(forged)), 401,
                      Code.UNAUTHORIZED)  # fmt: skip
    for forged in (api_keys.new_secret(), off, secret + "A", secret[:-1] + "\x00", "flk_"):
        assert await ring.recognise(forged) is None
        assert ring.identify(forged) is None


async def test_lookups_of_unknown_keys_are_shared_and_few_at_a_time(
    acme: tuple[Service, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, _ = acme
    ring = service.app[keys.ACCESS]
    asked = ring.store.by_digest
    digests: list[str] = []
    running = most = 0

    async def counted(digest: str) -> KeyRecord | None:
        nonlocal running, most
        digests.append(digest)
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.05)
            return await asked(digest)
        finally:
            running -= 1

    monkeypatch.setattr(ring.store, "by_digest", counted)
    same = api_keys.new_secret()
    assert await asyncio.gather(*(ring.recognise(same) for _ in range(20))) == [None] * 20
    assert len(digests) == 1, "twenty requests naming one key asked once"
    flood = [api_keys.new_secret() for _ in range(12)]
    assert await asyncio.gather(*(ring.recognise(key) for key in flood)) == [None] * 12
    assert len(digests) == 13
    assert most == LOOKUPS_AT_ONCE
    # A request that goes away does not take the others' answer with it.
    first, second = (asyncio.create_task(ring.recognise(same)) for _ in range(2))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second is None
    assert first.cancelled()

    # The database unreachable: an unknown key is refused as unknown, not failed.
    async def unreachable(digest: str) -> KeyRecord | None:
        raise ConnectionRefusedError("the database is down")

    monkeypatch.setattr(ring.store, "by_digest", unreachable)
    await refused(await service.client.get(FLOWS, headers=bearer(api_keys.new_secret())), 401,
                  Code.UNAUTHORIZED)  # fmt: skip


async def test_revoked_and_expired_keys_are_refused_and_stay_listed(
    acme: tuple[Service, str], make_service: MakeService
) -> None:
    service, root = acme
    other = await make_service()  # a second server on the same database
    made = await make_key(service, bearer(root), name="ci", role="operator")
    await until(lambda: _knows(other, made["key"]))
    revoked = await ok(await service.client.post(
        f"{KEYS}/{made['id']}/revoke", json={"reason": "leaked"}, headers=bearer(root)
    ))  # fmt: skip
    assert revoked["status"] == "revoked"
    assert revoked["revokeReason"] == "leaked"
    assert revoked["revokedBy"] == "key:root"
    await refused(await service.client.get(FLOWS, headers=bearer(made["key"])), 401,
                  Code.UNAUTHORIZED)  # fmt: skip
    await until(lambda: _refuses(other, made["key"]), within=1.0)
    # Revoking again changes nothing; the key stays listed as revoked.
    again = await ok(await service.client.post(
        f"{KEYS}/{made['id']}/revoke", json={"reason": "twice"}, headers=bearer(root)
    ))  # fmt: skip
    assert again["revokeReason"] == "leaked"
    listed = await ok(await service.client.get(KEYS + "?status=revoked", headers=bearer(root)),
                      paged=True)  # fmt: skip
    assert [k["name"] for k in listed["data"]["keys"]] == ["ci"]


async def _knows(service: Service, key: str) -> bool:
    return (await service.client.get(FLOWS, headers=bearer(key))).status == 200


async def _refuses(service: Service, key: str) -> bool:
    return (await service.client.get(FLOWS, headers=bearer(key))).status == 401


async def test_an_expired_key_is_refused(acme: tuple[Service, str], database_url: str) -> None:
    service, root = acme
    made = await make_key(service, bearer(root), name="brief", role="viewer",
                          expiresAt="2100-01-01T00:00:00Z")  # fmt: skip
    assert made["expiresAt"].startswith("2100-01-01")
    conn = await asyncpg.connect(database_url)
    try:  # time passes
        await conn.execute("UPDATE api_keys SET expires_at = now() WHERE id = $1", made["id"])
    finally:
        await conn.close()
    await service.app[keys.ACCESS].reload()
    await refused(await service.client.get(FLOWS, headers=bearer(made["key"])), 401,
                  Code.UNAUTHORIZED)  # fmt: skip
    past = await service.client.post(KEYS, json={"name": "old", "role": "viewer",
                                                 "expiresAt": "2001-01-01T00:00:00Z"},
                                     headers=bearer(root))  # fmt: skip
    await refused(past, 400, Code.BAD_INPUT)


async def test_a_create_sent_again_answers_the_same_key(acme: tuple[Service, str]) -> None:
    service, root = acme
    headers = {**bearer(root), "Idempotency-Key": "make-reader-1"}
    body = {"name": "reader", "role": "viewer"}
    first = await ok(await service.client.post(KEYS, json=body, headers=headers))
    again = await ok(await service.client.post(KEYS, json=body, headers=headers))
    assert again == first
    other = await service.client.post(KEYS, json={**body, "name": "reader2"}, headers=headers)
    await refused(other, 422, Code.IDEMPOTENCY_REUSED)
    taken = await service.client.post(KEYS, json=body, headers=bearer(root))
    await refused(taken, 409, Code.KEY_NAME_TAKEN)


async def test_an_admin_stays_in_its_tenant_and_below_superadmin(
    acme: tuple[Service, str], database_url: str
) -> None:
    service, root = acme
    other_root = await first_key(database_url, tenant="globex", name="groot")
    await service.app[keys.ACCESS].reload()
    theirs = await make_key(service, bearer(other_root), name="theirs", role="viewer")
    # Another tenant's key: unknown here, as another tenant's flow is.
    answer = await service.client.post(f"{KEYS}/{theirs['id']}/revoke", json={},
                                       headers=bearer(root))  # fmt: skip
    await refused(answer, 404, Code.KEY_NOT_FOUND)
    listed = await ok(await service.client.get(KEYS, headers=bearer(root)), paged=True)
    assert "theirs" not in {k["name"] for k in listed["data"]["keys"]}
    for body in ({"name": "x1", "role": "viewer", "tenant": "globex"},
                 {"name": "x2", "role": "superadmin"}):  # fmt: skip
        answer = await service.client.post(KEYS, json=body, headers=bearer(root))
        refusal = await refused(answer, 403, Code.ROLE_REQUIRED)
        assert refusal["data"]["roleNeeded"] == "superadmin"
    flows = await ok(await service.client.get(FLOWS, headers=bearer(theirs["key"])), paged=True)
    assert flows["page"]["total"] == 0


async def test_a_superadmin_sees_and_manages_every_tenant(
    acme: tuple[Service, str], database_url: str
) -> None:
    service, root = acme
    boss = await first_key(database_url, tenant="ops", name="boss", role=Role.SUPERADMIN)
    await service.app[keys.ACCESS].reload()
    await create(service.client, headers=bearer(root))
    listed = await ok(await service.client.get(FLOWS, headers=bearer(boss)), paged=True)
    assert listed["page"]["total"] == 1
    made = await make_key(service, bearer(boss), name="helper", role="admin", tenant="globex")
    assert made["tenant"] == "globex"
    every = await ok(await service.client.get(KEYS, headers=bearer(boss)), paged=True)
    assert {k["tenant"] for k in every["data"]["keys"]} == {"acme", "ops", "globex"}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "role": "viewer"},
        {"name": "a" * 101, "role": "viewer"},
        {"name": "has space", "role": "viewer"},
        {"name": "nul\u0000", "role": "viewer"},
        {"name": "ok", "role": "root"},
        {"name": "ok", "role": "viewer", "extra": 1},
        {"name": "ok", "role": "viewer", "expiresAt": 1},
        {"name": "ok", "role": "viewer", "tenant": "../x"},
    ],
)
async def test_bad_creates_change_nothing(acme: tuple[Service, str], body: dict[str, Any]) -> None:
    service, root = acme
    await refused(await service.client.post(KEYS, json=body, headers=bearer(root)), 400,
                  Code.BAD_INPUT)  # fmt: skip
    listed = await ok(await service.client.get(KEYS, headers=bearer(root)), paged=True)
    assert [k["name"] for k in listed["data"]["keys"]] == ["root"]


async def test_duplicate_keys_and_garbage_cursors_are_refused(acme: tuple[Service, str]) -> None:
    service, root = acme
    raw = b'{"name": "a", "name": "b", "role": "viewer"}'
    answer = await service.client.post(
        KEYS, data=raw, headers={**bearer(root), "Content-Type": "application/json"}
    )
    await refused(answer, 400, Code.BAD_INPUT)
    for cursor in ("garbage", "Zm9v", "MjAwMC0wMS0wMQ==", "%00"):
        answer = await service.client.get(KEYS, params={"cursor": cursor}, headers=bearer(root))
        await refused(answer, 400, Code.BAD_INPUT)
    for key_id in ("nope", "x" * 500, "' OR 1=1 --"):
        answer = await service.client.post(f"{KEYS}/{key_id}/revoke", json={},
                                           headers=bearer(root))  # fmt: skip
        await refused(answer, 404, Code.KEY_NOT_FOUND)


async def test_keys_page_through_every_key(acme: tuple[Service, str]) -> None:
    service, root = acme
    for n in range(5):
        await make_key(service, bearer(root), name=f"k{n}", role="viewer")
    seen: list[str] = []
    cursor = ""
    while True:
        page = await ok(await service.client.get(
            KEYS, params={"pageSize": "2", "cursor": cursor}, headers=bearer(root)
        ), paged=True)  # fmt: skip
        seen += [k["name"] for k in page["data"]["keys"]]
        cursor = page["data"]["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == ["k0", "k1", "k2", "k3", "k4", "root"]


async def test_tokens_are_admins_of_their_tenants(make_service: MakeService) -> None:
    service = await make_service(tokens=TOKENS)
    made = await make_key(service, A, name="reader", role="viewer")
    assert made["tenant"] == "tenant-a"
    assert made["createdBy"] == "token:alice"
    await ok(await service.client.get(FLOWS, headers=bearer(made["key"])), paged=True)
    assert await total(service.client, B) == 0
    await refused(await service.client.post(KEYS, json={"name": "r", "role": "superadmin"},
                                            headers=A), 403, Code.ROLE_REQUIRED)  # fmt: skip


async def test_the_keys_table_is_rebuilt_from_the_log(
    acme: tuple[Service, str], database_url: str
) -> None:
    from flowlog.access.rebuild import rebuild_keys, verify_keys

    service, root = acme
    made = await make_key(service, bearer(root), name="ci", role="operator")
    await ok(await service.client.post(f"{KEYS}/{made['id']}/revoke", json={"reason": "gone"},
                                       headers=bearer(root)))  # fmt: skip
    columns = "id, tenant_id, name, role, prefix, digest, created_at, created_by, expires_at, "
    columns += "revoked_at, revoked_by, revoke_reason, stream_version"
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        before = await pool.fetch(f"SELECT {columns} FROM api_keys ORDER BY id")
        assert (await verify_keys(pool)).differences == []
        await pool.execute("UPDATE api_keys SET role = 'superadmin' WHERE name = 'ci'")
        drift = (await verify_keys(pool)).differences
        assert len(drift) == 1
        assert "superadmin" in drift[0]
        await pool.execute("DELETE FROM api_keys")
        assert await rebuild_keys(pool) == 2
        after = await pool.fetch(f"SELECT {columns} FROM api_keys ORDER BY id")
    finally:
        await pool.close()
    assert [dict(r) for r in after] == [dict(r) for r in before]


async def test_an_event_stream_ends_when_its_key_is_revoked(acme: tuple[Service, str]) -> None:
    service, root = acme
    flow_id = await create(service.client, headers=bearer(root), start=False)
    made = await make_key(service, bearer(root), name="watcher", role="viewer")
    stream = await service.client.get(f"{FLOWS}{flow_id}/events/stream",
                                      headers=bearer(made["key"]))  # fmt: skip
    assert stream.status == 200
    first = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5)
    assert b"FlowCreated" in first
    await ok(await service.client.post(f"{KEYS}/{made['id']}/revoke", json={},
                                       headers=bearer(root)))  # fmt: skip
    rest = await asyncio.wait_for(stream.content.read(), 2)  # the server ends it
    assert b"event:" not in rest
    assert stream.content.at_eof()


async def test_an_open_server_names_the_tenant_of_its_first_key_and_stays_closed(
    make_service: MakeService,
) -> None:
    service = await make_service()
    nameless = await service.client.post(KEYS, json={"name": "root", "role": "admin"})
    await refused(nameless, 400, Code.BAD_INPUT)
    made = await make_key(service, {}, name="root", role="admin", tenant="acme")
    assert made["createdBy"] == "anonymous"
    await refused(await service.client.get(FLOWS), 401, Code.UNAUTHORIZED)
    await ok(await service.client.post(f"{KEYS}/{made['id']}/revoke", json={},
                                       headers=bearer(made["key"])))  # fmt: skip
    # Every key revoked: still closed (revoking keys never opens a server).
    await refused(await service.client.get(FLOWS), 401, Code.UNAUTHORIZED)
    await refused(await service.client.get(FLOWS, headers=bearer(made["key"])), 401,
                  Code.UNAUTHORIZED)  # fmt: skip


async def test_only_a_superadmin_revokes_a_key_above_the_callers_role(
    acme: tuple[Service, str], database_url: str
) -> None:
    service, root = acme
    boss = await first_key(database_url, tenant="acme", name="boss", role=Role.SUPERADMIN)
    await service.app[keys.ACCESS].reload()
    listed = await ok(await service.client.get(KEYS, headers=bearer(root)), paged=True)
    [boss_id] = [k["id"] for k in listed["data"]["keys"] if k["name"] == "boss"]
    answer = await service.client.post(f"{KEYS}/{boss_id}/revoke", json={}, headers=bearer(root))
    refusal = await refused(answer, 403, Code.ROLE_REQUIRED)
    assert refusal["data"]["roleNeeded"] == "superadmin"
    await ok(await service.client.get(FLOWS, headers=bearer(boss)), paged=True)  # still good


async def test_another_caller_with_the_same_idempotency_key_never_gets_the_key(
    acme: tuple[Service, str], database_url: str
) -> None:
    service, root = acme
    boss = await first_key(database_url, tenant="ops", name="boss", role=Role.SUPERADMIN)
    await service.app[keys.ACCESS].reload()
    key = {"Idempotency-Key": "ci-1"}
    body = {"name": "ci", "role": "admin", "tenant": "acme"}
    made = await ok(await service.client.post(KEYS, json=body, headers={**bearer(boss), **key}))
    again = await service.client.post(
        KEYS, json={"name": "ci", "role": "admin"}, headers={**bearer(root), **key}
    )
    text = await again.text()
    assert made["key"] not in text
    await refused(again, 409, Code.KEY_NAME_TAKEN)  # its own key would be another "ci"


async def test_a_superadmins_bulk_answer_is_not_replayed_to_its_home_tenant(
    acme: tuple[Service, str], database_url: str
) -> None:
    service, root = acme
    boss = await first_key(database_url, tenant="acme", name="boss", role=Role.SUPERADMIN)
    theirs = await first_key(database_url, tenant="beta", name="broot")
    await service.app[keys.ACCESS].reload()
    beta_flow = await create(service.client, headers=bearer(theirs), start=False)
    body = {"action": "cancel", "filter": {"status": "Initializing"}, "reason": "sweep"}
    key = {"Idempotency-Key": "nightly-sweep"}
    done = await ok(await service.client.post(FLOWS + "bulk", json=body,
                                              headers={**bearer(boss), **key}))  # fmt: skip
    assert beta_flow in str(done)
    replay = await service.client.post(FLOWS + "bulk", json=body, headers={**bearer(root), **key})
    assert beta_flow not in await replay.text()


def test_two_tokens_of_one_name_are_refused() -> None:
    from flowlog.access.tokens import Tokens

    with pytest.raises(ValueError, match="two tokens are named 'ci'"):
        Tokens.parse("ci:token-a:acme,ci:token-b:beta")
