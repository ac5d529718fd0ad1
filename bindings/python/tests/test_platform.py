"""The Python binding end to end: errors, secrets, concurrency, and a real deploy/rollback on
the Docker Engine. No pytest plugins: async tests run their body with `asyncio.run`."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import pytest

import clank
import clank.sync

SECRET = "hunter2-do-not-leak-7f3a"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ---- Errors ----------------------------------------------------------------------------------


def test_every_error_kind_is_a_clank_error_with_its_code() -> None:
    expected = {
        clank.NotFound: "not_found",
        clank.Conflict: "conflict",
        clank.InvalidInput: "invalid",
        clank.Unauthorized: "unauthorized",
        clank.Forbidden: "forbidden",
        clank.Unavailable: "unavailable",
        clank.Timeout: "timeout",
        clank.Internal: "internal",
    }
    for cls, code in expected.items():
        assert issubclass(cls, clank.ClankError)
        assert cls.code == code
    assert issubclass(clank.NotFound, LookupError)
    assert issubclass(clank.InvalidInput, ValueError)


def test_platform_errors_raise_the_mapped_exception_with_code_and_field(data_dir: Path) -> None:
    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            await p.ensure_workspace("default")
            await p.create_project("Shop", slug="shop")

            with pytest.raises(clank.NotFound) as nf:
                await p.get_service("shop/nope")
            assert nf.value.code == "not_found" and nf.value.field is None
            assert "shop/production/nope" in str(nf.value)
            with pytest.raises(clank.NotFound):
                await p.deployment("shop/nope", 1)

            with pytest.raises(clank.Conflict) as conflict:
                await p.create_project("Shop again", slug="shop")
            assert conflict.value.code == "conflict"

            with pytest.raises(clank.InvalidInput) as bad:
                await p.create_project("Bad", slug="Not A Slug")
            assert bad.value.code == "invalid" and bad.value.field == "slug"

            with pytest.raises(clank.InvalidInput) as addr:
                await p.get_service("just-a-service")
            assert addr.value.field == "address"

            with pytest.raises(clank.InvalidInput) as target:
                await p.config(service="shop/x", project="shop")
            assert target.value.field == "target"

            # A deploy that waits too long is a Timeout naming the state it is stuck in.
            await p.create_service("shop", "never", image="clank-testapp:latest", command=["/nonexistent"])
            d = await p.deploy("shop/never")
            with pytest.raises(clank.Timeout) as timeout:
                await p.wait("shop/never", d["number"], timeout=0)
            assert timeout.value.code == "timeout"

    run(main())

    # No engine behind DOCKER_HOST: Unavailable, with the socket in the message.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DOCKER_HOST", f"unix://{data_dir}/no-docker.sock")
        with pytest.raises(clank.Unavailable) as unavailable:
            clank.sync.Platform.open(data_dir / "docker", runtime="docker")
    assert unavailable.value.code == "unavailable" and "no-docker.sock" in str(unavailable.value)

    with pytest.raises(clank.InvalidInput) as bad_runtime:
        clank.sync.Platform.open(data_dir / "other", runtime="kubernetes")
    assert bad_runtime.value.field == "runtime"


# ---- Secrets ---------------------------------------------------------------------------------


def test_a_secret_never_appears_in_any_returned_value(data_dir: Path) -> None:
    returned: List[Any] = []

    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            await p.create_project("Vault", slug="vault")
            await p.create_service("vault", "app", image="clank-testapp:latest", command=["/bin/true"])
            events = p.events("vault/app")
            returned.append(
                await p.set_config(service="vault/app", values={"PLAIN": "visible"}, secrets={"TOKEN": SECRET})
            )
            returned.append(await p.set_config(project="vault", secrets={"PROJECT_KEY": SECRET}))
            returned.append(await p.config(service="vault/app"))
            returned.append(await p.config(project="vault"))
            resolved = await p.resolved_config("vault/app")
            returned.append(resolved)
            d = await p.deploy("vault/app")
            returned.append(d)
            returned.append(await p.deployment("vault/app", d["number"]))
            returned.append(await p.deployments("vault/app"))
            returned.append(await p.wait("vault/app", d["number"], timeout=30))
            returned.append(await p.deploy_log("vault/app", d["number"]))
            while True:
                e = await events.next(timeout=10)
                returned.append(e)
                if e is None or e.get("to") in ("ACTIVE", "FAILED"):
                    break
            await events.aclose()

            by_key = {v["key"]: v for v in resolved}
            assert by_key["TOKEN"] == {**by_key["TOKEN"], "secret": True, "value": "********"}
            assert by_key["PLAIN"]["value"] == "visible"
            assert by_key["PROJECT_KEY"]["source"].startswith("project:")
            assert by_key["TOKEN"]["source"].startswith("service:")
            assert {v["key"]: v["value"] for v in d["config"]}["TOKEN"] == "********"

    run(main())
    text = json.dumps(returned)
    assert SECRET not in text
    assert "********" in text


# ---- Teams -----------------------------------------------------------------------------------


def test_a_team_gives_its_projects_config_below_the_services_own(data_dir: Path) -> None:
    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            await p.ensure_workspace("default")
            await p.create_project("Shop", slug="shop")
            await p.create_service("shop", "api", image="clank-testapp:latest", command=["/bin/true"])
            team = await p.create_team("Ops")
            assert team["slug"] == "ops"
            assert (await p.assign_project("shop", "ops"))["team_id"] == team["id"]
            await p.set_config(team="ops", values={"REGION": "eu", "LEVEL": "team"})
            await p.set_config(service="shop/api", values={"LEVEL": "service"})
            assert {v["key"] for v in await p.config(team="ops")} == {"REGION", "LEVEL"}
            resolved = {v["key"]: v for v in await p.resolved_config("shop/api")}
            assert resolved["REGION"]["source"] == f"team:{team['id']}"
            assert resolved["LEVEL"]["value"] == "service"
            assert resolved["LEVEL"]["overridden"] == [f"team:{team['id']}"]
            assert [(t["slug"], t["projects"]) for t in await p.list_teams()] == [("ops", ["shop"])]
            assert (await p.get_team(team["id"]))["slug"] == "ops"
            assert await p.list_team_members("ops") == []

            with pytest.raises(clank.Conflict) as busy:
                await p.delete_team("ops")
            assert "`shop`" in str(busy.value)
            with pytest.raises(clank.NotFound):
                await p.add_team_member("ops", "nobody@example.com")
            with pytest.raises(clank.InvalidInput) as bad:
                await p.create_team("X", slug="Bad Slug")
            assert bad.value.field == "slug"
            with pytest.raises(clank.InvalidInput) as two:
                await p.config(team="ops", project="shop")
            assert two.value.field == "target"

            assert (await p.unassign_project("shop"))["team_id"] is None
            assert (await p.delete_team("default/ops"))["id"] == team["id"]
            assert await p.list_teams() == []
            resolved = {v["key"] for v in await p.resolved_config("shop/api")}
            assert "REGION" not in resolved

    run(main())
    # The blocking twin, on a data directory of its own (the async one may still hold its lock).
    with clank.sync.Platform.open(data_dir / "sync", runtime="process") as p:
        p.ensure_workspace("default")
        p.create_project("Shop", slug="shop")
        t = p.create_team("Data", slug="data")
        assert p.assign_project("shop", "data")["team_id"] == t["id"]
        p.set_config(team="data", secrets={"TOKEN": SECRET})
        assert p.config(team="data")[0]["value"] == "********"
        assert p.get_team("data")["projects"] == ["shop"]


# ---- Declarations ----------------------------------------------------------------------------


def test_an_exported_project_applies_by_plan_id_once_and_then_plans_nothing(data_dir: Path) -> None:
    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            await p.ensure_workspace("default")
            await p.create_project("Shop", slug="shop")
            await p.create_service("shop", "api", image="clank-testapp:latest", command=["/bin/true"])
            await p.set_config(service="shop/api", values={"MODE": "prod"}, secrets={"TOKEN": SECRET})
            exported = await p.export_project("shop")
            api = exported["environments"]["production"]["services"]["api"]
            assert api["config"] == {"MODE": "prod", "TOKEN": {"secret_env": "TOKEN"}}
            assert SECRET not in json.dumps(exported)

            copy = {**exported, "project": "shop2"}
            with pytest.raises(clank.InvalidInput) as missing:
                await p.apply_declaration(copy)
            assert missing.value.field == "environments.production.services.api.config.TOKEN"
            plan = await p.apply_declaration(copy, secrets={"TOKEN": "fresh-" + SECRET})
            assert plan["kind"] == "apply" and plan["unchanged"] is False
            assert ("default/shop2/production/api", "create") in [
                (s["service"], s["action"]) for s in plan["services"]
            ]
            assert SECRET not in json.dumps(plan)
            applied = await p.apply_plan(plan["id"])
            assert applied["created"] == ["default/shop2/production/api"]
            with pytest.raises(clank.Conflict):
                await p.apply_plan(plan["id"])
            token = {v["key"]: v for v in await p.config(service="shop2/api")}["TOKEN"]
            assert token["secret"] is True and token["value"] == "********"
            again = await p.apply_declaration(copy)
            assert again["unchanged"] is True
            assert (await p.get_plan(again["id"]))["id"] == again["id"]

    run(main())
    with clank.sync.Platform.open(data_dir / "sync", runtime="process") as p:
        p.ensure_workspace("default")
        p.create_project("Shop", slug="shop")
        declared = p.export_project("shop")
        declared["config"] = {"MODE": "prod"}
        plan = p.apply_declaration(declared)
        p.apply_plan(plan["id"])
        assert p.config(project="shop")[0]["value"] == "prod"
        assert p.apply_declaration(declared)["unchanged"] is True


# ---- Delete and restore ----------------------------------------------------------------------


def test_deleted_services_environments_and_projects_come_back_with_restore(data_dir: Path) -> None:
    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            await p.ensure_workspace("default")
            await p.create_project("Shop", slug="shop")
            await p.create_environment("shop", "staging")
            await p.create_service("shop", "api", image="clank-testapp:latest", command=["/bin/true"])

            report = await p.delete_service("shop/api")
            assert report["target"].endswith("shop/production/api"), report
            assert report["restorable_until"] is not None and "purged" not in report
            assert [s["slug"] for s in await p.list_services("shop")] == []
            assert (await p.restore_service("shop/api"))["slug"] == "api"
            assert await p.builds("shop/api") == []
            with pytest.raises(clank.NotFound):
                await p.build("shop/api", 1)
            assert [s["slug"] for s in await p.list_services("shop")] == ["api"]

            with pytest.raises(clank.InvalidInput) as bad:
                await p.delete_environment("shop/staging", volumes=True)
            assert bad.value.field == "volumes"
            await p.delete_environment("shop/staging")
            assert [e["name"] for e in await p.list_environments("shop")] == ["production"]
            assert (await p.restore_environment("shop/staging"))["name"] == "staging"

            await p.delete_project("shop")
            assert await p.list_projects() == []
            assert [x["slug"] for x in await p.list_projects(include_deleted=True)] == ["shop"]
            assert (await p.restore_project("shop"))["deleted_at"] is None
            assert [x["slug"] for x in await p.list_projects()] == ["shop"]

            purged = await p.delete_service("shop/api", purge=True)
            assert purged["restorable_until"] is None and "purged" in purged
            with pytest.raises(clank.NotFound):
                await p.restore_service("shop/api")

    run(main())


# ---- Templates and stacks --------------------------------------------------------------------


def test_stack_from_a_template_with_its_secret_never_returned_and_upgrades_only_by_plan_id(
    data_dir: Path,
) -> None:
    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            await p.create_project("Shop", slug="shop")
            names = [t["name"] for t in await p.list_templates()]
            assert "postgres" in names and "wordpress" in names
            wp = await p.template("wordpress")
            assert [s["slug"] for s in wp["services"]] == ["db", "app"]

            with pytest.raises(clank.InvalidInput) as bad:
                await p.create_stack("shop", "postgres", inputs={"nope": "1"})
            assert bad.value.field == "inputs.nope"
            with pytest.raises(clank.InvalidInput) as unknown:
                await p.create_stack("shop", "no-such-template")
            assert unknown.value.field == "template"
            assert await p.list_services("shop") == []

            s = await p.create_stack("shop", "postgres", name="db", inputs={"database": "orders"})
            assert s["template"] == "postgres" and [x["service"] for x in s["services"]] == ["db"]
            assert (await p.stack("shop/db"))["slug"] == "db"
            assert [x["slug"] for x in await p.stacks("shop")] == ["db"]
            with pytest.raises(clank.InvalidInput) as taken:
                await p.create_stack("shop", "postgres", name="db")
            assert taken.value.field == "name"

            config = await p.config(service="shop/db")
            by_key = {v["key"]: v for v in config}
            assert by_key["POSTGRES_PASSWORD"]["secret"] is True
            assert by_key["POSTGRES_PASSWORD"]["value"] == "********"
            assert by_key["POSTGRES_DB"]["value"] == "orders"

            preview = await p.upgrade_stack("shop/db")
            assert preview["applied"] is False and preview["plan_id"]
            with pytest.raises(clank.Conflict):
                await p.upgrade_stack("shop/db", apply="not-the-plan")
            done = await p.upgrade_stack("shop/db", apply=preview["plan_id"])
            assert done["applied"] is True

    run(main())


# ---- Concurrency -----------------------------------------------------------------------------


def test_concurrent_calls_from_many_tasks(data_dir: Path) -> None:
    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            await p.create_project("Busy", slug="busy")
            created = await asyncio.gather(
                *(p.create_service("busy", f"svc-{i}", image="clank-testapp:latest") for i in range(16))
            )
            assert sorted(s["slug"] for s in created) == sorted(f"svc-{i}" for i in range(16))
            got = await asyncio.gather(*(p.get_service(f"busy/svc-{i % 16}") for i in range(400)))
            assert [g["slug"] for g in got] == [f"svc-{i % 16}" for i in range(400)]
            # Config writes to one scope race on its version and are retried, none lost.
            await asyncio.gather(
                *(p.set_config(service="busy/svc-0", values={f"K{i}": str(i)}) for i in range(20))
            )
            assert len(await p.config(service="busy/svc-0")) == 20

            # Several followers each see every event of a deployment.
            followers = [p.events("busy/svc-1") for _ in range(4)]
            d = await p.deploy("busy/svc-1")

            async def first_created(events: clank.Events) -> int:
                async with events:
                    while True:
                        e = await events.next(timeout=10)
                        assert e is not None
                        if e["type"] == "created":
                            return int(e["number"])

            assert await asyncio.gather(*(first_created(f) for f in followers)) == [d["number"]] * 4

    run(main())


def test_store_reads_answer_alike_in_place_or_awaited_and_yield_to_the_loop(
    data_dir: Path,
) -> None:
    from clank import _native

    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            await p.create_project("Reads", slug="reads")
            await p.create_service("reads", "api", image="clank-testapp:latest")
            request = json.dumps({"op": "get_service", "service": "reads/api"})
            # 1 s: answered in place (a str); 0: always through an awaitable.
            for budget in (1.0, 0.0):
                _native.set_read_budget(budget)
                try:
                    raw = p._native.call(request)
                    assert isinstance(raw, str) == (budget > 0), raw
                    assert (await p.get_service("reads/api"))["slug"] == "api"
                    with pytest.raises(clank.NotFound) as nf:
                        await p.get_service("reads/nope")
                    assert nf.value.code == "not_found"
                    assert len(await p.list_services("reads")) == 1
                    # A write never answers in place.
                    assert not isinstance(
                        p._native.call(json.dumps({"op": "ensure_workspace", "slug": "w"})), str
                    )
                finally:
                    _native.set_read_budget(0.001)

            # A loop of reads answered in place still lets other tasks run between them.
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            t = asyncio.ensure_future(ticker())
            await asyncio.sleep(0)
            before = ticks
            for _ in range(50):
                await p.get_service("reads/api")
            assert ticks - before >= 40, ticks - before
            t.cancel()

            # Cancelling a task awaiting a (handed-off) read cancels it cleanly.
            _native.set_read_budget(0.0)
            try:
                task = asyncio.ensure_future(p.get_service("reads/api"))
                await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert (await p.get_service("reads/api"))["slug"] == "api"
            finally:
                _native.set_read_budget(0.001)

    run(main())


def test_concurrent_calls_from_many_threads_release_the_gil(data_dir: Path) -> None:
    with clank.sync.Platform.open(data_dir, runtime="process") as p:
        p.create_project("Threads", slug="threads")
        p.create_service("threads", "api", image="clank-testapp:latest")
        errors: List[BaseException] = []
        counts: Dict[int, int] = {}

        def worker(n: int) -> None:
            try:
                for i in range(100):
                    assert p.get_service("threads/api")["slug"] == "api"
                p.create_service("threads", f"worker-{n}", image="clank-testapp:latest")
                counts[n] = 100
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len(counts) == 8
        assert len(p.list_services("threads")) == 9

        # While one thread blocks in native code (waiting 0.5 s for an event that never
        # comes), Python code keeps running on another: the GIL is released.
        ticks = 0
        stop = threading.Event()

        def spin() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1

        spinner = threading.Thread(target=spin)
        spinner.start()
        with p.events("threads/api") as events:
            before = ticks
            with pytest.raises(TimeoutError):
                events.next(timeout=0.5)
            during = ticks - before
        stop.set()
        spinner.join()
        assert during > 1000, f"only {during} ticks while blocked: the GIL was held"


# ---- The real thing: Docker ------------------------------------------------------------------


def http_get(endpoint: str, path: str) -> str:
    with urllib.request.urlopen(f"http://{endpoint}{path}", timeout=5) as r:
        return r.read().decode().strip()


async def follow_to_active(events: clank.Events, number: int, seen: List[str]) -> None:
    """Read events until deployment `number` is ACTIVE; fail on FAILED/CANCELLED."""
    while True:
        e = await events.next(timeout=120)
        assert e is not None, "event stream ended"
        if e["number"] != number or e["type"] != "transition":
            continue
        seen.append(f"#{number} {e['from']}->{e['to']}")
        assert e["to"] not in ("FAILED", "CANCELLED"), e
        if e["to"] == "ACTIVE":
            return


def test_deploy_follow_events_and_roll_back_on_docker(
    docker_image: str, data_dir: Path, unique: str, docker_cleanup: List[str]
) -> None:
    project = f"py-{unique}"
    svc = f"{project}/web"

    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="docker") as p:
            assert p.runtime == "docker"
            ws = await p.ensure_workspace("default")
            docker_cleanup.append(ws["id"])
            await p.create_project("Py binding test", slug=project)
            await p.create_service(
                project, "web", image=docker_image, settings={"health_check_interval_s": 1}
            )
            await p.set_config(service=svc, values={"GREETING": "first"}, secrets={"TOKEN": SECRET})
            seen: List[str] = []

            events = p.events(svc)
            first = await p.deploy(svc)
            assert first["status"] == "PENDING" and first["number"] == 1
            await follow_to_active(events, 1, seen)
            [endpoint] = await p.endpoints(svc, 1)
            assert http_get(endpoint, "/env?GREETING") == "first"
            assert http_get(endpoint, "/env?TOKEN") == SECRET  # decrypted only inside the workload

            await p.set_config(service=svc, values={"GREETING": "second"})
            second = await p.deploy(svc)
            await follow_to_active(events, second["number"], seen)
            [endpoint] = await p.endpoints(svc, second["number"])
            assert http_get(endpoint, "/env?GREETING") == "second"

            back = await p.rollback(svc, 1)
            assert back["trigger"]["kind"] == "rollback_of" and back["trigger"]["number"] == 1
            await follow_to_active(events, back["number"], seen)
            await events.aclose()
            [endpoint] = await p.endpoints(svc, back["number"])
            assert http_get(endpoint, "/env?GREETING") == "first"  # config restored with the image

            statuses = {d["number"]: d["status"] for d in await p.deployments(svc)}
            assert statuses[back["number"]] == "ACTIVE"
            assert statuses[second["number"]] == "SUPERSEDED"
            assert (await p.get_service(svc))["active_deployment"] == back["id"]
            log = await p.deploy_log(svc, back["number"])
            assert log and all(SECRET not in entry["message"] for entry in log)
            assert "#1 PENDING->DEPLOYING" in seen or any(s.startswith("#1 ") for s in seen)

            # Stopped: its workloads go away, the deployment stays ACTIVE, deploys are refused
            # until it is started again; started, the same version serves again.
            stopped = await p.stop_service(svc)
            assert stopped["stopped_at"] is not None
            assert await wait_for_endpoints(p, svc, back["number"], present=False) == []
            assert (await p.deployment(svc, back["number"]))["status"] == "ACTIVE"
            with pytest.raises(clank.Conflict):
                await p.deploy(svc)
            started = await p.start_service(svc)
            assert started.get("stopped_at") is None
            [endpoint] = await wait_for_endpoints(p, svc, back["number"], present=True)
            assert await http_get_once_up(endpoint, "/env?GREETING") == "first"

    run(main())


async def http_get_once_up(endpoint: str, path: str) -> str:
    """`http_get` once the workload answers (it may still be starting), within 30 s."""
    for _ in range(300):
        try:
            return http_get(endpoint, path)
        except OSError:
            await asyncio.sleep(0.1)
    return http_get(endpoint, path)


async def wait_for_endpoints(p: Any, svc: str, number: int, present: bool) -> List[str]:
    """The deployment's endpoints once there are some (`present`) or none, within 60 s."""
    for _ in range(600):
        found = await p.endpoints(svc, number)
        if bool(found) == present:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"endpoints of #{number} never became {'present' if present else 'empty'}")
