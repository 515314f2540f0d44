"""The README's REST quickstart and its audit example run as written: curl, flowlog and psql
against `flowlog serve --demo`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from app.bench.harness import serve_process

ROOT = Path(__file__).resolve().parents[2]
README_API = "API=http://127.0.0.1:8080"


def _block(readme: str, name: str) -> str:
    found = re.search(rf"<!-- example: {name}.*?-->\n```sh\n(.*?)```", readme, re.DOTALL)
    assert found is not None, f"the README lost its {name} example"
    return found.group(1)


@pytest.mark.slow
async def test_the_readme_quickstart_and_audit_run_against_a_live_server(
    database_url: str,
) -> None:
    readme = (ROOT / "README.md").read_text()
    quickstart, audit = _block(readme, "quickstart"), _block(readme, "audit")
    approval, schedules = _block(readme, "approval"), _block(readme, "schedules")
    assert README_API in quickstart, "the quickstart no longer names the API's address"
    async with serve_process(database_url, "--demo") as base:
        script = (
            quickstart.replace(README_API, f"API={base}")
            + 'echo "::audit"\n'
            + audit.replace(".venv/bin/flowlog", f"{sys.executable} -m app.cli")
            + 'echo "::flow $FLOW"\n'
            + approval
            + 'echo "::schedules"\n'
            + schedules.replace(".venv/bin/flowlog", f"{sys.executable} -m app.cli")
        )
        env = {**os.environ, "DATABASE_URL": database_url, "FLOWLOG_LOG_LEVEL": "WARNING"}
        shell = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", script, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(shell.communicate(), 120)
    assert shell.returncode == 0, err.decode()
    text = out.decode()
    first, _, rest = text.partition("::audit\n")
    audit_out, _, last = rest.partition("::flow ")
    flow_id, _, approval_out = last.partition("\n")
    approval_out, _, schedules_out = approval_out.partition("::schedules\n")

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


def _json_documents(text: str) -> list[dict[str, Any]]:
    """The JSON answers in the output, in order (curl prints no newline after a body)."""
    decoder = json.JSONDecoder()
    documents, at = [], text.find('{"code"')
    while at != -1:
        document, end = decoder.raw_decode(text, at)
        documents.append(document)
        at = text.find('{"code"', end)
    return documents
