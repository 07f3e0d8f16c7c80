"""The operator console in a real browser: Debian's chromium driven by Playwright, against a
real API (uvicorn), worker and Temporal dev server. Orders are held mid-flight with gates,
so "while it runs" is a state the test controls; waits are Playwright's own expectations.

Every page visited is saved as a screenshot under the session's tmp dir; with
``O2A_UPDATE_SCREENSHOTS=1`` also as JPEG in docs/screenshots/, which the README shows.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from temporalio.client import Client

from o2a.config import Settings
from o2a.models import OrderState
from o2a.service import OrderService
from tests.support import (
    PROV_FIXED,
    ROOT,
    Api,
    StartWorker,
    closed,
    held_mid_flight,
    quick_triple_play,
    running_api,
    set_spec,
    until,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000
DOCS_SHOTS = ROOT / "docs" / "screenshots"
DOCS = {
    "sign-in",
    "orders",
    "order-running",
    "order-completed",
    "order-fallout",
    "order-tablet",
    "fallout",
    "dashboard",
}
DOCS_HEIGHT = 1500

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium: `make browser` installs it"
)

Shot = Callable[[Page, str], Awaitable[None]]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        found = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield found
        finally:
            await found.close()


@pytest.fixture(scope="session")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots")


@pytest.fixture
def shot(shots_dir: Path) -> Shot:
    async def take(page: Page, name: str) -> None:
        await page.screenshot(path=shots_dir / f"{name}.png", full_page=True)
        if name in DOCS and os.environ.get("O2A_UPDATE_SCREENSHOTS") == "1":
            # The top of the page (summary, plan, timeline): what the README shows.
            size = page.viewport_size or {"width": 1280, "height": 900}
            clip = {"x": 0, "y": 0, "width": size["width"], "height": DOCS_HEIGHT}
            DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=DOCS_SHOTS / f"{name}.png", full_page=True, clip=clip)

    return take


@pytest.fixture
def page_errors() -> list[str]:
    """Script errors and console errors (a CSP violation among them) of every page a test
    opens: none is expected."""
    return []


async def signed_in(
    browser: Browser, api: Api, role: str, errors: list[str], shot: Shot | None = None
) -> Page:
    """A browser of its own that signs in with the role's key through the form."""
    context: BrowserContext = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{api.url}/console/orders")
    await expect(page).to_have_url(f"{api.url}/console/login?next=/console/orders")
    await page.get_by_label("API key").fill(api.keys[role])
    if shot is not None:
        await shot(page, "sign-in")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{api.url}/console/orders")
    return page


async def test_search_finds_an_order_whose_page_updates_live_until_completed(
    client: Client,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
    browser: Browser,
    shot: Shot,
    page_errors: list[str],
) -> None:
    service = OrderService(client, settings)
    async with held_mid_flight(worker) as gate, running_api(client, settings) as api:
        await service.submit(quick_triple_play(order_number))
        await gate.wait_reached()
        page = await signed_in(browser, api, "operator", page_errors, shot)

        await page.get_by_label("Order number").fill(order_number)
        await page.get_by_label("Customer account").fill("CA-100245")
        await page.get_by_role("button", name="Search", exact=True).click()
        row = page.get_by_role("link", name=order_number)
        await expect(row).to_be_visible(timeout=WAIT_MS)
        await expect(page.get_by_role("status")).to_have_text("1 order")
        chip = page.get_by_role("button", name="In progress 1")
        await chip.click()  # the chips filter in place, the other fields kept
        await expect(chip).to_have_attribute("aria-pressed", "true")
        await expect(chip).to_be_focused()
        await expect(page.get_by_role("button", name="Failed 0")).to_be_visible()
        assert "CA-100245" not in page.url  # the customer travelled in the form, not the URL
        await shot(page, "orders")

        await row.click()
        await expect(page.get_by_role("heading", name=f"Order {order_number}")).to_be_visible()
        graph = page.locator("svg.plan-graph")
        await expect(graph.locator("g.node")).to_have_count(7)
        await expect(graph.locator(f'g.node[data-component="{PROV_FIXED}"]')).to_have_class(
            "node state-in-progress"
        )
        await expect(page.locator("svg.timeline rect.run")).not_to_have_count(0)
        await expect(page.locator("#order-state")).to_have_text("in progress")
        await expect(page.get_by_role("link", name="History in the Temporal UI")).to_have_attribute(
            "href", f"{settings.ui_url}/namespaces/default/workflows/order-{order_number}"
        )
        await page.evaluate("window.notReloaded = true")
        await shot(page, "order-running")

        gate.release()
        await expect(page.locator("#order-state")).to_have_text("completed", timeout=WAIT_MS)
        assert await page.evaluate("window.notReloaded === true")  # swapped, never reloaded
        await expect(graph.locator("g.node.state-completed")).to_have_count(7)
        await expect(page.locator("svg.timeline rect.run.outcome-completed")).to_have_count(7)
        await expect(
            page.get_by_role("row", name="ProcessProvisioningOrderEBM").first
        ).to_be_visible()
        await shot(page, "order-completed")
        await page.set_viewport_size({"width": 820, "height": 1180})
        await shot(page, "order-tablet")
        await page.context.close()
    assert page_errors == []


async def test_a_viewer_sees_no_actions_and_a_forged_post_is_refused(
    client: Client,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
    browser: Browser,
    shot: Shot,
    page_errors: list[str],
) -> None:
    service = OrderService(client, settings)
    path = f"/console/orders/{order_number}"
    async with held_mid_flight(worker) as gate, running_api(client, settings) as api:
        await service.submit(quick_triple_play(order_number))
        await gate.wait_reached()

        viewer = await signed_in(browser, api, "viewer", page_errors)
        await viewer.goto(f"{api.url}{path}")
        await expect(viewer.locator("#order-state")).to_have_text("in progress")
        await expect(
            viewer.get_by_role("heading", name="Operator actions", exact=True)
        ).to_have_count(0)
        await expect(viewer.get_by_role("button", name="Apply")).to_have_count(0)
        await shot(viewer, "order-viewer")
        refused = await viewer.context.request.post(
            f"{api.url}{path}/actions",
            form={"action": "suspend", "csrf": "anything"},
            max_redirects=0,
        )
        assert refused.status == 403  # a viewer may not act, token or not

        operator = await signed_in(browser, api, "operator", page_errors)
        await operator.goto(f"{api.url}{path}")
        await expect(operator.get_by_role("button", name="Apply")).to_be_visible()
        posted = operator.context.request  # the browser's own cookies, as a forged form has
        for form in ({"action": "abort"}, {"action": "abort", "csrf": "forged"}):
            answer = await posted.post(f"{api.url}{path}/actions", form=form, max_redirects=0)
            assert answer.status == 403, await answer.text()
            assert "CSRF token is missing or invalid" in await answer.text()
        assert (await service.status(order_number)).state is OrderState.IN_PROGRESS

        # The genuine form, confirmed: the workflow's answer shows in place.
        operator.once("dialog", lambda dialog: dialog.accept())
        await operator.get_by_label("Action", exact=True).select_option("suspend")
        await operator.get_by_role("textbox", name="Reason").fill("checking the line")
        await operator.get_by_role("button", name="Apply").click()
        await expect(operator.locator("#action-outcome")).to_contain_text("Suspend accepted")
        await expect(operator.locator("#order-state")).to_have_text("suspended", timeout=WAIT_MS)
        await shot(operator, "order-suspended")
        gate.release()
        for page in (viewer, operator):
            await page.context.close()
    assert page_errors == []


async def test_an_operator_resolves_fallout_from_the_order_page(
    client: Client,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
    browser: Browser,
    shot: Shot,
    page_errors: list[str],
) -> None:
    service = OrderService(client, settings)
    failing = set_spec(
        quick_triple_play(order_number), "1.1.1", "SimulatedFault", "activate:PORT_REJECTED:1"
    )
    async with worker(), running_api(client, settings) as api:
        await service.submit(failing)
        assert (await service.wait_for_attention(order_number)).state is OrderState.FAILED
        page = await signed_in(browser, api, "operator", page_errors)
        await page.goto(f"{api.url}/console/orders/{order_number}")
        await expect(page.locator("#order-state")).to_have_text("failed")
        failed = page.locator(f'svg.plan-graph g.node[data-component="{PROV_FIXED}"]')
        await expect(failed).to_have_class("node state-failed")
        incident = page.get_by_role("region", name="Fallout", exact=True).get_by_role("row").nth(1)
        await expect(incident).to_contain_text("PORT_REJECTED")
        await expect(page.locator("svg.timeline rect.fallout-wait")).to_have_count(1)
        await shot(page, "order-fallout")

        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_label("Action", exact=True).select_option("resolve")
        await page.get_by_role("textbox", name="Reason").fill("port released by the donor")
        await page.get_by_role("button", name="Apply").click()
        await expect(page.locator("#action-outcome")).to_contain_text("Resolve accepted")
        await expect(page.locator("#order-state")).to_have_text("completed", timeout=WAIT_MS)
        await expect(incident).to_contain_text("resolved")
        timeline = page.locator("svg.timeline")
        await expect(timeline.locator("rect.run-do.outcome-failed")).to_have_count(1)
        await expect(timeline.locator("rect.run-do.outcome-completed")).to_have_count(7)
        await shot(page, "order-resolved")
        await page.context.close()
    assert page_errors == []


async def test_keys_sessions_and_search_without_a_browser(
    client: Client, settings: Settings, worker: StartWorker, order_number: str
) -> None:
    """Bearer keys serve pages directly; a browser without a session is sent to sign in;
    the search's filters and chips; wrong keys and stale forms are refused."""
    service = OrderService(client, settings)
    async with worker(), running_api(client, settings) as api:
        await service.submit(quick_triple_play(order_number))
        await closed(client, order_number)
        await until(lambda: _listed(service, order_number, OrderState.COMPLETED))
        async with httpx.AsyncClient(base_url=api.url) as http:
            anonymous = await http.get("/console/orders")
            assert (anonymous.status_code, anonymous.headers["location"]) == (
                303,
                "/console/login?next=/console/orders",
            )
            fragment = await http.get("/console/orders", headers={"HX-Request": "true"})
            assert fragment.status_code == 401
            assert fragment.headers["HX-Redirect"].startswith("/console/login")
            wrong = await http.get("/console/orders", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401

            viewer = api.headers("viewer")
            found = await http.get(
                "/console/orders",
                params={"number": order_number, "state": "completed", "customer": "x"},
                headers=viewer,
            )
            assert found.status_code == 200, found.text
            assert found.headers["content-security-policy"].startswith("default-src 'self'")
            assert f">{order_number}</a>" in found.text  # the customer in a URL is ignored
            none = await http.get(
                "/console/orders",
                params={"number": order_number, "state": "failed"},
                headers=viewer,
            )
            assert f">{order_number}</a>" not in none.text
            dated = await http.post(
                "/console/orders",
                data={
                    "number": order_number,
                    "customer": "CA-100245",
                    "since": "2000-01-01",
                    "until": "2000-12-31",
                    "chip": "all",
                },
                headers={**viewer, "HX-Request": "true"},
            )
            assert dated.status_code == 200, dated.text
            assert "0 orders" in dated.text and "<html" not in dated.text
            bad = await http.post(
                "/console/orders",
                data={"number": order_number, "since": "yesterday"},
                headers=viewer,
            )
            assert bad.status_code == 400 and "since: not a date" in bad.text
            assert f">{order_number}</a>" in bad.text  # the rest was still searched

            page = await http.get(f"/console/orders/{order_number}", headers=viewer)
            assert page.status_code == 200 and "Orchestration plan" in page.text
            assert "hx-trigger" not in page.text  # a completed order is not polled
            unknown = await http.get("/console/orders/NO-SUCH-ORDER", headers=viewer)
            assert unknown.status_code == 404 and "No such order" in unknown.text
            act = await http.post(
                f"/console/orders/{order_number}/actions",
                data={"action": "resolve"},
                headers=api.headers("operator"),
            )
            assert act.status_code == 409 and "only a running order" in act.text

            login = await http.get("/console/login")
            csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
            bad_key = await http.post(
                "/console/login", data={"csrf": csrf, "key": "wrong", "next": "//evil.example"}
            )
            assert bad_key.status_code == 401 and "That key is not valid" in bad_key.text
            signed = await http.post(
                "/console/login",
                data={"csrf": csrf, "key": api.keys["viewer"], "next": "//evil.example"},
            )
            assert (signed.status_code, signed.headers["location"]) == (303, "/console")
            cookie = signed.headers["set-cookie"].lower()
            assert (
                "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
            )
            assert (await http.get(f"/console/orders/{order_number}")).status_code == 200
            stale = await http.post("/console/logout", data={"csrf": csrf})
            assert stale.status_code == 403  # the sign-in form's token is not the session's


async def test_replicas_sharing_the_console_secret_accept_each_others_sessions(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind one address, any replica (or a restarted API) serves a signed-in browser;
    without the shared secret each process signs its own sessions."""

    async def signed_in_on_one_served_by_another() -> bool:
        async with running_api(client, settings) as one, running_api(client, settings) as two:
            async with httpx.AsyncClient(base_url=one.url) as http:
                login = await http.get("/console/login")
                csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
                signed = await http.post(
                    "/console/login", data={"csrf": csrf, "key": one.keys["viewer"]}
                )
                assert signed.status_code == 303, signed.text
                cookies = http.cookies
            async with httpx.AsyncClient(base_url=two.url, cookies=cookies) as other:
                return (await other.get("/console/orders")).status_code == 200

    assert not await signed_in_on_one_served_by_another()
    monkeypatch.setenv("O2A_CONSOLE_SECRET", "s" * 32)
    assert await signed_in_on_one_served_by_another()


async def _listed(service: OrderService, number: str, state: OrderState) -> bool:
    return bool(await service.list_orders(state, order_numbers=[number]))


async def test_the_newest_orders_are_paged_from_visibility(
    client: Client, settings: Settings, order_number: str
) -> None:
    """A page of the newest orders reads only recent start times (counted first), and
    still pages exactly: newest first, no order twice, none left out."""
    service = OrderService(client, settings)
    numbers = [f"{order_number}-{i}" for i in range(5)]
    for number in numbers:  # one after the other: their start times are in this order
        await service.submit(quick_triple_play(number))
    await until(lambda: _counted(service, order_number, 5))
    pages = [
        [
            o.order_number
            for o in await service.list_orders(None, 2, offset=offset, number_prefix=order_number)
        ]
        for offset in (0, 2, 4)
    ]
    assert pages == [numbers[4:2:-1], numbers[2:0:-1], numbers[:1]]


async def _counted(service: OrderService, prefix: str, expected: int) -> bool:
    return await service.count_orders(number_prefix=prefix) == expected


async def _failed_orders(service: OrderService, prefix: str, count: int) -> list[str]:
    """``count`` orders failed at the fixed-line provisioning (PORT_REJECTED once), listed
    as failed by visibility, which the fallout page reads."""
    numbers = [f"{prefix}-{i}" for i in range(count)]
    for number in numbers:
        order = set_spec(
            quick_triple_play(number), "1.1.1", "SimulatedFault", "activate:PORT_REJECTED:1"
        )
        await service.submit(order)
    for number in numbers:
        assert (await service.wait_for_attention(number)).state is OrderState.FAILED
        await until(lambda n=number: _listed(service, n, OrderState.FAILED))  # type: ignore[misc]
    return numbers


async def _apply_to(page: Page, numbers: list[str], action: str, reason: str) -> None:
    """Select the numbers' incidents on the fallout page and apply, confirmed."""
    for number in numbers:
        await page.get_by_label(f"Select {number}-F1", exact=True).check()
    await page.get_by_label("Action", exact=True).select_option(action)
    await page.get_by_role("textbox", name="Reason").fill(reason)
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Apply to selected").click()


async def test_fallout_is_retried_from_the_fallout_page_one_and_three_at_once(
    client: Client,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
    browser: Browser,
    shot: Shot,
    page_errors: list[str],
) -> None:
    service = OrderService(client, settings)
    async with worker(), running_api(client, settings) as api:
        single, *bulk = await _failed_orders(service, order_number, 4)

        viewer = await signed_in(browser, api, "viewer", page_errors)
        await viewer.goto(f"{api.url}/console/fallout")
        for number in (single, *bulk):
            await expect(viewer.get_by_role("row", name=f"{number}-F1")).to_contain_text(
                "PORT_REJECTED"
            )
        current = viewer.locator('nav a[aria-current="page"]')
        await expect(current).to_have_text("Fallout")  # the dashboard's /console is no prefix
        await expect(viewer.get_by_role("checkbox")).to_have_count(0)
        await expect(viewer.get_by_role("button", name="Apply to selected")).to_have_count(0)
        await shot(viewer, "fallout-viewer")

        page = await signed_in(browser, api, "operator", page_errors)
        await page.goto(f"{api.url}/console/fallout?code=PORT_REJECTED")
        row = page.get_by_role("row", name=f"{single}-F1")
        await expect(row).to_contain_text("FixedProvisioningSystem")
        await expect(row.get_by_role("link", name=single, exact=True)).to_be_visible()
        await shot(page, "fallout")
        await _apply_to(page, [single], "resolve", "port released by the donor")
        outcome = page.locator(f'#action-outcome .outcome[data-order="{single}"]')
        await expect(outcome).to_contain_text("Resolve accepted")
        await page.get_by_role("link", name=single, exact=True).click()
        await expect(page.locator("#order-state")).to_have_text("completed", timeout=WAIT_MS)

        await page.goto(f"{api.url}/console/fallout")
        await expect(page.get_by_role("row", name=f"{single}-F1")).to_have_count(0)
        await _apply_to(page, bulk, "resolve", "the fixed-line system is back")
        await expect(page.locator("#action-outcome .outcome")).to_have_count(3)
        await expect(page.locator("#action-outcome .notice.accepted")).to_have_count(3)
        await shot(page, "fallout-bulk-retried")
        for number in bulk:
            assert (await closed(client, number)).state is OrderState.COMPLETED
        for browsing in (viewer, page):
            await browsing.context.close()
    assert page_errors == []


async def test_the_dashboard_charts_a_batch_of_orders(
    client: Client,
    settings: Settings,
    worker: StartWorker,
    order_number: str,
    browser: Browser,
    shot: Shot,
    page_errors: list[str],
) -> None:
    """Two completed orders and one in fallout, narrowed to their numbers: the charts'
    bars carry the counts."""
    service = OrderService(client, settings)
    async with worker(), running_api(client, settings) as api:
        for number in (f"{order_number}-ok-0", f"{order_number}-ok-1"):
            await service.submit(quick_triple_play(number))
            await closed(client, number)
            await until(lambda n=number: _listed(service, n, OrderState.COMPLETED))  # type: ignore[misc]
        await _failed_orders(service, f"{order_number}-bad", 1)

        page = await signed_in(browser, api, "viewer", page_errors)
        await page.goto(f"{api.url}/console")
        await expect(page.get_by_role("link", name="Dashboard")).to_have_attribute(
            "aria-current", "page"
        )
        await page.get_by_label("Order number").fill(order_number)
        await page.get_by_role("button", name="Show").click()
        await expect(page.get_by_role("status")).to_contain_text("3 orders")
        states = page.locator("svg.by-state")
        for state, count in (("completed", "2"), ("failed", "1"), ("in progress", "0")):
            bar = states.locator(f'g.bar[data-label="{state}"]')
            await expect(bar).to_have_attribute("data-value", count)
        await expect(
            page.locator('svg.by-code g.bar[data-label="PORT_REJECTED"]')
        ).to_have_attribute("data-value", "1")
        await expect(page.locator("svg.cycle-times g.bar")).to_have_count(4)
        throughput = page.locator("svg.throughput g.bar")
        await expect(throughput).to_have_count(12)
        await expect(throughput.last).to_have_attribute("data-value", "2")
        await expect(page.locator("svg.by-severity g.bar")).to_have_count(4)
        await shot(page, "dashboard")
        await page.context.close()
    assert page_errors == []
