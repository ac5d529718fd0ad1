"""The dashboard in a real browser (Debian's Chromium under Playwright) against the released
daemon binary on Docker: sign in with a token, deploy and watch the status cell reach ACTIVE
without a reload, roll back, secrets masked, a Viewer without deploy buttons (and refused by
the server anyway), attacker-controlled text shown as text with no script running, and a
service's logs followed live (a new line without a reload, markup in it shown as text), and a
deployment's deploy log followed until it is ACTIVE (its Cancel button gone then), and the
pages at a phone's width, walked with the keyboard, with every control labelled. Screenshots
of each main page (workspace, project and canvas, service, deployment, environments,
promotion plan, servers, audit log, templates) go to ``target/screenshots``.

The first test creates its service with the dashboard's form; the others create theirs
through the REST API (`POST …/services`)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, List, Optional

import pytest

from conftest import WS, Daemon

SECRET = "hunter2-never-shown"
XSS_NAME = "<script>alert('name')</script>"
XSS_VALUE = "<img src=x onerror=alert('value')><script>alert('value')</script>"
DEPLOY_WAIT_MS = 120_000
# The Owner `running_daemon` makes with `POST /v1/init`.
OWNER_EMAIL = "ada@example.com"


def project(d: Daemon, slug: str, name: str = "Browser test") -> None:
    d.ok("POST", f"/v1/workspaces/{WS}/projects", {"name": name, "slug": slug})


def service(d: Daemon, p: str, image: str, name: str = "Web") -> None:
    d.ok(
        "POST",
        f"/v1/workspaces/{WS}/projects/{p}/environments/production/services",
        {
            "slug": "web",
            "name": name,
            "source": {"type": "docker_image", "image": image},
            "settings": {"health_check_interval_s": 1},
        },
    )


def service_path(p: str) -> str:
    return f"/ui/workspaces/{WS}/projects/{p}/environments/production/services/web"


def sign_in(browser: Any, d: Daemon, token: str, shots: Optional[Path] = None) -> Any:
    """A new browser context signed in with `token`: its page, on the workspace page."""
    context = browser.new_context(base_url=d.base, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto("/ui")
    assert "/ui/signin" in page.url
    if shots is not None:
        page.screenshot(path=str(shots / "signin.png"), full_page=True)
    token_form(page, token)
    page.wait_for_url(re.compile(rf"/ui/workspaces/{WS}$"))
    return page


def token_form(page: Any, token: str) -> None:
    """Sign in with the sign-in page's API-token form (it may offer other ways too)."""
    form = page.locator("form:has(#token)")
    form.get_by_role("textbox", name="API token").fill(token)
    form.get_by_role("button", name="Sign in").click()


def dialogs_of(page: Any) -> List[str]:
    """Every alert/confirm/prompt the page opens (none must)."""
    seen: List[str] = []

    def on_dialog(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def cell(page: Any, n: int) -> Any:
    return page.locator(f'.status[data-deployment="{n}"]').first


def deploy_and_watch_active(page: Any, click: Any, n: int) -> None:
    """Click (`click()`), land on the service page, and see #`n` reach ACTIVE in place: the
    page is not reloaded meanwhile (a marker set on the landed page survives)."""
    click()
    page.wait_for_url(re.compile(r"/services/web(#deployments)?$"))
    first = cell(page, n)
    first.wait_for()
    assert first.get_attribute("data-status") != "ACTIVE", "already ACTIVE on landing"
    assert first.get_attribute("data-follow"), "an unsettled cell follows its event stream"
    page.evaluate("window.__clankNoReload = true")
    page.wait_for_selector(
        f'.status[data-deployment="{n}"][data-status="ACTIVE"]', timeout=DEPLOY_WAIT_MS
    )
    assert page.evaluate("window.__clankNoReload === true"), "the page was reloaded"
    assert first.inner_text() == "ACTIVE"


def test_sign_in_create_deploy_live_roll_back_and_secret_masked(
    chromium: Any, daemon: Daemon, docker_image: str, unique: str, shots: Path
) -> None:
    p = f"br-{unique}"
    project(daemon, p)
    page = sign_in(chromium, daemon, daemon.owner, shots)
    dialogs = dialogs_of(page)
    page.screenshot(path=str(shots / "workspace.png"), full_page=True)

    page.get_by_role("link", name="Browser test").click()
    page.wait_for_url(re.compile(rf"/projects/{p}$"))
    def new(field: str) -> Any:
        return page.locator(f"#new-production-{field}")

    # The service is created with the dashboard's form; what the API refuses is shown next
    # to the field, and the form keeps what was typed.
    page.get_by_text("New service in").click()
    new("name").fill("Web")
    new("slug").fill("Not A Slug!")
    new("image").fill(docker_image)
    page.get_by_role("button", name="Create").click()
    slug_error = page.locator("#new-production-slug-error")
    slug_error.wait_for()
    assert slug_error.inner_text().strip()
    assert new("slug").get_attribute("aria-invalid") == "true"
    assert new("image").input_value() == docker_image
    page.screenshot(path=str(shots / "project-new-service-refused.png"), full_page=True)
    new("slug").fill("web")
    new("image").fill("UPPER CASE/not an image")
    page.get_by_role("button", name="Create").click()
    page.locator("#new-production-image-error").wait_for()
    new("image").fill(docker_image)
    new("port").fill("8080")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/services/web$"))

    daemon.ok(
        "PATCH",
        f"/v1/workspaces/{WS}/projects/{p}/environments/production/services/web/config",
        {"changes": [{"key": "API_KEY", "value": SECRET, "secret": True}]},
    )
    # The health checks every second keep the deploys short.
    daemon.ok(
        "PATCH",
        f"/v1/workspaces/{WS}/projects/{p}/environments/production/services/web",
        {"settings": {"health_check_interval_s": 1}},
    )
    page.reload()

    # The secret: masked in the resolved view and at its scope, never in the page.
    assert SECRET not in page.content()
    row = page.locator("tr", has=page.locator("code", has_text="API_KEY"))
    assert "********" in row.inner_text()

    # A bad key is refused next to its field, with the API's message.
    page.get_by_label("Key").fill("not a key!")
    page.get_by_label("Value").fill("x")
    page.get_by_role("button", name="Save").click()
    error = page.locator("#config-key-error")
    error.wait_for()
    assert error.inner_text().strip(), "the API's message is shown"
    assert page.get_by_label("Key").get_attribute("aria-invalid") == "true"
    page.get_by_label("Key").fill("GREETING")
    page.get_by_label("Value").fill("first")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/services/web(#config)?$"))
    assert page.locator("tr", has=page.locator("code", has_text="GREETING")).count() == 1

    deploy = page.get_by_role("button", name="Deploy", exact=True)
    deploy_and_watch_active(page, deploy.click, 1)
    page.screenshot(path=str(shots / "service.png"), full_page=True)
    deploy_and_watch_active(page, deploy.click, 2)
    # The earlier ACTIVE one was marked SUPERSEDED in place too.
    assert cell(page, 1).get_attribute("data-status") == "SUPERSEDED"

    back = page.get_by_role("button", name="Roll back to deployment #1")
    deploy_and_watch_active(page, back.click, 3)
    row = page.locator("tr", has=cell(page, 3)).inner_text()
    assert "rollback to #1" in row
    # Settled while the page watched: its duration is how long it took, not "… so far".
    assert "so far" not in row, row
    assert f"manual by {OWNER_EMAIL}" in page.locator("tr", has=cell(page, 1)).inner_text()
    page.reload()
    assert cell(page, 3).get_attribute("data-status") == "ACTIVE"
    assert cell(page, 2).get_attribute("data-status") == "SUPERSEDED"

    page.get_by_role("link", name="#3").click()
    page.wait_for_url(re.compile(r"/deployments/3$"))
    page.screenshot(path=str(shots / "deployment.png"), full_page=True)
    assert SECRET not in page.content()

    page.goto(f"/ui/workspaces/{WS}/projects/{p}")
    page.screenshot(path=str(shots / "project.png"), full_page=True)

    screenshot_the_other_pages(page, p, shots)
    assert dialogs == []


def screenshot_the_other_pages(page: Any, p: str, shots: Path) -> None:
    """The environments page, a promotion plan made with its forms (production's `web`, just
    deployed, to a clone of production), the servers, audit log and templates pages."""
    page.goto(f"/ui/workspaces/{WS}/projects/{p}/environments")
    page.locator("details:has(#clone-production-name) > summary").click()
    page.locator("#clone-production-name").fill("staging")
    page.get_by_role("button", name="Clone", exact=True).click()
    page.wait_for_url(re.compile(r"/environments(#.*)?$"))
    assert page.locator("#clone-staging-name").count() == 1, "staging is listed"
    page.screenshot(path=str(shots / "environments.png"), full_page=True)
    page.locator("#promote-source").select_option("production/web")
    page.locator("#promote-target").select_option("staging")
    page.get_by_role("button", name="Plan the promotion").click()
    page.wait_for_url(re.compile(rf"/ui/workspaces/{WS}/plans/[^/]+$"))
    assert SECRET not in page.content()
    page.screenshot(path=str(shots / "plan.png"), full_page=True)
    for name, path in (
        ("servers", "servers"),
        ("audit", "audit"),
        ("templates", "templates"),
    ):
        answer = page.goto(f"/ui/workspaces/{WS}/{path}")
        assert answer is not None and answer.status == 200, path
        assert SECRET not in page.content()
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def test_a_viewer_sees_no_deploy_button_and_is_refused_anyway(
    chromium: Any, daemon: Daemon, docker_image: str, unique: str, shots: Path
) -> None:
    p = f"br-{unique}"
    project(daemon, p)
    service(daemon, p, docker_image)
    member = daemon.ok(
        "POST",
        f"/v1/workspaces/{WS}/members",
        {"name": "Vic", "email": "vic@example.com", "role": "viewer"},
    )
    page = sign_in(chromium, daemon, member["token"])
    page.goto(service_path(p))
    page.screenshot(path=str(shots / "service-viewer.png"), full_page=True)
    assert page.get_by_role("button", name="Deploy", exact=True).count() == 0
    assert page.get_by_role("button", name=re.compile("Roll back")).count() == 0
    assert page.locator('form[action$="/config"]').count() == 0

    # The server refuses the form's POST as well, with this session's own CSRF token.
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    answer = page.request.post(
        service_path(p) + "/deployments",
        form={"csrf": csrf},
        headers={"origin": daemon.base, "sec-fetch-site": "same-origin"},
        max_redirects=0,
    )
    assert answer.status == 403, answer.text()
    status, deployments = daemon.call(
        "GET", f"/v1/workspaces/{WS}/projects/{p}/environments/production/services/web/deployments"
    )
    assert status == 200 and not (deployments if isinstance(deployments, list) else deployments["items"])

    # No new-service form for a Viewer either, and its POST is refused.
    page.goto(f"/ui/workspaces/{WS}/projects/{p}")
    assert page.locator("details.new-service").count() == 0
    answer = page.request.post(
        f"/ui/workspaces/{WS}/projects/{p}/environments/production/services",
        form={"csrf": csrf, "slug": "sneaky", "image": docker_image},
        headers={"origin": daemon.base, "sec-fetch-site": "same-origin"},
        max_redirects=0,
    )
    assert answer.status == 403, answer.text()


def test_script_in_a_service_name_and_a_config_value_runs_nowhere(
    chromium: Any, daemon: Daemon, docker_image: str, unique: str, shots: Path
) -> None:
    p = f"br-{unique}"
    project(daemon, p, name="XSS project")
    service(daemon, p, docker_image, name=XSS_NAME)
    page = sign_in(chromium, daemon, daemon.owner)
    dialogs = dialogs_of(page)

    # The value goes in through the dashboard's own form.
    page.goto(service_path(p))
    page.get_by_label("Key").fill("GREETING")
    page.get_by_label("Value").fill(XSS_VALUE)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/services/web(#config)?$"))

    for path in (f"/ui/workspaces/{WS}/projects/{p}", service_path(p)):
        page.goto(path)
        page.wait_for_load_state("load")
        assert page.get_by_text(XSS_NAME, exact=True).count() >= 1, path
        assert page.locator("script:not([src])").count() == 0, path
        assert page.locator("img[src=x]").count() == 0, path
    assert page.get_by_text(XSS_VALUE, exact=True).count() >= 1
    page.wait_for_timeout(500)
    assert dialogs == [], dialogs


def test_canvas_shows_connections_and_keeps_a_dragged_card_after_a_reload(
    chromium: Any, daemon: Daemon, docker_image: str, unique: str, shots: Path
) -> None:
    p = f"br-{unique}"
    project(daemon, p, name="Canvas test")
    env = f"/v1/workspaces/{WS}/projects/{p}/environments/production"
    for slug, name in (("db", "Database"), ("web", "Web"), ("cache", "Cache")):
        daemon.ok(
            "POST",
            f"{env}/services",
            {"slug": slug, "name": name, "source": {"type": "docker_image", "image": docker_image}},
        )
    daemon.ok(
        "PATCH",
        f"{env}/services/web/config",
        {"changes": [
            {"key": "DATABASE_URL", "value": "postgres://app@db:5432/shop"},
            {"key": "CACHE_ADDR", "value": "cache:6379"},
            {"key": "APP_MODE", "value": "web"},
        ]},
    )
    page = sign_in(chromium, daemon, daemon.owner)
    dialogs = dialogs_of(page)
    page.goto(f"/ui/workspaces/{WS}/projects/{p}")
    canvas = page.locator(".canvas.canvas-live")
    canvas.wait_for()
    edges = page.locator("ul.edges li")
    assert edges.count() == 2, edges.all_inner_texts()
    texts = " | ".join(edges.all_inner_texts())
    assert "Web → Database (DATABASE_URL)" in texts and "Web → Cache (CACHE_ADDR)" in texts, texts
    assert page.locator("svg.edges line").count() == 2
    page.screenshot(path=str(shots / "project-canvas.png"), full_page=True)

    web = page.locator('.card:has(h3 a:text-is("Web"))')
    before = web.bounding_box()
    assert before is not None
    with page.expect_response(lambda r: r.url.endswith("/canvas")) as saved:
        page.mouse.move(before["x"] + 60, before["y"] + before["height"] - 10)
        page.mouse.down()
        page.mouse.move(before["x"] + 160, before["y"] + before["height"] + 90, steps=8)
        page.mouse.up()
    assert saved.value.status == 204
    moved = web.bounding_box()
    assert abs(moved["x"] - before["x"] - 100) <= 2 and abs(moved["y"] - before["y"] - 100) <= 2
    x, y = web.get_attribute("data-x"), web.get_attribute("data-y")

    page.reload()
    page.locator(".canvas.canvas-live").wait_for()
    web = page.locator('.card:has(h3 a:text-is("Web"))')
    assert (web.get_attribute("data-x"), web.get_attribute("data-y")) == (x, y)
    kept = web.bounding_box()
    assert abs(kept["x"] - moved["x"]) <= 2 and abs(kept["y"] - moved["y"]) <= 2

    # The keyboard moves a focused card, and that is kept too.
    web.focus()
    with page.expect_response(lambda r: r.url.endswith("/canvas")) as saved:
        for _ in range(3):
            page.keyboard.press("ArrowRight")
    assert saved.value.status == 204
    page.reload()
    web = page.locator('.card:has(h3 a:text-is("Web"))')
    assert web.get_attribute("data-x") == str(int(x) + 30)
    page.screenshot(path=str(shots / "project-canvas-arranged.png"), full_page=True)

    # Another user's canvas is their own: the Owner's arrangement is not theirs.
    member = daemon.ok(
        "POST",
        f"/v1/workspaces/{WS}/members",
        {"name": "Vic", "email": "vic@example.com", "role": "viewer"},
    )
    other = sign_in(chromium, daemon, member["token"])
    other.goto(f"/ui/workspaces/{WS}/projects/{p}")
    assert other.locator('.card:has(h3 a:text-is("Web"))').get_attribute("data-x") != str(int(x) + 30)
    assert dialogs == []


def test_without_javascript_the_canvas_is_a_readable_list(
    chromium: Any, daemon: Daemon, docker_image: str, unique: str
) -> None:
    p = f"br-{unique}"
    project(daemon, p, name="No script")
    service(daemon, p, docker_image)
    context = chromium.new_context(base_url=daemon.base, java_script_enabled=False)
    page = context.new_page()
    page.goto("/ui/signin")
    token_form(page, daemon.owner)
    page.wait_for_url(re.compile(rf"/ui/workspaces/{WS}$"))
    page.goto(f"/ui/workspaces/{WS}/projects/{p}")
    assert page.locator(".canvas-live").count() == 0
    assert page.get_by_role("link", name="Web").is_visible()
    assert page.locator(".card").first.evaluate("c => getComputedStyle(c).position") == "static"


LOG_XSS = "<img src=x onerror=alert('log')><script>alert('log')</script>"


def wait_status(d: Daemon, p: str, n: int, status: str) -> None:
    path = f"/v1/workspaces/{WS}/projects/{p}/environments/production/services/web/deployments/{n}"
    for _ in range(1200):
        v = d.ok("GET", path)
        if v["status"] == status:
            return
        assert v["status"] not in ("FAILED", "CANCELLED", "SUPERSEDED"), v
        time.sleep(0.1)
    raise AssertionError(f"deployment #{n} is not {status} after 120 s")


def test_logs_follow_live_and_a_script_in_a_log_line_runs_nowhere(
    chromium: Any, daemon: Daemon, docker_image: str, unique: str, shots: Path
) -> None:
    p = f"br-{unique}"
    project(daemon, p, name="Logs test")
    env = f"/v1/workspaces/{WS}/projects/{p}/environments/production"
    # The test app, printing a line of markup first and then every line appended to /app/said.
    script = (
        'printf "%s\\n" "$1"; : > /app/said; /bin/busybox tail -f /app/said & '
        "exec /bin/busybox sh /app/start.sh"
    )
    daemon.ok(
        "POST",
        f"{env}/services",
        {
            "slug": "web",
            "name": "Web",
            "source": {"type": "docker_image", "image": docker_image},
            "settings": {"health_check_interval_s": 1},
            "processes": {"web": {"command": ["/bin/busybox", "sh", "-c", script, "sh", "boot " + LOG_XSS]}},
        },
    )
    daemon.ok("POST", f"{env}/services/web/deployments", {})
    wait_status(daemon, p, 1, "ACTIVE")

    page = sign_in(chromium, daemon, daemon.owner)
    dialogs = dialogs_of(page)
    page.goto(service_path(p))
    log = page.locator("#service-log")
    log.wait_for()
    # The last lines come with the page (as text), then the stream takes over.
    page.wait_for_function(
        "t => document.getElementById('service-log').textContent.includes(t)",
        arg="boot " + LOG_XSS,
        timeout=30_000,
    )
    page.wait_for_function(
        "() => document.getElementById('service-log-status').textContent === 'Following live.'",
        timeout=30_000,
    )
    page.evaluate("window.__clankNoReload = true")

    # A line printed now (markup again) shows up without a reload, as text.
    line = f"live {unique} {LOG_XSS}"
    daemon.ok(
        "POST",
        f"{env}/services/web/exec",
        {"command": ["/bin/busybox", "sh", "-c", 'printf "%s\\n" "$1" >> /app/said', "sh", line]},
    )
    page.wait_for_function(
        "t => document.getElementById('service-log').textContent.includes(t)",
        arg=line,
        timeout=30_000,
    )
    assert page.evaluate("window.__clankNoReload === true"), "the page was reloaded"
    assert log.locator("img").count() == 0
    assert log.locator("script").count() == 0
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("script:not([src])").count() == 0
    page.screenshot(path=str(shots / "service-logs.png"), full_page=True)
    page.wait_for_timeout(500)
    assert dialogs == [], dialogs


def test_a_deploy_log_follows_live_until_active_and_its_cancel_button_goes(
    chromium: Any, daemon: Daemon, docker_image: str, unique: str, shots: Path
) -> None:
    p = f"br-{unique}"
    project(daemon, p, name="Deploy log test")
    service(daemon, p, docker_image)
    svc = f"/v1/workspaces/{WS}/projects/{p}/environments/production/services/web"
    # A slow-booting app: the deployment stays in progress for a few seconds.
    daemon.ok("PATCH", f"{svc}/config", {"changes": [{"key": "START_DELAY", "value": "5"}]})
    daemon.ok("POST", f"{svc}/deployments", {})
    page = sign_in(chromium, daemon, daemon.owner)
    dialogs = dialogs_of(page)
    page.goto(service_path(p) + "/deployments/1")
    log = page.locator("#deploy-log")
    log.wait_for()
    assert log.get_attribute("data-follow"), "an unsettled deployment's log follows"
    cancel = page.get_by_role("button", name="Cancel deployment #1")
    assert cancel.is_visible(), "in progress, it can be cancelled"
    page.evaluate("window.__clankNoReload = true")
    page.wait_for_function(
        "() => document.getElementById('deploy-log').textContent.includes('HEALTH_CHECKING \u2192 ACTIVE')",
        timeout=DEPLOY_WAIT_MS,
    )
    assert page.evaluate("window.__clankNoReload === true"), "the page was reloaded"
    page.wait_for_selector('.status[data-deployment="1"][data-status="ACTIVE"]')
    cancel.wait_for(state="hidden")
    text = log.inner_text()
    assert text.count("HEALTH_CHECKING \u2192 ACTIVE") == 1, text
    assert "ACTIVE" in page.locator("#deploy-log-status").inner_text()
    page.screenshot(path=str(shots / "deployment-live-log.png"), full_page=True)
    assert dialogs == []


def fits_the_width(page: Any) -> bool:
    """No horizontal scrolling: the page is no wider than the window."""
    return page.evaluate(
        "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " <= window.innerWidth"
    )


UNLABELLED = """() => Array.from(document.querySelectorAll(
    'input:not([type=hidden]), select, textarea'
)).filter(e => {
    const label = Array.from(e.labels || []).map(l => l.textContent.trim()).join(' ');
    const named = (e.getAttribute('aria-label') || '').trim();
    const by = (e.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
        .map(id => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
    return !(label || named || by);
}).map(e => e.outerHTML)"""


def test_a_phone_width_page_needs_no_sideways_scroll_the_keyboard_reaches_deploy_and_controls_are_labelled(
    chromium: Any, daemon: Daemon, docker_image: str, unique: str, shots: Path
) -> None:
    p = f"br-{unique}"
    project(daemon, p, name="Phone test")
    service(daemon, p, docker_image)
    svc = f"/v1/workspaces/{WS}/projects/{p}/environments/production/services/web"
    # Long unbroken text is what pushes a narrow page sideways.
    daemon.ok(
        "PATCH",
        f"{svc}/config",
        {"changes": [
            {"key": "LONG_VALUE", "value": "x" * 300},
            {"key": "API_KEY", "value": SECRET, "secret": True},
        ]},
    )
    daemon.ok("POST", f"{svc}/deployments", {})
    wait_status(daemon, p, 1, "ACTIVE")

    # 390 px: a phone held upright.
    context = chromium.new_context(base_url=daemon.base, viewport={"width": 390, "height": 844})
    phone = context.new_page()
    phone.goto("/ui/signin")
    assert fits_the_width(phone), "the sign-in page scrolls sideways"
    token_form(phone, daemon.owner)
    phone.wait_for_url(re.compile(rf"/ui/workspaces/{WS}$"))
    for name, path in (
        ("workspace", f"/ui/workspaces/{WS}"),
        ("project", f"/ui/workspaces/{WS}/projects/{p}"),
        ("service", service_path(p)),
        ("deployment", service_path(p) + "/deployments/1"),
    ):
        phone.goto(path)
        phone.wait_for_load_state("load")
        assert fits_the_width(phone), f"the {name} page scrolls sideways at 390 px"
        if name in ("project", "service"):
            phone.screenshot(path=str(shots / f"{name}-phone.png"), full_page=True)
    context.close()

    page = sign_in(chromium, daemon, daemon.owner)
    page.goto(service_path(p))
    page.wait_for_load_state("load")

    # Every control of the service page (settings, config, deploy) has an accessible name.
    assert page.locator("input:not([type=hidden]), select, textarea").count() >= 3
    assert page.evaluate(UNLABELLED) == []

    # The keyboard alone: the first Tab offers the skip link, then Tab walks to Deploy.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Skip to content"
    walked: List[str] = []
    for _ in range(150):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " return e.tagName + ':' + (e.getAttribute('aria-label') || e.textContent.trim()).slice(0, 40); }"
        )
        walked.append(focused)
        if focused == "BUTTON:Deploy":
            break
    assert walked[-1] == "BUTTON:Deploy", walked
    # Enter on it deploys, as a click would.
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/services/web(#deployments)?$"))
    cell(page, 2).wait_for()
