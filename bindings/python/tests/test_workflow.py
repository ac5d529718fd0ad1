"""Environments as a workflow through the binding, the same in the Node suite
(test/workflow.test.js): cloning an environment, listing deleted environments and services,
preview settings, previews listed and closed (a pull request without one is ``NotFound``), a
promotion planned on Docker and its plan read back, and team members added and removed against a
daemon (members exist only there)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, List

import pytest
from clank_daemon import running_daemon

import clank
import clank.sync

SECRET = "hunter2-workflow-never-shown"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_clone_deleted_lists_and_previews_embedded(data_dir: Path) -> None:
    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            await p.ensure_workspace("default")
            await p.create_project("Shop", slug="shop")
            await p.create_environment("shop", "staging")
            await p.create_service(
                "shop/staging", "api", image="clank-testapp:latest", command=["/bin/true"]
            )
            await p.create_service(
                "shop/staging", "db", image="clank-testapp:latest", command=["/bin/true"]
            )
            await p.set_config(
                environment="shop/staging", values={"MODE": "staging"}, secrets={"KEY": SECRET}
            )

            # Clone: every service, the config (secrets re-sealed, never shown), domains by
            # the pattern.
            report = await p.clone_environment(
                "shop/staging", "qa", domain_pattern="{service}-{env}.example.test"
            )
            assert report["environment"] == "default/shop/qa", report
            assert report["source"] == "default/shop/staging", report
            assert sorted(s["service"] for s in report["services"]) == [
                "default/shop/qa/api",
                "default/shop/qa/db",
            ]
            assert report["config_keys"] >= 2, report
            assert [s["slug"] for s in await p.list_services("shop/qa")] == ["api", "db"]
            qa = {v["key"]: v["value"] for v in await p.config(environment="shop/qa")}
            assert qa == {"MODE": "staging", "KEY": "********"}
            with pytest.raises(clank.Conflict):
                await p.clone_environment("shop/staging", "qa")

            # Deleted environments and services: hidden unless asked.
            await p.delete_service("shop/qa/db")
            assert [s["slug"] for s in await p.list_services("shop/qa")] == ["api"]
            listed = await p.list_services("shop/qa", include_deleted=True)
            assert [(s["slug"], s.get("deleted_at") is not None) for s in listed] == [
                ("api", False),
                ("db", True),
            ]
            await p.delete_environment("shop/qa")
            assert "qa" not in [e["name"] for e in await p.list_environments("shop")]
            with_deleted = await p.list_environments("shop", include_deleted=True)
            deleted = {e["name"]: e.get("deleted_at") for e in with_deleted}
            assert deleted["qa"] is not None and deleted["staging"] is None, deleted

            # Preview settings: none until set, then as stored.
            assert await p.preview_settings("shop") is None
            stored = await p.set_preview_settings(
                "shop",
                {
                    "base_environment": "staging",
                    "domain": "preview.test",
                    "ttl_minutes": 90,
                    "allow_forks": True,
                },
            )
            assert stored["base_environment"] == "staging" and stored["enabled"] is True
            got = await p.preview_settings("shop")
            assert got == stored
            assert got["ttl_minutes"] == 90 and got["allow_forks"] is True
            assert got["pattern"] == "{service}-pr-{n}.{domain}", got
            with pytest.raises(clank.InvalidInput) as bad:
                await p.set_preview_settings("shop", {"base_environment": "nowhere"})
            assert bad.value.field == "base_environment"

            # No pull request opened one: none listed, and closing one is NotFound naming it.
            assert await p.list_previews("shop") == []
            with pytest.raises(clank.NotFound) as nf:
                await p.close_preview("shop", 7)
            assert nf.value.code == "not_found" and "pr-7" in str(nf.value), str(nf.value)

            # Team members exist only on a daemon: removing an unknown one is NotFound.
            await p.create_team("Ops")
            with pytest.raises(clank.NotFound) as nobody:
                await p.remove_team_member("ops", "nobody@example.com")
            assert "nobody@example.com" in str(nobody.value)

    run(main())
    # The blocking twin.
    with clank.sync.Platform.open(data_dir / "sync", runtime="process") as p:
        p.ensure_workspace("default")
        p.create_project("Shop", slug="shop")
        p.create_service("shop", "api", image="clank-testapp:latest", command=["/bin/true"])
        report = p.clone_environment("shop/production", "qa", copy_config=False)
        assert [s["service"] for s in report["services"]] == ["default/shop/qa/api"]
        p.delete_service("shop/qa/api")
        assert p.list_services("shop/qa") == []
        assert [s["slug"] for s in p.list_services("shop/qa", include_deleted=True)] == ["api"]
        p.delete_environment("shop/qa")
        assert [e["name"] for e in p.list_environments("shop", include_deleted=True)] == [
            "production",
            "qa",
        ]
        assert p.preview_settings("shop") is None
        p.set_preview_settings("shop", {"base_environment": "production"})
        assert p.preview_settings("shop")["base_environment"] == "production"
        assert p.list_previews("shop") == []
        with pytest.raises(clank.NotFound):
            p.close_preview("shop", 1)


def test_a_promotion_plan_reads_back_by_id_on_docker(
    docker_image: str, data_dir: Path, unique: str, docker_cleanup: List[str]
) -> None:
    project = f"pyw-{unique}"

    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="docker") as p:
            ws = await p.ensure_workspace("default")
            docker_cleanup.append(ws["id"])
            await p.create_project("Py workflow", slug=project)
            await p.create_environment(project, "staging")
            for env in ("staging", "production"):
                await p.create_service(
                    f"{project}/{env}",
                    "web",
                    image=docker_image,
                    settings={"health_check_interval_s": 1},
                )
                await p.set_config(
                    service=f"{project}/{env}/web",
                    values={"MODE": env},
                    secrets={"KEY": f"{env}-{SECRET}"},
                )
            with pytest.raises(clank.Conflict) as undeployed:
                await p.plan_promotion(f"{project}/staging/web", "production")
            assert "deploy it first" in str(undeployed.value)
            d = await p.deploy(f"{project}/staging/web")
            assert (await p.wait(f"{project}/staging/web", d["number"], timeout=120))[
                "status"
            ] == "ACTIVE"

            plan = await p.plan_promotion(f"{project}/staging/web", "production")
            assert plan["kind"] == "promotion" and plan["unchanged"] is False
            got = await p.get_plan(plan["id"])
            assert got == plan
            assert await p.get_plan(plan["id"], workspace="default") == plan
            [svc] = got["services"]
            assert svc["service"] == f"default/{project}/production/web", svc
            assert SECRET not in str(got)
            with pytest.raises(clank.ClankError):
                await p.get_plan("no-such-plan")

    run(main())


def test_team_members_added_and_removed_against_a_daemon(tmp_path: Path) -> None:
    with running_daemon(tmp_path, "acme", runtime="process") as (url, token, _):

        async def main() -> None:
            async with await clank.Platform.connect(url, token) as p:
                await p.add_member("bob@example.com", name="Bob", role="developer")
                await p.create_team("Ops")
                added = await p.add_team_member("ops", "bob@example.com")
                assert added["email"] == "bob@example.com"
                assert [m["email"] for m in await p.list_team_members("ops")] == [
                    "bob@example.com"
                ]
                assert (await p.get_team("ops"))["members"] == 1
                removed = await p.remove_team_member("ops", "bob@example.com")
                assert removed["email"] == "bob@example.com"
                assert await p.list_team_members("ops") == []
                assert (await p.get_team("ops"))["members"] == 0
                with pytest.raises(clank.NotFound):
                    await p.remove_team_member("nope", "bob@example.com")

                # Over REST too: deleted items listed only when asked, a missing preview 404s.
                await p.create_project("Shop", slug="shop")
                await p.create_environment("shop", "qa")
                await p.create_service("shop/qa", "api", image="clank-testapp:latest")
                await p.delete_service("shop/qa/api")
                assert await p.list_services("shop/qa") == []
                listed = await p.list_services("shop/qa", include_deleted=True)
                assert [s["slug"] for s in listed] == ["api"]
                await p.delete_environment("shop/qa")
                assert [e["name"] for e in await p.list_environments("shop")] == ["production"]
                assert [
                    e["name"] for e in await p.list_environments("shop", include_deleted=True)
                ] == ["production", "qa"]
                with pytest.raises(clank.NotFound) as nf:
                    await p.close_preview("shop", 7)
                assert "pull request 7" in str(nf.value)

        run(main())
