"""The README's REST quickstart runs as written: curl against `flowlog serve --demo`."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from app.bench.harness import serve_process

ROOT = Path(__file__).resolve().parents[2]
README_API = "API=http://127.0.0.1:8080"


@pytest.mark.slow
async def test_the_readme_quickstart_runs_against_a_live_server(database_url: str) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- example: quickstart.*?-->\n```sh\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "the README lost its quickstart"
    script = block.group(1)
    assert README_API in script, "the quickstart no longer names the API's address"
    async with serve_process(database_url, "--demo") as base:
        # Every command's output, one per line, then the flow id: what the reader would see.
        script = script.replace(README_API, f"API={base}") + '\necho; echo "flow $FLOW"\n'
        shell = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", script,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(shell.communicate(), 90)
    assert shell.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    flow_id = lines[-1].removeprefix("flow ")
    answers = _json_documents(out.decode())
    assert all(answer["code"] == 0 for answer in answers), answers

    stopped_detail, listed, history = answers[1], answers[3], answers[4]
    assert stopped_detail["data"]["info"]["status"] == "Stopped"
    # The seed's nodeNames: the success path from start.
    assert stopped_detail["data"]["nodeNames"] == ["backup", "upload", "updateBackupRecord"]
    assert [(f["id"], f["status"]) for f in listed["data"]["workFlows"]] == [(flow_id, "Finished")]
    assert listed["page"]["total"] == 1
    types = [event["type"] for event in history["data"]["events"]]
    assert (types[0], types[-1]) == ("FlowCreated", "FlowFinished")
    stop = next(e for e in history["data"]["events"] if e["type"] == "FlowStopped")
    assert stop["metadata"]["reason"] == "maintenance window"


def _json_documents(text: str) -> list[dict[str, Any]]:
    """The JSON answers in curl's output, in order (curl prints no newline after a body)."""
    decoder = json.JSONDecoder()
    documents, at = [], text.find("{")
    while at != -1:
        document, end = decoder.raw_decode(text, at)
        documents.append(document)
        at = text.find("{", end)
    return documents
