"""Deploy an image service end to end on the embedded defaults and follow its events.

A redb store in ``./clank-data`` (or ``$CLANK_DATA``), the local Docker Engine — or native
processes when none is reachable (or ``CLANK_RUNTIME=process``) — and the deploy engine, all inside this process. Reruns
continue the service's history.

    bindings/python/build.sh
    cargo run -p clank-testkit --features docker --bin clank-testapp-image   # the demo image
    PYTHONPATH=bindings/python python3 examples/python/deploy.py
"""

from __future__ import annotations

import asyncio
import os
import urllib.request

import clank

IMAGE = os.environ.get("CLANK_IMAGE", "clank-testapp:latest")
SERVICE = "demo-py/hello"


async def ensure_service(p: clank.Platform) -> None:
    try:
        await p.get_project("demo-py")
    except clank.NotFound:
        await p.create_project("Demo (Python)", slug="demo-py")
    try:
        await p.get_service(SERVICE)
        return
    except clank.NotFound:
        pass
    if p.runtime == "docker":
        await p.create_service("demo-py", "hello", image=IMAGE, settings={"health_check_interval_s": 2})
    else:
        # Native processes run a command, not an image: busybox's httpd, checked by TCP.
        serve = "exec /bin/busybox httpd -f -p $PORT -h /tmp"
        await p.create_service(
            "demo-py",
            "hello",
            image=IMAGE,
            command=["/bin/busybox", "sh", "-c", serve],
            settings={"health_check_path": "", "health_check_interval_s": 2},
        )


async def main() -> None:
    data = os.environ.get("CLANK_DATA", "clank-data")
    runtime = os.environ.get("CLANK_RUNTIME", "auto")  # or "docker", "process"
    async with await clank.Platform.open(data, runtime=runtime) as p:
        print(f"store:   {os.path.join(data, 'clank.redb')}\nruntime: {p.runtime}")
        await ensure_service(p)
        await p.set_config(
            service=SERVICE, values={"GREETING": "hello from Python"}, secrets={"API_TOKEN": "s3cr3t"}
        )
        for var in await p.resolved_config(SERVICE):
            print(f"config:  {var['key']}={var['value']}  (from {var['source'].split(':')[0]})")

        events = p.events(SERVICE)  # subscribe first: nothing after this is missed
        d = await p.deploy(SERVICE)
        print(f"\ndeploying {SERVICE} #{d['number']} ({d['image'] or IMAGE})")
        async for e in events:
            if e["number"] != d["number"]:
                continue
            if e["type"] == "transition":
                print(f"  #{e['number']:<3} {e['from']} -> {e['to']}" + (f": {e['reason']}" if e["reason"] else ""))
                if e["to"] in ("ACTIVE", "FAILED", "CANCELLED"):
                    break
            elif e["type"] == "log" and "→" not in e["message"]:
                print(f"  #{e['number']:<3}   {e['message']}")

        final = await p.deployment(SERVICE, d["number"])
        if final["status"] == "ACTIVE":
            for endpoint in await p.endpoints(SERVICE, d["number"]):
                if p.runtime == "docker":
                    with urllib.request.urlopen(f"http://{endpoint}/env?GREETING", timeout=5) as r:
                        print(f"\nhttp://{endpoint}/env?GREETING says {r.read().decode().strip()!r}")
                else:
                    print(f"\nlistening on http://{endpoint}/")
        print(f"\ndeployments of {SERVICE} (newest first):")
        for past in await p.deployments(SERVICE, limit=5):
            print(f"  #{past['number']:<3} {past['status']:<11} {past['trigger']['kind']}")


if __name__ == "__main__":
    asyncio.run(main())
