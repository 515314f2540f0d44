from tests.api.conftest import Service
from tests.api.helpers import wait_status
from tests.triggers.helpers import accepted, cloudevent, make_rule, send


async def test_smoke(service: Service) -> None:
    client = service.client
    rule = await make_rule(client, context={"cluster": "{{data.clusterId}}", "n": "{{data.n}}"})
    answer = await accepted(await send(client, cloudevent(data={"clusterId": "c-1", "n": 3})))
    print(rule, answer)
    assert answer["matched"] and len(answer["flows"]) == 1
    found = await wait_status(client, answer["flows"][0], {"Finished"})
    print(found["info"])
    again = await accepted(await send(client, cloudevent(data={"clusterId": "c-1"}), binary=True))
    assert again["duplicate"] and again["flows"] == answer["flows"]
