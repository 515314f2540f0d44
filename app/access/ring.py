"""The process's keyring: every key of the installation in memory, FLOWLOG_TOKENS, and the
console's sessions. A request with a known key is identified without a query; a key's change
is heard on the ``flowlog_access`` channel and the keys are reloaded (a revocation takes effect
in every process within the notification's delay, milliseconds; after a lost connection, at
the reconnect; and at worst after ``refresh_seconds``). A key of a key's form that this process
has not heard of is looked for in the database before it is refused: a key made through one
process works at once through every other, its notification still on the way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

import asyncpg

from flowlog.access import keys, sessions
from flowlog.access.identity import Identity
from flowlog.access.keys import KeyRecord
from flowlog.access.roles import Role
from flowlog.access.sessions import SESSION_SECONDS, Session
from flowlog.access.store import KeyStore, Q
from flowlog.access.tokens import Tokens
from flowlog.eventstore.errors import TRANSIENT_ERRORS
from flowlog.eventstore.notify import Connect, Listener

log = logging.getLogger(__name__)

CHANNEL = "flowlog_access"
LOOKUPS_AT_ONCE = 2
"""Queries for keys unknown here, at most, at a time (``recognise``)."""
_LOOKUP_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, asyncpg.PostgresError)


class KeyRing:
    def __init__(
        self, tokens: Tokens, *, single_sign_on: bool = False, refresh_seconds: float = 30.0,
        flush_seconds: float = 5.0,
    ) -> None:  # fmt: skip
        self.tokens = tokens
        self.single_sign_on = single_sign_on
        """An identity provider is configured: people sign in through it."""
        self._refresh_seconds = refresh_seconds
        self._flush_seconds = flush_seconds
        self._by_digest: dict[str, KeyRecord] = {}
        self._by_id: dict[str, KeyRecord] = {}
        self._session_key: bytes | None = None
        self._uses: dict[str, datetime] = {}
        self._store: KeyStore | None = None
        self._listener: Listener | None = None
        self._follower: asyncio.Task[None] | None = None
        self._watchers: set[asyncio.Event] = set()
        self._lookups: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._lookup_turns = asyncio.Semaphore(LOOKUPS_AT_ONCE)
        self.reloads = 0

    @property
    def enabled(self) -> bool:
        """Whether callers must say who they are: once a key was ever made (revoking every
        key does not open the server), with FLOWLOG_TOKENS, or with single sign-on."""
        return self.tokens.enabled or bool(self._by_id) or self.single_sign_on

    @property
    def store(self) -> KeyStore:
        assert self._store is not None, "the keyring is not started"
        return self._store

    @property
    def secret(self) -> bytes:
        assert self._session_key is not None, "the keyring is not started"
        return self._session_key

    async def start(self, store: KeyStore, connect: Connect) -> None:
        self._store = store
        secret = await store.pool.fetchval(Q.secret)
        if secret is None:
            raise RuntimeError("callback_secret is empty: run flowlog migrate")
        self._session_key = sessions.session_key(str(secret).encode())
        await self.reload()
        self._listener = Listener(connect, CHANNEL)
        await self._listener.start()
        self._follower = asyncio.create_task(self._follow(self._listener.register()),
                                             name="keyring")  # fmt: skip

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
            self._follower = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        with contextlib.suppress(Exception):
            await self._flush()

    async def reload(self) -> None:
        records = await self.store.all()
        self._by_id = {record.key_id: record for record in records}
        self._by_digest = {record.digest: record for record in records}
        self.reloads += 1
        for watcher in self._watchers:
            watcher.set()

    def watch(self) -> asyncio.Event:
        """An event set at each reload: a long-lived answer (an event stream) asks then
        whether its caller is still ``current``."""
        watcher = asyncio.Event()
        self._watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: asyncio.Event) -> None:
        self._watchers.discard(watcher)

    async def _follow(self, heard: asyncio.Event) -> None:
        refreshed = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(heard.wait(), self._flush_seconds)
            try:
                if heard.is_set() or time.monotonic() - refreshed > self._refresh_seconds:
                    heard.clear()  # a change during the reload sets it again: reload again
                    await self.reload()
                    refreshed = time.monotonic()
                await self._flush()
            except Exception as exc:  # the loop must outlive any one failure
                log.warning("keys not reloaded", extra={"error": repr(exc)})
                await asyncio.sleep(1)

    async def _flush(self) -> None:
        uses, self._uses = self._uses, {}
        if uses and self._store is not None:
            await self._store.used(uses)

    # -- who asks ------------------------------------------------------------------------------

    def identify(self, presented: str) -> Identity | None:
        """The identity of a key or a FLOWLOG_TOKENS token, if it is one and is valid now."""
        presented = presented.strip()
        if presented.startswith(keys.PREFIX):
            record = self._by_digest.get(keys.digest(presented))
            if record is None or record.status(datetime.now(UTC)) != "active":
                return None
            self._uses[record.key_id] = datetime.now(UTC)
            return record.identity()
        return self.tokens.identify(presented)

    async def recognise(self, presented: str) -> Identity | None:
        """As ``identify``, looking in the database for a key unknown here."""
        identity = self.identify(presented)
        presented = presented.strip()
        if identity is not None or not keys.well_formed(presented):
            return identity
        digest = keys.digest(presented)
        if digest in self._by_digest:  # known, and not active
            return None
        try:
            record = await self._looked_up(digest)
        except _LOOKUP_ERRORS as exc:
            # Refused as unknown (401), not failed: known keys need no database.
            log.warning("key not looked up", extra={"error": repr(exc)})
            return None
        if record is None:
            return None
        # A reload that brought it meanwhile wins: a record read here must never undo a
        # revocation that a reload read. Kept until the next reload, which has it too.
        if self._by_digest.setdefault(digest, record) is record:
            self._by_id.setdefault(record.key_id, record)
        return self.identify(presented)

    async def _looked_up(self, digest: str) -> KeyRecord | None:
        """One query for the requests that name the same unknown key at once, and at most
        ``LOOKUPS_AT_ONCE`` queries at a time: a flood of made-up keys (no key needed to send
        them) waits its turn instead of taking the pool's connections from the flows."""
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = self._lookups[digest] = asyncio.ensure_future(self._look_up(digest))
            lookup.add_done_callback(lambda _: self._lookups.pop(digest, None))
        # Shielded: a request that goes away does not cancel the others' lookup.
        return await asyncio.shield(lookup)

    async def _look_up(self, digest: str) -> KeyRecord | None:
        async with self._lookup_turns:
            return await self.store.by_digest(digest)

    async def bearer(self, header: str | None) -> Identity | None:
        """The identity of an ``Authorization: Bearer`` header (the scheme is case-blind)."""
        scheme, _, credentials = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        return await self.recognise(credentials)

    def key(self, key_id: str) -> KeyRecord | None:
        return self._by_id.get(key_id)

    def current(self, identity: Identity) -> bool:
        """Whether an identity found earlier is still good (a long-lived answer, an event
        stream, asks again while it lasts)."""
        if identity.kind == "key":
            record = self._by_id.get(identity.key_id or "")
            return record is not None and record.status(datetime.now(UTC)) == "active"
        if identity.kind == "token":
            return self.tokens.fingerprint(identity.name) is not None
        return identity.kind != "oidc" or self.single_sign_on

    # -- console sessions ----------------------------------------------------------------------

    def open_session(self, identity: Identity, now: float | None = None) -> tuple[str, Session]:
        """A new session cookie for ``identity`` (found by ``identify`` or signed in through
        the identity provider)."""
        binding = identity.display  # a person's name to show (single sign-on)
        if identity.kind == "key":
            binding = identity.key_id or ""
        elif identity.kind == "token":
            binding = self.tokens.fingerprint(identity.name) or ""
        expires = int((time.time() if now is None else now) + SESSION_SECONDS)
        return sessions.seal(self.secret, identity, binding, expires)

    def session(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie stands for, if this installation signed it, its time has not
        passed, and what it names is still good."""
        if not cookie or self._session_key is None or not self.enabled:
            return None
        claims = sessions.unseal(self._session_key, cookie, time.time() if now is None else now)
        if claims is None:
            return None
        identity: Identity | None = None
        if claims.kind == "key":
            record = self._by_id.get(claims.binding)
            if record is not None and record.status(datetime.now(UTC)) == "active":
                identity = record.identity()
        elif claims.kind == "token":
            identity = self.tokens.by_fingerprint(claims.name, claims.binding)
        elif claims.kind == "oidc" and self.single_sign_on:
            identity = Identity("oidc", claims.name, claims.tenant, Role(claims.role),
                                display=claims.binding)  # fmt: skip
        if identity is None:
            return None
        return Session(identity, claims.expires, claims.nonce, self.secret)
