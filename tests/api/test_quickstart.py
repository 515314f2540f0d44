"""The README's blocks around the demo server run as written, in one terminal as a reader
would: `flowlog serve --demo` in the background, then the quickstart, its audit, the approval,
the schedules, the Python client, `flowlog flows` and retention, with curl, flowlog and psql."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from flowlog.bench.harness import free_port
from tests import readme


@pytest.mark.slow
@pytest.mark.timeout(300)  # the script has 240 s of its own (run_shell), the server's start more
async def test_the_readme_quickstart_runs_against_a_live_demo_server(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    env = readme.environment(tmp_path, DATABASE_URL=database_url, FLOWLOG_PORT=str(port))
    client = tmp_path / "readme_client.py"
    client.write_text(readme.runnable("client", API=api, TOKEN=None))
    script = (
        readme.runnable("quickstart", API=api)
        + 'echo "::audit"\n'
        + readme.runnable("audit")
        + 'echo "::flow $FLOW"\n'
        + readme.runnable("approval")
        + 'echo "::schedules"\n'
        + readme.runnable("schedules")
        + 'echo "::fleet"\n'
        + readme.runnable("fleet")
        + 'echo "::client"\n'
        + f"{sys.executable} {client}\n"
        + 'echo "::flows"\n'
        + readme.runnable("flows", API=api)
        + 'echo "::retention"\n'
        + readme.runnable("retention", ARCHIVE_DIR=str(tmp_path / "archive"), RETENTION="0s")
    )
    server = readme.runnable("demo-server")
    async with readme.background(server, env, tmp_path / "serve.log") as base:
        text = await readme.run_shell(script, env, within=240)
        _, listed_after = await readme.get(base, "/api/v1/workflow/?bizId=cluster-2")
    retried = listed_after["data"]["workFlows"]
    first, _, rest = text.partition("::audit\n")
    audit_out, _, last = rest.partition("::flow ")
    flow_id, _, approval_out = last.partition("\n")
    approval_out, _, rest = approval_out.partition("::schedules\n")
    schedules_out, _, rest = rest.partition("::fleet\n")
    fleet_out, _, rest = rest.partition("::client\n")
    client_out, _, rest = rest.partition("::flows\n")
    flows_out, _, retention_out = rest.partition("::retention\n")

    answers = _json_documents(first)
    assert all(answer["code"] == 0 for answer in answers), answers
    stopped_detail, listed, history = answers[1], answers[3], answers[4]
    assert stopped_detail["data"]["info"]["status"] == "Stopped"
    # A pause: the node that ran when the flow was stopped finished, nothing after it started.
    assert [(n["name"], n["status"]) for n in stopped_detail["data"]["nodes"]] == [
        ("backup", "Finished")
    ]
    # nodeNames (as TiUniManager's): the success path from start.
    assert stopped_detail["data"]["nodeNames"] == ["backup", "upload", "updateBackupRecord"]
    assert [(f["id"], f["status"]) for f in listed["data"]["workFlows"]] == [(flow_id, "Finished")]
    assert listed["page"]["total"] == 1
    types = [event["type"] for event in history["data"]["events"]]
    assert (types[0], types[-1]) == ("FlowCreated", "FlowFinished")
    stop = next(e for e in history["data"]["events"] if e["type"] == "FlowStopped")
    assert (stop["reason"], stop["summary"]) == ("maintenance window", "stopped")

    # The audit: the history table, the API's history, the state then, the diff, psql.
    table = audit_out.splitlines()
    # version, position, date, time, actor, what, why
    stop_row = next(line for line in table if line.split()[5:6] == ["stopped"])
    assert stop_row.split()[4] == "anonymous"
    assert stop_row.endswith("maintenance window")
    audit_answers = _json_documents(audit_out)
    assert audit_answers[0]["data"]["events"] == history["data"]["events"]
    state_then = audit_answers[1]["data"]
    assert state_then["status"] == "Stopped"
    assert state_then["version"] == stop["version"]
    assert f"as of version {stop['version']}" in audit_out
    assert "status: Stopped -> Finished" in audit_out
    assert "| FlowStopped" not in audit_out  # psql printed summaries, not types
    assert "maintenance window" in audit_out.split("status: Stopped -> Finished")[1]
    assert audit_out.rstrip().endswith("Stopped")  # psql: flow_state(... as_of) ->> 'status'

    # The approval: completed by its token, then the destructive steps ran; who and why.
    completed, restore_history = _json_documents(approval_out)[-2:]
    assert completed["data"]["info"]["name"] == "restore"
    restore_events = restore_history["data"]["events"]
    received = next(e for e in restore_events if e["type"] == "CallbackReceived")
    assert received["reason"] == "change 42 approved"
    assert received["data"]["status"] == "success"
    ran = [e["summary"] for e in restore_events if e["type"] == "NodeStarted"]
    nightly, made, paused = _json_documents(schedules_out)
    next_fires = [datetime.fromisoformat(t) for t in nightly["data"]["info"]["nextFireTimes"]]
    assert {(t.hour, t.minute) for t in next_fires} <= {(0, 0), (1, 0)}  # 02:00 in Berlin
    assert made["data"]["status"] == "Active"
    assert paused["data"]["status"] == "Paused"
    assert paused["data"]["fires"] >= 2
    listed = schedules_out.splitlines()[-2:]
    assert [line.split()[:2] for line in listed] == [["nightly-backup", "Active"],
                                                     ["often", "Paused"]]  # fmt: skip
    assert ran == ["node checkBackup started", "node approval started",
                   "node wipeCluster started", "node loadBackup started"]  # fmt: skip

    # The fleet: registered, finished, the map's counts and the branches, its five children.
    registered, children = _json_documents(fleet_out)
    assert registered["data"]["name"] == "backup-fleet"
    shown = fleet_out.splitlines()
    assert "finished" in shown
    assert (
        "backupEach (map): 3 of 3 finished, 0 failed, 0 canceled, 0 running, 0 not started" in shown
    )
    assert [line.split()[:2] for line in shown if line.startswith(("  verify", "  report"))] == [
        ["verify", "Finished"], ["report", "Finished"]]  # fmt: skip
    assert children["page"]["total"] == 5
    assert {c["status"] for c in children["data"]["workFlows"]} == {"Finished"}

    # The client: its flow finished; then the flows in Error (the demo made some), each with
    # its error.
    made_line, *error_lines = client_out.splitlines()
    assert made_line.split()[1] == "Finished"
    assert error_lines
    assert all(len(line.split(maxsplit=1)) == 2 for line in error_lines)

    # flowlog flows: the failed upload, its fail handler, then the retry finishes the flow.
    assert "ended: 1" in flows_out
    failed_id = retried[0]["id"]
    assert any(line.startswith(failed_id) and "Error" in line for line in flows_out.splitlines())
    assert flows_out.rstrip().endswith("finished")
    assert [(f["id"], f["status"]) for f in retried] == [(failed_id, "Finished")]

    # Retention at 0 s (written to the database by migrate): the dry run names what would go,
    # the run archives every ended flow; the archived flow's history is read from its
    # archive, REST says 410 and names the file (its name only, never the server's path), and
    # the import brings the flow back.
    assert re.search(r"would archive [1-9]\d* ended flows", retention_out), retention_out
    assert "archived " in retention_out
    assert "maintenance window" in retention_out  # the history of the archived flow
    gone = _json_documents(retention_out)[-1]
    assert gone["code"] == 40132
    assert "/" not in gone["data"]["file"]
    assert (tmp_path / "archive" / gone["data"]["file"]).is_file()
    assert "restored " in retention_out.splitlines()[-1]


def _json_documents(text: str) -> list[dict[str, Any]]:
    """The JSON answers in the output, in order (curl prints no newline after a body)."""
    decoder = json.JSONDecoder()
    documents, at = [], text.find('{"code"')
    while at != -1:
        document, end = decoder.raw_decode(text, at)
        documents.append(document)
        at = text.find('{"code"', end)
    return documents
