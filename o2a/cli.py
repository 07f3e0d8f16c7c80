"""The `o2a` command line. Bad input: one line, exit 2. Unknown order or conflict: exit 1."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

from temporalio.service import RPCError

from o2a import ids
from o2a.client import ConnectionFailed, connect, connect_config
from o2a.config import Settings
from o2a.errors import InputError, NoWorkerError, OrderConflictError, UnknownOrderError
from o2a.models import OrderState

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="o2a", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = sub.add_parser("server", help="embedded Temporal dev server (SQLite, Web UI)")
    up = sub.add_parser("up", help="server and worker together (make run)")
    for p in (server, up):
        p.add_argument("--db", type=Path, default=Path("var/temporal.db"))
        p.add_argument("--port", type=int, default=7233)
        p.add_argument("--ui-port", type=int, default=8233)

    worker = sub.add_parser("worker", help="run the o2a worker")
    worker.add_argument("--processes", type=int, default=1)

    submit = sub.add_parser("submit", help="parse, validate and start an order")
    submit.add_argument("file", type=Path)
    submit.add_argument("--wait", action="store_true", help="wait for the order to finish")

    status = sub.add_parser("status", help="an order's state, lines and components")
    status.add_argument("order")
    status.add_argument("--json", action="store_true")

    list_ = sub.add_parser("list", help="orders, from Temporal visibility")
    list_.add_argument("--state", choices=[s.value for s in OrderState])
    list_.add_argument("--limit", type=int, default=50)

    revise = sub.add_parser("revise", help="signal a revision (the whole order, higher revision)")
    revise.add_argument("file", type=Path)

    cancel = sub.add_parser("cancel", help="signal a cancel to a running order")
    cancel.add_argument("order")
    cancel.add_argument("--reason")

    resolve = sub.add_parser("resolve", help="retry the failed components of an order")
    resolve.add_argument("order")
    resolve.add_argument("--component", help="only this failed component")

    suspend = sub.add_parser("suspend", help="running steps finish, no new step starts")
    suspend.add_argument("order")
    resume = sub.add_parser("resume", help="carry on after a suspend")
    resume.add_argument("order")
    abort = sub.add_parser("abort", help="end the order at once, without compensation")
    abort.add_argument("order")
    abort.add_argument("--reason")

    demo = sub.add_parser("demo", help="run the sample orders end to end")
    demo.add_argument("--samples", type=Path, default=Path("samples"))

    bench = sub.add_parser("bench", help="throughput and latency against a running worker")
    bench.add_argument("--sample", type=Path, default=Path("samples/triple_play.xml"))
    bench.add_argument("-n", "--orders", type=int, default=100)
    bench.add_argument("-c", "--concurrency", type=int, default=20)
    bench.add_argument("--compare-bare", action="store_true")
    bench.add_argument("--worker-pid", type=int, help="worker process whose memory to report")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        return _dispatch(args, settings)
    except InputError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (UnknownOrderError, OrderConflictError, NoWorkerError, ConnectionFailed) as exc:
        return _fail(str(exc), EXIT_FAILED)
    except RPCError as exc:
        return _fail(f"Temporal refused the request: {exc.message}", EXIT_FAILED)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, code: int) -> int:
    print(f"o2a: {message}", file=sys.stderr)
    return code


def _run(command: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(command)


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    command: str = args.command
    if command == "server":
        from o2a.server import run_server

        return run_server(args.db, args.port, args.ui_port)
    if command == "up":
        from workers.up import run_up

        return _run(run_up(settings, args.db, args.port, args.ui_port))
    if command == "worker":
        from workers.worker import run_workers

        run_workers(settings, args.processes)
        return EXIT_OK
    if command == "submit":
        return _run(_submit(args.file, args.wait, settings))
    if command == "status":
        return _run(_status(args.order, args.json))
    if command == "list":
        return _run(_list(args.state, args.limit))
    if command == "revise":
        return _run(_revise(args.file, settings))
    if command == "cancel":
        return _run(_cancel(args.order, args.reason))
    if command in ("resolve", "suspend", "resume", "abort"):
        return _run(_operator_action(command, args))
    if command == "demo":
        from starters.demo import run_demo

        return _run(run_demo(settings, args.samples))
    if command == "bench":
        from starters.bench import BenchOptions, run_bench

        options = BenchOptions(
            sample=args.sample,
            orders=args.orders,
            concurrency=args.concurrency,
            compare_bare=args.compare_bare,
            worker_pid=args.worker_pid,
        )
        return _run(run_bench(settings, options))
    raise AssertionError(command)


def ui_link(settings: Settings, workflow_id: str) -> str:
    return ids.web_ui_link(settings.ui_url, connect_config()["namespace"], workflow_id)


async def _submit(path: Path, wait: bool, settings: Settings) -> int:
    from starters.inspect import format_status
    from starters.submit import load_valid_order, start_order

    order = load_valid_order(path, settings)
    client = await connect()
    handle = await start_order(client, order, settings)
    print(
        f"order {order.order_number} revision {order.revision} submitted: {len(order.lines)} lines"
    )
    print(f"workflow {handle.id}")
    print(f"web ui   {ui_link(settings, handle.id)}")
    if not wait:
        return EXIT_OK
    result = await handle.result()
    print(format_status(result))
    return EXIT_OK if result.state is OrderState.COMPLETED else EXIT_FAILED


async def _status(order_number: str, as_json: bool) -> int:
    from starters.inspect import format_status, order_status

    status = await order_status(await connect(), order_number)
    print(status.model_dump_json(indent=2) if as_json else format_status(status))
    return EXIT_OK


async def _list(state: str | None, limit: int) -> int:
    from starters.inspect import format_orders, list_orders

    orders = await list_orders(await connect(), OrderState(state) if state else None, limit)
    print(format_orders(orders))
    return EXIT_OK


async def _revise(path: Path, settings: Settings) -> int:
    from o2a.models import FulfillmentMode
    from starters.operator import revise_order
    from starters.submit import load_valid_order

    order = load_valid_order(path, settings)
    await revise_order(await connect(), order)
    what = f"revision {order.revision}"
    if order.fulfillment_mode is FulfillmentMode.CANCEL:
        what += " (FulfillmentModeCode CANCEL: a cancel)"
    print(f"{what} of order {order.order_number} sent")
    print(f"follow the outcome with `o2a status {order.order_number}` (see REVISIONS)")
    return EXIT_OK


async def _cancel(order_number: str, reason: str | None) -> int:
    from starters.operator import cancel_order

    await cancel_order(await connect(), order_number, reason)
    print(f"cancel of order {order_number} sent" + (f": {reason}" if reason else ""))
    print(f"follow the outcome with `o2a status {order_number}`")
    return EXIT_OK


async def _operator_action(command: str, args: argparse.Namespace) -> int:
    from starters import operator

    client = await connect()
    if command == "resolve":
        await operator.resolve_order(client, args.order, args.component)
    elif command == "suspend":
        await operator.suspend_order(client, args.order)
    elif command == "resume":
        await operator.resume_order(client, args.order)
    else:
        await operator.abort_order(client, args.order, args.reason)
    print(f"{command} sent to order {args.order}; follow it with `o2a status {args.order}`")
    return EXIT_OK


def run() -> NoReturn:
    """Console entry point. Leaves with ``os._exit`` once output is flushed: the Temporal
    core runtime's threads can crash interpreter finalization (temporalio/sdk-python#300),
    which would turn a clean exit status into SIGABRT."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
