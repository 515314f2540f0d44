"""deploy/kubernetes/: every manifest loads; a Namespace, the Secret of the two URLs, the
migrate Job, serve's Deployment and Service, the workers' Deployment; one image; probes on
/healthz and /readyz; non-root, read-only, no capabilities; the owner's URL only in the Job."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.compose import DEPLOY

MANIFESTS = DEPLOY / "kubernetes"


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for item in yaml.safe_load_all(path.read_text()):
            key = (item["kind"], item["metadata"]["name"])
            assert key not in found, f"{key} twice"
            found[key] = item
    return found


def _pod(item: Any) -> Any:
    return item["spec"]["template"]["spec"]


def _workloads(objects: dict[tuple[str, str], Any]) -> dict[str, Any]:
    return {name: item for (kind, name), item in objects.items() if kind in {"Job", "Deployment"}}


def test_the_objects(objects: dict[tuple[str, str], Any]) -> None:
    assert set(objects) == {
        ("Namespace", "flowlog"), ("Secret", "flowlog-database"), ("Job", "flowlog-migrate"),
        ("Deployment", "flowlog-serve"), ("Service", "flowlog"), ("Deployment", "flowlog-worker"),
    }  # fmt: skip
    for (kind, _), item in objects.items():
        if kind != "Namespace":
            assert item["metadata"]["namespace"] == "flowlog"
    assert objects["Deployment", "flowlog-serve"]["spec"]["replicas"] == 2
    args = {name: [c["args"] for c in _pod(item)["containers"]]
            for name, item in _workloads(objects).items()}  # fmt: skip
    assert args == {"flowlog-migrate": [["migrate"]], "flowlog-serve": [["serve"]],
                    "flowlog-worker": [["worker"]]}  # fmt: skip


def test_one_image_everywhere(objects: dict[tuple[str, str], Any]) -> None:
    images = {c["image"] for item in _workloads(objects).values()
              for c in _pod(item)["containers"]}  # fmt: skip
    assert len(images) == 1


def test_the_service_reaches_serve(objects: dict[tuple[str, str], Any]) -> None:
    service = objects["Service", "flowlog"]["spec"]
    serve = objects["Deployment", "flowlog-serve"]["spec"]
    assert service["selector"] == serve["selector"]["matchLabels"]
    assert service["selector"].items() <= serve["template"]["metadata"]["labels"].items()
    (container,) = _pod(objects["Deployment", "flowlog-serve"])["containers"]
    assert [p["name"] for p in container["ports"]] == [service["ports"][0]["targetPort"]]
    assert container["ports"][0]["containerPort"] == 8080


def test_serve_is_probed_on_healthz_and_readyz(objects: dict[tuple[str, str], Any]) -> None:
    (serve,) = _pod(objects["Deployment", "flowlog-serve"])["containers"]
    assert serve["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert serve["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (worker,) = _pod(objects["Deployment", "flowlog-worker"])["containers"]
    assert "DATABASE_URL" in worker["readinessProbe"]["exec"]["command"][-1]
    assert "livenessProbe" not in worker


def test_every_pod_is_non_root_read_only_without_capabilities(
    objects: dict[tuple[str, str], Any],
) -> None:
    for name, item in _workloads(objects).items():
        pod = _pod(item)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name  # the image's user
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name
        if item["kind"] == "Deployment":
            assert pod["terminationGracePeriodSeconds"] >= 75  # 60 s requests + 15 s nodes


def test_the_secret_holds_what_the_pods_name_and_the_owner_only_migrates(
    objects: dict[tuple[str, str], Any],
) -> None:
    secret = objects["Secret", "flowlog-database"]
    keys = set(secret["stringData"])
    assert keys == {"DATABASE_URL", "FLOWLOG_OWNER_URL"}
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())
    named: dict[str, set[str]] = {}
    for name, item in _workloads(objects).items():
        for container in _pod(item)["containers"]:
            assert "envFrom" not in container, name  # each key named, none by the bundle
            for variable in container["env"]:
                if "valueFrom" in variable:
                    ref = variable["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == "flowlog-database"
                    assert ref["key"] == variable["name"]
                    named.setdefault(name, set()).add(ref["key"])
    assert set().union(*named.values()) == keys
    assert named == {"flowlog-migrate": keys, "flowlog-serve": {"DATABASE_URL"},
                     "flowlog-worker": {"DATABASE_URL"}}  # fmt: skip
