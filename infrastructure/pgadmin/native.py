"""pgAdmin 4 as a process of the native stack (compose runs the official image: infrastructure/pgadmin/Dockerfile).

pgAdmin runs from its own virtualenv (`make pgadmin-deps`: PGADMIN_VENV, `.venv-pgadmin`, installed from the
lock file beside this module; its pins clash with the project's, DESIGN.md) as the wheel's own server
(`pgadmin4`) in server mode on STACK_HOST:PGADMIN_PORT, with its state under `<STACK_DIR>/pgadmin`. Before each
start `prepare` writes its configuration, creates or migrates its configuration database, creates the login
of .env (PGADMIN_DEFAULT_EMAIL/PASSWORD) and loads the preconfigured server: compose's servers.json with this
machine's PostgreSQL, as kpi_analyst, whose password pgAdmin reads from a pgpass file in the login's storage.

How the configuration reaches pgAdmin: its config.py merges config_distro.py, then config_local.py (both beside
it, in the venv's site-packages), then /etc/pgadmin/config_system.py; the one file it takes from the
environment is config_distro.py, from CONFIG_DISTRO_FILE_PATH. So ours is a config_distro.py under the stack's
folder, named there: nothing is written into the venv or /etc, and another stack (tests, benchmarks) runs the
same venv with its own file. (The wheel reads no PGADMIN_CONFIG_* variable but PGADMIN_CONFIG_DEFAULT_SERVER:
the official image's entrypoint is what turns them into its config_distro.py.) Ours replaces the wheel's own
config_distro.py, so it carries that file's two settings over.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.common.queries import QUERIES_DIR

if TYPE_CHECKING:
    from infrastructure.native.stack import Service
    from jobs.common.config import Settings

HERE = Path(__file__).resolve().parent
SERVERS_FILE = HERE / "servers.json"  # compose's: Name, Group, Username, PassFile... are shared from it
LOCK_FILE = HERE / "requirements.txt"
SHARED_STORAGE_NAME = "Saved queries"  # as compose's PGADMIN_CONFIG_SHARED_STORAGE names it
# pgAdmin's rule for restricted shared storage: only an Administrator may write there. Compose mounts the
# queries read-only; natively the folder is the checkout, so the login is a plain user and pgAdmin refuses.
LOGIN_ROLE = "User"
# what the wheel's own config_distro.py sets, kept since ours replaces it
WHEEL_DISTRO = {"HELP_PATH": "../../docs/en_US/_build/html/", "MINIFY_HTML": False}


def folder(settings: Settings) -> Path:
    return settings.stack.dir / "pgadmin"


def config_file(settings: Settings) -> Path:
    return folder(settings) / "config_distro.py"


def data_dir(settings: Settings) -> Path:
    return folder(settings) / "data"


def url(settings: Settings) -> str:
    return f"http://{settings.stack.host}:{settings.pgadmin.port}"


def config_values(settings: Settings) -> dict[str, object]:
    """pgAdmin's settings for this stack (config.py's names)."""
    data = data_dir(settings)
    return {
        "SERVER_MODE": True,  # a login, per-user storage; the desktop mode is for pgAdmin's own app
        "DEFAULT_SERVER": settings.stack.host,
        "DEFAULT_SERVER_PORT": settings.pgadmin.port,
        "DATA_DIR": str(data),
        "LOG_FILE": str(data / "pgadmin4.log"),
        "SQLITE_PATH": str(data / "pgadmin4.db"),
        "SESSION_DB_PATH": str(data / "sessions"),
        "STORAGE_DIR": str(data / "storage"),
        "AZURE_CREDENTIAL_CACHE_DIR": str(data / "azurecredentialcache"),
        "KERBEROS_CCACHE_DIR": str(data / "krbccache"),
        "SHARED_STORAGE": [
            {"name": SHARED_STORAGE_NAME, "path": str(QUERIES_DIR), "restricted_access": True}
        ],
        # the preconfigured server only (not every PostgreSQL found on this machine), and no calls out of it:
        # the upgrade check, Gravatar images, the AI assistant's providers
        "AUTO_DISCOVER_SERVERS": False,
        "UPGRADE_CHECK_ENABLED": False,
        "SHOW_GRAVATAR_IMAGE": False,
        "LLM_ENABLED": False,
        # a master password guards saved passwords in desktop mode only; in server mode pgAdmin keys them with
        # the login's password, and this server saves none (PassFile): nothing to prompt for either way
        "MASTER_PASSWORD_REQUIRED": False,
        **WHEEL_DISTRO,
    }


def config_text(settings: Settings) -> str:
    lines = [f"{name} = {value!r}" for name, value in config_values(settings).items()]
    return "\n".join(
        ["# Written by infrastructure/pgadmin/native.py before each start: edits are lost.", *lines, ""]
    )


def servers(settings: Settings) -> dict:
    """Compose's servers.json with this machine's PostgreSQL (POSTGRES_HOST/PORT) instead of its service."""
    pg = settings.postgres
    shared = json.loads(SERVERS_FILE.read_text())["Servers"]
    return {"Servers": {key: {**server, "Host": pg.host, "Port": pg.port} for key, server in shared.items()}}


def storage_dir(settings: Settings) -> Path:
    """The login's own storage, where pgAdmin resolves the server's PassFile "/.pgpass" (pgAdmin's
    preprocess_username names the folder)."""
    name = settings.pgadmin.default_email
    name = ("pga_user_" + name if not name or name[0].isdigit() else name).replace("@", "_")
    name = name.replace("/", "slash").replace("\\", "slash")
    return data_dir(settings) / "storage" / name


def pgpass_lines(settings: Settings) -> str:
    """One line per preconfigured server: its host, port, any database, the analyst and the analyst's password."""
    password = settings.postgres.analyst_password.get_secret_value()
    lines = []
    for server in servers(settings)["Servers"].values():
        fields = (server["Host"], str(server["Port"]), "*", server["Username"], password)
        lines.append(":".join(f.replace("\\", "\\\\").replace(":", "\\:") for f in fields) + "\n")
    return "".join(lines)


def env(settings: Settings) -> dict[str, str]:
    """pgAdmin's whole environment beyond the machine's (it gets none of the project's settings)."""
    return {
        "CONFIG_DISTRO_FILE_PATH": str(config_file(settings)),
        # empty is unset: `make` exports the checkout's, whose packages (app, tests...) must not shadow pgAdmin's
        "PYTHONPATH": "",
        # pgAdmin is a Flask app started in the checkout, where the project's .env (its secrets) lies
        "FLASK_SKIP_DOTENV": "1",
    }


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    path.chmod(0o600)


def cli(settings: Settings, *args: str, expect: str = "", extra_env: dict[str, str] | None = None) -> str:
    """Runs pgAdmin's own CLI (`pgadmin4-cli`, the wheel's setup.py); some of its commands report a failure
    only in their output, hence `expect`."""
    executable = settings.pgadmin.venv / "bin" / "pgadmin4-cli"
    result = subprocess.run(
        [str(executable), *args], env={**os.environ, **env(settings), **(extra_env or {})},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    if result.returncode != 0 or expect not in output:
        raise SystemExit(f"pgadmin4-cli {args[0]} failed (exit {result.returncode}):\n{output[-3000:]}")
    return output


def prepare(settings: Settings) -> None:
    """Before each start (idempotent): configuration, configuration database, login, preconfigured server."""
    pga = settings.pgadmin
    if not (pga.venv / "bin" / "pgadmin4").exists():
        raise SystemExit(f"pgAdmin 4 is not installed in {pga.venv} (PGADMIN_VENV): run `make pgadmin-deps`")
    _write_private(config_file(settings), config_text(settings))
    email, password = pga.default_email, pga.default_password.get_secret_value()
    demoted = data_dir(settings) / ".login-demoted"  # written once the first login is a plain user
    if not (data_dir(settings) / "pgadmin4.db").exists():
        # creating the configuration database creates its first login, from these two, as an Administrator
        setup = {"PGADMIN_SETUP_EMAIL": email, "PGADMIN_SETUP_PASSWORD": password}
        cli(settings, "setup-db", extra_env=setup)
        demoted.unlink(missing_ok=True)
    if not demoted.exists():
        cli(settings, "update-user", email, "--role", LOGIN_ROLE, expect="User Details")
        demoted.touch()
    else:  # the login of .env if PGADMIN_DEFAULT_EMAIL changed since (an existing login is left as it is);
        # like every command, this one first migrates the database to the installed release
        login = {"username": email, "email": email, "password": password, "role": LOGIN_ROLE}
        with tempfile.TemporaryDirectory(dir=folder(settings)) as scratch:
            users = Path(scratch) / "users.json"
            _write_private(users, json.dumps({"users": [{**login, "auth_source": "internal"}]}))
            cli(settings, "load-users", str(users), expect="Errors: 0")
    _write_private(storage_dir(settings) / ".pgpass", pgpass_lines(settings))
    servers_file = folder(settings) / "servers.json"
    wanted = servers(settings)
    servers_file.write_text(json.dumps(wanted, indent=2))
    # --replace: the login's servers become exactly these (a changed POSTGRES_HOST/PORT is picked up)
    cli(settings, "load-servers", str(servers_file), "--user", email, "--replace",
         expect=f"{len(wanted['Servers'])} Server(s)")  # fmt: skip


def service(settings: Settings) -> Service:
    from infrastructure.native.stack import Service, answers

    return Service(
        "pgadmin",
        [str(settings.pgadmin.venv / "bin" / "pgadmin4")],
        lambda: answers(f"{url(settings)}/misc/ping"),  # what compose's health check reads
        env=env(settings),
        project=False,
        prepare=lambda: prepare(settings),
    )
