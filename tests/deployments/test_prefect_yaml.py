"""deployments/prefect.yaml: every deployment loads, its parameters fit its flow, its schedules are valid cron."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import prefect.logging
import pytest
import yaml  # type: ignore[import-untyped]
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.client.schemas.schedules import CronSchedule
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.logging.configuration import to_envvar
from prefect.utilities.collections import dict_to_flatdict
from prefect.utilities.schema_tools import validate

from tests.deployments.support import ROOT, load_prefect_spec

EXPECTED = {
    "nightly-enrichment": ("flows/nightly.py:nightly", "nightbatch-nightly"),
    "collect": ("flows/collect.py:collect", "nightbatch-collect"),
    "classification-backfill": ("flows/backfill.py:backfill", "nightbatch-backfill"),
}
DEPLOYMENTS = sorted(EXPECTED)


def _flow(name: str, deployments_by_name: dict[str, dict[str, Any]]) -> Flow[..., Any]:
    return load_flow_from_entrypoint(deployments_by_name[name]["entrypoint"])


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The object schema behind ``node`` (following ``$ref`` and the non-null branch of ``anyOf``)."""
    if "$ref" in node:
        return _resolve(schema, schema["definitions"][node["$ref"].rsplit("/", 1)[-1]])
    for branch in node.get("anyOf", []):
        if branch.get("type") != "null":
            return _resolve(schema, branch)
    return node


def _unknown_keys(schema: dict[str, Any], node: dict[str, Any], values: Any, where: str) -> list[str]:
    """Keys the schema does not know: pydantic ignores them silently, so a typo would go unnoticed."""
    node = _resolve(schema, node)
    if not isinstance(values, dict) or "properties" not in node:
        return []
    unknown = [f"{where}.{key}" for key in values if key not in node["properties"]]
    for key, value in values.items():
        if key in node["properties"]:
            unknown += _unknown_keys(schema, node["properties"][key], value, f"{where}.{key}")
    return unknown


def test_the_file_parses_as_prefect_reads_it():
    spec = PrefectYamlModel.model_validate(load_prefect_spec())
    assert sorted(d.name for d in spec.deployments if d.name) == DEPLOYMENTS


@pytest.mark.usefixtures("at_repo_root")
@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_entrypoint_loads_the_expected_flow(name, deployments_by_name):
    entrypoint, flow_name = EXPECTED[name]
    assert deployments_by_name[name]["entrypoint"] == entrypoint
    assert (ROOT / entrypoint.split(":")[0]).is_file()
    assert _flow(name, deployments_by_name).name == flow_name


@pytest.mark.usefixtures("at_repo_root")
@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_parameters_exist_on_the_flow_and_validate(name, deployments_by_name):
    flow = _flow(name, deployments_by_name)
    parameters = deployments_by_name[name]["parameters"]
    schema = flow.parameters.model_dump(mode="json")

    assert _unknown_keys(schema, schema, parameters, "parameters") == []
    # What the server checks when enforce_parameter_schema is on, then what the flow itself does on a run.
    assert validate(parameters, schema, raise_on_error=True, ignore_required=False) == []
    flow.validate_parameters(parameters)
    assert deployments_by_name[name]["enforce_parameter_schema"] is True


@pytest.mark.usefixtures("at_repo_root")
def test_the_checks_catch_a_typo_and_a_bad_value(deployments_by_name):
    flow = _flow("nightly-enrichment", deployments_by_name)
    schema = flow.parameters.model_dump(mode="json")
    assert _unknown_keys(schema, schema, {"params": {"deadline_minute": 5}}, "parameters") == [
        "parameters.params.deadline_minute"
    ]
    with pytest.raises(Exception, match="deadline_minutes"):
        flow.validate_parameters({"params": {"deadline_minutes": -1}})


@pytest.mark.usefixtures("at_repo_root")
def test_backfill_needs_a_source(deployments_by_name):
    flow = _flow("classification-backfill", deployments_by_name)
    with pytest.raises(Exception, match="source"):
        flow.validate_parameters({"params": {"task_type": "ticket_triage"}})
    params = deployments_by_name["classification-backfill"]["parameters"]["params"]
    assert params["source"].startswith("s3://")
    assert {"task_type", "budget_usd"} <= params.keys()


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_schedules_are_valid_cron_in_a_named_time_zone(name, deployments_by_name):
    for schedule in deployments_by_name[name].get("schedules") or []:
        assert schedule.get("timezone"), f"{name}: give the schedule an explicit time zone"
        CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
        assert schedule.get("slug"), f"{name}: a slug keeps the schedule stable across re-deploys"


def test_schedules_per_deployment(deployments_by_name):
    assert len(deployments_by_name["nightly-enrichment"]["schedules"]) == 1
    assert len(deployments_by_name["collect"]["schedules"]) == 1
    assert not deployments_by_name["classification-backfill"].get("schedules")


def test_nights_never_overlap(deployments_by_name):
    nightly = deployments_by_name["nightly-enrichment"]
    assert nightly["concurrency_limit"] == 1
    # A night's run gives up waiting well before the next night starts; `collect` finishes what is left.
    assert nightly["parameters"]["params"]["deadline_minutes"] < 24 * 60


def test_collect_runs_one_at_a_time_and_drops_late_runs(deployments_by_name):
    limit = deployments_by_name["collect"]["concurrency_limit"]
    assert limit == {"limit": 1, "collision_strategy": "CANCEL_NEW"}


def test_nightly_submits_every_configured_type_within_a_budget_and_hands_waiting_to_collect(deployments_by_name):
    params = deployments_by_name["nightly-enrichment"]["parameters"]["params"]
    assert "task_type" not in params  # default: every task type configured on the worker
    assert params["budget_usd"] > 0
    assert params["wait"] is False
    assert params["deadline_minutes"] > 0


@pytest.mark.usefixtures("at_repo_root")
def test_parameters_are_named_the_same_in_every_flow(deployments_by_name):
    """``task_type`` means "which task types" in every flow; nothing else is called so."""
    fields: dict[str, set[str]] = {}
    for name in DEPLOYMENTS:
        schema = _flow(name, deployments_by_name).parameters.model_dump()
        definitions = schema.get("definitions") or schema.get("$defs") or {}
        for definition in definitions.values():
            for field, spec in (definition.get("properties") or {}).items():
                fields.setdefault(field, set()).add(spec.get("description", ""))
    assert "task_types" not in fields
    assert "task_type" in fields
    assert len(fields["task_type"]) == 1, fields["task_type"]


def test_every_deployment_uses_the_nightbatch_process_pool(deployments_by_name):
    for name, deployment in deployments_by_name.items():
        assert deployment["work_pool"]["name"] == "nightbatch", name


def test_workers_run_from_the_directory_prefect_deploy_ran_in():
    spec = load_prefect_spec()
    (build_step,) = spec["build"]
    shell = build_step["prefect.deployments.steps.run_shell_script"]
    assert shell["script"] == "pwd"
    (pull_step,) = spec["pull"]
    directory = pull_step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert directory == "{{ " + shell["id"] + ".stdout }}"


def test_served_deployments_mirror_the_file(at_repo_root, deployments_by_name):
    from deployments.serve import runner_deployments

    served = {d.name: d for d in runner_deployments()}
    assert sorted(served) == DEPLOYMENTS
    for name, config in deployments_by_name.items():
        assert served[name].entrypoint == config["entrypoint"]
        assert served[name].parameters == config["parameters"]
        crons = [(s.schedule.cron, s.schedule.timezone) for s in served[name].schedules or []]
        assert crons == [(s["cron"], s["timezone"]) for s in config.get("schedules") or []]
    assert served["nightly-enrichment"].concurrency_limit == 1
    assert served["collect"].concurrency_limit == 1
    assert served["collect"].concurrency_options is not None
    assert served["collect"].concurrency_options.collision_strategy == "CANCEL_NEW"


def test_task_runs_log_warnings_only_and_serving_sets_the_same_env(deployments_by_name):
    """Without it, Prefect's "Finished in state Completed()" per task run is most of a night's log."""
    from deployments.serve import flow_run_env

    for name, deployment in deployments_by_name.items():
        env = deployment["work_pool"]["job_variables"]["env"]
        assert env["PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL"] == "WARNING", name
    assert flow_run_env() == {"PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING"}


def test_the_env_override_names_a_logger_prefects_logging_config_has():
    """Prefect only reads ``PREFECT_LOGGING_<path>`` for keys its logging.yml has: a misspelt one is ignored."""
    config = yaml.safe_load((Path(prefect.logging.__file__).parent / "logging.yml").read_text(encoding="utf-8"))
    known = {to_envvar("PREFECT_LOGGING_" + "_".join(path)).upper() for path in dict_to_flatdict(config)}
    assert "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL" in known
