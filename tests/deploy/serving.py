"""A ``flowlog serve`` process seen from outside, as an orchestrator sees it: its probes, a
flow that it runs to the end, and its graceful stop."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def get(url: str | urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post(url: str, body: dict[str, object]) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    return get(urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers))


def until(check: Callable[[], T], process: subprocess.Popen[str], within: float) -> T:
    """``check()``'s first true answer, polled while ``process`` lives (a deadline, not a
    measure: a slow machine waits longer, a fast one does not wait)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited: {process.communicate()}"
        try:
            if answer := check():
                return answer
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not get there in {within} s")


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, as systemd, compose and Kubernetes stop it; its exit status and stderr."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return process.returncode, stderr or ""


READY = {"code": 0, "message": "OK", "data": {
    "status": "ready", "checks": {"database": True, "listener": True}, "replicas": [],
    "stranded": []}}  # fmt: skip


def demo_backup_finishes(base: str, process: subprocess.Popen[str]) -> None:
    """The demo's backup (``serve --demo``) started over REST and run to Finished."""
    code, created = post(base + "/api/v1/workflow/", {
        "flowName": "backup", "bizId": "deploy-1", "bizType": "cluster", "start": True,
        "context": {"clusterId": "deploy-1", "uploadSeconds": 0}})  # fmt: skip
    assert code == 200, created
    flow = created["data"]["workFlowId"]

    def finished() -> bool:
        _, detail = get(f"{base}/api/v1/workflow/{flow}")
        return bool(detail["data"]["info"]["status"] == "Finished")

    until(finished, process, within=60)
