"""One script, two platforms: the same operations (every group the CLI has) run against the
embedded platform (``Platform.open``) and against the released daemon on the Docker Engine
(``Platform.connect(url, token)``), with the same answers and the same errors; what only a
daemon has (members, tokens) is refused embedded with a clear error; a wrong token or URL
fails at connect."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from clank_daemon import free_port, running_daemon

import clank
import clank.sync

SECRET = "hunter2-remote-never-shown"


class Daemon:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token


@pytest.fixture
def daemon(docker_image: str, tmp_path: Path) -> Iterator[Daemon]:
    """The released daemon on Docker (``cargo build -p clank-daemon``), with workspace ``acme``
    and its Owner's token."""
    with running_daemon(tmp_path, "acme") as (url, token, _):
        yield Daemon(url, token)


def http_get(endpoint: str, path: str) -> str:
    with urllib.request.urlopen(f"http://{endpoint}{path}", timeout=5) as r:
        return r.read().decode().strip()


async def script(
    p: clank.Platform, project: str, image: str, workspaces: List[str]
) -> Dict[str, Any]:
    """What a team's script does, start to end; what it saw, for comparing the two modes.
    The project's workspace goes into ``workspaces`` (its containers are removed after)."""
    svc = f"{project}/web"
    seen: Dict[str, Any] = {}
    workspaces.append((await p.create_project("Remote test", slug=project))["workspace_id"])
    await p.create_environment(project, "staging")
    seen["environments"] = sorted(e["name"] for e in await p.list_environments(project))
    await p.create_service(project, "web", image=image, settings={"health_check_interval_s": 1})
    await p.set_config(service=svc, values={"GREETING": "hello"}, secrets={"TOKEN": SECRET})
    seen["config"] = sorted((v["key"], v["value"]) for v in await p.config(service=svc))

    events = p.events(svc)
    first = await p.deploy(svc)
    active = await p.wait(svc, first["number"], timeout=120)
    seen["first"] = (first["status"], active["status"])
    transitions: List[str] = []
    while "ACTIVE" not in transitions:
        e = await events.next(timeout=30)
        assert e is not None, "an event within 30 s"
        if e["type"] == "transition":
            transitions.append(e["to"])
    await events.aclose()
    seen["transitions"] = transitions
    [endpoint] = await p.endpoints(svc, first["number"])
    seen["served"] = http_get(endpoint, "/env?GREETING")

    status = await p.status(svc)
    seen["status"] = (status["active"]["number"], [d["number"] for d in status["recent"]])
    out = await p.exec(svc, ["/bin/busybox", "sh", "-c", "echo $GREETING; echo err >&2; exit 3"])
    seen["exec"] = out
    http_get(endpoint, "/log?remote-line")
    for _ in range(50):
        lines = [l["line"] for l in await p.logs(svc) if l["process"] == "web"]
        if "testapp log remote-line" in lines:
            break
        await asyncio.sleep(0.1)
    seen["logged"] = "testapp log remote-line" in lines

    # A wait that runs out is a Timeout, the same either way.
    second = await p.deploy(svc)
    try:
        await p.wait(svc, second["number"], timeout=0.001)
        seen["short_wait"] = "settled"
    except clank.Timeout:
        seen["short_wait"] = "timeout"
    await p.wait(svc, second["number"], timeout=120)
    back = await p.rollback(svc, first["number"])
    seen["rollback"] = (await p.wait(svc, back["number"], timeout=120))["status"]
    seen["deployments"] = [(d["number"], d["status"]) for d in await p.deployments(svc)]

    with pytest.raises(clank.InvalidInput) as bad:
        await p.update_service(svc, settings={"port": "eighty"})
    seen["bad_field"] = (bad.value.code, bad.value.field)
    with pytest.raises(clank.NotFound):
        await p.get_service(f"{project}/nope")

    team = await p.create_team("Ops")
    assigned = await p.assign_project(project, team["slug"])
    seen["team_assigned"] = assigned["team_id"] == team["id"]
    seen["unassigned"] = (await p.unassign_project(project))["team_id"]
    seen["templates"] = len(await p.list_templates()) > 0
    declaration = await p.export_project(project)
    plan = await p.apply_declaration(declaration)
    seen["plan_keys"] = sorted(plan)
    with pytest.raises(clank.InvalidInput):
        await p.servers()  # no agent endpoint on either
    seen["audit_is_a_list"] = isinstance(await p.audit(limit=10), list)

    await p.stop_service(svc)
    await p.start_service(svc)
    await p.delete_service(svc)
    await p.restore_service(svc)
    await p.delete_project(project, purge=True)
    return seen


def test_the_same_script_runs_embedded_and_against_a_daemon_with_the_same_answers(
    daemon: Daemon, docker_image: str, data_dir: Path, unique: str, docker_cleanup: List[str]
) -> None:
    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="docker") as here:
            embedded = await script(here, f"em-{unique}", docker_image, docker_cleanup)
            with pytest.raises(clank.InvalidInput) as refused:
                await here.members()
            assert refused.value.field == "op" and "connect" in str(refused.value)
        # The one line that changes.
        async with await clank.Platform.connect(daemon.url, daemon.token) as there:
            assert there.runtime == "remote"
            remote = await script(there, f"re-{unique}", docker_image, docker_cleanup)
            # What only a daemon has: members, tokens.
            added = await there.add_member("bob@example.com", name="Bob", role="developer")
            assert added["token"]
            assert len(await there.members()) == 2
            created = await there.create_token("ci")
            assert any(t["id"] == created["id"] for t in await there.tokens())
            await there.revoke_token(created["id"])
            actions = [e["action"] for e in await there.audit(limit=50)]
            assert "token.revoke" in actions and "service.exec" in actions
        assert embedded == remote
        assert embedded["exec"] == {"exit_code": 3, "stdout": "hello\n", "stderr": "err\n"}
        assert embedded["served"] == "hello" and SECRET not in json.dumps(embedded)
        assert embedded["logged"], "the app's line is in logs()"
        assert embedded["bad_field"] == ("invalid", "settings.port")

    asyncio.run(main())


def test_connect_fails_at_once_on_a_wrong_token_or_an_absent_daemon_and_closed_is_closed(
    daemon: Daemon,
) -> None:
    with pytest.raises(clank.Unauthorized) as e:
        clank.sync.connect(daemon.url, "clank_wrong")
    assert e.value.field == "token" and "clank token create" in str(e.value)
    with pytest.raises(clank.Unavailable) as e:
        clank.sync.connect(f"http://127.0.0.1:{free_port()}", daemon.token, retries=0)
    assert "clank-daemon" in str(e.value)
    with pytest.raises(clank.InvalidInput) as e:
        clank.sync.connect("ftp://example.invalid", daemon.token)
    assert e.value.field == "url"

    p = clank.sync.connect(daemon.url, daemon.token, timeout=5)
    assert p.list_projects() == []
    p.close()
    with pytest.raises(clank.Closed):
        p.list_projects()
