"""Wiring of one process: pool, event store, notifier, listener, service and reactor, and the
features that run beside them (read replicas, the scheduler, the archive loop).

The HTTP server, ``flowlog worker``, the benchmark and the tests all run the engine the same
way: ``async with Engine(...)`` (or ``start()`` / ``stop()``), in this order, torn down in
reverse.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Iterable
from functools import partial
from types import TracebackType

import asyncpg

from flowlog.access.ring import KeyRing
from flowlog.access.store import KeyStore
from flowlog.archive.periodic import ArchiveLoop
from flowlog.archive.policy import ArchiveSettings, Retention
from flowlog.archive.reading import not_here
from flowlog.archive.retention import prepare_with_retention
from flowlog.builtins import definition_from_spec
from flowlog.eventstore import (
    EventStore,
    Listener,
    Notifier,
    check_log_horizon,
    connect,
    create_pool,
)
from flowlog.eventstore.wakeloop import every
from flowlog.replicas.router import ReadObserver, ReadRouter
from flowlog.replicas.settings import ReadSettings
from flowlog.roles import DatabaseUrls
from flowlog.schedules.scheduler import Scheduler, SchedulerSettings
from flowlog.schedules.service import ScheduleService
from flowlog.tasks.service import OFFERS, TaskQueues
from flowlog.webhooks.delivery import Deliveries
from flowlog.webhooks.sender import DeliveryTuning
from flowlog.webhooks.settings import WebhookSettings
from flowlog.workflow import idempotency
from flowlog.workflow.callbacks import CallbackTokens
from flowlog.workflow.definition import Registry, WorkflowDefinition
from flowlog.workflow.errors import InvalidDefinition
from flowlog.workflow.queries import Q
from flowlog.workflow.reactor import Observer, Reactor
from flowlog.workflow.reactor_settings import ReactorSettings
from flowlog.workflow.service import WorkflowService
from flowlog.workflow.store import FlowRepository
from flowlog.workflow.versions import CHECK_SECONDS, AwaitingWatch, VersionBeat

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self,
        database_url: str,
        registry: Registry,
        *,
        reactor: ReactorSettings | None = None,
        run_reactor: bool = True,
        pool_size: int = 10,
        migrate: bool = True,
        observe: Observer | None = None,
        catalog_interval: float = 2.0,
        sweep_interval: float = 60.0,
        owner_url: str | None = None,
        scheduler: SchedulerSettings | None = None,
        observe_fire: Callable[[float], None] | None = None,
        reads: ReadSettings | None = None,
        observe_read: ReadObserver | None = None,
        archive: ArchiveSettings | None = None,
        archive_interval: float = 0.0,
        retention: Retention | None = None,
        access: KeyRing | None = None,
        versions_interval: float = CHECK_SECONDS,
        webhooks: WebhookSettings | None = None,
        webhook_tuning: DeliveryTuning | None = None,
    ) -> None:
        """With ``migrate`` (the default) the schema is brought up to date first (idempotent,
        and safe when several processes start at once): as ``owner_url``'s role when given,
        which also grants ``database_url``'s role what it needs (app/migrate.py). Every
        ``catalog_interval`` seconds the engine also loads the definitions other processes
        registered over REST (their JSON is in the log), so that its reactor can run their
        flows; every ``sweep_interval`` seconds it deletes expired idempotency keys (every
        process may: the sweep skips rows another holds). ``reads`` names the streaming
        replicas that reads may use (app/replicas/): ``engine.reads`` routes them. With
        ``archive`` (where archives go) and an ``archive_interval``, the engine takes its
        turn at archive runs (app/archive/periodic.py), which apply the database's retention;
        ``retention`` (the environment's) becomes the database's when the engine migrates
        as the owner. ``access`` (a server's keyring) is started on the engine's pool and
        follows key changes on a LISTEN connection of its own. A process with a reactor
        records the definition versions it runs (``process_versions``, every third of a
        lease); every engine looks for flows awaiting a version no running process has every
        ``versions_interval`` seconds and logs what changes (app/workflow/versions.py).
        With ``webhooks``, a process with a reactor delivers webhooks too
        (app/webhooks/delivery.py; ``webhook_tuning``: leases, concurrency, retries)."""
        self.database_url = database_url
        self._access = access
        self._migrate = migrate
        self._owner_url = owner_url
        self._observe = observe
        self._catalog_interval = catalog_interval
        self._catalog: asyncio.Task[None] | None = None
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None
        self.registry = registry
        self._reactor_settings = reactor or ReactorSettings()
        self._run_reactor = run_reactor
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._notifier: Notifier | None = None
        self._listener: Listener | None = None
        self._offers: Notifier | None = None
        self._offer_listener: Listener | None = None
        self._service: WorkflowService | None = None
        self._tasks: TaskQueues | None = None
        self._reactor: Reactor | None = None
        self._schedules: ScheduleService | None = None
        self._scheduler_settings = scheduler
        self._observe_fire = observe_fire
        self._scheduler: Scheduler | None = None
        self._read_settings = reads or ReadSettings(pool_size=pool_size)
        self._observe_read = observe_read
        self._reads: ReadRouter | None = None
        self._archive_settings = archive
        self._archive_interval = archive_interval
        self._retention = retention
        self._archiving: ArchiveLoop | None = None
        self._versions_interval = versions_interval
        self._beat: VersionBeat | None = None
        self._awaiting: AwaitingWatch | None = None
        self._webhook_settings = webhooks
        self._webhook_tuning = webhook_tuning
        self._deliveries: Deliveries | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "the engine is not started"
        return self._pool

    @property
    def service(self) -> WorkflowService:
        assert self._service is not None, "the engine is not started"
        return self._service

    @property
    def tasks(self) -> TaskQueues:
        """The task API: offered tasks, leased by workers anywhere (docs/workers.md)."""
        assert self._tasks is not None, "the engine is not started"
        return self._tasks

    @property
    def reactor(self) -> Reactor | None:
        return self._reactor

    @property
    def schedules(self) -> ScheduleService:
        assert self._schedules is not None, "the engine is not started"
        return self._schedules

    @property
    def scheduler(self) -> Scheduler | None:
        return self._scheduler

    @property
    def reads(self) -> ReadRouter:
        """Where reads go (the primary when no replica is configured or usable)."""
        assert self._reads is not None, "the engine is not started"
        return self._reads

    @property
    def archiving(self) -> ArchiveLoop | None:
        return self._archiving

    @property
    def awaiting(self) -> AwaitingWatch:
        """The flows awaiting a definition version that no running process has."""
        assert self._awaiting is not None, "the engine is not started"
        return self._awaiting

    @property
    def deliveries(self) -> Deliveries | None:
        """This process's webhook delivery (None without a reactor or webhook settings)."""
        return self._deliveries

    @property
    def listener(self) -> Listener:
        assert self._listener is not None, "the engine is not started"
        return self._listener

    async def start(self) -> None:
        if self._migrate:
            urls = DatabaseUrls(self.database_url, self._owner_url)
            applied = await prepare_with_retention(urls, self._retention, serving=True)
            if applied:
                log.info("database migrated", extra={"applied": applied})
        # The pool bounds the database work of the process, not the number of executors that
        # run at once: flows waiting for their executors hold no connection, and on a small
        # machine more concurrent committers only queue on the WAL lock (docs/benchmarks.md).
        self._pool = await create_pool(self.database_url, min_size=1, max_size=self._pool_size)
        try:
            await check_log_horizon(self._pool)
            self._reads = ReadRouter(self._pool, self._read_settings, observe=self._observe_read)
            await self._reads.start()
            self._notifier = notifier = Notifier(self._pool)
            self._notifier.start()
            store = EventStore(self._pool, on_commit=self._notifier.wake)
            self._listener = Listener(partial(connect, self.database_url))
            await self._listener.start()
            # Task offers have a channel of their own: waiting polls wake for them, not for
            # every append (docs/workers.md).
            self._offers = Notifier(self._pool, OFFERS)
            self._offers.start()
            self._offer_listener = Listener(partial(connect, self.database_url), OFFERS)
            await self._offer_listener.start()
            # One repository for the API and the reactor: their appends commit together.
            flows = FlowRepository(store)
            flows.on_offer = self._offers.wake
            tokens = CallbackTokens(store.pool)

            self._service = WorkflowService(
                store, self.registry, on_change=self._changed, flows=flows, tokens=tokens,
                gone=partial(not_here, store.pool, tenant=None),
            )  # fmt: skip
            self._tasks = TaskQueues(
                store.pool, self._service, self._offer_listener,
                lease_seconds=self._reactor_settings.lease_seconds,
            )  # fmt: skip
            if self._access is not None:
                await self._access.start(KeyStore(store), partial(connect, self.database_url))
            await self._service.record_definitions()
            await self.load_declarative_definitions()
            self._catalog = asyncio.create_task(self._refresh_catalog(), name="definition-catalog")
            self._sweeper = asyncio.create_task(self._sweep_keys(), name="idempotency-sweep")
            if self._run_reactor:
                self._reactor = Reactor(
                    store,
                    self.registry,
                    listener=self._listener,
                    settings=self._reactor_settings,
                    observe=self._observe,
                    flows=flows,
                    tokens=tokens,
                    notifier=notifier,
                )
                self._reactor.start()
                # Which versions run here, for every process and command to see: a flow of a
                # version no process has would wait for ever, silently (docs/operations.md).
                self._beat = VersionBeat(
                    store.pool, self._reactor.owner, self.registry.versions,
                    self._reactor_settings.lease_seconds / 3,
                )  # fmt: skip
                await self._beat.start()
                # Schedules fire where flows run: a process with a reactor.
                self._scheduler = Scheduler(
                    store, self._service, self._reactor.owner, listener=self._listener,
                    own=notifier.senders, settings=self._scheduler_settings,
                    observe=self._observe_fire,
                )  # fmt: skip
                self._scheduler.start()
                if self._webhook_settings is not None:
                    # Webhooks are delivered where flows run: a process with a reactor.
                    self._deliveries = Deliveries(
                        store, tokens, self._listener, partial(connect, self.database_url),
                        self._webhook_settings, self._reactor.owner,
                        # A lane's lease lapses as a flow's does (FLOWLOG_LEASE_SECONDS).
                        self._webhook_tuning or DeliveryTuning(
                            lease_seconds=self._reactor_settings.lease_seconds),
                    )  # fmt: skip
                    await self._deliveries.start()
            self._schedules = ScheduleService(store, self.registry, on_change=self._poke_scheduler)
            self._awaiting = AwaitingWatch(store.pool, self._versions_interval)
            await self._awaiting.start()
            archive = self._archive_settings
            if archive is not None and self._archive_interval > 0:
                self._archiving = ArchiveLoop(
                    self.database_url, store, archive, self._archive_interval
                )
                self._archiving.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for task in (self._catalog, self._sweeper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._catalog = self._sweeper = None
        if self._awaiting is not None:
            await self._awaiting.stop()
            self._awaiting = None
        if self._access is not None:
            await self._access.stop()
        if self._archiving is not None:
            await self._archiving.stop()
            self._archiving = None
        if self._deliveries is not None:
            await self._deliveries.stop()
            self._deliveries = None
        if self._scheduler is not None:
            await self._scheduler.stop()
            self._scheduler = None
        if self._reactor is not None:
            await self._reactor.stop()
            self._reactor = None
        if self._beat is not None:  # after the reactor: its flows are its until it stops
            await self._beat.stop()
            self._beat = None
        for listener in (self._listener, self._offer_listener):
            if listener is not None:
                await listener.close()
        self._listener = self._offer_listener = None
        for notifier in (self._notifier, self._offers):
            if notifier is not None:
                await notifier.close()
        self._notifier = self._offers = None
        if self._reads is not None:
            await self._reads.stop()
            self._reads = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def load_declarative_definitions(self) -> None:
        """Registers the REST-registered definitions this process does not know yet; the
        reactor looks for their flows at once (it had no reason to before: a reactor that
        knew no definition at all did not even look)."""
        learnt = False
        for row in await self.pool.fetch(Q.declarative_definitions):
            if self.registry.by_version(row["version"]) is not None:
                continue
            try:
                definition = definition_from_spec(row["spec"])
            except (InvalidDefinition, ValueError) as exc:
                log.warning(
                    "a recorded definition cannot be built",
                    extra={"version": row["version"], "error": str(exc)},
                )
                continue
            if definition.version != row["version"]:
                log.warning(
                    "a recorded definition builds into another version",
                    extra={"version": row["version"], "built": definition.version},
                )
                continue
            self.registry.register(definition, row["tenant_id"])
            learnt = True
        if learnt:
            self._changed()

    async def _refresh_catalog(self) -> None:
        await every(self._catalog_interval, self.load_declarative_definitions,
                    "definition catalog refresh failed", log)  # fmt: skip

    async def _sweep_keys(self) -> None:
        async def sweep() -> None:
            swept = await idempotency.sweep(self.pool)
            if swept:
                log.info("expired idempotency keys deleted", extra={"keys": swept})

        await every(self._sweep_interval, sweep, "idempotency key sweep failed", log)

    def _changed(self) -> None:
        # Operators' commands may make a flow due: the local reactor looks at once, without
        # waiting for its own NOTIFY to come back. The reactor's own appends need no poke.
        if self._reactor is not None:
            self._reactor.poke()

    def _poke_scheduler(self) -> None:
        if self._scheduler is not None:
            self._scheduler.poke()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def load_definitions(module_names: Iterable[str], registry: Registry | None = None) -> Registry:
    """Imports each module and registers its definitions.

    A definitions module either has ``DEFINITIONS`` (an iterable of WorkflowDefinition) or a
    function ``register(registry)`` (like ``celery -A``, the service loads user code by name).
    """
    registry = registry or Registry()
    for name in module_names:
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        definitions = getattr(module, "DEFINITIONS", None)
        if callable(register):
            register(registry)
        elif definitions is not None:
            for definition in definitions:
                if not isinstance(definition, WorkflowDefinition):
                    raise TypeError(f"{name}.DEFINITIONS holds {definition!r}")
                registry.register(definition)
        else:
            raise ValueError(
                f"module {name} has neither DEFINITIONS nor register(registry): "
                "it defines no workflows"
            )
        log.info(
            "definitions loaded",
            extra={"definitions_module": name, "versions": registry.versions()},
        )
    return registry
