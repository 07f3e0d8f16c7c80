"""The `o2a` command line: a thin door over the application service (o2a.service).

Each command parses its arguments, calls the service and prints what it returns (wording in
o2a.cli_format). Bad input: one line, exit 2, nothing started. Unknown order, conflict or
refusal: one line, exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn

from temporalio.service import RPCError

from o2a import cli_format
from o2a.api.auth import KEYS_VARIABLE
from o2a.api.server import DEFAULT_PORT as API_PORT
from o2a.bus import DEFAULT_URL as NATS_URL
from o2a.bus import BusConnection, BusUnavailable, Subjects
from o2a.client import ConnectionFailed, connect
from o2a.config import Settings, sticky_cache
from o2a.encryption import DEFAULT_KEYS_FILE, KEYS_FILE_VARIABLE, add_key
from o2a.errors import InputError, NoWorkerError, OrderConflictError, UnknownOrderError
from o2a.logs import configure_logging
from o2a.metrics import DEFAULT_PORT as METRICS_PORT
from o2a.metrics import metrics_port
from o2a.models import OperatorActionView, OrderState, RevisionView
from o2a.nats_server import DEFAULT_PORT as NATS_PORT
from o2a.nats_server import NatsServer
from o2a.server import ServerError
from o2a.service import OrderIntake, OrderService, RequestReceipt
from o2a.telemetry import configure_tracing, shutdown_tracing
from o2a.versioning import DEFAULT_DEPLOYMENT_NAME, deployment_config, worker_version
from workflows.contracts.customer_order import OperatorRequest

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SUCCESSFUL_OUTCOMES = frozenset({"accepted", "cancelled"})
OPERATOR_COMMANDS = {
    "resolve": "retry the failed components of an order (a failed undo included)",
    "suspend": "running steps finish, no new step starts",
    "resume": "carry on after a suspend",
    "abort": "end the order at once, without compensation",
}


def _parser() -> argparse.ArgumentParser:
    os_user = _os_user()
    parser = argparse.ArgumentParser(
        prog="o2a",
        description="Telecom customer orders as durable Temporal workflows. Bad input exits 2; "
        "an unknown order, a conflict or a refused request exits 1.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = sub.add_parser("server", help="embedded Temporal dev server (SQLite, Web UI)")
    up = sub.add_parser("up", help="server and worker together (make run)")
    for p in (server, up):
        p.add_argument("--db", type=Path, default=Path("var/temporal.db"))
        p.add_argument("--port", type=int, default=7233)
        p.add_argument("--ui-port", type=int, default=8233)
        p.add_argument("--nats-port", type=int, default=NATS_PORT)
        p.add_argument(
            "--no-nats",
            action="store_true",
            help="no embedded NATS server (also when O2A_NATS_URL names one of yours)",
        )
    up.add_argument("--api-port", type=int, default=API_PORT)
    up.add_argument(
        "--metrics-port",
        default=str(METRICS_PORT),
        help=f"the worker's Prometheus endpoint (default {METRICS_PORT})",
    )

    api = sub.add_parser("api", help=f"the HTTP API (keys and roles from {KEYS_VARIABLE})")
    api.add_argument("--port", type=int, default=API_PORT)
    api.add_argument("--host", default="127.0.0.1")

    worker = sub.add_parser("worker", help="run the o2a worker")
    worker.add_argument("--processes", type=int, default=1)
    worker.add_argument(
        "--max-cached-workflows",
        type=int,
        help="sticky cache: orders kept in memory between their tasks, 1 or more "
        "(default O2A_MAX_CACHED_WORKFLOWS, else 250)",
    )
    worker.add_argument(
        "--metrics-port",
        help="serve Prometheus metrics on this port (default O2A_METRICS_PORT, else none; "
        "with --processes N, N ports from it)",
    )
    worker.add_argument(
        "--build-id",
        help="run as this version of the Worker Deployment, orders pinned to it "
        "(default O2A_BUILD_ID, else unversioned)",
    )
    worker.add_argument(
        "--deployment-name",
        help=f"the Worker Deployment (default O2A_DEPLOYMENT_NAME, else {DEFAULT_DEPLOYMENT_NAME})",
    )

    move = sub.add_parser(
        "move",
        help="pin a running order and its children to another build of the Worker Deployment, "
        "once their histories replay on this code (run it from that build)",
    )
    move.add_argument("order")
    move.add_argument("--to", required=True, metavar="BUILD_ID", help="the build to move to")
    move.add_argument(
        "--deployment-name",
        help=f"the Worker Deployment (default O2A_DEPLOYMENT_NAME, else {DEFAULT_DEPLOYMENT_NAME})",
    )

    plan = sub.add_parser("plan", help="an order's orchestration plan, starting nothing")
    plan.add_argument("file", type=Path)
    plan.add_argument("--json", action="store_true")

    submit = sub.add_parser("submit", help="parse, validate and start an order")
    submit.add_argument("file", type=Path)
    submit.add_argument(
        "--wait",
        action="store_true",
        help="wait until the order needs someone (failed, suspended) or has ended",
    )

    status = sub.add_parser("status", help="an order's state, lines and components")
    status.add_argument("order")
    status.add_argument("--json", action="store_true")

    list_ = sub.add_parser("list", help="orders, newest first, from Temporal visibility")
    list_.add_argument("--state", choices=[s.value for s in OrderState])
    list_.add_argument("--limit", type=int, default=50)

    revise = sub.add_parser("revise", help="signal a revision (the whole order, higher revision)")
    revise.add_argument("file", type=Path)
    how = revise.add_mutually_exclusive_group()
    how.add_argument("--wait", action="store_true", help="wait for the order's outcome")
    how.add_argument(
        "--dry-run", action="store_true", help="show the compensation it would run, send nothing"
    )
    revise.add_argument("--json", action="store_true", help="with --dry-run: the preview as JSON")

    cancel = sub.add_parser("cancel", help="signal a cancel to a running order")
    cancel.add_argument("order")
    cancel.add_argument("--reason")
    cancel.add_argument("--operator", default=os_user, help="who (default: you)")
    cancel.add_argument("--wait", action="store_true", help="wait for the order's outcome")

    for command, help_text in OPERATOR_COMMANDS.items():
        action = sub.add_parser(command, help=help_text)
        action.add_argument("order")
        action.add_argument("--reason", help="why (recorded with the action)")
        action.add_argument("--operator", default=os_user, help="who (default: you)")
        if command == "resolve":
            action.add_argument("--component", help="only this failed component")

    keys = sub.add_parser("keys", help="payload encryption keys: `keys new` rotates")
    keys.add_argument("action", choices=["new"], help="add a new key and make it the active one")
    keys.add_argument(
        "--file",
        type=Path,
        help=f"the key file (default: {KEYS_FILE_VARIABLE} or {DEFAULT_KEYS_FILE})",
    )

    sub.add_parser("listen", help="the inbound bus listener: orders from CRM (O2A_NATS_URL)")
    sub.add_parser(
        "simulate", help="the simulated fulfillment systems, answering on the bus (O2A_NATS_URL)"
    )
    publish = sub.add_parser(
        "publish", help="publish a file's document to the bus, as CRM would (any document)"
    )
    publish.add_argument("file", type=Path)
    publish.add_argument(
        "--subject", help="subject, with or without the prefix (default: crm.salesorder)"
    )
    messages = sub.add_parser("messages", help="the messages a bus subject stores, oldest first")
    messages.add_argument(
        "subject",
        help="with or without the prefix: crm.salesorder, crm.salesorder.update, "
        "crm.salesorder.deadletter, som.provisioningorder, errorhandling.fault, ...",
    )
    messages.add_argument("--order", help="only o2a's messages about this order")
    messages.add_argument("--limit", type=int, default=50, help="the newest N (default 50)")
    messages.add_argument("--xml", action="store_true", help="each document too")

    demo = sub.add_parser("demo", help="run the sample orders end to end")
    demo.add_argument("--samples", type=Path, default=Path("samples"))

    bench = sub.add_parser("bench", help="throughput and latency against a running worker")
    bench.add_argument("--sample", type=Path, default=Path("samples/triple_play.xml"))
    bench.add_argument("-n", "--orders", type=int, default=100)
    bench.add_argument("-c", "--concurrency", type=int, default=20)
    bench.add_argument(
        "--compare-bare",
        action="store_true",
        help="then a workload of o2a's own shape (children, activities, signals) with no logic",
    )
    bench.add_argument(
        "--compare-plain",
        action="store_true",
        help="then the plain shape: one child per provisioning component, one no-op activity "
        "per line and step, nothing else; prints o2a's ratio and events per order of each",
    )
    bench.add_argument("--worker-pid", type=int, help="worker process whose memory to report")
    bench.add_argument(
        "--via",
        choices=["api", "bus"],
        help="api: also submit the orders through the HTTP API (O2A_API_URL, an integrator "
        "key); bus: publish them to the inbound subject (O2A_NATS_URL, `o2a up`'s listener) "
        "after a baseline on a worker of its own with the inline simulator",
    )
    bench.add_argument(
        "--hold",
        type=int,
        metavar="N",
        help="instead: start N future-dated orders, wait until all are waiting, report the "
        "worker's memory and sticky cache, then terminate them",
    )
    bench.add_argument("--keep", action="store_true", help="with --hold: leave the orders open")
    bench.add_argument(
        "--big",
        action="store_true",
        help="instead: issue 9's 1,000- and 5,000-line orders on a worker of its own",
    )
    soak = sub.add_parser(
        "soak",
        help="a mixed load on a stack of its own while the worker and the server are killed, "
        "then the invariants; exit 0 only if every one holds",
    )
    soak.add_argument("--minutes", type=float, default=30.0, help="of load (default 30)")
    soak.add_argument("--rate", type=float, default=30.0, help="orders per minute (default 30)")
    soak.add_argument(
        "--kill-every", type=float, default=20.0, help="seconds between worker SIGKILLs"
    )
    soak.add_argument("--seed", type=int, default=1, help="draws each order's script")
    soak.add_argument("--var", type=Path, help="its db, outbox and logs (default: a new temp dir)")
    soak.add_argument(
        "--bus",
        action="store_true",
        help="NATS too: messages and fulfillment over the bus, and NATS killed once",
    )
    return parser


def _os_user() -> str | None:
    """Who runs the command: recorded as the operator unless --operator says otherwise."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment nor the password database
        return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _observe(args.command)
        return _dispatch(args, Settings.from_env())
    except InputError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (
        UnknownOrderError,
        OrderConflictError,
        NoWorkerError,
        ConnectionFailed,
        BusUnavailable,
        ServerError,
    ) as exc:
        return _fail(str(exc), EXIT_FAILED)
    except RPCError as exc:
        return _fail(f"Temporal refused the request: {exc.message}", EXIT_FAILED)
    except KeyboardInterrupt:
        return 130


SERVICES = {
    "worker": "o2a-worker",
    "api": "o2a-api",
    "up": "o2a",
    "listen": "o2a-listener",
    "simulate": "o2a-simulate",
}
"""The long-running commands, by the service name their traces carry."""


def _observe(command: str) -> None:
    """Logs and traces of a long-running process, set up before anything logs; a bad
    O2A_LOG_* or OTEL_* variable is refused before anything starts."""
    service = SERVICES.get(command)
    if service is not None:
        configure_logging()
        configure_tracing(service)


def _fail(message: str, code: int) -> int:
    print(f"o2a: {message}", file=sys.stderr)
    return code


Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    command: str = args.command
    if command == "server":
        from o2a.server import DevServer, ServerProcess, run_foreground

        servers: list[ServerProcess] = [DevServer(args.db, args.port, args.ui_port)]
        nats = _embedded_nats(args, settings)
        if nats is not None:
            servers.append(nats)
        return run_foreground(servers)
    if command == "worker":
        from workers.worker import run_workers

        cache: int | None = args.max_cached_workflows
        if cache is not None:
            cache = sticky_cache(cache, "--max-cached-workflows")
            settings = dataclasses.replace(settings, max_cached_workflows=cache)
        settings = _with_metrics(args, settings)
        run_workers(_versioned(args, settings), args.processes)
        return EXIT_OK
    if command == "plan":
        return _plan(args, settings)
    if command == "keys":
        return _new_key(args.file)
    return asyncio.run(COMMANDS[command](args, settings))


def _versioned(args: argparse.Namespace, settings: Settings) -> Settings:
    """The flags over the environment's version; one the server would refuse is refused
    here, once, rather than by every process of ``--processes``."""
    flags = {"deployment_name": args.deployment_name, "build_id": args.build_id}
    settings = dataclasses.replace(settings, **{k: v for k, v in flags.items() if v is not None})
    deployment_config(settings.deployment_name, settings.build_id)
    return settings


def _new_key(path: Path | None) -> int:
    path = path or Path(os.environ.get(KEYS_FILE_VARIABLE, "").strip() or DEFAULT_KEYS_FILE)
    ring = add_key(path)
    print(
        f"{path}: key {ring.active!r} is now active ({len(ring.keys)} keys: "
        f"{', '.join(ring.keys)}); restart workers and the API to encrypt with it"
    )
    return EXIT_OK


def _with_metrics(args: argparse.Namespace, settings: Settings) -> Settings:
    """``--metrics-port`` over ``O2A_METRICS_PORT``."""
    raw: str | None = args.metrics_port
    if raw is None:
        return settings
    return dataclasses.replace(settings, metrics_port=metrics_port(raw, "--metrics-port"))


def _plan(args: argparse.Namespace, settings: Settings) -> int:
    intake = OrderIntake(settings)
    plan = intake.plan(intake.load_order(args.file))
    print(plan.model_dump_json(indent=2) if args.json else cli_format.format_plan(plan))
    return EXIT_OK


async def _service(settings: Settings) -> OrderService:
    return OrderService(await connect(), settings)


def _embedded_nats(args: argparse.Namespace, settings: Settings) -> NatsServer | None:
    """The NATS server `server` and `up` start beside Temporal, its store beside the
    database; none with --no-nats or when O2A_NATS_URL names a bus of one's own."""
    if args.no_nats or settings.nats_url is not None:
        return None
    db: Path = args.db
    return NatsServer(store=db.parent / "nats", port=args.nats_port)


async def _up(args: argparse.Namespace, settings: Settings) -> int:
    from workers.up import Stack, run_up

    stack = Stack(
        db=args.db,
        port=args.port,
        ui_port=args.ui_port,
        api_port=args.api_port,
        nats=_embedded_nats(args, settings),
    )
    return await run_up(_with_metrics(args, settings), stack, os.environ.get(KEYS_VARIABLE))


async def _api(args: argparse.Namespace, settings: Settings) -> int:
    from o2a.api.auth import ApiKeys
    from o2a.api.server import api_server
    from workers.up import check_api_port, serve_api

    text = os.environ.get(KEYS_VARIABLE)
    if not text:
        raise InputError(
            f"set {KEYS_VARIABLE} (KEY:ROLE pairs, comma-separated; roles viewer, operator, "
            "integrator) to start the API"
        )
    keys = ApiKeys.parse(text)
    check_api_port(args.port, "--port")
    print(f"o2a API on http://{args.host}:{args.port} (docs /docs)", flush=True)
    await serve_api(api_server(settings, keys, args.host, args.port), asyncio.Event())
    print("o2a API stopped", flush=True)
    return EXIT_OK


async def _submit(args: argparse.Namespace, settings: Settings) -> int:
    order = OrderIntake(settings).load_new_order(args.file)  # refused before connecting
    service = await _service(settings)
    print(cli_format.format_submitted(await service.submit(order)))
    if not args.wait:
        return EXIT_OK
    print("waiting until the order needs someone or has ended ...", flush=True)
    status = await service.wait_for_attention(order.order_number, cli_format.warn)
    print(cli_format.format_status(status))
    return EXIT_OK if status.state is OrderState.COMPLETED else EXIT_FAILED


async def _status(args: argparse.Namespace, settings: Settings) -> int:
    status = await (await _service(settings)).status(args.order)
    print(status.model_dump_json(indent=2) if args.json else cli_format.format_status(status))
    return EXIT_OK


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    service = await _service(settings)
    orders = await service.list_orders(OrderState(args.state) if args.state else None, args.limit)
    print(cli_format.format_orders(orders))
    return EXIT_OK


async def _revise(args: argparse.Namespace, settings: Settings) -> int:
    if args.json and not args.dry_run:
        raise InputError("--json goes with --dry-run")
    order = OrderIntake(settings).load_order(args.file)
    service = await _service(settings)
    if args.dry_run:
        preview = await service.dry_run_revision(order)
        print(
            preview.model_dump_json(indent=2) if args.json else cli_format.format_preview(preview)
        )
        return EXIT_OK
    receipt = await service.revise(order)
    return await _follow(service, receipt, args.wait)


async def _cancel(args: argparse.Namespace, settings: Settings) -> int:
    service = await _service(settings)
    receipt = await service.cancel(args.order, args.reason, args.operator)
    return await _follow(service, receipt, args.wait, args.reason)


async def _follow(
    service: OrderService, receipt: RequestReceipt, wait: bool, reason: str | None = None
) -> int:
    """Print what was sent; with ``wait``, the order's answer, and exit 1 if it refused."""
    print(cli_format.format_request(receipt, reason), flush=True)
    if not wait:
        print(f"follow the outcome with --wait or `o2a status {receipt.order_number}` (REVISIONS)")
        return EXIT_OK
    outcome: RevisionView = await service.request_outcome(
        receipt.order_number, receipt.request_id, on_no_worker=cli_format.warn
    )
    print(cli_format.format_outcome(outcome))
    return EXIT_OK if outcome.outcome in SUCCESSFUL_OUTCOMES else EXIT_FAILED


async def _operator_action(args: argparse.Namespace, settings: Settings) -> int:
    service = await _service(settings)
    actions: dict[str, Callable[[str, OperatorRequest], Awaitable[OperatorActionView]]] = {
        "resolve": service.resolve,
        "suspend": service.suspend,
        "resume": service.resume,
        "abort": service.abort,
    }
    request = OperatorRequest(
        operator=args.operator, reason=args.reason, component=getattr(args, "component", None)
    )
    action = await actions[args.command](args.order, request)
    print(cli_format.format_action(args.order, action))
    return EXIT_OK


async def _move(args: argparse.Namespace, settings: Settings) -> int:
    from starters.move_order import move_order

    version = worker_version(args.deployment_name or settings.deployment_name, args.to)
    moved = await move_order(await connect(), settings, args.order, version)
    print(f"order {args.order} pinned to build {args.to}: {', '.join(moved)}")
    return EXIT_OK


async def _listen(args: argparse.Namespace, settings: Settings) -> int:
    from o2a.listener import run_listener

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_listener(settings, stop)
    return EXIT_OK


def _bus(settings: Settings, name: str) -> BusConnection:
    """The bus for a one-off command: O2A_NATS_URL, else the one `o2a up` starts locally."""
    return BusConnection(settings.nats_url or NATS_URL, Subjects(settings.subject_prefix), name)


async def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from o2a.bus_messages import publish_document, published, subject_named

    path: Path = args.file
    try:
        document = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    bus = _bus(settings, "o2a-publish")
    subject = subject_named(bus.subjects, args.subject or bus.subjects.sales_order)
    try:
        ack = await publish_document(bus, subject, document)
    finally:
        await bus.close()
    print(published(str(path), subject, ack))
    return EXIT_OK


async def _messages(args: argparse.Namespace, settings: Settings) -> int:
    from o2a.bus_messages import read_stored, subject_named

    bus = _bus(settings, "o2a-messages")
    subject = subject_named(bus.subjects, args.subject)
    try:
        found = await read_stored(bus, subject, args.order, args.limit)
    finally:
        await bus.close()
    for message in found:
        print(message.line())
        if args.xml:
            print(message.document.decode(errors="replace"))
    if not found:
        print(f"no messages on {subject}" + (f" about order {args.order}" if args.order else ""))
    return EXIT_OK


async def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from workers.simulate import run_simulator

    await run_simulator(settings)
    return EXIT_OK


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from starters.demo import run_demo

    return await run_demo(settings, args.samples)


async def _bench(args: argparse.Namespace, settings: Settings) -> int:
    others = [
        flag
        for flag, given in (
            ("--compare-bare", args.compare_bare),
            ("--compare-plain", args.compare_plain),
            ("--via", args.via),
            ("--big", args.big),
        )
        if given
    ]
    if args.hold is None and args.keep:
        raise InputError("--keep goes with --hold")
    if args.hold is not None and others:
        raise InputError(f"--hold goes alone, not with {', '.join(others)}")
    if args.big:
        from starters.big_orders import run_big_bench

        return await run_big_bench(settings)
    from starters.bench import BenchOptions, api_target, run_bench
    from starters.bus_bench import run_bus_bench

    options = BenchOptions(
        sample=args.sample,
        orders=args.orders,
        concurrency=args.concurrency,
        compare_bare=args.compare_bare,
        compare_plain=args.compare_plain,
        worker_pid=args.worker_pid,
        via_api=api_target(Path("var")) if args.via == "api" else None,
    )
    if args.hold is not None:
        from starters.hold_bench import run_hold_bench

        held = dataclasses.replace(options, orders=args.hold)
        return await run_hold_bench(settings, held, args.keep)
    if args.via == "bus":
        return await run_bus_bench(settings, options)
    return await run_bench(settings, options)


async def _soak(args: argparse.Namespace, settings: Settings) -> int:
    from starters.soak import SoakOptions, run_soak

    for flag, value in (
        ("--minutes", args.minutes),
        ("--rate", args.rate),
        ("--kill-every", args.kill_every),
    ):
        if not value > 0:  # also NaN
            raise InputError(f"{flag} must be more than 0, got {value:g}")
    options = SoakOptions(args.minutes, args.rate, args.kill_every, args.seed, args.var, args.bus)
    return await run_soak(options)


COMMANDS: dict[str, Command] = {
    "up": _up,
    "api": _api,
    "submit": _submit,
    "status": _status,
    "list": _list,
    "revise": _revise,
    "cancel": _cancel,
    **dict.fromkeys(OPERATOR_COMMANDS, _operator_action),
    "move": _move,
    "demo": _demo,
    "bench": _bench,
    "soak": _soak,
    "listen": _listen,
    "publish": _publish,
    "messages": _messages,
    "simulate": _simulate,
}


def run() -> NoReturn:
    """Console entry point. Leaves with ``os._exit`` once output is flushed: the Temporal
    core runtime's threads can crash interpreter finalization (temporalio/sdk-python#300),
    which would turn a clean exit status into SIGABRT.

    A reader that stops early (``o2a status X | head -1``) is not an error worth a
    traceback: as the Python docs advise (signal, "Note on SIGPIPE"), the rest of stdout
    goes to devnull and the exit status is 1."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_FAILED
    shutdown_tracing()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
