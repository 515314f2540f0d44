"""The reactor's claim takes urgent flows first (priority), whatever their due times."""

from __future__ import annotations

from flowlog.engine import Engine
from flowlog.workflow.work import WorkQueue


async def test_a_claim_takes_the_most_urgent_due_flows_first(api: Engine) -> None:
    made = []
    for n, priority in enumerate((0, 0, 3, 0, 9, 3)):
        state = await api.service.create(f"biz-{n}", "test", "proc", start=True,
                                         priority=priority)  # fmt: skip
        made.append((state.flow_id, priority))
    work = WorkQueue(api.pool, "test-claimer", 30)
    versions = api.registry.versions()
    order = []
    while claimed := (await work.claim(versions, 1)).flows:
        order += list(claimed)
    by_id = dict(made)
    assert [by_id[f] for f in order] == [9, 3, 3, 0, 0, 0]
    # Among equals, the oldest due first.
    assert [f for f in order if by_id[f] == 0] == [f for f, p in made if p == 0]


async def test_one_tenant_s_burst_does_not_starve_another_tenant_s_flow(api: Engine) -> None:
    for n in range(120):
        await api.service.create(f"burst-{n}", "test", "proc", start=True, tenant_id="big")
    lone = await api.service.create("lone", "test", "proc", start=True, tenant_id="small")
    work = WorkQueue(api.pool, "test-claimer", 30)
    claimed = (await work.claim(api.registry.versions(), 8)).flows
    # Due after the 120 others, it is in the first claim: the oldest due flow of each tenant
    # comes before the rest.
    assert lone.flow_id in claimed
    assert len(claimed) == 8
