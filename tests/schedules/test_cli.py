"""``flowlog schedules`` as a person runs it in a terminal: each action, its output, and the
exit statuses a script can use (0 done, 1 refused, 2 bad usage or settings, 3 no such
schedule)."""

from __future__ import annotations

import orjson

from flowlog.engine import Engine
from flowlog.workflow.definition import Registry
from tests.helpers import cli_env, run_flowlog
from tests.workflow.defs import backup_flow


async def test_the_schedule_commands_from_a_terminal(database_url: str) -> None:
    async with Engine(database_url, Registry([backup_flow()]), run_reactor=False):
        pass  # records the definition in the log, as any flowlog process would
    env = cli_env(DATABASE_URL=database_url)

    def flowlog(*args: str) -> tuple[int, str, str]:
        done = run_flowlog("schedules", *args, env=env)
        return done.returncode, done.stdout, done.stderr

    code, out, _ = flowlog(
        "create", "nightly", "--flow", "backup", "--cron", "0 2 * * *",
        "--timezone", "Europe/Berlin", "--biz-id", "backup-{{fireTimeLocal:%Y-%m-%d}}",
        "--context", '{"clusterId": "c-1"}', "--reason", "nightly backups",
    )  # fmt: skip
    assert code == 0
    assert out.startswith("schedule nightly: Active, cron 0 2 * * * (Europe/Berlin)")
    assert "next: " in out
    assert "01:00:00+0000" in out  # 02:00 in Berlin, in winter

    code, out, _ = flowlog("list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "STATUS", "FLOW", "WHEN", "NEXT", "FIRE", "LAST", "FIRE",
                              "FIRES"]  # fmt: skip
    assert row.split()[:3] == ["nightly", "Active", "backup"]

    code, out, _ = flowlog("update", "nightly", "--every", "3600", "--json")
    assert code == 0
    document = orjson.loads(out)
    assert document["spec"]["intervalSeconds"] == 3600
    assert document["spec"]["cron"] is None
    assert document["spec"]["context"] == {"clusterId": "c-1"}  # kept: not given again

    assert flowlog("pause", "nightly", "--reason", "maintenance")[0] == 0
    code, out, _ = flowlog("show", "nightly")
    assert code == 0
    assert "Paused" in out.splitlines()[0]
    assert "next: none" in out
    assert "SchedulePaused  (maintenance)" in out
    assert flowlog("resume", "nightly")[0] == 0
    assert flowlog("delete", "nightly", "--reason", "done")[0] == 0

    for args, status, said in (
        (("show", "nightly"), 3, "does not exist (40130)"),
        (("pause", "never-was"), 3, "does not exist (40130)"),
        (("update", "never-was", "--every", "60"), 3, "does not exist (40130)"),
        (("pause",), 2, "pause needs a schedule ID"),
        (("create", "x", "--flow", "backup", "--cron", "99 * * * *"), 2, "Bad minute"),
        (("create", "x", "--flow", "nope", "--every", "60"), 1, "nope workflow definition"),
        (("create", "x", "--flow", "backup"), 2, "a cron expression or an interval"),
        (("create", "x", "--every", "60", "--jitter", "-1"), 2, "bad settings"),
    ):
        code, out, err = flowlog(*args)
        assert (code, out) == (status, ""), err
        assert said in err
        assert "Traceback" not in err
    assert flowlog("list", "--json")[1].strip() == "[]"
