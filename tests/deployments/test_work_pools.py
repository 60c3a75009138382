"""deployments/kubernetes and deployments/ecs: the work-pool templates and their deployments, checked offline.

No cluster and no AWS account: each base job template must pass the checks the Prefect server runs when the
pool is created, its variables must be a valid JSON schema whose defaults fit it, each deployment's
``job_variables`` must fit it too, and the job each flow run would get (the template rendered with them,
as the worker does) must be a complete Kubernetes Job / Fargate task carrying the submit concurrency limit.
The deployments are the process pool's (``deployments/prefect.yaml``): same flows, parameters that fit them.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.flows import load_flow_from_entrypoint
from prefect.server.schemas.actions import WorkPoolCreate
from prefect.utilities.schema_tools import validate
from prefect.utilities.templating import apply_values

from nightbatch.config import Settings
from tests.deployments.support import ROOT, load_prefect_spec

POOLS = {"kubernetes": "nightbatch-k8s", "ecs": "nightbatch-ecs"}
IMAGE = "registry.example/nightbatch:1.2.3"
# Fargate's valid (cpu units, memory MiB) pairs: memory ranges per cpu size.
FARGATE = {256: (512, 2048), 512: (1024, 4096), 1024: (2048, 8192), 2048: (4096, 16384), 4096: (8192, 30720)}


def _template(pool: str) -> dict[str, Any]:
    template: dict[str, Any] = json.loads((ROOT / "deployments" / pool / "base-job-template.json").read_text())
    return template


def _spec(pool: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "deployments" / pool / "prefect.yaml").read_text())
    return spec


def _job_variables(deployment: dict[str, Any]) -> dict[str, Any]:
    """The deployment's job variables as ``prefect deploy`` stores them, with $NIGHTBATCH_IMAGE set."""
    variables = dict(deployment["work_pool"].get("job_variables") or {})
    if variables.get("image") == "{{ $NIGHTBATCH_IMAGE }}":
        variables["image"] = IMAGE
    return variables


def _render(template: dict[str, Any], job_variables: dict[str, Any]) -> dict[str, Any]:
    """What the worker does for a flow run: the variables' defaults, then the deployment's, into the template."""
    properties = template["variables"]["properties"]
    values = {name: schema["default"] for name, schema in properties.items() if "default" in schema}
    values |= {"name": "nightbatch-backfill-run", "command": "python -m prefect.engine", **job_variables}
    rendered: dict[str, Any] = apply_values(template["job_configuration"], values)
    return rendered


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_the_template_passes_the_servers_checks(pool):
    template = _template(pool)
    WorkPoolCreate(name=POOLS[pool], type=pool, base_job_template=template)  # raises on an undeclared variable
    jsonschema.Draft202012Validator.check_schema(template["variables"])
    for _name, schema in template["variables"]["properties"].items():
        if "default" in schema:
            jsonschema.validate(schema["default"], schema)


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_the_deployments_are_the_process_pools_on_this_pool(pool):
    spec = _spec(pool)
    PrefectYamlModel.model_validate(spec)
    process = {d["name"]: d for d in load_prefect_spec()["deployments"]}
    ours = {d["name"]: d for d in spec["deployments"]}
    assert sorted(ours) == sorted(process)
    for name, deployment in ours.items():
        assert deployment["entrypoint"] == process[name]["entrypoint"]
        assert deployment["work_pool"]["name"] == POOLS[pool]
        assert deployment["enforce_parameter_schema"] is True
    assert spec["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/nightbatch"}}]


@pytest.mark.usefixtures("at_repo_root")
@pytest.mark.parametrize("pool", sorted(POOLS))
def test_parameters_fit_the_flows(pool):
    for deployment in _spec(pool)["deployments"]:
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        schema = flow.parameters.model_dump(mode="json")
        assert validate(deployment["parameters"], schema, raise_on_error=True, ignore_required=False) == []
        flow.validate_parameters(deployment["parameters"])


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_job_variables_fit_the_template_and_render_to_a_complete_job(pool, monkeypatch):
    template = _template(pool)
    for deployment in _spec(pool)["deployments"]:
        variables = _job_variables(deployment)
        schema = {**template["variables"], "required": []}
        jsonschema.validate(variables, schema)
        job = _render(template, variables)
        assert "{{" not in json.dumps(job), f"{deployment['name']}: a placeholder was left unrendered"
        env = job["env"]
        # The flows read the limit's name from this variable (Settings.submit_concurrency_limit).
        assert env["NIGHTBATCH_SUBMIT_CONCURRENCY_LIMIT"] == "nightbatch-submit"
        # Prefect's per-task-run "Finished in state" lines stay out of every deployment's log (as on the process pool).
        assert env["PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL"] == "WARNING"
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert Settings().submit_concurrency_limit == "nightbatch-submit"
        if pool == "kubernetes":
            _check_kubernetes_job(job["job_manifest"])
        else:
            _check_fargate_task(job)


def _check_kubernetes_job(manifest: dict[str, Any]) -> None:
    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "Job")
    assert manifest["metadata"]["generateName"].endswith("-")
    pod = manifest["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # a failed flow run is retried by Prefect, not by a second pod
    assert manifest["spec"]["backoffLimit"] == 0
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["envFrom"] == [{"secretRef": {"name": "nightbatch-env"}}]
    resources = container["resources"]
    assert resources["limits"]["memory"] == resources["requests"]["memory"]  # no overcommit: OOM is predictable


def _check_fargate_task(job: dict[str, Any]) -> None:
    definition, run = job["task_definition"], job["task_run_request"]
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert definition["networkMode"] == "awsvpc"
    cpu, memory = int(run["overrides"]["cpu"]), int(run["overrides"]["memory"])
    low, high = FARGATE[cpu]
    assert low <= memory <= high, f"{cpu} CPU units cannot have {memory} MiB on Fargate"
    (container,) = definition["containerDefinitions"]
    assert container["image"] == IMAGE
    assert container["name"] == job["container_name"]
    assert all(s["valueFrom"].startswith("arn:aws:") for s in container["secrets"])
    assert {s["name"] for s in container["secrets"]} >= {"ANTHROPIC_API_KEY", "NIGHTBATCH_DATABASE_URL"}
    assert run["overrides"]["containerOverrides"][0]["name"] == container["name"]


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_no_secret_values_in_the_files(pool):
    for name in ("prefect.yaml", "base-job-template.json"):
        text = (ROOT / "deployments" / pool / name).read_text()
        assert "sk-ant" not in text
        assert "password" not in text.lower()
        assert "AKIA" not in text
