"""docker-compose.yml, Dockerfile, .dockerignore: checked as files (no Docker engine in CI).

What a broken compose file would only show at `docker compose up`: a missing service, a worker
that cannot be scaled, a dependency on a service without a health check, a command the image does
not have, an environment name that the code never reads, a port that does not match a URL.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"
CONTRACT = ROOT.parent / "shared/CONTRACT.md"

SERVICES = {"rabbitmq", "redis", "postgres", "emulator", "worker", "flower", "producer"}
APP_SERVICES = {"worker", "flower", "producer"}  # run the pipeline, so need its configuration
# CONTRACT §2 (configuration) — the only ORDERSYNC_*/SENDCLOUD_* names anything may set.
CONTRACT_ENV = {
    "SENDCLOUD_API_URL", "SENDCLOUD_PUBLIC_KEY", "SENDCLOUD_SECRET_KEY",
    "ORDERSYNC_BROKER_URL", "ORDERSYNC_DATABASE_URL", "ORDERSYNC_REDIS_URL",
    "ORDERSYNC_WRITE_RATE", "ORDERSYNC_WRITE_BURST", "ORDERSYNC_READ_RATE", "ORDERSYNC_LINGER",
    "ORDERSYNC_HOME",
}
EXPECTED_ENV = {
    "SENDCLOUD_API_URL": "http://emulator:8765/api/v3",
    "SENDCLOUD_PUBLIC_KEY": "demo-public",  # the emulator's demo account (CONTRACT §5)
    "SENDCLOUD_SECRET_KEY": "demo-secret",
    "ORDERSYNC_BROKER_URL": "amqp://guest:guest@rabbitmq:5672//",
    "ORDERSYNC_DATABASE_URL": "postgresql+psycopg://ordersync:ordersync@postgres:5432/ordersync",
    "ORDERSYNC_REDIS_URL": "redis://redis:6379/0",
}
# `ordersync` subcommands (CONTRACT §3, plus `sample`, the generator's CLI).
ORDERSYNC_COMMANDS = {"sync", "submit", "status", "dlq", "emulator", "demo", "sample"}
CELERY_COMMANDS = {"worker", "flower"}
# What each service listens on inside the network.
LISTENS = {"emulator": {8765}, "flower": {5555}, "rabbitmq": {5672, 15672}, "postgres": {5432},
           "redis": {6379}}
CONDITIONS = {"service_healthy", "service_started", "service_completed_successfully"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # merge keys (<<) resolved
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "KEY=value" list form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): str(value) for key, value in env.items()}


def argvs(service: dict[str, Any]) -> list[list[str]]:
    """The command lines a service runs; `sh -c "a && b"` is split into a and b."""
    command = service.get("command")
    if command is None:
        return []
    argv = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
    if argv[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in re.split(r"&&|\|\||;", argv[2]) if part.strip()]
    return [argv]


def container_ports(service: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def has_host_port(entry: Any) -> bool:
    if isinstance(entry, dict):
        return "published" in entry
    return ":" in str(entry)


def option(argv: list[str], name: str) -> str | None:
    for position, part in enumerate(argv):
        if part == name and position + 1 < len(argv):
            return argv[position + 1]
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
    return None


# --- structure -------------------------------------------------------------------------------


def test_compose_parses_and_has_every_service(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= SERVICES


def test_worker_is_scalable(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    # A fixed name, hostname or host port would make `--scale worker=4` fail or clash
    # (and give every Celery node the same name).
    assert "container_name" not in worker
    assert "hostname" not in worker
    assert not any(has_host_port(entry) for entry in worker.get("ports", []))


def test_dependencies_name_existing_services_with_conditions(
        services: dict[str, dict[str, Any]]) -> None:
    seen = 0
    for name, service in services.items():
        depends = service.get("depends_on")
        if depends is None:
            continue
        assert isinstance(depends, dict), f"{name}: use the long form with conditions"
        for target, spec in depends.items():
            seen += 1
            assert target in services and target != name, f"{name} → {target}"
            condition = spec["condition"]
            assert condition in CONDITIONS, f"{name} → {target}: {condition}"
            if condition == "service_healthy":
                assert services[target].get("healthcheck", {}).get("test"), (
                    f"{name} waits for {target} to be healthy, but it has no healthcheck")
            # A service everyone starts must not wait for one only a profile starts.
            if not service.get("profiles"):
                assert not services[target].get("profiles"), f"{name} → {target}"
    assert seen >= 5


def test_infrastructure_has_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in ("rabbitmq", "redis", "postgres", "emulator"):
        assert services[name]["healthcheck"]["test"], name


def test_worker_waits_for_the_services_it_uses(services: dict[str, dict[str, Any]]) -> None:
    depends = services["worker"]["depends_on"]
    for name in ("rabbitmq", "postgres", "redis"):
        assert depends[name]["condition"] == "service_healthy"


def test_producer_is_a_one_shot_example(services: dict[str, dict[str, Any]]) -> None:
    producer = services["producer"]
    assert producer["profiles"] == ["example"]
    assert str(producer.get("restart", "no")) == "no"
    commands = [argv[:2] for argv in argvs(producer)]
    assert commands == [["ordersync", "sample"], ["ordersync", "submit"]]
    sample, submit = argvs(producer)
    assert option(sample, "--out") == submit[2]  # submits the file it just wrote
    # Everything else starts with a plain `docker compose up`.
    assert all(not s.get("profiles") for n, s in services.items() if n != "producer")


# --- commands exist in the package -----------------------------------------------------------


def test_commands_exist_in_the_package(services: dict[str, dict[str, Any]],
                                       pyproject: dict[str, Any]) -> None:
    scripts = pyproject["project"]["scripts"]
    packages = pyproject["tool"]["setuptools"]["packages"]
    used: set[str] = set()
    for name in ("emulator", "worker", "flower", "producer"):
        lines = argvs(services[name])
        assert lines, f"{name} has no command"
        for argv in lines:
            executable = argv[0]
            used.add(executable)
            if executable == "ordersync":
                assert "ordersync" in scripts
                assert scripts["ordersync"].split(":")[0].split(".")[0] in packages
                assert argv[1] in ORDERSYNC_COMMANDS, f"{name}: ordersync {argv[1]}"
            elif executable == "celery":
                assert option(argv, "-A") == "tasks", f"{name}: {argv}"
                assert "tasks" in packages
                assert CELERY_COMMANDS & set(argv), f"{name}: {argv}"
            else:
                pytest.fail(f"{name} runs {executable!r}, which the image does not provide")
    assert used == {"ordersync", "celery"}


def test_emulator_and_worker_and_flower_commands(services: dict[str, dict[str, Any]]) -> None:
    (emulator,) = argvs(services["emulator"])
    assert emulator[:2] == ["ordersync", "emulator"]
    assert option(emulator, "--host") == "0.0.0.0"  # reachable from the other containers
    (worker,) = argvs(services["worker"])
    assert worker[:4] == ["celery", "-A", "tasks", "worker"]
    (flower,) = argvs(services["flower"])
    assert flower[:4] == ["celery", "-A", "tasks", "flower"]


# --- environment -----------------------------------------------------------------------------


def test_environment_names_are_the_contract_names(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key in environment(service):
            if key.startswith(("ORDERSYNC_", "SENDCLOUD_")):
                assert key in CONTRACT_ENV, f"{name}: {key} is not a CONTRACT §2 name"
    # Also names used in commands, interpolations or the Dockerfile, not only as keys.
    for path in (COMPOSE, DOCKERFILE):
        for used in re.findall(r"\b(?:ORDERSYNC|SENDCLOUD)_[A-Z0-9_]+", path.read_text()):
            assert used in CONTRACT_ENV, f"{path.name}: {used}"


def test_pipeline_services_share_the_expected_configuration(
        services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        env = environment(services[name])
        assert {key: env.get(key) for key in EXPECTED_ENV} == EXPECTED_ENV, name


def test_contract_still_lists_these_names() -> None:
    if not CONTRACT.exists():
        pytest.skip(f"{CONTRACT} not available")
    text = CONTRACT.read_text(encoding="utf-8")
    section = text.split("## 2.", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"\b(?:ORDERSYNC|SENDCLOUD)_[A-Z0-9_]+", section)) == CONTRACT_ENV


def test_flower_is_password_protected_from_the_environment(
        services: dict[str, dict[str, Any]]) -> None:
    auth = environment(services["flower"])["FLOWER_BASIC_AUTH"]
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:-[^:}]+:[^}]+\}", auth), auth


def test_postgres_credentials_match_the_database_url(services: dict[str, dict[str, Any]]) -> None:
    url = urlsplit(EXPECTED_ENV["ORDERSYNC_DATABASE_URL"])
    env = environment(services["postgres"])
    assert env["POSTGRES_DB"] == url.path.lstrip("/") == "ordersync"
    assert env["POSTGRES_USER"] == url.username == "ordersync"
    assert env["POSTGRES_PASSWORD"] == url.password == "ordersync"


# --- ports -----------------------------------------------------------------------------------


def test_ports_are_consistent(services: dict[str, dict[str, Any]]) -> None:
    (emulator,) = argvs(services["emulator"])
    assert option(emulator, "--port") == "8765"
    (flower,) = argvs(services["flower"])
    assert option(flower, "--port") == "5555"
    for name, ports in LISTENS.items():
        published = container_ports(services[name])
        assert published <= ports, f"{name} publishes {published}, listens on {ports}"
    assert {8765} <= container_ports(services["emulator"])
    assert {5555} <= container_ports(services["flower"])
    assert {5672} <= container_ports(services["rabbitmq"])
    assert {5432} <= container_ports(services["postgres"])
    assert {6379} <= container_ports(services["redis"])


def test_every_url_points_at_a_service_port(services: dict[str, dict[str, Any]]) -> None:
    checked = 0
    for name, service in services.items():
        for key, value in environment(service).items():
            if "://" not in value:
                continue
            url = urlsplit(value)
            assert url.hostname in LISTENS, f"{name}.{key}: unknown host {url.hostname}"
            assert url.port in LISTENS[url.hostname], f"{name}.{key}: port {url.port}"
            checked += 1
    assert checked >= len(APP_SERVICES) * 4


# --- the image -------------------------------------------------------------------------------


def test_dockerfile_installs_the_package() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [line.strip() for line in text.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    assert any(re.match(r"COPY\s+\.\s+", line) for line in instructions)
    assert re.search(r"^RUN\s+pip install\s+(--\S+\s+)*\.(\s|$)", text, re.MULTILINE)


def test_dockerignore_keeps_the_host_environment_out() -> None:
    entries = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".git"} <= entries
    # …but not what `pip install .` needs.
    assert not {"pyproject.toml", "README.md", "pipeline", "tasks", "emulator"} & entries


def test_restart_policies_are_strings(services: dict[str, dict[str, Any]]) -> None:
    # An unquoted `restart: no` is YAML's false, which Compose rejects.
    for name, service in services.items():
        if "restart" in service:
            assert service["restart"] in {"no", "always", "on-failure", "unless-stopped"}, name
