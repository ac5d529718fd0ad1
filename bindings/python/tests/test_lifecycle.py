"""Closing, interrupting and error details, the same in the Node suite (test/lifecycle.test.js):
after ``close()`` every call raises ``Closed`` and the data directory is free at once; Ctrl-C
interrupts any blocking call of ``clank.sync``; ``wait`` times out with ``Timeout``; a bad
value is named by its JSON path."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict

import pytest

import clank
import clank.sync

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def python_env() -> Dict[str, str]:
    """The environment of a child interpreter importing the same `clank` as this one."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(clank.__file__).resolve().parent.parent), env.get("PYTHONPATH")) if p
    )
    return env


def pending_deployment(p: Any) -> int:
    """A deployment of `shop/api` that stays PENDING: it depends on `db`, never deployed."""
    p_call = p._call
    result = p_call({"op": "create_project", "workspace": "default", "name": "Shop", "slug": "shop"})
    if asyncio.iscoroutine(result):  # pragma: no cover - sync callers only
        raise TypeError("pending_deployment takes a clank.sync.Platform")
    for slug, deps in (("db", []), ("api", ["db"])):
        p_call(
            {
                "op": "create_service",
                "environment": "shop",
                "spec": {
                    "slug": slug,
                    "depends_on": deps,
                    "source": {"type": "docker_image", "image": "clank-testapp:latest"},
                    "processes": {"web": {"command": ["/bin/true"], "replicas": 1}},
                },
            }
        )
    return int(p.deploy("shop/api")["number"])


# ---- close() ---------------------------------------------------------------------------------


def open_elsewhere(data_dir: Path) -> subprocess.CompletedProcess:
    """Open (and close) the platform in `data_dir` from another process."""
    script = "import sys, clank.sync\nclank.sync.Platform.open(sys.argv[1], runtime='process').close()\n"
    return subprocess.run(
        [sys.executable, "-c", script, str(data_dir)],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_after_close_every_call_raises_closed_and_the_data_directory_is_free_at_once(
    data_dir: Path,
) -> None:
    async def main() -> None:
        p = await clank.Platform.open(data_dir, runtime="process")
        await p.create_project("Shop", slug="shop")
        events = p.events()
        pending = asyncio.ensure_future(events.next())
        await asyncio.sleep(0.05)
        # While open, the directory is this platform's alone.
        with pytest.raises(clank.ClankError):
            await clank.Platform.open(data_dir, runtime="process")
        assert not p.closed

        await p.close()
        assert p.closed
        for call in (p.get_project("shop"), p.list_workspaces(), p.deploy("shop/api")):
            with pytest.raises(clank.Closed) as closed:
                await call
            assert closed.value.code == "closed" and str(closed.value) == "platform is closed"
            assert isinstance(closed.value, clank.ClankError)
        with pytest.raises(clank.Closed):
            p.events()
        with pytest.raises(clank.Closed):
            await pending
        with pytest.raises(clank.Closed):
            async for _ in events:
                pass
        await p.close()  # idempotent

        # Free now, without waiting for the garbage collector (`p` is still referenced).
        again = await clank.Platform.open(data_dir, runtime="process")
        assert [x["slug"] for x in await again.list_projects()] == ["shop"]
        await again.close()
        assert p is not None

    asyncio.run(main())
    elsewhere = open_elsewhere(data_dir)
    assert elsewhere.returncode == 0, elsewhere.stderr


def test_sync_close_raises_closed_everywhere_and_frees_the_directory_for_another_process(
    data_dir: Path,
) -> None:
    p = clank.sync.Platform.open(data_dir, runtime="process")
    number = pending_deployment(p)
    events = p.events()
    outcome: Dict[str, BaseException] = {}

    def blocked(name: str, fn: Any) -> threading.Thread:
        def run() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - inspected below
                outcome[name] = e

        t = threading.Thread(target=run)
        t.start()
        return t

    waiting = blocked("wait", lambda: p.wait("shop/api", number, timeout=600))
    following = blocked("events", lambda: next(events))
    time.sleep(0.2)
    # Another process cannot open the directory while this one has it.
    assert open_elsewhere(data_dir).returncode != 0

    started = time.monotonic()
    p.close()
    waiting.join(10)
    following.join(10)
    assert time.monotonic() - started < 8, "close (and the calls it ended) took too long"
    assert isinstance(outcome.get("wait"), clank.Closed), outcome
    assert isinstance(outcome.get("events"), clank.Closed), outcome
    with pytest.raises(clank.Closed):
        p.get_service("shop/api")
    with pytest.raises(clank.Closed):
        p.events()
    with pytest.raises(clank.Closed):
        events.next(timeout=1)
    p.close()

    elsewhere = open_elsewhere(data_dir)
    assert elsewhere.returncode == 0, elsewhere.stderr
    with clank.sync.Platform.open(data_dir, runtime="process") as again:
        assert again.deployment("shop/api", number)["status"] == "PENDING"


# ---- Ctrl-C ----------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[3])
    import clank.sync
    from test_lifecycle import pending_deployment

    p = clank.sync.Platform.open(sys.argv[1], runtime="process")
    if sys.argv[2] == "wait":
        number = pending_deployment(p)
        print("ready", flush=True)
        p.wait("shop/api", number, timeout=600)
    elif sys.argv[2] == "events":
        events = p.events()
        print("ready", flush=True)
        for event in events:
            pass
    elif sys.argv[2] == "next":
        events = p.events()
        print("ready", flush=True)
        events.next(timeout=600)
    else:  # the asyncio API: asyncio.run cancels the awaiting task, which cancels the call
        import asyncio, clank
        number = pending_deployment(p)
        p.close()

        async def main():
            p = await clank.Platform.open(sys.argv[1], runtime="process")
            print("ready", flush=True)
            await p.wait("shop/api", number, timeout=600)

        asyncio.run(main())
    print("returned", flush=True)
    """
)


@pytest.mark.parametrize("blocking", ["wait", "events", "next", "async"])
def test_ctrl_c_interrupts_a_blocking_call_with_keyboard_interrupt(
    data_dir: Path, blocking: str
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), blocking, str(Path(__file__).parent)],
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "ready", (line, child.stderr.read() if child.stderr else "")
        time.sleep(0.3)  # well inside the blocking call
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=5)
        took = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert took < 5, f"exited {took:.1f} s after SIGINT"
    assert "returned" not in out
    assert "Traceback" in err and err.rstrip().endswith("KeyboardInterrupt"), err
    assert child.returncode != 0


# ---- wait() times out with Timeout -----------------------------------------------------------


def test_wait_times_out_with_timeout(data_dir: Path) -> None:
    with clank.sync.Platform.open(data_dir, runtime="process") as p:
        number = pending_deployment(p)
        started = time.monotonic()
        with pytest.raises(clank.Timeout) as timeout:
            p.wait("shop/api", number, timeout=0.3)
        assert time.monotonic() - started >= 0.3
        assert timeout.value.code == "timeout" and timeout.value.field is None
        assert isinstance(timeout.value, TimeoutError)
        assert "PENDING" in str(timeout.value)

    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            with pytest.raises(clank.Timeout):
                await p.wait("shop/api", number, timeout=0)

    asyncio.run(main())


# ---- Fields of invalid input -----------------------------------------------------------------

# (what is called, the field named): the same cases, the same fields, in test/lifecycle.test.js.
BAD_CALLS = [
    ("create_service(settings.port='x')", "settings.port"),
    ("create_service(settings.port=70000)", "settings.port"),
    ("create_service(volumes[1].mount_path=5)", "volumes[1].mount_path"),
    ("create_service(source.image=5)", "source.image"),
    ("create_service(source.type='ftp')", "source.type"),
    ("create_service(settings.cpu_limit=-1)", "settings.cpu_limit"),
    ("update_service(settings.health_check_interval_s=-1)", "settings.health_check_interval_s"),
    ("deployment(number='one')", "number"),
    ("create_stack(inputs.nope)", "inputs.nope"),
]


async def bad_call(p: clank.Platform, name: str) -> Any:
    image = {"type": "docker_image", "image": "clank-testapp:latest"}
    calls = {
        "create_service(settings.port='x')": lambda: p.create_service(
            "shop", "x", image="clank-testapp:latest", settings={"port": "x"}
        ),
        "create_service(settings.port=70000)": lambda: p.create_service(
            "shop", "x", image="clank-testapp:latest", settings={"port": 70000}
        ),
        "create_service(volumes[1].mount_path=5)": lambda: p.create_service(
            "shop",
            "x",
            image="clank-testapp:latest",
            volumes=[{"name": "data", "mount_path": "/data"}, {"name": "logs", "mount_path": 5}],
        ),
        "create_service(source.image=5)": lambda: p.create_service(
            "shop", "x", source={**image, "image": 5}
        ),
        "create_service(source.type='ftp')": lambda: p.create_service(
            "shop", "x", source={"type": "ftp"}
        ),
        "create_service(settings.cpu_limit=-1)": lambda: p.create_service(
            "shop", "x", image="clank-testapp:latest", settings={"cpu_limit": -1}
        ),
        "update_service(settings.health_check_interval_s=-1)": lambda: p.update_service(
            "shop/api", settings={"health_check_interval_s": -1}
        ),
        "deployment(number='one')": lambda: p.deployment("shop/api", "one"),  # type: ignore[arg-type]
        "create_stack(inputs.nope)": lambda: p.create_stack("shop", "postgres", inputs={"nope": "1"}),
    }
    return await calls[name]()


def test_a_bad_value_is_named_by_its_json_path_as_in_node(data_dir: Path) -> None:
    async def main() -> None:
        async with await clank.Platform.open(data_dir, runtime="process") as p:
            await p.create_project("Shop", slug="shop")
            await p.create_service("shop", "api", image="clank-testapp:latest")
            for name, field in BAD_CALLS:
                with pytest.raises(clank.InvalidInput) as bad:
                    await bad_call(p, name)
                assert (bad.value.code, bad.value.field) == ("invalid", field), (name, bad.value)
                assert str(bad.value).startswith(f"{field}: "), (name, str(bad.value))
            assert [s["slug"] for s in await p.list_services("shop")] == ["api"]

    asyncio.run(main())
