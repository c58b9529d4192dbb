"""The deployment recipe in serve/deploy: the InferenceService names only fields that the kserve
SDK's v1beta1 models (and the Kubernetes models they embed) declare, its container arguments
are ones biascard.serve.kserve_model and KServe's ModelServer accept, and its probe, port and
image agree with the Dockerfile. (No cluster here: `kubectl apply` itself is not run.)
serve/deploy/config.properties is the one tests/test_serve_torchserve.py starts TorchServe with."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "serve" / "deploy"


def model_class(name: str):
    import kserve
    from kubernetes.client import models as k8s

    return getattr(kserve, name, None) or getattr(k8s, name)


def undeclared(value, type_name: str, where: str) -> list[str]:
    """Paths in `value` whose keys the SDK type `type_name` does not declare."""
    inner = re.fullmatch(r"(?:list|List)\[(.+)\]", type_name)
    if inner:
        return [p for i, v in enumerate(value) for p in undeclared(v, inner.group(1), f"{where}[{i}]")]
    if not type_name.startswith("V1") and not type_name.startswith("CoreV1"):
        return []  # str, int, dict(str, str), object: leaves
    cls = model_class(type_name)
    fields = {json_name: cls.openapi_types[attr] for attr, json_name in cls.attribute_map.items()}
    bad = [f"{where}.{k}" for k in value if k not in fields]
    return bad + [p for k, v in value.items() if k in fields for p in undeclared(v, fields[k], f"{where}.{k}")]


def inference_service() -> dict:
    return yaml.safe_load((DEPLOY / "inferenceservice.yaml").read_text())


def test_the_inference_service_uses_only_declared_fields():
    isvc = inference_service()
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    assert undeclared(isvc, "V1beta1InferenceService", "isvc") == []
    # the check itself catches a misspelt field
    isvc["spec"]["predictor"]["containers"][0]["resource"] = {}
    assert undeclared(isvc, "V1beta1InferenceService", "isvc") == ["isvc.spec.predictor.containers[0].resource"]


def test_the_container_arguments_are_the_servers():
    from kserve.model_server import parser as kserve_parser

    container = inference_service()["spec"]["predictor"]["containers"][0]
    args = container["args"]
    ours = dict(zip(args[::2], args[1::2]))
    assert Path(__file__).resolve().parents[1].joinpath(ours["--model_path"].removeprefix("/app/")).is_dir()
    served, _ = kserve_parser.parse_known_args(args)
    assert served.http_port == container["ports"][0]["containerPort"] and served.enable_grpc is False
    assert container["readinessProbe"]["httpGet"] == {"path": f"/v1/models/{ours['--model_name']}",
                                                      "port": served.http_port}


def test_the_dockerfile_builds_that_container():
    text = (DEPLOY / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))
    assert entry == ["python", "-m", "biascard.serve.kserve_model"]
    container = inference_service()["spec"]["predictor"]["containers"][0]
    assert cmd == container["args"] and f"EXPOSE {container['ports'][0]['containerPort']}" in text
    assert "torch==2.13.0" in text and "'.[kserve]'" in text
    for folder in re.findall(r"^COPY (\S+) \1$", text, re.M):
        assert (DEPLOY.parents[1] / folder).exists(), folder
