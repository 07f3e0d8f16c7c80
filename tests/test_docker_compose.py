"""Static checks of docker-compose.yml, the Dockerfile and .dockerignore.

There is no Docker engine here, and the tests never call the docker CLI: the files are parsed
and cross-checked against each other and against the project (pyproject.toml, the environment
variables o2a reads, the search attributes it writes, the `o2a` command line). Every checker
returns a list of problems; the real files must give none, and each ``test_checker_catches``
case feeds a deliberately broken copy to prove the check can fail.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_PATH = ROOT / "docker-compose.yml"
DOCKERFILE_PATH = ROOT / "Dockerfile"
DOCKERIGNORE_PATH = ROOT / ".dockerignore"
PYPROJECT_PATH = ROOT / "pyproject.toml"
SOURCE_DIRS = ("o2a", "workflows", "activities", "workers", "starters")

Compose = dict[str, Any]
Service = dict[str, Any]

POSTGRES = "postgresql"
SCHEMA_JOB = "temporal-admin-tools"
SERVER = "temporal"
NAMESPACE_JOB = "temporal-create-namespace"
UI = "temporal-ui"
NATS = "nats"
WORKER = "o2a-worker"
LISTENER = "o2a-listener"
SIMULATOR = "o2a-simulator"
API = "o2a-api"
API_PROFILE = "api"
PROMETHEUS = "prometheus"
GRAFANA = "grafana"
JAEGER = "jaeger"
CODEC_SECRET = "o2a-codec-keys"
# The o2a processes that talk to Temporal: each needs the codec keys and exports traces.
TEMPORAL_CLIENTS = (WORKER, LISTENER, API)
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
OTLP_GRPC_PORT = 4317

FRONTEND_PORT = 7233
UI_PORT = 8080
NATS_PORT = 4222
NATS_URL = f"nats://{NATS}:{NATS_PORT}"
API_PORT = 8000
CONDITIONS = frozenset({"service_started", "service_healthy", "service_completed_successfully"})
SCHEMA_ROOT = "/etc/temporal/schema/postgresql/v12"
SCHEMA_DIRS = {
    "DBNAME": ("temporal", f"{SCHEMA_ROOT}/temporal/versioned"),
    "VISIBILITY_DBNAME": ("temporal_visibility", f"{SCHEMA_ROOT}/visibility/versioned"),
}
SEARCH_ATTRIBUTES = {
    "OrderNumber": "Keyword",
    "OrderState": "Keyword",
    "OrderStatus": "Keyword",
    "CustomerId": "Keyword",
    "OrderRevision": "Int",
}
SA_TYPES = "Keyword|KeywordList|Text|Int|Double|Bool|Datetime"
WORKER_ENV = {
    "TEMPORAL_ADDRESS": f"{SERVER}:{FRONTEND_PORT}",
    "TEMPORAL_NAMESPACE": "default",
    "O2A_TASK_QUEUE": "o2a",
    "O2A_OUTBOX_DIR": "/var/lib/o2a/outbox",
    "O2A_NATS_URL": NATS_URL,
}
WORKER_ARGV = ["o2a", "worker"]
# The bus services (DESIGN.md §3 "Commands", "Message bus"): what each runs, and whether it
# talks to Temporal (then with the worker's server, namespace and task queue).
BUS_SERVICES: dict[str, tuple[list[str], bool]] = {
    LISTENER: (["o2a", "listen"], True),
    SIMULATOR: (["o2a", "simulate"], False),
}
# Settings that every process on the bus must agree on, or they would not meet.
BUS_SETTINGS = ("O2A_NATS_URL", "O2A_SUBJECT_PREFIX")
TEMPORAL_SETTINGS = ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "O2A_TASK_QUEUE")
# nats-server flags (Go's flag package: one dash or two, `-f v` or `-f=v`) by what they set.
NATS_FLAGS = {
    "js": "jetstream",
    "jetstream": "jetstream",
    "sd": "store_dir",
    "store_dir": "store_dir",
    "p": "port",
    "port": "port",
    "m": "http_port",
    "http_port": "http_port",
    "n": "server_name",
    "name": "server_name",
    "server_name": "server_name",
    "c": "config",
    "config": "config",
}
NATS_BOOLEAN_FLAGS = frozenset({"jetstream"})
RESTARTING = frozenset({"always", "unless-stopped"})
# Read by the Temporal SDK's environment configuration (temporalio.envconfig), not by o2a code.
TEMPORAL_CLIENT_ENV = frozenset(
    {
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_API_KEY",
        "TEMPORAL_PROFILE",
        "TEMPORAL_CONFIG_FILE",
        "TEMPORAL_TLS",
        "TEMPORAL_TLS_CLIENT_CERT_PATH",
        "TEMPORAL_TLS_CLIENT_CERT_DATA",
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
        "TEMPORAL_TLS_CLIENT_KEY_DATA",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
        "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
        "TEMPORAL_TLS_SERVER_NAME",
        "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
    }
)
MUST_IGNORE = (
    ".venv/bin/python",
    "var/outbox/x.xml",
    ".git/HEAD",
    "tests/test_x.py",
    "__pycache__/x.cpython-311.pyc",
    "o2a/__pycache__/x.cpython-311.pyc",
    "o2a/x.pyc",
    ".mypy_cache/x.json",
    ".ruff_cache/x",
    ".pytest_cache/x",
)


# --------------------------------------------------------------------------- loading helpers


def load_compose() -> Compose:
    data = yaml.safe_load(COMPOSE_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def load_pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT_PATH.read_text(encoding="utf-8"))


def load_dockerignore() -> list[str]:
    lines = DOCKERIGNORE_PATH.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def services_of(compose: Compose) -> dict[str, Service]:
    services = compose.get("services") or {}
    assert isinstance(services, dict)
    return services


def service(compose: Compose, name: str) -> Service:
    return services_of(compose).get(name) or {}


def env_of(svc: Service) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        pairs = [str(item).split("=", 1) for item in env]
        return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def argv(value: Any) -> list[str]:
    """A compose/Dockerfile command as argv (the string form is split like a shell would)."""
    return shlex.split(value) if isinstance(value, str) else strings(value)


def script_of(svc: Service) -> str:
    """Everything a container is told to run, as one text, with Compose's `$$` unescaped."""
    return "\n".join(strings(svc.get("entrypoint")) + strings(svc.get("command"))).replace(
        "$$", "$"
    )


def split_image(ref: str) -> tuple[str, str | None, str | None]:
    """`registry/repo:tag@digest` -> (repo without docker.io/library, tag, digest)."""
    name, _, digest = ref.partition("@")
    tag = None
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    for prefix in ("docker.io/", "index.docker.io/", "library/"):
        name = name.removeprefix(prefix)
    return name, tag, digest or None


def image_tag(svc: Service) -> str | None:
    return split_image(str(svc.get("image", "")))[1]


def image_repo(svc: Service) -> str:
    return split_image(str(svc.get("image", "")))[0]


def depends_on(svc: Service) -> dict[str, str]:
    """Dependency -> condition (the short list form means service_started)."""
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {str(name): "service_started" for name in deps}
    return {
        str(name): str((spec or {}).get("condition", "service_started"))
        for name, spec in deps.items()
    }


def published_ports(svc: Service) -> set[tuple[int, int]]:
    """(host port, container port) pairs that the service publishes."""
    result: set[tuple[int, int]] = set()
    for port in svc.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") is not None:
                result.add((int(port["published"]), int(port["target"])))
            continue
        parts = str(port).split("/", 1)[0].split(":")
        if len(parts) >= 2:
            result.add((int(parts[-2]), int(parts[-1])))
    return result


def mounts(svc: Service) -> list[tuple[str, str]]:
    """(source, target) of each volume entry; source is "" for anonymous volumes."""
    result: list[tuple[str, str]] = []
    for volume in svc.get("volumes") or []:
        if isinstance(volume, dict):
            result.append((str(volume.get("source", "")), str(volume["target"])))
            continue
        parts = str(volume).split(":")
        result.append(("", parts[0]) if len(parts) == 1 else (parts[0], parts[1]))
    return result


def is_bind_source(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def named_volume_at(compose: Compose, svc: Service, target: str) -> str | None:
    for source, mount_target in mounts(svc):
        if mount_target.rstrip("/") == target.rstrip("/") and source and not is_bind_source(source):
            return source
    return None


def named_volume_holding(compose: Compose, svc: Service, path: str) -> str | None:
    """The named volume mounted at ``path`` or at one of its parent directories."""
    declared = set(compose.get("volumes") or {})
    for source, target in mounts(svc):
        root = target.rstrip("/") + "/"
        if source in declared and (path.rstrip("/") + "/").startswith(root):
            return source
    return None


def host_path_for(svc: Service, container_path: str) -> Path | None:
    """The host file behind a container path, when it lies under a relative bind mount."""
    for source, target in mounts(svc):
        prefix = target.rstrip("/") + "/"
        if source.startswith(".") and container_path.startswith(prefix):
            return ROOT / source / container_path[len(prefix) :]
    return None


def project_env_names() -> set[str]:
    """Environment variables the project's code reads by name: a literal, or a module
    constant holding one (``KEYS_VARIABLE = "O2A_API_KEYS"`` ... ``environ.get(KEYS_VARIABLE)``)."""
    read = r"""(?:environ(?:\.get)?|getenv)\s*[(\[]\s*"""
    literal = re.compile(read + r"""["']([A-Z][A-Z0-9_]*)["']""")
    by_constant = re.compile(read + r"([A-Z][A-Z0-9_]*)\s*[)\],]")
    constant = re.compile(
        r"""^([A-Z][A-Z0-9_]*)\s*(?::[^=]+)?=\s*["']([A-Z][A-Z0-9_]*)["']""", re.MULTILINE
    )
    names: set[str] = set()
    constants: dict[str, str] = {}
    used: set[str] = set()
    for directory in SOURCE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            names.update(literal.findall(text))
            used.update(by_constant.findall(text))
            constants.update(constant.findall(text))
    return names | {constants[name] for name in used if name in constants}


def o2a_parser() -> argparse.ArgumentParser:
    from o2a.cli import _parser

    return _parser()


def o2a_subcommands() -> set[str]:
    parser = o2a_parser()
    return {
        str(name)
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }


def check_o2a_argv(name: str, run: list[str]) -> list[str]:
    """The argv must be a command line that `o2a` accepts (its own argparse parser)."""
    if run[:1] != ["o2a"] or len(run) < 2:
        return [f"{name}: runs {run}, not an o2a command"]
    if run[1] not in o2a_subcommands():
        return [f"{name}: runs {run}; {run[1]!r} is not an o2a command"]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            o2a_parser().parse_args(run[1:])
        except SystemExit:
            return [f"{name}: runs {run}, not an o2a command line: {err.getvalue().strip()}"]
    return []


def project_search_attributes() -> dict[str, str]:
    from o2a import visibility

    kinds = {
        "KEYWORD": "Keyword",
        "KEYWORD_LIST": "KeywordList",
        "TEXT": "Text",
        "INT": "Int",
        "FLOAT": "Double",
        "BOOL": "Bool",
        "DATETIME": "Datetime",
    }
    return {key.name: kinds[key.indexed_value_type.name] for key in visibility.ALL}


# --------------------------------------------------------------------------- Dockerfile helpers


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def exec_form(args: str) -> list[str]:
    """Exec (JSON) form as is; shell form as `/bin/sh -c ...`, as Docker runs it."""
    if args.startswith("["):
        return [str(item) for item in json.loads(args)]
    return ["/bin/sh", "-c", args]


def dockerfile_argv(text: str) -> tuple[list[str], list[str]]:
    entrypoint: list[str] = []
    cmd: list[str] = []
    for keyword, args in dockerfile_instructions(text):
        if keyword == "FROM":
            entrypoint, cmd = [], []
        elif keyword == "ENTRYPOINT":
            entrypoint, cmd = exec_form(args), []
        elif keyword == "CMD":
            cmd = exec_form(args)
    return entrypoint, cmd


def copy_sources(text: str) -> list[str]:
    """Build-context paths copied by COPY/ADD (not `--from` stages), normalised."""
    sources: list[str] = []
    for keyword, args in dockerfile_instructions(text):
        if keyword not in {"COPY", "ADD"} or "--from" in args:
            continue
        parts = json.loads(args) if args.startswith("[") else shlex.split(args)
        parts = [part for part in parts if not part.startswith("--")]
        sources.extend(part.removeprefix("./").rstrip("/") or "." for part in parts[:-1])
    return sources


def effective_argv(svc: Service, dockerfile_text: str) -> list[str]:
    """What a container built from the Dockerfile runs: compose entrypoint/command over the
    image's."""
    image_entrypoint, image_cmd = dockerfile_argv(dockerfile_text)
    if "entrypoint" in svc:
        return argv(svc["entrypoint"]) + argv(svc.get("command"))
    return image_entrypoint + (argv(svc["command"]) if "command" in svc else image_cmd)


def dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a matched directory takes its contents."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = dockerignore_regex(pattern.removeprefix("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


# --------------------------------------------------------------------------- compose checkers


def check_images(compose: Compose) -> list[str]:
    problems: list[str] = []
    for name, svc in services_of(compose).items():
        if "image" not in svc and "build" not in svc:
            problems.append(f"{name}: neither image nor build")
        if "image" not in svc:
            continue
        repo, tag, digest = split_image(str(svc["image"]))
        if repo == "temporalio/auto-setup":
            problems.append(f"{name}: temporalio/auto-setup is deprecated")
        if tag is None and digest is None:
            problems.append(f"{name}: image {svc['image']} is not pinned")
        if tag == "latest":
            problems.append(f"{name}: image {svc['image']} uses latest")
    return problems


def check_dependencies(compose: Compose) -> list[str]:
    problems: list[str] = []
    services = services_of(compose)
    for name, svc in services.items():
        for dep, condition in depends_on(svc).items():
            if dep not in services:
                problems.append(f"{name}: depends on unknown service {dep}")
                continue
            if condition not in CONDITIONS:
                problems.append(f"{name}: invalid condition {condition} on {dep}")
            target = services[dep]
            healthcheck = target.get("healthcheck") or {}
            if condition == "service_healthy" and (not healthcheck or healthcheck.get("disable")):
                problems.append(f"{name}: waits for {dep} to be healthy; it has no healthcheck")
            if condition == "service_completed_successfully" and target.get("restart") in {
                "always",
                "unless-stopped",
            }:
                problems.append(f"{name}: waits for {dep} to complete; {dep} restarts forever")
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in depends_on(services.get(node) or {}):
            if state.get(dep) == "open":
                problems.append("dependency cycle: " + " -> ".join([*path, node, dep]))
            elif dep in services and dep not in state:
                visit(dep, [*path, node])
        state[node] = "done"

    for name in services:
        if name not in state:
            visit(name, [])
    return problems


def check_volumes(compose: Compose) -> list[str]:
    problems: list[str] = []
    declared = set(compose.get("volumes") or {})
    for name, svc in services_of(compose).items():
        for source, target in mounts(svc):
            if not source:
                continue
            if is_bind_source(source):
                if source.startswith(".") and not (ROOT / source).exists():
                    problems.append(f"{name}: bind source {source} does not exist")
            elif source not in declared:
                problems.append(f"{name}: volume {source} ({target}) is not declared")
    return problems


def check_interpolation(compose: Compose) -> list[str]:
    """Compose substitutes `$VAR` everywhere; a shell `$` must be written `$$`."""
    problems: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]")
        elif isinstance(node, str) and "$" in node.replace("$$", ""):
            problems.append(f"{where}: unescaped $ would be interpolated by Compose")

    walk(compose.get("services"), "services")
    return problems


def check_ports(compose: Compose) -> list[str]:
    problems: list[str] = []
    if (FRONTEND_PORT, FRONTEND_PORT) not in published_ports(service(compose, SERVER)):
        problems.append(f"{SERVER}: port {FRONTEND_PORT} is not published")
    if (UI_PORT, UI_PORT) not in published_ports(service(compose, UI)):
        problems.append(f"{UI}: port {UI_PORT} is not published")
    return problems


def check_postgres(compose: Compose) -> list[str]:
    svc = service(compose, POSTGRES)
    problems: list[str] = []
    repo, tag, _ = split_image(str(svc.get("image", "")))
    if repo != "postgres" or not tag or not tag.startswith("16"):
        problems.append(f"{POSTGRES}: expected a postgres:16 image, got {svc.get('image')}")
    if not svc.get("healthcheck"):
        problems.append(f"{POSTGRES}: no healthcheck")
    if named_volume_at(compose, svc, "/var/lib/postgresql/data") is None:
        problems.append(f"{POSTGRES}: data directory is not on a named volume")
    return problems


def check_server(compose: Compose) -> list[str]:
    svc = service(compose, SERVER)
    env = env_of(svc)
    pg_env = env_of(service(compose, POSTGRES))
    problems: list[str] = []
    if image_repo(svc) != "temporalio/server":
        problems.append(f"{SERVER}: image is not temporalio/server")
    expected = {
        "DB": "postgres12",
        "POSTGRES_SEEDS": POSTGRES,
        "POSTGRES_USER": pg_env.get("POSTGRES_USER", "postgres"),
        "POSTGRES_PWD": pg_env.get("POSTGRES_PASSWORD"),
        "BIND_ON_IP": "0.0.0.0",
    }
    for key, value in expected.items():
        if env.get(key) != value:
            problems.append(f"{SERVER}: {key}={env.get(key)!r}, expected {value!r}")
    if env.get("DB_PORT", "5432") != "5432":
        problems.append(f"{SERVER}: DB_PORT does not match PostgreSQL's 5432")
    dynamic = env.get("DYNAMIC_CONFIG_FILE_PATH", "/etc/temporal/config/dynamicconfig/docker.yaml")
    dynamic = dynamic if dynamic.startswith("/") else f"/etc/temporal/{dynamic}"
    host_file = host_path_for(svc, dynamic)
    if host_file is None or not host_file.is_file():
        problems.append(f"{SERVER}: dynamic config {dynamic} is not a mounted project file")
    elif not isinstance(yaml.safe_load(host_file.read_text(encoding="utf-8")), dict):
        problems.append(f"{SERVER}: dynamic config {host_file} is not a YAML mapping")
    if depends_on(svc).get(SCHEMA_JOB) != "service_completed_successfully":
        problems.append(f"{SERVER}: does not wait for the schema job to complete")
    if not svc.get("healthcheck"):
        problems.append(f"{SERVER}: no healthcheck")
    return problems


def check_schema_job(compose: Compose) -> list[str]:
    svc = service(compose, SCHEMA_JOB)
    server = service(compose, SERVER)
    server_env = env_of(server)
    pg_env = env_of(service(compose, POSTGRES))
    script = script_of(svc)
    problems: list[str] = []
    if image_repo(svc) != "temporalio/admin-tools":
        problems.append(f"{SCHEMA_JOB}: image is not temporalio/admin-tools")
    if image_tag(svc) != image_tag(server):
        problems.append(f"{SCHEMA_JOB}: admin-tools {image_tag(svc)} != server {image_tag(server)}")
    if not re.search(r"^\s*set -[a-z]*e", script, re.MULTILINE):
        problems.append(f"{SCHEMA_JOB}: script does not stop on the first error (set -e)")
    if "temporal-sql-tool" not in script:
        problems.append(f"{SCHEMA_JOB}: does not run temporal-sql-tool")
    flags = {
        "--plugin": server_env.get("DB"),
        "--ep": server_env.get("POSTGRES_SEEDS"),
        "-u": pg_env.get("POSTGRES_USER"),
    }
    for flag, value in flags.items():
        found = set(re.findall(rf"(?<!\S){re.escape(flag)}\s+(\S+)", script))
        if found != {value}:
            problems.append(f"{SCHEMA_JOB}: temporal-sql-tool {flag} {found}, server uses {value}")
    if env_of(svc).get("SQL_PASSWORD") != pg_env.get("POSTGRES_PASSWORD"):
        problems.append(f"{SCHEMA_JOB}: SQL_PASSWORD does not match PostgreSQL's password")
    for env_key, (default_db, schema_dir) in SCHEMA_DIRS.items():
        db = re.escape(server_env.get(env_key, default_db))
        steps = [
            rf"--db\s+{db}\s+create\b",
            rf"--db\s+{db}\s+setup-schema\s+-v\s+0\.0\b",
            rf"--db\s+{db}\s+update-schema\s+-d\s+{re.escape(schema_dir)}(?:\s|$)",
        ]
        positions = [m.start() if (m := re.search(step, script)) else -1 for step in steps]
        if -1 in positions:
            problems.append(f"{SCHEMA_JOB}: missing create/setup/update of {db} ({schema_dir})")
        elif positions != sorted(positions):
            problems.append(f"{SCHEMA_JOB}: create, setup-schema, update-schema out of order")
    if depends_on(svc).get(POSTGRES) != "service_healthy":
        problems.append(f"{SCHEMA_JOB}: does not wait for PostgreSQL to be healthy")
    if svc.get("restart", "no") != "no":
        problems.append(f"{SCHEMA_JOB}: a one-shot job must have restart: 'no'")
    return problems


def check_namespace_job(compose: Compose, expected: dict[str, str]) -> list[str]:
    svc = service(compose, NAMESPACE_JOB)
    server = service(compose, SERVER)
    env = env_of(svc)
    script = script_of(svc)
    problems: list[str] = []
    if image_repo(svc) != "temporalio/admin-tools" or image_tag(svc) != image_tag(server):
        problems.append(f"{NAMESPACE_JOB}: image is not admin-tools of the server's release")
    if not re.search(r"^\s*set -[a-z]*e", script, re.MULTILINE):
        problems.append(f"{NAMESPACE_JOB}: script does not stop on the first error (set -e)")
    for command in ("cluster health", "namespace create", "search-attribute create"):
        if f"temporal operator {command}" not in script:
            problems.append(f"{NAMESPACE_JOB}: does not run `temporal operator {command}`")
    if "already exist" not in script:
        problems.append(f"{NAMESPACE_JOB}: does not tolerate 'already exists'")
    registered = dict(re.findall(rf"\b([A-Z]\w*):({SA_TYPES})\b", script))
    registered.update(re.findall(rf"--name\s+([A-Z]\w*)\s+--type\s+({SA_TYPES})\b", script))
    if registered != expected:
        problems.append(f"{NAMESPACE_JOB}: registers {registered}, expected {expected}")
    if env.get("TEMPORAL_ADDRESS") != f"{SERVER}:{FRONTEND_PORT}":
        problems.append(f"{NAMESPACE_JOB}: TEMPORAL_ADDRESS={env.get('TEMPORAL_ADDRESS')!r}")
    worker_ns = env_of(service(compose, WORKER)).get("TEMPORAL_NAMESPACE")
    if env.get("TEMPORAL_NAMESPACE") != worker_ns or "$TEMPORAL_NAMESPACE" not in script:
        problems.append(f"{NAMESPACE_JOB}: does not set up the worker's namespace {worker_ns!r}")
    if depends_on(svc).get(SERVER) != "service_healthy":
        problems.append(f"{NAMESPACE_JOB}: does not wait for the server to be healthy")
    if svc.get("restart", "no") != "no":
        problems.append(f"{NAMESPACE_JOB}: a one-shot job must have restart: 'no'")
    return problems


def check_ui(compose: Compose) -> list[str]:
    svc = service(compose, UI)
    problems: list[str] = []
    if image_repo(svc) != "temporalio/ui":
        problems.append(f"{UI}: image is not temporalio/ui")
    if env_of(svc).get("TEMPORAL_ADDRESS") != f"{SERVER}:{FRONTEND_PORT}":
        problems.append(f"{UI}: TEMPORAL_ADDRESS does not point at the server")
    if depends_on(svc).get(SERVER) not in {"service_healthy", "service_started"}:
        problems.append(f"{UI}: does not depend on the server")
    return problems


def check_worker(compose: Compose, dockerfile_text: str, env_names: set[str]) -> list[str]:
    svc = service(compose, WORKER)
    env = env_of(svc)
    problems: list[str] = []
    build = svc.get("build")
    spec = {"context": build} if isinstance(build, str) else build or {}
    if str(spec.get("context", "")).rstrip("/") != ".":
        problems.append(f"{WORKER}: is not built from the project root (build: .)")
    elif not (ROOT / str(spec.get("dockerfile", "Dockerfile"))).is_file():
        problems.append(f"{WORKER}: Dockerfile {spec.get('dockerfile', 'Dockerfile')} is missing")
    run = effective_argv(svc, dockerfile_text)
    if run != WORKER_ARGV:
        problems.append(f"{WORKER}: runs {run}, expected {WORKER_ARGV}")
    for key, value in WORKER_ENV.items():
        if env.get(key) != value:
            problems.append(f"{WORKER}: {key}={env.get(key)!r}, expected {value!r}")
    for key in env:
        if key.startswith("TEMPORAL_") and key not in TEMPORAL_CLIENT_ENV:
            problems.append(f"{WORKER}: {key} is not a Temporal client setting")
        if key.startswith("O2A_") and key not in env_names:
            problems.append(f"{WORKER}: {key} is not read by the project")
    outbox = env.get("O2A_OUTBOX_DIR", "")
    if named_volume_at(compose, svc, outbox) is None:
        problems.append(f"{WORKER}: outbox {outbox!r} is not on a named volume")
    if depends_on(svc).get(NAMESPACE_JOB) != "service_completed_successfully":
        problems.append(f"{WORKER}: does not wait for the namespace job to complete")
    if depends_on(svc).get(NATS) != "service_healthy":
        problems.append(f"{WORKER}: does not wait for {NATS} to be healthy")
    return problems


def nats_flags(svc: Service) -> tuple[dict[str, str], list[str]]:
    """The nats-server flags of the service's command (the image's entrypoint runs
    nats-server with them), and the arguments that are not flags nats-server knows here."""
    run = argv(svc.get("command"))
    if run[:1] == ["nats-server"]:
        run = run[1:]
    flags: dict[str, str] = {}
    unknown: list[str] = []
    i = 0
    while i < len(run):
        word = run[i]
        name, eq, value = word.lstrip("-").partition("=")
        key = NATS_FLAGS.get(name) if word.startswith("-") else None
        if key is None:
            unknown.append(word)
        elif key in NATS_BOOLEAN_FLAGS:
            flags[key] = value if eq else "true"
        elif eq:
            flags[key] = value
        elif i + 1 < len(run):
            flags[key] = run[i + 1]
            i += 1
        else:
            unknown.append(word)
        i += 1
    return flags, unknown


def check_nats(compose: Compose) -> list[str]:
    """The official image, JetStream on, its store on a named volume, a healthcheck on the
    monitoring port with a tool the image has, the client port published for the host."""
    svc = service(compose, NATS)
    problems: list[str] = []
    repo, tag, _ = split_image(str(svc.get("image", "")))
    if repo != "nats" or not tag or not re.fullmatch(r"2\.\d+\.\d+(?:-\w+)?", tag):
        problems.append(f"{NATS}: expected the official nats image at a 2.x.y release tag")
    if "entrypoint" in svc:
        problems.append(f"{NATS}: the image's entrypoint (nats-server) is replaced")
    flags, unknown = nats_flags(svc)
    if unknown:
        problems.append(f"{NATS}: command {unknown} is not nats-server flags")
    if "config" in flags:
        problems.append(f"{NATS}: configure by flags here, not with a config file")
    if flags.get("jetstream", "false").lower() not in {"true", "1"}:
        problems.append(f"{NATS}: JetStream is not on (--jetstream)")
    store = flags.get("store_dir")
    if not store or not store.startswith("/"):
        problems.append(f"{NATS}: no absolute JetStream --store_dir")
    elif named_volume_holding(compose, svc, store) is None:
        problems.append(f"{NATS}: JetStream store {store} is not on a named volume")
    port = int(flags.get("port", NATS_PORT))
    if port != NATS_PORT or (NATS_PORT, NATS_PORT) not in published_ports(svc):
        problems.append(f"{NATS}: client port {NATS_PORT} is not served and published")
    check = svc.get("healthcheck") or {}
    test = strings(check.get("test"))
    monitor = flags.get("http_port")
    if not test or check.get("disable"):
        problems.append(f"{NATS}: no healthcheck")
    elif monitor is None:
        problems.append(f"{NATS}: no monitoring port (--http_port) for the healthcheck")
    else:
        text = " ".join(test)
        if not re.search(rf"//(?:127\.0\.0\.1|localhost):{monitor}/healthz\b", text):
            problems.append(f"{NATS}: healthcheck does not ask /healthz on monitoring {monitor}")
        tool = test[1] if test[0] == "CMD" and len(test) > 1 else test[0]
        if test[0] != "CMD-SHELL" and tool not in {"wget", "sh"}:
            problems.append(f"{NATS}: healthcheck runs {tool!r}; the image has busybox wget")
        elif "alpine" not in (tag or ""):
            problems.append(f"{NATS}: the {tag} image is scratch: no shell, no wget")
    if svc.get("restart") not in RESTARTING:
        problems.append(f"{NATS}: no restart policy")
    return problems


def check_nats_clients(compose: Compose) -> list[str]:
    """Every o2a process with O2A_NATS_URL dials the nats service, and they all agree on the
    bus settings; each waits for NATS to be healthy."""
    problems: list[str] = []
    flags, _ = nats_flags(service(compose, NATS))
    port = int(flags.get("port", NATS_PORT))
    seen: dict[str, set[str | None]] = {key: set() for key in BUS_SETTINGS}
    for name in (WORKER, *BUS_SERVICES):
        svc = service(compose, name)
        env = env_of(svc)
        url = env.get("O2A_NATS_URL")
        if not url:
            problems.append(f"{name}: O2A_NATS_URL is not set")
            continue
        parts = urlsplit(url)
        if parts.scheme != "nats" or parts.hostname != NATS or (parts.port or 4222) != port:
            problems.append(f"{name}: O2A_NATS_URL={url!r}, expected nats://{NATS}:{port}")
        if depends_on(svc).get(NATS) != "service_healthy":
            problems.append(f"{name}: does not wait for {NATS} to be healthy")
        for key in BUS_SETTINGS:
            seen[key].add(env.get(key))
    problems.extend(
        f"bus services disagree on {key}: {sorted(map(str, values))}"
        for key, values in seen.items()
        if len(values) > 1
    )
    return problems


def check_o2a_service(
    compose: Compose,
    name: str,
    expected: list[str],
    dockerfile_text: str,
    env_names: set[str],
    temporal: bool,
) -> list[str]:
    """An o2a process built from the Dockerfile: what it runs, its settings (names the project
    reads; Temporal's as the worker has them), when it starts, how it stops and restarts."""
    svc = service(compose, name)
    env = env_of(svc)
    worker_env = env_of(service(compose, WORKER))
    problems: list[str] = []
    build = svc.get("build")
    spec = {"context": build} if isinstance(build, str) else build or {}
    if str(spec.get("context", "")).rstrip("/") != "." or "image" in svc:
        problems.append(f"{name}: is not built from the project root (build: .)")
    run = effective_argv(svc, dockerfile_text)
    if run != expected:
        problems.append(f"{name}: runs {run}, expected {expected}")
    problems.extend(check_o2a_argv(name, run))
    for key in env:
        if key.startswith("TEMPORAL_") and key not in TEMPORAL_CLIENT_ENV:
            problems.append(f"{name}: {key} is not a Temporal client setting")
        if key.startswith("O2A_") and key not in env_names:
            problems.append(f"{name}: {key} is not read by the project")
    if temporal:
        for key in TEMPORAL_SETTINGS:
            if env.get(key) != worker_env.get(key):
                problems.append(
                    f"{name}: {key}={env.get(key)!r}, the worker has {worker_env.get(key)!r}"
                )
        if depends_on(svc).get(NAMESPACE_JOB) != "service_completed_successfully":
            problems.append(f"{name}: does not wait for the namespace job to complete")
    if svc.get("init") is not True:
        problems.append(f"{name}: no init (signals would not reach o2a, zombies not reaped)")
    if not svc.get("stop_grace_period"):
        problems.append(f"{name}: no stop_grace_period to finish work in hand")
    if svc.get("restart") not in RESTARTING:
        problems.append(f"{name}: no restart policy")
    return problems


def check_api(compose: Compose, dockerfile_text: str, env_names: set[str]) -> list[str]:
    """`o2a api` on all interfaces, its port published, behind a profile so that a plain `up`
    needs no keys, with O2A_API_KEYS passed through from the shell and no key in the file."""
    svc = service(compose, API)
    problems = check_o2a_service(
        compose, API, effective_argv(svc, dockerfile_text), dockerfile_text, env_names, True
    )
    run = effective_argv(svc, dockerfile_text)
    if run[:2] != ["o2a", "api"]:
        problems.append(f"{API}: runs {run}, not `o2a api`")
    else:
        with contextlib.redirect_stderr(io.StringIO()):
            try:
                args = o2a_parser().parse_args(run[1:])
            except SystemExit:
                args = argparse.Namespace(host=None, port=None)
        if args.host != "0.0.0.0":
            problems.append(f"{API}: listens on {args.host!r}, not 0.0.0.0: unreachable")
        if args.port is None or (API_PORT, int(args.port)) not in published_ports(svc):
            problems.append(f"{API}: its port {args.port} is not published on {API_PORT}")
    if API_PROFILE not in strings(svc.get("profiles")):
        problems.append(f"{API}: not behind the {API_PROFILE!r} profile")
    env = svc.get("environment") or {}
    keys = "O2A_API_KEYS"
    if isinstance(env, list):
        entries = [str(item) for item in env if str(item).split("=", 1)[0] == keys]
        passed_through = entries == [keys]
    else:
        passed_through = keys in env and env[keys] is None
    if not passed_through:
        problems.append(f"{API}: {keys} must be passed through from the shell, no key baked in")
    return problems


def check_profiles(compose: Compose) -> list[str]:
    """A service that always starts must not need one that starts only with a profile."""
    services = services_of(compose)
    problems: list[str] = []
    for name, svc in services.items():
        if svc.get("profiles"):
            continue
        problems.extend(
            f"{name}: depends on {dep}, which runs only with profile(s) "
            f"{strings(services[dep]['profiles'])}"
            for dep in depends_on(svc)
            if dep in services and services[dep].get("profiles")
        )
    return problems


def check_observability(compose: Compose) -> list[str]:
    """Prometheus scrapes, from its mounted config, the worker's metrics port (set and
    published) and the API's port; Grafana is provisioned with that Prometheus and the
    dashboards directory it mounts; every Temporal client sends OTLP traces to Jaeger."""
    problems: list[str] = []
    services = services_of(compose)
    worker = service(compose, WORKER)
    metrics_port = env_of(worker).get("O2A_METRICS_PORT")
    if metrics_port is None or (int(metrics_port), int(metrics_port)) not in published_ports(
        worker
    ):
        problems.append(f"{WORKER}: O2A_METRICS_PORT {metrics_port} is not set and published")
    scrape = host_path_for(service(compose, PROMETHEUS), PROMETHEUS_CONFIG) or _bind_file(
        service(compose, PROMETHEUS), PROMETHEUS_CONFIG
    )
    if scrape is None or not scrape.is_file():
        problems.append(f"{PROMETHEUS}: {PROMETHEUS_CONFIG} is not a file of the repository")
    else:
        targets = {
            target
            for job in yaml.safe_load(scrape.read_text())["scrape_configs"]
            for config in job["static_configs"]
            for target in config["targets"]
        }
        for name, port in ((WORKER, metrics_port), (API, str(API_PORT))):
            if f"{name}:{port}" not in targets:
                problems.append(f"{PROMETHEUS}: does not scrape {name}:{port} ({targets})")
        problems.extend(
            f"{PROMETHEUS}: scrapes {t}, not a service"
            for t in targets
            if t.split(":")[0] not in services
        )
    problems.extend(_check_grafana(compose))
    jaeger = env_of(service(compose, JAEGER))
    if jaeger.get("COLLECTOR_OTLP_ENABLED") != "true":
        problems.append(f"{JAEGER}: OTLP is not enabled")
    for name in TEMPORAL_CLIENTS:
        endpoint = env_of(service(compose, name)).get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
        if endpoint != f"http://{JAEGER}:{OTLP_GRPC_PORT}":
            problems.append(f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT {endpoint!r} is not {JAEGER}")
    return problems


def _bind_file(svc: Service, target: str) -> Path | None:
    """The repository file bind-mounted exactly at ``target``."""
    return next((ROOT / s for s, t in mounts(svc) if t == target and s.startswith(".")), None)


def _check_grafana(compose: Compose) -> list[str]:
    svc = service(compose, GRAFANA)
    problems: list[str] = []
    provisioning = host_path_for(svc, f"{GRAFANA_PROVISIONING}/x") or ROOT / "missing"
    datasources = provisioning.parent / "datasources"
    urls = [
        d.get("url", "")
        for f in sorted(datasources.glob("*.yml"))
        for d in yaml.safe_load(f.read_text()).get("datasources", [])
    ]
    if not any(urlsplit(u).hostname == PROMETHEUS for u in urls):
        problems.append(f"{GRAFANA}: no provisioned datasource on {PROMETHEUS} ({urls})")
    for provider_file in sorted((provisioning.parent / "dashboards").glob("*.yml")):
        for provider in yaml.safe_load(provider_file.read_text()).get("providers", []):
            path = provider["options"]["path"]
            folder = _bind_file(svc, path)
            if folder is None or not list(folder.glob("*.json")):
                problems.append(f"{GRAFANA}: dashboards path {path} mounts no dashboard JSON")
    if not (provisioning.parent / "dashboards").is_dir():
        problems.append(f"{GRAFANA}: {GRAFANA_PROVISIONING} provisions no dashboards")
    return problems


def check_secrets(compose: Compose) -> list[str]:
    """The codec keys reach each Temporal client as a Compose secret from a file git ignores,
    and O2A_CODEC_KEYS_FILE names where the secret is mounted."""
    problems: list[str] = []
    secret = (compose.get("secrets") or {}).get(CODEC_SECRET) or {}
    source = str(secret.get("file", ""))
    ignored_dirs = [
        line.strip().rstrip("/") + "/"
        for line in (ROOT / ".gitignore").read_text().splitlines()
        if line.strip().endswith("/") and not line.startswith("#")
    ]
    ignored = any(source.removeprefix("./").startswith(d) for d in ignored_dirs)
    if not source.startswith(("./var/", "./deploy/")) or not ignored:
        problems.append(f"secret {CODEC_SECRET}: file {source!r} is not a git-ignored local file")
    for name in TEMPORAL_CLIENTS:
        svc = service(compose, name)
        if CODEC_SECRET not in strings(svc.get("secrets")):
            problems.append(f"{name}: does not get the {CODEC_SECRET} secret")
        if env_of(svc).get("O2A_CODEC_KEYS_FILE") != f"/run/secrets/{CODEC_SECRET}":
            problems.append(f"{name}: O2A_CODEC_KEYS_FILE is not /run/secrets/{CODEC_SECRET}")
    return problems


# --------------------------------------------------------------------------- Dockerfile checkers


def check_dockerfile(text: str, pyproject: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    instructions = dockerfile_instructions(text)
    bases = [
        next(word for word in args.split() if not word.startswith("--"))
        for keyword, args in instructions
        if keyword == "FROM"
    ]
    repo, tag, _ = split_image(bases[-1]) if bases else ("", None, None)
    if repo != "python" or not tag or not tag.startswith("3.11") or "slim" not in tag:
        problems.append(f"base image {bases[-1] if bases else None} is not python:3.11-slim")

    project = pyproject["project"]
    readme = project.get("readme")
    readme_file = readme.get("file") if isinstance(readme, dict) else readme
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = {"pyproject.toml", "requirements.lock", *(p.rstrip("*.") for p in packages)}
    if readme_file:
        needed.add(str(readme_file))
    sources = copy_sources(text)
    problems.extend(
        f"{path} is not copied into the image" for path in sorted(needed - set(sources))
    )

    def index_of(predicate: Callable[[str, str], bool]) -> int:
        return next((i for i, (k, a) in enumerate(instructions) if predicate(k, a)), -1)

    lock_install = index_of(
        lambda k, a: k == "RUN" and bool(re.search(r"pip install\b.*-r\s+requirements\.lock", a))
    )
    project_install = index_of(
        lambda k, a: k == "RUN" and bool(re.search(r"pip install\b.*--no-deps\s+\.(?:\s|$)", a))
    )
    if lock_install == -1 or project_install == -1 or lock_install > project_install:
        problems.append("expected `pip install -r requirements.lock`, then `--no-deps .`")
    else:
        for index in (lock_install, project_install):
            if "--no-cache-dir" not in instructions[index][1]:
                problems.append(f"{instructions[index][1]!r} keeps pip's cache in the image")
        last_copy = max(i for i, (k, _) in enumerate(instructions) if k == "COPY")
        if last_copy > project_install:
            problems.append("the project is installed before all its sources are copied")

    users = [args.split(":")[0] for keyword, args in instructions if keyword == "USER"]
    if not users or users[-1] in {"root", "0"}:
        problems.append("the image runs as root")
    entrypoint, cmd = dockerfile_argv(text)
    if entrypoint + cmd != WORKER_ARGV:
        problems.append(f"the image runs {entrypoint + cmd}, expected {WORKER_ARGV}")
    if WORKER_ARGV[0] not in project.get("scripts", {}):
        problems.append(f"{WORKER_ARGV[0]} is not a console script of the project")
    outbox = WORKER_ENV["O2A_OUTBOX_DIR"]
    prepared = [
        args
        for keyword, args in instructions
        if keyword == "RUN" and "mkdir" in args and "chown" in args and outbox in args
    ]
    if not prepared:
        problems.append(f"{outbox} is not created and chowned for the unprivileged user")
    return problems


def check_dockerignore(patterns: list[str], sources: list[str]) -> list[str]:
    problems = [
        f"{path} is sent to the build" for path in MUST_IGNORE if not is_ignored(path, patterns)
    ]
    for source in sources:
        probe = f"{source}/module.py" if (ROOT / source).is_dir() else source
        if is_ignored(source, patterns) or is_ignored(probe, patterns):
            problems.append(f"{source} is copied by the Dockerfile but excluded by .dockerignore")
    return problems


# --------------------------------------------------------------------------- the real files


@pytest.fixture
def compose() -> Compose:
    return load_compose()


@pytest.fixture
def dockerfile_text() -> str:
    return DOCKERFILE_PATH.read_text(encoding="utf-8")


def test_compose_defines_the_expected_services(compose: Compose) -> None:
    assert set(services_of(compose)) == {
        POSTGRES,
        SCHEMA_JOB,
        SERVER,
        NAMESPACE_JOB,
        UI,
        NATS,
        WORKER,
        LISTENER,
        SIMULATOR,
        API,
        PROMETHEUS,
        GRAFANA,
        JAEGER,
    }


def test_only_the_api_needs_a_profile(compose: Compose) -> None:
    profiled = {name for name, svc in services_of(compose).items() if svc.get("profiles")}
    assert profiled == {API}
    assert check_profiles(compose) == []


def test_images_are_pinned_and_current(compose: Compose) -> None:
    assert check_images(compose) == []


def test_dependencies_are_valid_and_acyclic(compose: Compose) -> None:
    assert check_dependencies(compose) == []


def test_volumes_are_declared_and_bind_sources_exist(compose: Compose) -> None:
    assert check_volumes(compose) == []


def test_shell_dollars_are_escaped_for_compose(compose: Compose) -> None:
    assert check_interpolation(compose) == []


def test_frontend_and_ui_ports_are_published(compose: Compose) -> None:
    assert check_ports(compose) == []


def test_postgres(compose: Compose) -> None:
    assert check_postgres(compose) == []


def test_server(compose: Compose) -> None:
    assert check_server(compose) == []


def test_schema_job_sets_up_both_databases(compose: Compose) -> None:
    assert check_schema_job(compose) == []


def test_namespace_job_registers_the_search_attributes(compose: Compose) -> None:
    assert check_namespace_job(compose, SEARCH_ATTRIBUTES) == []


def test_search_attributes_match_the_project() -> None:
    assert project_search_attributes() == SEARCH_ATTRIBUTES


def test_ui(compose: Compose) -> None:
    assert check_ui(compose) == []


def test_worker(compose: Compose, dockerfile_text: str) -> None:
    assert check_worker(compose, dockerfile_text, project_env_names()) == []


def test_worker_env_names_are_read_by_the_project() -> None:
    names = project_env_names()
    assert {key for key in WORKER_ENV if key.startswith("O2A_")} <= names
    assert {key for key in WORKER_ENV if key.startswith("TEMPORAL_")} <= TEMPORAL_CLIENT_ENV


def test_o2a_services_env_names_are_read_by_the_project(compose: Compose) -> None:
    names = project_env_names()
    assert {"O2A_NATS_URL", "O2A_SUBJECT_PREFIX", "O2A_API_KEYS"} <= names
    for name in (WORKER, *BUS_SERVICES, API):
        env = env_of(service(compose, name))
        assert {key for key in env if key.startswith("O2A_")} <= names, name
        assert {key for key in env if key.startswith("TEMPORAL_")} <= TEMPORAL_CLIENT_ENV, name


def test_nats(compose: Compose) -> None:
    assert check_nats(compose) == []


def test_nats_runs_jetstream_on_its_volume(compose: Compose) -> None:
    svc = service(compose, NATS)
    flags, unknown = nats_flags(svc)
    assert unknown == []
    assert flags["jetstream"] == "true"
    assert named_volume_holding(compose, svc, flags["store_dir"]) == "nats-data"
    assert "nats-data" in (compose.get("volumes") or {})
    assert svc["healthcheck"]["test"]


def test_nats_clients_dial_the_nats_service(compose: Compose) -> None:
    assert check_nats_clients(compose) == []


@pytest.mark.parametrize(("name", "spec"), BUS_SERVICES.items(), ids=list(BUS_SERVICES))
def test_bus_service(
    name: str, spec: tuple[list[str], bool], compose: Compose, dockerfile_text: str
) -> None:
    expected, temporal = spec
    problems = check_o2a_service(
        compose, name, expected, dockerfile_text, project_env_names(), temporal
    )
    assert problems == []


def test_simulator_talks_to_the_bus_only(compose: Compose) -> None:
    svc = service(compose, SIMULATOR)
    assert set(depends_on(svc)) == {NATS}
    assert not {key for key in env_of(svc) if key.startswith("TEMPORAL_")}


def test_prometheus_grafana_and_jaeger_see_the_o2a_services(compose: Compose) -> None:
    assert check_observability(compose) == []


def test_codec_keys_are_a_secret_from_an_ignored_file(compose: Compose) -> None:
    assert check_secrets(compose) == []


def test_api(compose: Compose, dockerfile_text: str) -> None:
    assert check_api(compose, dockerfile_text, project_env_names()) == []


def test_o2a_commands_are_real_subcommands(compose: Compose, dockerfile_text: str) -> None:
    for name in (WORKER, *BUS_SERVICES, API):
        run = effective_argv(service(compose, name), dockerfile_text)
        assert check_o2a_argv(name, run) == []
    assert {"worker", "api"} <= o2a_subcommands()


def test_dockerfile(dockerfile_text: str) -> None:
    assert check_dockerfile(dockerfile_text, load_pyproject()) == []


def test_dockerignore(dockerfile_text: str) -> None:
    assert check_dockerignore(load_dockerignore(), copy_sources(dockerfile_text)) == []


# --------------------------------------------------------------------------- the checks can fail


def _set(path: str, value: Any) -> Callable[[Compose], None]:
    """Mutator: set a dotted path under services (a value of None deletes the key)."""

    def mutate(compose: Compose) -> None:
        *parents, last = path.split(".")
        node = compose["services"]
        for part in parents:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return mutate


def _script(name: str, old: str, new: str) -> Callable[[Compose], None]:
    """Mutator: edit the script a service runs (its last command string)."""

    def mutate(compose: Compose) -> None:
        command = compose["services"][name]["command"]
        assert old in command[-1], f"mutation target {old!r} not found"
        command[-1] = command[-1].replace(old, new)

    return mutate


def _env(name: str, key: str, value: str | None) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        env = compose["services"][name]["environment"]
        if value is None:
            del env[key]
        else:
            env[key] = value

    return mutate


def _command(name: str, old: str, new: str | None) -> Callable[[Compose], None]:
    """Mutator: replace (None: remove) one argument of a service's argv command."""

    def mutate(compose: Compose) -> None:
        command = compose["services"][name]["command"]
        assert old in command, f"mutation target {old!r} not found"
        index = command.index(old)
        command[index : index + 1] = [] if new is None else [new]

    return mutate


def _set_secret(path: str) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        compose["secrets"][CODEC_SECRET]["file"] = path

    return mutate


def _drop_volume(name: str) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        del compose["volumes"][name]

    return mutate


def _rename_env(name: str, old: str, new: str) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        env = compose["services"][name]["environment"]
        env[new] = env.pop(old)

    return mutate


def _run_check(check: str, compose: Compose, dockerfile_text: str) -> list[str]:
    checks: dict[str, Callable[[], list[str]]] = {
        "images": lambda: check_images(compose),
        "dependencies": lambda: check_dependencies(compose),
        "volumes": lambda: check_volumes(compose),
        "interpolation": lambda: check_interpolation(compose),
        "ports": lambda: check_ports(compose),
        "postgres": lambda: check_postgres(compose),
        "server": lambda: check_server(compose),
        "schema": lambda: check_schema_job(compose),
        "namespace": lambda: check_namespace_job(compose, SEARCH_ATTRIBUTES),
        "ui": lambda: check_ui(compose),
        "worker": lambda: check_worker(compose, dockerfile_text, project_env_names()),
        "nats": lambda: check_nats(compose),
        "clients": lambda: check_nats_clients(compose),
        "api": lambda: check_api(compose, dockerfile_text, project_env_names()),
        "profiles": lambda: check_profiles(compose),
        "observability": lambda: check_observability(compose),
        "secrets": lambda: check_secrets(compose),
    }

    def bus_service(name: str) -> Callable[[], list[str]]:
        run, temporal = BUS_SERVICES[name]
        env_names = project_env_names()
        return lambda: check_o2a_service(compose, name, run, dockerfile_text, env_names, temporal)

    checks.update({name.removeprefix("o2a-"): bus_service(name) for name in BUS_SERVICES})
    return checks[check]()


COMPOSE_MUTATIONS: list[tuple[str, str, Callable[[Compose], None], str]] = [
    ("images", "auto-setup", _set(f"{SERVER}.image", "temporalio/auto-setup:1.29.7"), "deprec"),
    ("images", "untagged", _set(f"{UI}.image", "temporalio/ui"), "not pinned"),
    ("images", "latest", _set(f"{POSTGRES}.image", "postgres:latest"), "latest"),
    ("images", "no-image-no-build", _set(f"{WORKER}.build", None), "neither"),
    (
        "dependencies",
        "unknown-target",
        _set(f"{WORKER}.depends_on", {"temporal-setup": {"condition": "service_started"}}),
        "unknown service",
    ),
    (
        "dependencies",
        "bad-condition",
        _set(f"{UI}.depends_on", {SERVER: {"condition": "service_ready"}}),
        "invalid condition",
    ),
    (
        "dependencies",
        "cycle",
        _set(f"{POSTGRES}.depends_on", {WORKER: {"condition": "service_started"}}),
        "cycle",
    ),
    ("dependencies", "healthy-without-check", _set(f"{SERVER}.healthcheck", None), "healthcheck"),
    ("dependencies", "job-restarts", _set(f"{SCHEMA_JOB}.restart", "always"), "restarts"),
    ("volumes", "undeclared", _drop_volume("o2a-outbox"), "not declared"),
    (
        "volumes",
        "missing-bind-source",
        _set(f"{SERVER}.volumes", ["./deploy/nothing-here:/etc/temporal/config/dynamicconfig"]),
        "does not exist",
    ),
    ("interpolation", "shell-dollar", _script(SCHEMA_JOB, "$$tries", "$tries"), "unescaped"),
    ("ports", "ui-unpublished", _set(f"{UI}.ports", None), str(UI_PORT)),
    ("ports", "frontend-remapped", _set(f"{SERVER}.ports", ["17233:7233"]), str(FRONTEND_PORT)),
    ("postgres", "no-data-volume", _set(f"{POSTGRES}.volumes", None), "named volume"),
    ("server", "loopback", _env(SERVER, "BIND_ON_IP", "127.0.0.1"), "BIND_ON_IP"),
    ("server", "wrong-password", _env(SERVER, "POSTGRES_PWD", "secret"), "POSTGRES_PWD"),
    ("server", "wrong-plugin", _env(SERVER, "DB", "postgresql"), "DB="),
    (
        "server",
        "dynamic-config-not-shipped",
        _env(SERVER, "DYNAMIC_CONFIG_FILE_PATH", "config/dynamicconfig/docker.yaml"),
        "dynamic config",
    ),
    (
        "server",
        "does-not-wait-for-schema",
        _set(f"{SERVER}.depends_on", {SCHEMA_JOB: {"condition": "service_started"}}),
        "schema job",
    ),
    ("schema", "no-errexit", _script(SCHEMA_JOB, "set -eu", "set -u"), "set -e"),
    (
        "schema",
        "visibility-skipped",
        _script(SCHEMA_JOB, "--db temporal_visibility update-schema", "--db x update-schema"),
        "temporal_visibility",
    ),
    (
        "schema",
        "schema-dirs-swapped",
        _script(SCHEMA_JOB, "v12/temporal/versioned", "v12/visibility/versioned"),
        "missing",
    ),
    ("schema", "wrong-host", _script(SCHEMA_JOB, "--ep postgresql", "--ep localhost"), "--ep"),
    ("schema", "wrong-password", _env(SCHEMA_JOB, "SQL_PASSWORD", "nope"), "SQL_PASSWORD"),
    ("schema", "version-skew", _set(f"{SCHEMA_JOB}.image", "temporalio/admin-tools:1.31.0"), "!="),
    (
        "schema",
        "does-not-wait-for-postgres",
        _set(f"{SCHEMA_JOB}.depends_on", {POSTGRES: {"condition": "service_started"}}),
        "healthy",
    ),
    ("namespace", "missing-attribute", _script(NAMESPACE_JOB, "CustomerId:Keyword ", ""), "Custo"),
    (
        "namespace",
        "wrong-attribute-type",
        _script(NAMESPACE_JOB, "OrderRevision:Int", "OrderRevision:Keyword"),
        "OrderRevision",
    ),
    (
        "namespace",
        "no-namespace-create",
        _script(NAMESPACE_JOB, "operator namespace create", "operator namespace describe"),
        "namespace create",
    ),
    ("namespace", "intolerant", _script(NAMESPACE_JOB, "already exist", "exists"), "already"),
    ("namespace", "other-namespace", _env(WORKER, "TEMPORAL_NAMESPACE", "o2a"), "namespace"),
    (
        "namespace",
        "wrong-address",
        _env(NAMESPACE_JOB, "TEMPORAL_ADDRESS", "localhost:7233"),
        "ADDR",
    ),
    ("ui", "ui-address", _env(UI, "TEMPORAL_ADDRESS", "127.0.0.1:7233"), "TEMPORAL_ADDRESS"),
    ("worker", "built-elsewhere", _set(f"{WORKER}.build", "./docker"), "build"),
    ("worker", "doubled-argv", _set(f"{WORKER}.entrypoint", ["o2a"]), "runs"),
    ("worker", "wrong-command", _set(f"{WORKER}.command", "o2a server"), "runs"),
    ("worker", "env-typo", _rename_env(WORKER, "O2A_OUTBOX_DIR", "O2A_OUTBOX_PATH"), "OUTBOX"),
    ("worker", "missing-queue", _env(WORKER, "O2A_TASK_QUEUE", None), "O2A_TASK_QUEUE"),
    ("worker", "local-address", _env(WORKER, "TEMPORAL_ADDRESS", "localhost:7233"), "ADDRESS"),
    ("worker", "outbox-not-on-volume", _set(f"{WORKER}.volumes", None), "named volume"),
    (
        "worker",
        "starts-too-early",
        _set(f"{WORKER}.depends_on", {NAMESPACE_JOB: {"condition": "service_started"}}),
        "namespace job",
    ),
    ("worker", "no-nats-url", _env(WORKER, "O2A_NATS_URL", None), "O2A_NATS_URL"),
    (
        "worker",
        "does-not-wait-for-nats",
        _set(f"{WORKER}.depends_on.{NATS}", {"condition": "service_started"}),
        "healthy",
    ),
    ("images", "nats-untagged", _set(f"{NATS}.image", "nats"), "not pinned"),
    ("nats", "jetstream-off", _command(NATS, "--jetstream", None), "JetStream"),
    ("nats", "jetstream-false", _command(NATS, "--jetstream", "--jetstream=false"), "JetStream"),
    ("nats", "store-not-on-volume", _set(f"{NATS}.volumes", None), "named volume"),
    (
        "nats",
        "store-elsewhere",
        _command(NATS, "--store_dir=/data", "--store_dir=/tmp/jetstream"),
        "named volume",
    ),
    ("nats", "no-store-dir", _command(NATS, "--store_dir=/data", None), "store_dir"),
    ("nats", "unknown-flag", _command(NATS, "--jetstream", "--jetstreams"), "not nats-server"),
    ("nats", "config-file", _command(NATS, "--jetstream", "-c=/etc/nats.conf"), "config"),
    ("nats", "no-healthcheck", _set(f"{NATS}.healthcheck", None), "healthcheck"),
    ("dependencies", "nats-healthy-without-check", _set(f"{NATS}.healthcheck", None), "healthy"),
    ("nats", "no-monitoring-port", _command(NATS, "--http_port=8222", None), "monitoring"),
    ("nats", "health-other-port", _command(NATS, "--http_port=8222", "-m=8223"), "/healthz"),
    ("nats", "scratch-image-wget", _set(f"{NATS}.image", "nats:2.14.5"), "scratch"),
    ("nats", "other-image", _set(f"{NATS}.image", "bitnami/nats:2.14.5"), "official"),
    ("nats", "unpublished", _set(f"{NATS}.ports", None), str(NATS_PORT)),
    ("nats", "other-client-port", _command(NATS, "--port=4222", "--port=4333"), str(NATS_PORT)),
    ("nats", "no-restart", _set(f"{NATS}.restart", None), "restart"),
    ("volumes", "nats-volume-undeclared", _drop_volume("nats-data"), "not declared"),
    (
        "clients",
        "worker-dials-localhost",
        _env(WORKER, "O2A_NATS_URL", "nats://localhost:4222"),
        "O2A_NATS_URL",
    ),
    ("clients", "simulator-without-bus", _env(SIMULATOR, "O2A_NATS_URL", None), "O2A_NATS_URL"),
    ("clients", "prefix-disagrees", _env(LISTENER, "O2A_SUBJECT_PREFIX", "lab"), "PREFIX"),
    (
        "clients",
        "listener-before-nats",
        _set(f"{LISTENER}.depends_on.{NATS}", {"condition": "service_started"}),
        "healthy",
    ),
    ("listener", "wrong-subcommand", _set(f"{LISTENER}.command", ["o2a", "listener"]), "runs"),
    ("listener", "not-o2a", _set(f"{LISTENER}.command", ["python", "-m", "o2a"]), "runs"),
    ("listener", "no-temporal", _env(LISTENER, "TEMPORAL_ADDRESS", None), "TEMPORAL_ADDRESS"),
    ("listener", "other-queue", _env(LISTENER, "O2A_TASK_QUEUE", "other"), "O2A_TASK_QUEUE"),
    (
        "listener",
        "env-typo",
        _rename_env(LISTENER, "O2A_NATS_URL", "O2A_NATS"),
        "O2A_NATS is not read",
    ),
    (
        "listener",
        "starts-too-early",
        _set(f"{LISTENER}.depends_on.{NAMESPACE_JOB}", {"condition": "service_started"}),
        "namespace job",
    ),
    ("listener", "own-image", _set(f"{LISTENER}.image", "o2a:1.0"), "build"),
    ("simulator", "no-init", _set(f"{SIMULATOR}.init", None), "init"),
    ("simulator", "no-grace", _set(f"{SIMULATOR}.stop_grace_period", None), "grace"),
    ("simulator", "no-restart", _set(f"{SIMULATOR}.restart", "no"), "restart"),
    ("simulator", "runs-the-worker", _set(f"{SIMULATOR}.command", None), "runs"),
    ("api", "baked-key", _env(API, "O2A_API_KEYS", "s3cret:integrator"), "baked"),
    ("api", "no-keys", _env(API, "O2A_API_KEYS", None), "O2A_API_KEYS"),
    ("api", "loopback", _command(API, "0.0.0.0", "127.0.0.1"), "0.0.0.0"),
    ("api", "bad-option", _command(API, "--host", "--hots"), "not an o2a command line"),
    ("api", "port-unpublished", _set(f"{API}.ports", ["8000:8001"]), str(API_PORT)),
    ("api", "no-profile", _set(f"{API}.profiles", None), "profile"),
    ("api", "other-namespace", _env(API, "TEMPORAL_NAMESPACE", "o2a"), "TEMPORAL_NAMESPACE"),
    (
        "profiles",
        "core-needs-the-api",
        _set(f"{WORKER}.depends_on.{API}", {"condition": "service_started"}),
        "profile",
    ),
    ("observability", "metrics-unpublished", _set(f"{WORKER}.ports", None), "O2A_METRICS_PORT"),
    ("observability", "no-metrics-port", _env(WORKER, "O2A_METRICS_PORT", None), "not set"),
    (
        "observability",
        "scrape-config-missing",
        _set(f"{PROMETHEUS}.volumes", [f"./deploy/nothing.yml:{PROMETHEUS_CONFIG}:ro"]),
        "not a file",
    ),
    (
        "observability",
        "other-metrics-port",
        _env(WORKER, "O2A_METRICS_PORT", "9100"),
        f"does not scrape {WORKER}:9100",
    ),
    ("observability", "no-provisioning", _set(f"{GRAFANA}.volumes", []), "datasource"),
    ("observability", "no-otlp", _env(JAEGER, "COLLECTOR_OTLP_ENABLED", "false"), "OTLP"),
    (
        "observability",
        "traces-elsewhere",
        _env(WORKER, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317"),
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ),
    ("secrets", "no-secret", _set(f"{LISTENER}.secrets", None), CODEC_SECRET),
    ("secrets", "wrong-path", _env(API, "O2A_CODEC_KEYS_FILE", "/keys.json"), "/run/secrets"),
    ("secrets", "committed-keys", _set_secret("./deploy/prometheus/prometheus.yml"), "ignored"),
]


@pytest.mark.parametrize(
    ("check", "mutate", "expected"),
    [
        pytest.param(check, mutate, expected, id=f"{check}-{name}")
        for check, name, mutate, expected in COMPOSE_MUTATIONS
    ],
)
def test_checker_catches_compose_mistake(
    check: str, mutate: Callable[[Compose], None], expected: str, dockerfile_text: str
) -> None:
    broken = copy.deepcopy(load_compose())
    mutate(broken)
    problems = _run_check(check, broken, dockerfile_text)
    assert any(expected in problem for problem in problems), problems


DOCKERFILE_MUTATIONS: list[tuple[str, str, str, str]] = [
    ("latest-base", "FROM python:3.11-slim", "FROM python:latest", "base image"),
    ("no-readme", "COPY pyproject.toml README.md ./", "COPY pyproject.toml ./", "README.md"),
    ("no-starters", "COPY starters/ starters/\n", "", "starters"),
    ("deps-resolved-again", "--no-deps .", ".", "--no-deps"),
    ("pip-cache-kept", "pip install --no-cache-dir -r", "pip install -r", "cache"),
    ("runs-as-root", "USER o2a\n", "", "root"),
    ("wrong-command", 'CMD ["o2a", "worker"]', 'CMD ["o2a", "server"]', "runs"),
    (
        "entrypoint-doubles",
        'CMD ["o2a", "worker"]',
        'ENTRYPOINT ["o2a"]\nCMD ["o2a", "worker"]',
        "runs",
    ),
    ("no-outbox-dir", "&& mkdir -p /var/lib/o2a/outbox", "", "chowned"),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(old, new, expected, id=name)
        for name, old, new, expected in DOCKERFILE_MUTATIONS
    ],
)
def test_checker_catches_dockerfile_mistake(
    old: str, new: str, expected: str, dockerfile_text: str
) -> None:
    assert old in dockerfile_text, f"mutation target {old!r} not found"
    problems = check_dockerfile(dockerfile_text.replace(old, new), load_pyproject())
    assert any(expected in problem for problem in problems), problems


def test_checker_catches_install_before_sources_copied(dockerfile_text: str) -> None:
    moved = "COPY starters/ starters/\n"
    broken = dockerfile_text.replace(moved, "").replace("USER o2a\n", f"USER o2a\n{moved}")
    problems = check_dockerfile(broken, load_pyproject())
    assert any("before all its sources" in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(lambda p: [x for x in p if x != ".venv"], ".venv", id="venv-sent"),
        pytest.param(lambda p: [x for x in p if "pyc" not in x], ".pyc", id="pyc-sent"),
        pytest.param(lambda p: [x for x in p if x != "tests"], "tests/", id="tests-sent"),
        pytest.param(lambda p: [*p, "*.md"], "README.md", id="readme-excluded"),
        pytest.param(lambda p: [*p, "o2a"], "o2a", id="package-excluded"),
        pytest.param(lambda p: [*p, "*.lock"], "requirements.lock", id="lock-excluded"),
    ],
)
def test_checker_catches_dockerignore_mistake(
    change: Callable[[list[str]], list[str]], expected: str, dockerfile_text: str
) -> None:
    problems = check_dockerignore(change(load_dockerignore()), copy_sources(dockerfile_text))
    assert any(expected in problem for problem in problems), problems


def test_dockerignore_negation_and_nesting() -> None:
    assert is_ignored("a/b/__pycache__/c.pyc", ["**/__pycache__"])
    assert not is_ignored("o2a/models.py", ["**/__pycache__", "*.pyc"])
    assert not is_ignored("README.md", ["*.md", "!README.md"])


# --------------------------------------------------------------------------- the job scripts run
# The one-shot jobs' scripts are run by the local POSIX sh against stub `temporal`,
# `temporal-sql-tool`, `nc`, `getent` and `sleep` commands that record their arguments.

SH = shutil.which("sh")
needs_sh = pytest.mark.skipif(SH is None, reason="no POSIX sh to run the job scripts")

TEMPORAL_STUB = """#!/bin/sh
echo "$*" >> "$STUB_LOG"
case "$*" in
  "operator cluster health"*) exit 0 ;;
  "operator namespace describe"*) [ -z "${STUB_NS_MISSING:-}" ]; exit $? ;;
  "operator namespace create"*) exit 0 ;;
  "operator search-attribute create"*)
    prev=""
    for arg in "$@"; do
      if [ "$prev" = "--name" ]; then name="$arg"; fi
      prev="$arg"
    done
    case " ${STUB_SA_EXISTING:-} " in *" $name "*)
      echo "Error: unable to add search attributes: Search attribute $name already exists." >&2
      exit 1 ;;
    esac
    case " ${STUB_SA_CONFLICT:-} " in *" $name "*)
      echo "Error: search attribute $name already exists and has different type Keyword" >&2
      exit 1 ;;
    esac
    if [ -n "${STUB_SA_DOWN:-}" ]; then
      echo "Error: Namespace default is not found." >&2
      exit 1
    fi
    exit 0 ;;
esac
echo "unexpected: $*" >&2
exit 2
"""
LOGGING_STUB = """#!/bin/sh
echo "$*" >> "$STUB_LOG"
if [ -n "${STUB_FAIL_ON:-}" ]; then
  case "$*" in *"$STUB_FAIL_ON"*) echo "Error: connection refused" >&2; exit 1 ;; esac
fi
exit 0
"""
GETENT_STUB = """#!/bin/sh
echo "172.18.0.5      STREAM $2"
echo "172.18.0.5      DGRAM  "
"""


def run_job(
    name: str, tmp_path: Path, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    svc = service(load_compose(), name)
    run = argv(svc.get("entrypoint")) + argv(svc.get("command"))
    assert run[:2] == ["/bin/sh", "-c"] and len(run) == 3, run
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stubs = {
        "temporal": TEMPORAL_STUB,
        "temporal-sql-tool": LOGGING_STUB,
        "nc": LOGGING_STUB,
        "getent": GETENT_STUB,
        "sleep": "#!/bin/sh\nexit 0\n",
    }
    for tool, body in stubs.items():
        (bin_dir / tool).write_text(body, encoding="utf-8")
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    env = {
        **env_of(svc),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "STUB_LOG": str(log),
        **(extra_env or {}),
    }
    result = subprocess.run(
        [str(SH), "-c", run[2].replace("$$", "$")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, log.read_text(encoding="utf-8").splitlines()


def registered_attributes(calls: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for call in calls:
        if call.startswith("operator search-attribute create"):
            words = call.split()
            found[words[words.index("--name") + 1]] = words[words.index("--type") + 1]
    return found


@needs_sh
def test_schema_job_runs_sql_tool_in_order(tmp_path: Path) -> None:
    result, calls = run_job(SCHEMA_JOB, tmp_path)
    assert result.returncode == 0, result.stderr
    sql_calls = [call for call in calls if "--plugin" in call]
    common = "--plugin postgres12 --ep postgresql -p 5432 -u temporal"
    assert sql_calls == [
        f"{common} --db temporal create",
        f"{common} --db temporal setup-schema -v 0.0",
        f"{common} --db temporal update-schema -d {SCHEMA_ROOT}/temporal/versioned",
        f"{common} --db temporal_visibility create",
        f"{common} --db temporal_visibility setup-schema -v 0.0",
        f"{common} --db temporal_visibility update-schema -d {SCHEMA_ROOT}/visibility/versioned",
    ]


@needs_sh
def test_schema_job_fails_when_a_step_fails(tmp_path: Path) -> None:
    result, calls = run_job(SCHEMA_JOB, tmp_path, {"STUB_FAIL_ON": "temporal setup-schema"})
    assert result.returncode != 0
    assert not any("update-schema" in call for call in calls), "kept going after a failure"


@needs_sh
def test_namespace_job_creates_namespace_and_attributes(tmp_path: Path) -> None:
    result, calls = run_job(NAMESPACE_JOB, tmp_path, {"STUB_NS_MISSING": "1"})
    assert result.returncode == 0, result.stderr
    creates = [call for call in calls if call.startswith("operator namespace create")]
    assert creates == [
        "operator namespace create --address 172.18.0.5:7233 --namespace default --retention 72h"
    ]
    assert registered_attributes(calls) == SEARCH_ATTRIBUTES
    assert all("--namespace default" in call for call in calls if "search-attribute" in call)


@needs_sh
def test_namespace_job_is_idempotent(tmp_path: Path) -> None:
    existing = " ".join(SEARCH_ATTRIBUTES)
    result, calls = run_job(NAMESPACE_JOB, tmp_path, {"STUB_SA_EXISTING": existing})
    assert result.returncode == 0, result.stderr
    assert not any(call.startswith("operator namespace create") for call in calls)


@needs_sh
def test_namespace_job_fails_on_a_type_conflict(tmp_path: Path) -> None:
    result, _ = run_job(NAMESPACE_JOB, tmp_path, {"STUB_SA_CONFLICT": "OrderRevision"})
    assert result.returncode != 0
    assert "different type" in result.stderr


@needs_sh
def test_namespace_job_gives_up_when_registration_keeps_failing(tmp_path: Path) -> None:
    result, calls = run_job(NAMESPACE_JOB, tmp_path, {"STUB_SA_DOWN": "1"})
    assert result.returncode != 0
    assert len([call for call in calls if "search-attribute create" in call]) > 1, "no retry"
