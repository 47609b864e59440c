"""docker/compose.yaml and docker/Dockerfile, checked without a Docker engine.

No Docker engine runs on the development machines or on CI, so the stack is validated, not run:
the compose file must satisfy the Compose Specification's JSON Schema (read from
``../shared/specs/compose/compose-spec.json``, never copied), every image it builds must have
its Dockerfile, every ``tix …`` command it runs must parse against the real CLI, every ``TIX_*``
variable it sets must be a setting (or an option's environment variable of the command it runs),
and every volume, bind mount and dependency it names must exist.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import shlex
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from tests.support.private_broker import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
SPEC = ROOT.parent / "shared" / "specs" / "compose" / "compose-spec.json"
TIX_IMAGE = "tix:local"
REQUIRED_PLUGINS = {"rabbitmq_management", "rabbitmq_shovel", "rabbitmq_federation"}


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def tix_services() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, service in services().items():
        if service.get("image") == TIX_IMAGE:
            yield name, service


def _command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


@cache
def _tix_app() -> typer.Typer:
    """The typer app behind the ``tix`` console script that pyproject.toml declares."""
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["tix"]
    module = importlib.import_module(target.split(":")[0])
    app = module.app
    assert isinstance(app, typer.Typer)
    return app


@cache
def _cli() -> Any:
    return typer.main.get_command(_tix_app())


def resolve_command(args: list[str]) -> tuple[Any, list[str]]:
    """The leaf command ``tix args…`` runs and the arguments left for it; fails if unknown.

    The options are then parsed by the real CLI with ``--help`` appended: an unknown option
    fails the parse (exit code 2) before help is shown, and nothing runs.
    """
    command = _cli()
    rest = list(args)
    path = ["tix"]
    while hasattr(command, "commands"):
        assert rest, f"`{' '.join(path)}` needs a subcommand"
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"`{' '.join([*path, name])}` is not a tix command"
        path.append(name)
        command = sub
    result = CliRunner().invoke(_tix_app(), [*args, "--help"])
    assert result.exit_code == 0, f"`{' '.join(['tix', *args])}` does not parse: {result.output}"
    return command, rest


@cache
def settings_env_names() -> frozenset[str]:
    """``TIX_*`` names of every settings class the project defines (node, hub, adapters, …)."""
    for top in ("exchange", "account", "adapters"):
        package = importlib.import_module(top)
        for module in pkgutil.walk_packages(package.__path__, top + "."):
            importlib.import_module(module.name)
    names: set[str] = set()
    pending: list[type[BaseSettings]] = [BaseSettings]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        prefix = str(cls.model_config.get("env_prefix") or "")
        ours = cls.__module__.startswith(("exchange.", "account.", "adapters."))
        if not ours or not prefix.startswith("TIX_"):
            continue
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias if isinstance(field.validation_alias, str) else None
            names.add((alias or prefix + field_name).upper())
    return frozenset(names)


def option_env_names(command: Any) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            names.add(envvar)
        elif isinstance(envvar, list | tuple):
            names.update(str(e) for e in envvar)
    return names


def test_compose_file_satisfies_the_compose_specification() -> None:
    if not SPEC.exists():
        skip_or_fail(f"the Compose Specification schema is missing at {SPEC}")
    schema = json.loads(SPEC.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_stack_has_every_part_with_health_checks_and_named_volumes() -> None:
    svc = services()
    assert {"rabbitmq", "postgres", "mailpit", "hub", "acme", "northwind", "fixit", "mail"} <= set(
        svc
    )
    for name, service in svc.items():
        if service.get("restart") == "no":
            continue  # one-shot init jobs
        assert "healthcheck" in service, f"{name} has no health check"
        assert service["healthcheck"]["test"], name
    declared = set(compose().get("volumes") or {})
    for name, service in svc.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (DOCKER / source).resolve().exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
        for dependency in service.get("depends_on", {}):
            assert dependency in svc, f"{name} depends on unknown service {dependency}"
    rabbit = svc["rabbitmq"]
    plugins_mount = next(v for v in rabbit["volumes"] if "enabled_plugins" in v.split(":")[1])
    text = (DOCKER / plugins_mount.split(":")[0]).read_text()
    assert re.fullmatch(r"\[[a-z_,\s]+\]\.\s*", text), "enabled_plugins must be one Erlang list"
    assert REQUIRED_PLUGINS <= set(re.findall(r"[a-z_]+", text))


def test_every_built_image_has_its_dockerfile_and_sources() -> None:
    built = [(name, s) for name, s in services().items() if "build" in s]
    assert built, "the compose file builds the tix image"
    for name, service in built:
        build = service["build"]
        context = (DOCKER / build["context"]).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        assert service["image"] == TIX_IMAGE, name
        text = dockerfile.read_text()
        for line in text.splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                for source in line.split()[1:-1]:
                    assert (context / source).exists(), f"{dockerfile} copies missing {source}"
    # Every service running the tix image builds it or shares the one built here, hardened.
    assert {n for n, _ in tix_services()} == {n for n, _ in built}
    for name, service in tix_services():
        assert service.get("read_only") is True and "ALL" in service.get("cap_drop", []), name


def test_the_image_runs_tix_as_an_unprivileged_user() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    final_stage = text.split("\nFROM ")[-1]
    users = re.findall(r"^USER\s+(\S+)", final_stage, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["tix"\]', final_stage, re.M)
    assert "HEALTHCHECK" in final_stage
    default = json.loads(re.search(r"^CMD (\[.*\])$", final_stage, re.M).group(1))  # type: ignore[union-attr]
    resolve_command(default)
    for name in re.findall(r"\b(TIX_[A-Z0-9_]+)=", final_stage):
        assert name in settings_env_names(), f"Dockerfile sets unknown {name}"


@pytest.mark.parametrize("name", [n for n, _ in tix_services()])
def test_every_tix_command_exists_and_sets_only_real_settings(name: str) -> None:
    service = services()[name]
    command, _rest = resolve_command(_command_args(service))
    allowed = settings_env_names() | option_env_names(command)
    environment = service.get("environment") or {}
    assert isinstance(environment, dict), f"{name}: environment as a mapping"
    unknown = {k for k in environment if k.startswith("TIX_") and k not in allowed}
    assert not unknown, f"{name} sets {sorted(unknown)}, which no setting or option reads"


def test_the_checks_catch_mistakes() -> None:
    """The helpers refuse an unknown command, an unknown option and an unknown variable."""
    with pytest.raises(AssertionError):
        resolve_command(["node", "no-such-command"])
    with pytest.raises(AssertionError, match="does not parse"):
        resolve_command(["node", "serve", "--no-such-option", "1"])
    command, _ = resolve_command(["node", "init", "--admin", "root"])
    assert "TIX_ADMIN_PASSWORD" in option_env_names(command)
    assert "TIX_NO_SUCH_SETTING" not in settings_env_names()
    assert {"TIX_ACCOUNT_ID", "TIX_DATABASE_URL", "TIX_AMQP_URL"} <= settings_env_names()


def test_every_url_points_at_a_service_and_every_database_is_created() -> None:
    """Hosts in TIX_*_URL values are services of the stack; PostgreSQL creates each database."""
    svc = services()
    created = set(str(svc["postgres"]["environment"]["TIX_DATABASES"]).split())
    used: set[str] = set()
    for name, service in tix_services():
        for key, value in (service.get("environment") or {}).items():
            if not key.startswith("TIX_") or not key.endswith("_URL"):
                continue
            host = re.sub(r"^[a-z+]+://(?:[^@/]*@)?", "", str(value)).split("/")[0].split(":")[0]
            if host:
                assert host in svc, f"{name}: {key} points at {host}, which is not a service"
            if key.endswith("DATABASE_URL"):
                used.add(str(value).rsplit("/", 1)[1])
    assert used and used <= created, f"databases used {used}, created {created}"
