"""Clank from Python: the deployment platform as an asyncio API.

    import asyncio, clank

    async def main():
        async with await clank.Platform.open("./clank-data") as p:
            await p.create_project("Shop", slug="shop")
            await p.create_service("shop", "api", image="nginx:1.27")
            await p.set_config(service="shop/api", values={"MODE": "prod"}, secrets={"TOKEN": "s3cr3t"})
            events = p.events("shop/api")
            d = await p.deploy("shop/api")
            async for e in events:
                print(e["type"], e.get("to", e.get("message")))
                if e["number"] == d["number"] and e.get("to") in ("ACTIVE", "FAILED"):
                    break

    asyncio.run(main())

The same script drives a running daemon by changing one line:
``await clank.Platform.connect("http://127.0.0.1:7070", token)`` instead of ``open``.

Addresses are ``workspace/project/environment/service`` with short forms: ``shop/api`` is
workspace ``default`` (connected: the token's workspace), environment ``production``. Every method raises a :class:`ClankError`
subclass; secrets are shown as ``"********"`` in everything returned. Scripts without asyncio
use :mod:`clank.sync`, which has the same methods, blocking.

The engine (which moves deployments along) runs in the background from :meth:`Platform.open`
until :meth:`Platform.close`; workloads keep running after it, and the next ``open`` on the same
data directory adopts them. Work happens on a native thread pool with the GIL released.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from . import _native, _requests
from .errors import (
    ClankError,
    Closed,
    Conflict,
    Forbidden,
    Internal,
    InvalidInput,
    NotFound,
    Timeout,
    Unauthorized,
    Unavailable,
)
from .types import (
    ConfigVar,
    DeleteReport,
    Deployment,
    Environment,
    Event,
    LogEntry,
    Member,
    Project,
    ResolvedVar,
    Service,
    Team,
    TeamView,
    Workspace,
)

__all__ = [
    "open",
    "connect",
    "Platform",
    "Events",
    "Logs",
    "ClankError",
    "NotFound",
    "Conflict",
    "InvalidInput",
    "Unauthorized",
    "Forbidden",
    "Unavailable",
    "Timeout",
    "Internal",
    "Closed",
]

__version__ = "0.1.0"

PathLike = Union[str, "os.PathLike[str]"]


class Events:
    """An async iterator of :class:`~clank.types.Event` s, from the moment it was created.

    Ends when closed (:meth:`aclose`, or leaving ``async with``). Iterating with a timeout:
    ``await events.next(timeout=5)`` raises the builtin :class:`TimeoutError`.
    """

    def __init__(self, native: _native.EventSubscription) -> None:
        self._native = native

    def __aiter__(self) -> "Events":
        return self

    async def __anext__(self) -> Event:
        event = await self.next()
        if event is None:
            raise StopAsyncIteration
        return event

    async def next(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, or ``None`` once closed."""
        raw = await self._native.next(timeout)
        return None if raw is None else json.loads(raw)

    async def aclose(self) -> None:
        self._native.close()

    async def __aenter__(self) -> "Events":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Logs:
    """An async iterator of a service's log lines (each the same dict as a :meth:`Platform.logs`
    line: ``process``, ``replica``, ``stream``, ``line``, ``at``): the last ``tail`` lines of
    history, then new lines as they are printed (``clank logs -f``).

    Ends when closed (:meth:`aclose`, leaving ``async with``, or ``break`` out of an ``async
    for`` over it and closing it), which also ends the stream (and, connected, its HTTP
    request); or when the followed workloads' output ends. Iterating with a timeout: ``await
    logs.next(timeout=5)`` raises the builtin :class:`TimeoutError`. A reader that falls behind
    slows the reading (a bounded buffer): no line is dropped.
    """

    def __init__(self, native: _native.LogSubscription) -> None:
        self._native = native

    def __aiter__(self) -> "Logs":
        return self

    async def __anext__(self) -> Dict[str, Any]:
        line = await self.next()
        if line is None:
            raise StopAsyncIteration
        return line

    async def next(self, timeout: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """The next line, or ``None`` once closed or ended."""
        raw = await self._native.next(timeout)
        return None if raw is None else json.loads(raw)

    async def aclose(self) -> None:
        self._native.close()

    async def __aenter__(self) -> "Logs":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Platform:
    """A Clank platform on the embedded defaults (redb store + Docker or native processes)."""

    def __init__(self, native: _native.NativePlatform) -> None:
        # Use `await Platform.open(...)`.
        self._native = native

    @classmethod
    async def open(cls, data_dir: PathLike, runtime: str = "auto") -> "Platform":
        """Open (or create) the platform in ``data_dir``.

        ``runtime``: ``"docker"``, ``"process"`` (native processes), or ``"auto"``: Docker
        when an engine answers, native processes otherwise.
        """
        return cls(await _native.open(os.fspath(data_dir), runtime))

    @classmethod
    async def connect(
        cls,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        workspace: Optional[str] = None,
        ca_cert: Optional[PathLike] = None,
    ) -> "Platform":
        """Connect to a running daemon (``"http://127.0.0.1:7070"``) with an API token: the
        same methods, answered by the daemon under the token's role. Short addresses mean the
        token's workspace (or ``workspace``). ``timeout`` bounds each call (seconds; :class:`Timeout`
        past it); a call that failed on the way is tried ``retries`` more times where that
        cannot do anything twice. ``ca_cert``: a CA certificate file (PEM) to trust for an
        ``https://`` daemon beside the system's roots (a private CA); one that cannot be read
        raises :class:`InvalidInput` with ``field == "ca_cert"``. A wrong URL or token fails
        here."""
        return cls(
            await _native.connect(
                url, token, float(timeout), int(retries), workspace, _path(ca_cert)
            )
        )

    @property
    def runtime(self) -> str:
        """The runtime running workloads: ``"docker"`` or ``"process"``; ``"remote"`` when
        connected to a daemon."""
        return self._native.runtime

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._native.closed

    async def close(self) -> None:
        """Stop the engine and release the data directory (idempotent): when this returns,
        another platform (in this process or another) can open the same directory. Running
        workloads keep running. Every later call, and iterating an :class:`Events` or a
        :class:`Logs`, raises :class:`Closed`; a call running meanwhile gets a short grace period to finish."""
        # The native close blocks (GIL released) until the engine loop returns: off the loop.
        await asyncio.get_running_loop().run_in_executor(None, self._native.close)

    async def __aenter__(self) -> "Platform":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, request: _requests.Request) -> Any:
        answer = self._native.call(json.dumps(request))
        if isinstance(answer, str):
            # Answered in place (a store read of an embedded platform, no cross-thread
            # wake-up): still yield to the event loop once, as awaiting I/O would, so a loop
            # of such calls does not starve the other tasks.
            await asyncio.sleep(0)
        else:
            answer = await answer
        return json.loads(answer)

    # ---- Workspaces, projects, environments ------------------------------------------------

    async def ensure_workspace(self, slug: str) -> Workspace:
        """The workspace with this slug, created if missing."""
        return await self._call({"op": "ensure_workspace", "slug": slug})

    async def list_workspaces(self) -> List[Workspace]:
        return await self._call({"op": "list_workspaces"})

    async def create_project(
        self, name: str, *, slug: Optional[str] = None, workspace: Optional[str] = None
    ) -> Project:
        """A project (with its ``production`` environment); the slug defaults from the name."""
        return await self._call(
            {"op": "create_project", "workspace": workspace, "name": name, "slug": slug}
        )

    async def get_project(self, project: str) -> Project:
        return await self._call({"op": "get_project", "project": project})

    async def list_projects(
        self, workspace: Optional[str] = None, *, include_deleted: bool = False
    ) -> List[Project]:
        return await self._call(
            {"op": "list_projects", "workspace": workspace, "include_deleted": include_deleted}
        )

    async def delete_project(
        self, project: str, *, purge: bool = False, volumes: bool = False
    ) -> DeleteReport:
        """Soft delete, with its environments and services (restorable until
        ``restorable_until``); ``purge=True`` removes it for good, its named volumes too
        with ``volumes=True``."""
        return await self._call(_requests.delete("project", project, purge, volumes))

    async def restore_project(self, project: str) -> Project:
        """Bring a soft-deleted project back with its environments and services."""
        return await self._call({"op": "restore_project", "project": project})

    async def create_environment(self, project: str, name: str) -> Environment:
        return await self._call({"op": "create_environment", "project": project, "name": name})

    async def list_environments(
        self, project: str, *, include_deleted: bool = False
    ) -> List[Environment]:
        """The project's environments; soft-deleted ones too (``deleted_at`` set) with
        ``include_deleted=True``."""
        return await self._call(
            {"op": "list_environments", "project": project, "include_deleted": include_deleted}
        )

    async def delete_environment(
        self, environment: str, *, purge: bool = False, volumes: bool = False
    ) -> DeleteReport:
        """Soft delete (or ``purge``) an environment and its services; the default environment
        goes only with its project."""
        return await self._call(_requests.delete("environment", environment, purge, volumes))

    async def restore_environment(self, environment: str) -> Environment:
        return await self._call({"op": "restore_environment", "environment": environment})

    async def clone_environment(
        self,
        environment: str,
        name: str,
        *,
        domain_pattern: Optional[str] = None,
        copy_config: bool = True,
        deploy: bool = False,
        copy_volumes: bool = False,
    ) -> Dict[str, Any]:
        """Copy ``environment`` (``"shop/staging"``) into a new one named ``name``: its
        services, and (``copy_config``) its and their config. Domains are copied only through
        ``domain_pattern`` (``"{service}-{env}.example.com"``). Volumes get new names and
        start empty unless ``copy_volumes`` copies the data into them."""
        return await self._call(
            _requests.clone_environment(
                environment, name, domain_pattern, copy_config, deploy, copy_volumes
            )
        )

    # ---- Promotion plans --------------------------------------------------------------------

    async def plan_promotion(self, source: str, target: str) -> Dict[str, Any]:
        """Plan promoting a service or environment (``source``) to environment ``target``;
        the plan is stored: its ``id`` is what :meth:`apply_plan` takes."""
        return await self._call({"op": "plan_promotion", "source": source, "target": target})

    async def get_plan(self, plan: str, *, workspace: Optional[str] = None) -> Dict[str, Any]:
        return await self._call({"op": "get_plan", "workspace": workspace, "plan": plan})

    async def apply_plan(self, plan: str, *, workspace: Optional[str] = None) -> Dict[str, Any]:
        """Apply exactly that plan (:class:`Conflict` if anything it read changed since)."""
        return await self._call({"op": "apply_plan", "workspace": workspace, "plan": plan})

    # ---- Declarations -----------------------------------------------------------------------

    async def export_project(self, project: str) -> Dict[str, Any]:
        """``project`` as a declaration (what ``clank export`` writes, as a dict): its
        environments, services and config, secrets as ``{"secret_env": "KEY"}`` (never a
        value)."""
        return await self._call({"op": "export_project", "project": project})

    async def apply_declaration(
        self,
        declaration: Mapping[str, Any],
        secrets: Optional[Mapping[str, str]] = None,
        *,
        workspace: Optional[str] = None,
        source: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Plan applying ``declaration`` (as :meth:`export_project` returns it) to its project,
        created if missing. The plan is stored and nothing else written: apply exactly it with
        :meth:`apply_plan` (its ``id``), like a promotion. ``secrets`` holds the values of the
        secrets the target lacks, by ``secret_env`` name (a secret the target has is kept);
        one missing raises :class:`InvalidInput` naming its field."""
        return await self._call(
            {
                "op": "apply_declaration",
                "workspace": workspace,
                "declaration": dict(declaration),
                "secrets": dict(secrets or {}),
                "source": source,
            }
        )

    # ---- Pull-request previews --------------------------------------------------------------

    async def preview_settings(self, project: str) -> Optional[Dict[str, Any]]:
        """A project's preview settings (``None`` when never set)."""
        return await self._call({"op": "get_preview_settings", "project": project})

    async def set_preview_settings(
        self, project: str, settings: Mapping[str, Any]
    ) -> Dict[str, Any]:
        """Replace a project's preview settings (``base_environment``, ``domain``, ...)."""
        return await self._call(
            {"op": "set_preview_settings", "project": project, "settings": dict(settings)}
        )

    async def list_previews(self, project: str) -> List[Dict[str, Any]]:
        return await self._call({"op": "list_previews", "project": project})

    async def close_preview(self, project: str, pull_request: int) -> Dict[str, Any]:
        """Tear down a pull request's preview now, with its volumes."""
        return await self._call(
            {"op": "close_preview", "project": project, "pull_request": pull_request}
        )

    # ---- Teams ------------------------------------------------------------------------------
    # A team is ``[workspace/]team`` (slug or id). Teams group members, own projects and carry
    # a config scope (between the workspace's and each project's); they grant no access.

    async def create_team(
        self, name: str, *, slug: Optional[str] = None, workspace: Optional[str] = None
    ) -> Team:
        return await self._call(
            {"op": "create_team", "workspace": workspace, "name": name, "slug": slug}
        )

    async def list_teams(self, workspace: Optional[str] = None) -> List[TeamView]:
        return await self._call({"op": "list_teams", "workspace": workspace})

    async def get_team(self, team: str) -> TeamView:
        return await self._call({"op": "get_team", "team": team})

    async def delete_team(self, team: str) -> Team:
        """:class:`Conflict` while projects are assigned to it; its config goes with it."""
        return await self._call({"op": "delete_team", "team": team})

    async def add_team_member(self, team: str, member: str) -> Member:
        """Add a workspace member (user id or email) to the team."""
        return await self._call({"op": "add_team_member", "team": team, "member": member})

    async def remove_team_member(self, team: str, member: str) -> Member:
        return await self._call({"op": "remove_team_member", "team": team, "member": member})

    async def list_team_members(self, team: str) -> List[Member]:
        return await self._call({"op": "list_team_members", "team": team})

    async def assign_project(self, project: str, team: str) -> Project:
        """Assign a project to a team of its workspace: its services get the team's config
        from their next deploy."""
        return await self._call({"op": "assign_project", "project": project, "team": team})

    async def unassign_project(self, project: str) -> Project:
        return await self._call({"op": "assign_project", "project": project, "team": None})

    # ---- Services ---------------------------------------------------------------------------

    async def create_service(
        self,
        environment: str,
        slug: str,
        *,
        image: Optional[str] = None,
        source: Optional[Mapping[str, Any]] = None,
        name: Optional[str] = None,
        settings: Optional[Mapping[str, Any]] = None,
        volumes: Optional[Iterable[Mapping[str, str]]] = None,
        endpoint: Optional[Mapping[str, Any]] = None,
        processes: Optional[Mapping[str, Mapping[str, Any]]] = None,
        command: Optional[Iterable[str]] = None,
    ) -> Service:
        """A service in ``environment`` (``"shop"`` = ``shop``'s production environment).

        Give ``image=`` for an image service or ``source=`` (``{"type": "git", ...}``).
        ``command=`` is short for one ``web`` process running that argument vector.
        """
        return await self._call(
            _requests.create_service(
                environment, slug, image, source, name, settings, volumes, endpoint, processes, command
            )
        )

    async def get_service(self, service: str) -> Service:
        return await self._call({"op": "get_service", "service": service})

    async def update_service(self, service: str, **changes: Any) -> Service:
        """Change ``name``, ``source``, ``settings``, ``volumes``, ``endpoint``, ``processes``
        or ``server_id``; applies from the next deploy."""
        return await self._call(_requests.update_service(service, changes))

    async def list_services(
        self, environment: str, *, include_deleted: bool = False
    ) -> List[Service]:
        """The environment's services; soft-deleted ones too (``deleted_at`` set) with
        ``include_deleted=True``."""
        return await self._call(
            {"op": "list_services", "environment": environment, "include_deleted": include_deleted}
        )

    async def delete_service(
        self, service: str, *, purge: bool = False, volumes: bool = False
    ) -> DeleteReport:
        """Soft delete (restorable), or ``purge`` (its named volumes too with ``volumes``)."""
        return await self._call(_requests.delete("service", service, purge, volumes))

    async def restore_service(self, service: str) -> Service:
        """Bring a soft-deleted service back (its ACTIVE deployment starts again)."""
        return await self._call({"op": "restore_service", "service": service})

    async def stop_service(self, service: str) -> Service:
        """Stop a service: its route is removed, then its workloads; its deployments,
        history and volumes are kept, and new deployments are refused until it is started."""
        return await self._call({"op": "stop_service", "service": service})

    async def start_service(self, service: str) -> Service:
        """Start a stopped service: its ACTIVE deployment's workloads run again and the
        route comes back once they pass their health checks."""
        return await self._call({"op": "start_service", "service": service})

    # ---- Templates and stacks ---------------------------------------------------------------

    async def list_templates(self) -> List[Dict[str, Any]]:
        """Every template of the catalog: ``name``, ``title``, ``version``, ``category``."""
        return await self._call({"op": "list_templates"})

    async def template(self, name: str) -> Dict[str, Any]:
        """A template's services, images, volumes and variables (never a value)."""
        return await self._call({"op": "get_template", "name": name})

    async def create_stack(
        self,
        environment: str,
        template: str,
        *,
        name: Optional[str] = None,
        inputs: Optional[Mapping[str, str]] = None,
        images: Optional[Mapping[str, str]] = None,
        domain: Optional[str] = None,
        lan: bool = False,
    ) -> Dict[str, Any]:
        """Create ``template``'s services in ``environment`` (generated passwords kept as secret
        config) and deploy them, dependencies first. ``images`` overrides a template service's
        image (``{"db": "mirror/postgres:16.4"}``). A bad input changes nothing."""
        return await self._call(
            _requests.create_stack(environment, template, name, inputs, images, domain, lan)
        )

    async def stacks(self, environment: str) -> List[Dict[str, Any]]:
        return await self._call({"op": "list_stacks", "environment": environment})

    async def stack(self, stack: str) -> Dict[str, Any]:
        """A stack (``"shop/blog"``): template, version, services with their status."""
        return await self._call({"op": "get_stack", "stack": stack})

    async def upgrade_stack(
        self, stack: str, *, to: Optional[str] = None, apply: Optional[str] = None
    ) -> Dict[str, Any]:
        """Without ``apply``: the preview (``changes``, ``plan_id``). With ``apply=plan_id``:
        carry out exactly that plan (:class:`Conflict` if anything changed since)."""
        return await self._call(_requests.upgrade_stack(stack, to, apply))

    # ---- Config -----------------------------------------------------------------------------

    async def set_config(
        self,
        *,
        workspace: Optional[str] = None,
        project: Optional[str] = None,
        environment: Optional[str] = None,
        service: Optional[str] = None,
        team: Optional[str] = None,
        values: Optional[Mapping[str, str]] = None,
        secrets: Optional[Mapping[str, str]] = None,
        unset: Iterable[str] = (),
    ) -> List[ConfigVar]:
        """Set plain ``values``, sealed ``secrets`` and remove ``unset`` keys at one scope (name
        exactly one of ``workspace=``, ``team=``, ``project=``, ``environment=``,
        ``service=``), all or nothing. Returns the scope's variables, secrets masked."""
        tgt = _requests.target(workspace, project, environment, service, team)
        return await self._call(_requests.set_config(tgt, values, secrets, unset))

    async def config(
        self,
        *,
        workspace: Optional[str] = None,
        project: Optional[str] = None,
        environment: Optional[str] = None,
        service: Optional[str] = None,
        team: Optional[str] = None,
    ) -> List[ConfigVar]:
        """The variables set at one scope, secrets masked."""
        tgt = _requests.target(workspace, project, environment, service, team)
        return await self._call({"op": "get_config", "target": tgt})

    async def resolved_config(self, service: str) -> List[ResolvedVar]:
        """What a deploy of the service would get now, each value with its source scope."""
        return await self._call({"op": "resolved_config", "service": service})

    # ---- Deployments ------------------------------------------------------------------------

    async def deploy(self, service: str) -> Deployment:
        """Start a deployment of the service as it is now (returns it PENDING)."""
        return await self._call({"op": "deploy", "service": service})

    async def rollback(self, service: str, number: int) -> Deployment:
        """A new deployment with deployment ``number``'s image *and* config."""
        return await self._call({"op": "rollback", "service": service, "number": number})

    async def cancel(self, service: str, number: int) -> Deployment:
        return await self._call({"op": "cancel", "service": service, "number": number})

    async def deployment(self, service: str, number: int) -> Deployment:
        return await self._call({"op": "get_deployment", "service": service, "number": number})

    async def deployments(
        self, service: str, *, limit: int = 20, before: Optional[int] = None
    ) -> List[Deployment]:
        """Newest first; ``before`` continues from a deployment number (exclusive)."""
        return await self._call(
            {"op": "list_deployments", "service": service, "limit": limit, "before": before}
        )

    async def builds(
        self, service: str, *, limit: int = 20, before: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        """A git service's builds, newest first; ``before`` continues from a build number."""
        return await self._call(
            {"op": "list_builds", "service": service, "limit": limit, "before": before}
        )

    async def build(self, service: str, number: int) -> Dict[str, Any]:
        """One build with the tail of its log."""
        return await self._call({"op": "get_build", "service": service, "number": number})

    async def deploy_log(self, service: str, number: int) -> List[LogEntry]:
        """Every step and probe result of a deployment, as persisted."""
        return await self._call({"op": "deploy_log", "service": service, "number": number})

    async def wait(self, service: str, number: int, *, timeout: float = 300.0) -> Deployment:
        """Wait until the deployment is ACTIVE or finished; :class:`Timeout` (code
        ``timeout``) after ``timeout`` seconds."""
        return await self._call(
            {"op": "wait", "service": service, "number": number, "timeout_s": float(timeout)}
        )

    async def endpoints(self, service: str, number: int) -> List[str]:
        """``host:port`` where the deployment's web workloads listen now (empty once stopped)."""
        return await self._call({"op": "endpoints", "service": service, "number": number})

    # ---- What runs: status, logs, exec -------------------------------------------------------

    async def status(self, service: str) -> Dict[str, Any]:
        """What ``clank status`` shows: ``service``, ``active`` (the ACTIVE deployment however
        old, ``None`` when nothing runs) and ``recent`` (the five newest deployments)."""
        return await self._call({"op": "status", "service": service})

    async def logs(
        self,
        service: str,
        *,
        tail: Optional[int] = None,
        process: Optional[str] = None,
        replica: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """The running service's recent output, oldest first: at most ``tail`` lines (default
        100) per workload, each naming its ``process``, ``replica`` and ``stream``."""
        return await self._call(_requests.logs(service, tail, process, replica))

    async def exec(
        self,
        service: str,
        command: Union[str, Iterable[str]],
        *,
        timeout: Optional[int] = None,
        process: Optional[str] = None,
        replica: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Run ``command`` (an argument vector; a string is one program name) in the running
        service, without a terminal; its ``exit_code``, ``stdout`` and ``stderr``. ``timeout``:
        seconds (default 30, at most 600)."""
        return await self._call(_requests.exec_(service, command, timeout, process, replica))

    # ---- Servers ------------------------------------------------------------------------------

    async def servers(self, *, workspace: Optional[str] = None) -> List[Dict[str, Any]]:
        """The workspace's remote servers with their live state."""
        return await self._call({"op": "list_servers", "workspace": workspace})

    async def create_server(self, name: str, *, workspace: Optional[str] = None) -> Dict[str, Any]:
        """Register a server: its ``join_token`` (shown once) enrolls its agent."""
        return await self._call(_requests.server("create_server", name, workspace))

    async def server(self, name: str, *, workspace: Optional[str] = None) -> Dict[str, Any]:
        return await self._call(_requests.server("get_server", name, workspace))

    async def server_join_token(
        self, name: str, *, workspace: Optional[str] = None
    ) -> Dict[str, Any]:
        """A new join token for the server (the previous one stops working)."""
        return await self._call(_requests.server("server_join_token", name, workspace))

    async def revoke_server(self, name: str, *, workspace: Optional[str] = None) -> Dict[str, Any]:
        """Disconnect the server's agent for good."""
        return await self._call(_requests.server("revoke_server", name, workspace))

    # ---- Members, tokens, the audit log (a daemon's: :meth:`connect`) ---------------------

    async def members(self) -> List[Dict[str, Any]]:
        return await self._call({"op": "list_members"})

    async def add_member(self, email: str, *, name: str, role: str) -> Dict[str, Any]:
        """Add a member (``owner``, ``admin``, ``developer`` or ``viewer``); the answer's
        ``token`` is their first, shown once."""
        return await self._call(_requests.add_member(email, name, role))

    async def set_member_role(self, member: str, role: str) -> Dict[str, Any]:
        return await self._call({"op": "update_member", "member": member, "role": role})

    async def remove_member(self, member: str) -> Dict[str, Any]:
        """Remove a member (email or user id) with their tokens."""
        return await self._call({"op": "remove_member", "member": member})

    async def tokens(self, *, all: bool = False) -> List[Dict[str, Any]]:
        """Your tokens, or with ``all=True`` every member's (Admin and Owner)."""
        return await self._call({"op": "list_tokens", "all": all})

    async def create_token(self, name: str, *, role: Optional[str] = None) -> Dict[str, Any]:
        """A token for yourself, with at most your role; its ``token`` is shown once."""
        return await self._call(_requests.create_token(name, role))

    async def revoke_token(self, token_id: str) -> None:
        await self._call({"op": "revoke_token", "token": token_id})

    async def audit(
        self,
        *,
        limit: Optional[int] = None,
        before: Optional[str] = None,
        workspace: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """The workspace's audit log, newest first (``limit`` 1..1000, default 50; ``before``
        an event id, for the next page)."""
        return await self._call(_requests.audit(limit, before, workspace))

    def events(self, service: Optional[str] = None) -> Events:
        """Follow events from now on, of one service or of all: ``async for e in p.events()``.

        Create it *before* the action whose events you want. An unknown service raises
        :class:`NotFound` from the first iteration."""
        return Events(self._native.subscribe(service))

    def follow_logs(
        self,
        service: str,
        *,
        tail: Optional[int] = None,
        process: Optional[str] = None,
        replica: Optional[int] = None,
    ) -> Logs:
        """Follow the running service's output (``clank logs -f``): ``async for line in
        p.follow_logs("shop/web", tail=10)``. First the last ``tail`` lines (default 100, at
        most 10 000) of each workload (``process``/``replica`` pick some), then new lines as
        they come, each the same dict as a :meth:`logs` line. A refusal (no such service, no
        ACTIVE deployment, an unknown process type) raises from the first iteration; closing
        the platform ends it with :class:`Closed`."""
        return Logs(self._native.follow_logs(service, _tail(tail), process, replica))


def _path(path: Optional[PathLike]) -> Optional[str]:
    return None if path is None else os.fspath(path)


def _tail(tail: Optional[int]) -> Optional[int]:
    if tail is not None and (isinstance(tail, bool) or not isinstance(tail, int) or tail < 0):
        raise InvalidInput(f"tail is a number of lines (0 or more), not {tail!r}", field="tail")
    return tail


async def open(data_dir: PathLike, runtime: str = "auto") -> Platform:
    """:meth:`Platform.open`: the embedded platform in ``data_dir``."""
    return await Platform.open(data_dir, runtime)


async def connect(
    url: str,
    token: str,
    *,
    timeout: float = 30.0,
    retries: int = 2,
    workspace: Optional[str] = None,
    ca_cert: Optional[PathLike] = None,
) -> Platform:
    """:meth:`Platform.connect`: a running daemon, with an API token."""
    return await Platform.connect(
        url, token, timeout=timeout, retries=retries, workspace=workspace, ca_cert=ca_cert
    )
