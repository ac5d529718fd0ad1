"""Following a service's output (``follow_logs``, the CLI's ``clank logs -f``) on the native
process runtime, embedded (``Platform.open``) and against the released daemon
(``Platform.connect``), with the same lines and the same errors; the blocking iterator of
``clank.sync`` and its Ctrl-C; ``connect(ca_cert=...)``. The same in the Node suite
(test/follow.test.js)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest
from clank_daemon import running_daemon
from test_lifecycle import python_env

import clank
import clank.sync

# A web process on the native process runtime that prints a line (on stderr) for each request
# it answers (a 404 for every path), and nothing else once it serves.
SERVER = [
    "/bin/sh",
    "-c",
    "echo starting; exec /usr/bin/python3 -u -m http.server --bind 127.0.0.1 $PORT",
]
TCP_CHECK = {"health_check_path": "", "health_check_interval_s": 1}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory whose workloads' own user (the process runtime isolates each
    workspace's) can reach theirs: not under pytest's private ``tmp_path``."""
    top = Path(tempfile.mkdtemp(prefix="clank-follow-"))
    top.chmod(0o755)
    yield top / "clank-data"
    shutil.rmtree(top, ignore_errors=True)


def request(endpoint: str, path: str) -> None:
    """GET `path`: the service prints a line naming it."""
    try:
        urllib.request.urlopen(f"http://{endpoint}{path}", timeout=5).read()
    except urllib.error.HTTPError as e:
        assert e.code == 404


async def serving(p: clank.Platform, project: str) -> Tuple[str, str]:
    """The service `project/web` deployed and ACTIVE, and its endpoint."""
    svc = f"{project}/web"
    await p.create_project("Follow", slug=project)
    await p.create_service(
        project, "web", image="clank-testapp:latest", command=SERVER, settings=TCP_CHECK
    )
    d = await p.deploy(svc)
    status = (await p.wait(svc, d["number"], timeout=120))["status"]
    assert status == "ACTIVE", [e["message"] for e in await p.deploy_log(svc, d["number"])]
    [endpoint] = await p.endpoints(svc, d["number"])
    return svc, endpoint


async def stop(p: clank.Platform, svc: str) -> None:
    """Stop the service and wait until its workloads are gone (they would outlive the
    platform)."""
    await p.stop_service(svc)
    number = (await p.status(svc))["active"]["number"]
    for _ in range(200):
        if not await p.endpoints(svc, number):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{svc} still runs")


async def until_line(logs: Any, text: str) -> Dict[str, Any]:
    """Read `logs` until a line containing `text`."""
    while True:
        line = await logs.next(timeout=10)
        assert line is not None, f"a line with {text!r} within 10 s"
        if text in line["line"]:
            return line


async def follow_script(p: clank.Platform, project: str) -> Dict[str, Any]:
    """What a script following a service's output sees, for comparing the two modes."""
    seen: Dict[str, Any] = {}
    svc, endpoint = await serving(p, project)
    try:
        for i in range(3):
            request(endpoint, f"/before-{i}")
        for _ in range(100):  # in the history
            if any("/before-2" in l["line"] for l in await p.logs(svc)):
                break
            await asyncio.sleep(0.1)

        async with p.follow_logs(svc, tail=2) as logs:
            # The tail: the last two lines printed before the follow began (each request
            # prints two).
            history = [(await logs.next(timeout=10))["line"] for _ in range(2)]
            seen["history"] = ["/before-2" in h for h in history]
            # A line printed after the follow began, the same dict as a logs() line.
            request(endpoint, "/after-follow")
            later = await until_line(logs, "/after-follow")
            [recent] = await p.logs(svc, tail=1)
            seen["keys"] = sorted(later) == sorted(recent)
            seen["line"] = (later["process"], later["replica"], later["stream"])
        # Closed (leaving `async with`): it ends.
        assert await logs.next(timeout=5) is None

        # Closing early: `break`, then `aclose()`.
        picked = p.follow_logs(svc, tail=1, process="web", replica=0)
        async for line in picked:
            seen["picked"] = (line["process"], line["replica"])
            break
        await picked.aclose()
        with pytest.raises(StopAsyncIteration):
            await picked.__anext__()

        # A refusal is raised by the first iteration, with the same code and field either way.
        with pytest.raises(clank.NotFound) as nf:
            await p.follow_logs(f"{project}/nope").next(timeout=30)
        seen["not_found"] = (nf.value.code, nf.value.field)
        with pytest.raises(clank.NotFound) as nf:
            async for _ in p.follow_logs(f"nope-{project}/web"):
                pass
        seen["no_project"] = (nf.value.code, nf.value.field)
        with pytest.raises(clank.InvalidInput) as bad:
            await p.follow_logs(svc, process="worker").next(timeout=30)
        seen["bad_process"] = (bad.value.code, bad.value.field)
        with pytest.raises(clank.InvalidInput) as bad:
            p.follow_logs(svc, tail=-1)
        seen["bad_tail"] = (bad.value.code, bad.value.field)

        # Opened and closed again and again: each close ends its stream (a daemon allows a
        # token 8 open streams: the HTTP requests must have ended).
        for _ in range(10):
            logs = p.follow_logs(svc, tail=1)
            assert await logs.next(timeout=10) is not None
            await logs.aclose()
            await asyncio.sleep(0.05)
    finally:
        await stop(p, svc)
    return seen


def closing_ends_it(open_platform: Any) -> None:
    """A follow pending when its platform is closed raises Closed, like events()."""

    async def main() -> None:
        p = await open_platform()
        try:
            svc, _ = await serving(p, "quiet")
            logs = p.follow_logs(svc, tail=1)
            assert await logs.next(timeout=10) is not None
            with pytest.raises(TimeoutError):  # nothing more is printed
                await logs.next(timeout=0.3)
            pending = asyncio.ensure_future(logs.next())
            await asyncio.sleep(0.2)
            assert not pending.done(), "nothing more is printed"
        finally:
            await p.close()
        with pytest.raises(clank.Closed) as closed:
            await asyncio.wait_for(pending, 10)
        assert str(closed.value) == "platform is closed" and closed.value.code == "closed"
        with pytest.raises(clank.Closed):
            await logs.next()
        with pytest.raises(clank.Closed):
            p.follow_logs(svc)
        async with await open_platform() as again:
            await stop(again, svc)

    asyncio.run(main())


def test_follow_logs_embedded_and_against_a_daemon_alike(data_dir: Path) -> None:
    tmp_path = data_dir.parent
    async def embedded() -> Dict[str, Any]:
        async with await clank.Platform.open(tmp_path / "embedded", runtime="process") as p:
            return await follow_script(p, "shop")

    here = asyncio.run(embedded())
    with running_daemon(tmp_path, "acme", runtime="process") as (url, token, _):

        async def remote() -> Dict[str, Any]:
            async with await clank.Platform.connect(url, token) as p:
                return await follow_script(p, "shop")

        there = asyncio.run(remote())
        closing_ends_it(lambda: clank.Platform.connect(url, token))
    assert here == there
    assert here["history"] == [False, True], here
    assert here["keys"] and here["line"] == ("web", 0, "stderr")
    assert here["picked"] == ("web", 0)
    assert here["not_found"] == here["no_project"] == ("not_found", None)
    assert here["bad_process"] == ("invalid", "process")
    assert here["bad_tail"] == ("invalid", "tail")


def test_closing_the_platform_ends_a_follow_with_closed(data_dir: Path) -> None:
    closing_ends_it(lambda: clank.Platform.open(data_dir, runtime="process"))


def test_the_sync_iterator_follows_and_closes(data_dir: Path) -> None:
    async def deploy() -> str:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            return (await serving(p, "shop"))[1]

    endpoint = asyncio.run(deploy())
    with clank.sync.Platform.open(data_dir, runtime="process") as p:
        try:
            request(endpoint, "/sync-1")
            with p.follow_logs("shop/web", tail=10) as logs:
                for line in logs:
                    if "/sync-1" in line["line"]:
                        break
                request(endpoint, "/sync-2")
                for line in logs:
                    if "/sync-2" in line["line"]:
                        break
                with pytest.raises(TimeoutError):  # nothing more is printed
                    logs.next(timeout=0.3)
            assert logs.next(timeout=1) is None
            assert list(logs) == []
            with pytest.raises(clank.NotFound):
                next(p.follow_logs("shop/nope"))
        finally:
            p.close()
            asyncio.run(stopped(data_dir, "shop/web"))


async def stopped(data_dir: Path, svc: str) -> None:
    async with await clank.Platform.open(data_dir, runtime="process") as p:
        await stop(p, svc)


CHILD = textwrap.dedent(
    """
    import sys
    import clank.sync

    p = clank.sync.Platform.open(sys.argv[1], runtime="process")
    logs = p.follow_logs("quiet/web", tail=1)
    print("ready", next(logs)["process"], flush=True)
    for line in logs:
        print("line", line, flush=True)
    print("returned", flush=True)
    """
)


def test_ctrl_c_interrupts_the_sync_log_iterator(data_dir: Path) -> None:
    async def deploy() -> None:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            await serving(p, "quiet")

    asyncio.run(deploy())

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir)],
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "ready web", (line, child.stderr.read() if child.stderr else "")
        time.sleep(0.3)  # well inside the wait for the next line
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=5)
        took = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        asyncio.run(stopped(data_dir, "quiet/web"))
    assert took < 5, f"exited {took:.1f} s after SIGINT"
    assert "returned" not in out and "line" not in out
    assert "Traceback" in err and err.rstrip().endswith("KeyboardInterrupt"), err
    assert child.returncode != 0


def test_connect_passes_ca_cert_and_refuses_a_bad_one(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(clank.InvalidInput) as bad:
        clank.sync.connect("https://127.0.0.1:9", "clank_token", ca_cert=missing)
    assert bad.value.code == "invalid" and bad.value.field == "ca_cert", bad.value
    assert str(missing) in str(bad.value)
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")

    async def main() -> None:
        with pytest.raises(clank.InvalidInput) as bad:
            await clank.connect("https://127.0.0.1:9", "clank_token", ca_cert=str(not_pem))
        assert bad.value.field == "ca_cert", bad.value

    asyncio.run(main())
