"""The audit commands as an operator runs them: flowlog history, replay, export, import and
check-definition, in processes of their own against a real database."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson

from flowlog.audit.document import state_document
from flowlog.audit.replay import fold_until
from flowlog.engine import Engine
from flowlog.eventstore import EventStore, create_pool
from flowlog.workflow.caller import Caller
from flowlog.workflow.definition import Registry
from flowlog.workflow.streams import flow_stream
from tests.helpers import QUIET, cli_env, run_flowlog
from tests.workflow.defs import backup_flow
from tests.workflow.test_properties import write_random_history


async def _flows(url: str) -> tuple[str, str]:
    """A finished flow stopped once by an operator (with a reason), and a failed one."""
    async with Engine(url, Registry([backup_flow()]), run_reactor=False) as engine:
        store = engine.service.store
        stopped, failed = str(uuid.uuid4()), str(uuid.uuid4())
        await write_random_history(store, backup_flow(), ["start"], stopped)
        alice = Caller(actor="token:alice", trace_id="trace-1", request_id="req-1",
                       reason="maintenance window")  # fmt: skip
        await engine.service.stop(stopped, "maintenance window", alice)
        await engine.service.start(stopped, Caller(actor="token:alice", reason="window over"))
        await write_random_history(store, backup_flow(), ["start", ("fail", 1), "succeed"], failed)
    return stopped, failed


async def test_history_tells_who_did_what_and_why(database_url: str) -> None:
    stopped, _ = await _flows(database_url)
    env = cli_env(DATABASE_URL=database_url, **QUIET)
    table = run_flowlog("history", stopped, env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["version", "position", "time", "(UTC)", "actor", "what", "why"]
    stop_line = next(line for line in lines if " stopped" in line)
    assert "token:alice" in stop_line
    assert "maintenance window" in stop_line
    as_json = run_flowlog("history", stopped, "--json", env=env)
    events = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    stop = next(e for e in events if e["type"] == "FlowStopped")
    assert (stop["actor"], stop["reason"], stop["traceId"], stop["requestId"]) == (
        "token:alice",
        "maintenance window",
        "trace-1",
        "req-1",
    )
    resumed = next(e for e in events if e["type"] == "FlowResumed")
    assert (resumed["summary"], resumed["reason"]) == ("resumed", "window over")

    nobody = str(uuid.uuid4())
    for command in ("history", "replay"):
        missing = run_flowlog(command, nobody, env=env)
        assert missing.returncode == 3  # no such flow, as `flowlog flows show` says it
        assert missing.stderr == f"flowlog: no flow {nobody}\n"


async def test_replay_at_a_version_a_time_and_a_diff(database_url: str) -> None:
    _, failed = await _flows(database_url)
    env = cli_env(DATABASE_URL=database_url, **QUIET)
    pool = await create_pool(database_url, max_size=1)
    try:
        recorded = await EventStore(pool).read_stream(flow_stream(failed))
    finally:
        await pool.close()
    for stored in recorded:
        for point in (str(stored.version), stored.recorded_at.isoformat()):
            answer = run_flowlog("replay", failed, "--at", point, "--json", env=env)
            assert answer.returncode == 0, answer.stderr
            expected = fold_until(
                recorded, stored.version if point.isdigit() else stored.recorded_at
            )
            assert expected is not None
            assert orjson.loads(answer.stdout) == state_document(expected)
    text = run_flowlog("replay", failed, "--at", "3", env=env)
    assert "as of version 3" in text.stdout
    assert "running backup" in text.stdout
    diff = run_flowlog("replay", failed, "--diff", "3", str(recorded[-1].version), env=env)
    assert diff.returncode == 0, diff.stderr
    assert "status: Processing -> Error" in diff.stdout
    assert "errorCode: (none) -> 1" in diff.stdout
    before = run_flowlog("replay", failed, "--at", "2000-01-01T00:00:00", env=env)
    assert before.returncode == 1  # the flow exists: it did not yet then
    assert f"flow {failed} did not exist yet at 2000-01-01" in before.stderr
    bad = run_flowlog("replay", failed, "--at", "yesterday", env=env)
    assert bad.returncode == 2


async def test_export_then_import_on_the_command_line(
    database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    await _flows(database_url)
    path = tmp_path / "log.jsonl.gz"
    exported = run_flowlog("export", "-o", str(path), "--no-progress",
                        env=cli_env(DATABASE_URL=database_url, **QUIET))  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "exported" in exported.stderr
    imported = run_flowlog("import", str(path), "--no-progress",
                        env=cli_env(DATABASE_URL=empty_database_url, **QUIET))  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert "imported" in imported.stdout
    assert "verified 2 flows" in imported.stdout
    assert "no drift" in imported.stdout
    again = run_flowlog("import", str(path), "--no-progress",
                     env=cli_env(DATABASE_URL=empty_database_url, **QUIET))  # fmt: skip
    assert again.returncode == 1
    assert "already has events" in again.stderr


async def test_check_definition_names_the_flows_a_change_would_part_from(
    database_url: str,
) -> None:
    _, failed = await _flows(database_url)
    env = cli_env(DATABASE_URL=database_url, **QUIET)
    same = run_flowlog("check-definition", "tests.audit.same_defs", "--no-progress", env=env)
    assert same.returncode == 0, same.stderr
    assert "2 replay the same, 0 diverge" in same.stdout
    changed = run_flowlog("check-definition", "tests.audit.changed_defs", "--json",
                       "--no-progress", env=env)  # fmt: skip
    assert changed.returncode == 1, changed.stderr
    report = orjson.loads(changed.stdout)
    assert report["flows"] == 2
    # The stopped flow never failed: it replays the same. The failed one went to the handler
    # at its NodeFailed (version 4), which the new version would not.
    [diverging] = report["diverging"]
    assert (diverging["flowId"], diverging["atVersion"]) == (failed, 4)
    assert "next='fail'" in diverging["recorded"]
    assert "next=None" in diverging["newVersionDecides"]
    wrong = run_flowlog("check-definition", "no.such.module", env=env)
    assert wrong.returncode == 2
