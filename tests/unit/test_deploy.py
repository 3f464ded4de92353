"""deploy/: what an operator runs elsewhere is well-formed and says what the node needs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_kubernetes_manifests_hold_every_object_with_probes_on_the_health_endpoints():
    objects = {
        d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "resolver.yaml").read_text())
    }
    assert set(objects) >= {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ConfigMap",
        "Secret",
    }
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {p.get("protocol", "TCP") for p in container["ports"] if p["containerPort"] == 2641} == {
        "TCP",
        "UDP",
    }
    # every pod the same key directory (the seal of secret keys, the signing keys), from a Secret
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["RESOLVER_KEY_DIR"] == mounts["keys"]
    assert {v["name"]: v for v in pod["volumes"]}["keys"]["secret"]["secretName"] == "idis-resolver-keys"
    selector = objects["Service"]["spec"]["selector"]
    assert selector == objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert (
        objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == objects["Deployment"]["metadata"]["name"]
    )


def test_the_container_image_and_the_systemd_unit_run_the_node_with_its_schema():
    image = (DEPLOY / "Containerfile").read_text()
    assert 'ENTRYPOINT ["resolver", "serve"]' in image and "RESOLVER_SCHEMA_DIR" in image
    unit = (DEPLOY / "systemd" / "idis-resolver.service").read_text()
    assert "ExecStart=/opt/idis-resolver/bin/resolver serve" in unit and "RESOLVER_SCHEMA_DIR" in unit


def test_the_local_cluster_script_is_valid_shell():
    subprocess.run(["bash", "-n", str(DEPLOY / "local-cluster")], check=True)
