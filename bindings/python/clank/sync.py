"""The same platform for scripts, without asyncio: every method blocks (with the GIL released,
so other Python threads run meanwhile) and is safe to call from several threads at once.
Ctrl-C interrupts any blocking call or event iteration with :class:`KeyboardInterrupt` (the
call's work is cancelled).

    from clank.sync import Platform

    with Platform.open("./clank-data") as p:
        d = p.deploy("shop/api")
        print(p.wait("shop/api", d["number"])["status"])
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from . import _native, _requests
from . import PathLike, _path, _tail
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

__all__ = ["open", "connect", "Platform", "Events", "Logs"]


class Events:
    """An iterator of :class:`~clank.types.Event` s; ends when closed (``close()`` or ``with``)."""

    def __init__(self, native: _native.EventSubscription) -> None:
        self._native = native

    def __iter__(self) -> "Events":
        return self

    def __next__(self) -> Event:
        event = self.next()
        if event is None:
            raise StopIteration
        return event

    def next(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, or ``None`` once closed; builtin :class:`TimeoutError` after
        ``timeout`` seconds."""
        raw = self._native.next_blocking(timeout)
        return None if raw is None else json.loads(raw)

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> "Events":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Logs:
    """An iterator of a service's log lines (see :class:`clank.Logs`): the last ``tail`` lines,
    then new ones as they are printed; ends when closed (``close()`` or ``with``, which also end
    the stream) or when the workloads' output ends. Ctrl-C interrupts a wait for the next line
    with :class:`KeyboardInterrupt`."""

    def __init__(self, native: _native.LogSubscription) -> None:
        self._native = native

    def __iter__(self) -> "Logs":
        return self

    def __next__(self) -> Dict[str, Any]:
        line = self.next()
        if line is None:
            raise StopIteration
        return line

    def next(self, timeout: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """The next line, or ``None`` once closed or ended; builtin :class:`TimeoutError`
        after ``timeout`` seconds."""
        raw = self._native.next_blocking(timeout)
        return None if raw is None else json.loads(raw)

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> "Logs":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Platform:
    """Blocking twin of :class:`clank.Platform`; see there for each method."""

    def __init__(self, native: _native.NativePlatform) -> None:
        self._native = native

    @classmethod
    def open(cls, data_dir: PathLike, runtime: str = "auto") -> "Platform":
        return cls(_native.open_blocking(os.fspath(data_dir), runtime))

    @classmethod
    def connect(
        cls,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        workspace: Optional[str] = None,
        ca_cert: Optional[PathLike] = None,
    ) -> "Platform":
        """See :meth:`clank.Platform.connect`."""
        return cls(
            _native.connect_blocking(
                url, token, float(timeout), int(retries), workspace, _path(ca_cert)
            )
        )

    @property
    def runtime(self) -> str:
        return self._native.runtime

    @property
    def closed(self) -> bool:
        return self._native.closed

    def close(self) -> None:
        """Stop the engine and release the data directory at once (see
        :meth:`clank.Platform.close`); later calls raise :class:`~clank.errors.Closed`."""
        self._native.close()

    def __enter__(self) -> "Platform":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, request: _requests.Request) -> Any:
        return json.loads(self._native.call_blocking(json.dumps(request)))

    def ensure_workspace(self, slug: str) -> Workspace:
        return self._call({"op": "ensure_workspace", "slug": slug})

    def list_workspaces(self) -> List[Workspace]:
        return self._call({"op": "list_workspaces"})

    def create_project(
        self, name: str, *, slug: Optional[str] = None, workspace: Optional[str] = None
    ) -> Project:
        return self._call({"op": "create_project", "workspace": workspace, "name": name, "slug": slug})

    def get_project(self, project: str) -> Project:
        return self._call({"op": "get_project", "project": project})

    def list_projects(self, workspace: Optional[str] = None, *, include_deleted: bool = False) -> List[Project]:
        return self._call(
            {"op": "list_projects", "workspace": workspace, "include_deleted": include_deleted}
        )

    def delete_project(
        self, project: str, *, purge: bool = False, volumes: bool = False
    ) -> DeleteReport:
        return self._call(_requests.delete("project", project, purge, volumes))

    def restore_project(self, project: str) -> Project:
        return self._call({"op": "restore_project", "project": project})

    def create_environment(self, project: str, name: str) -> Environment:
        return self._call({"op": "create_environment", "project": project, "name": name})

    def list_environments(
        self, project: str, *, include_deleted: bool = False
    ) -> List[Environment]:
        return self._call(
            {"op": "list_environments", "project": project, "include_deleted": include_deleted}
        )

    def delete_environment(
        self, environment: str, *, purge: bool = False, volumes: bool = False
    ) -> DeleteReport:
        return self._call(_requests.delete("environment", environment, purge, volumes))

    def restore_environment(self, environment: str) -> Environment:
        return self._call({"op": "restore_environment", "environment": environment})

    def clone_environment(
        self,
        environment: str,
        name: str,
        *,
        domain_pattern: Optional[str] = None,
        copy_config: bool = True,
        deploy: bool = False,
        copy_volumes: bool = False,
    ) -> Dict[str, Any]:
        return self._call(
            _requests.clone_environment(
                environment, name, domain_pattern, copy_config, deploy, copy_volumes
            )
        )

    # ---- Promotion plans --------------------------------------------------------------------

    def plan_promotion(self, source: str, target: str) -> Dict[str, Any]:
        return self._call({"op": "plan_promotion", "source": source, "target": target})

    def get_plan(self, plan: str, *, workspace: Optional[str] = None) -> Dict[str, Any]:
        return self._call({"op": "get_plan", "workspace": workspace, "plan": plan})

    def apply_plan(self, plan: str, *, workspace: Optional[str] = None) -> Dict[str, Any]:
        return self._call({"op": "apply_plan", "workspace": workspace, "plan": plan})

    # ---- Declarations -----------------------------------------------------------------------

    def export_project(self, project: str) -> Dict[str, Any]:
        return self._call({"op": "export_project", "project": project})

    def apply_declaration(
        self,
        declaration: Mapping[str, Any],
        secrets: Optional[Mapping[str, str]] = None,
        *,
        workspace: Optional[str] = None,
        source: Optional[str] = None,
    ) -> Dict[str, Any]:
        return self._call(
            {
                "op": "apply_declaration",
                "workspace": workspace,
                "declaration": dict(declaration),
                "secrets": dict(secrets or {}),
                "source": source,
            }
        )

    # ---- Pull-request previews --------------------------------------------------------------

    def preview_settings(self, project: str) -> Optional[Dict[str, Any]]:
        return self._call({"op": "get_preview_settings", "project": project})

    def set_preview_settings(self, project: str, settings: Mapping[str, Any]) -> Dict[str, Any]:
        return self._call(
            {"op": "set_preview_settings", "project": project, "settings": dict(settings)}
        )

    def list_previews(self, project: str) -> List[Dict[str, Any]]:
        return self._call({"op": "list_previews", "project": project})

    def close_preview(self, project: str, pull_request: int) -> Dict[str, Any]:
        return self._call({"op": "close_preview", "project": project, "pull_request": pull_request})

    # ---- Teams ------------------------------------------------------------------------------

    def create_team(
        self, name: str, *, slug: Optional[str] = None, workspace: Optional[str] = None
    ) -> Team:
        return self._call({"op": "create_team", "workspace": workspace, "name": name, "slug": slug})

    def list_teams(self, workspace: Optional[str] = None) -> List[TeamView]:
        return self._call({"op": "list_teams", "workspace": workspace})

    def get_team(self, team: str) -> TeamView:
        return self._call({"op": "get_team", "team": team})

    def delete_team(self, team: str) -> Team:
        return self._call({"op": "delete_team", "team": team})

    def add_team_member(self, team: str, member: str) -> Member:
        return self._call({"op": "add_team_member", "team": team, "member": member})

    def remove_team_member(self, team: str, member: str) -> Member:
        return self._call({"op": "remove_team_member", "team": team, "member": member})

    def list_team_members(self, team: str) -> List[Member]:
        return self._call({"op": "list_team_members", "team": team})

    def assign_project(self, project: str, team: str) -> Project:
        return self._call({"op": "assign_project", "project": project, "team": team})

    def unassign_project(self, project: str) -> Project:
        return self._call({"op": "assign_project", "project": project, "team": None})

    def create_service(
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
        return self._call(
            _requests.create_service(
                environment, slug, image, source, name, settings, volumes, endpoint, processes, command
            )
        )

    def get_service(self, service: str) -> Service:
        return self._call({"op": "get_service", "service": service})

    def update_service(self, service: str, **changes: Any) -> Service:
        return self._call(_requests.update_service(service, changes))

    def list_services(
        self, environment: str, *, include_deleted: bool = False
    ) -> List[Service]:
        return self._call(
            {"op": "list_services", "environment": environment, "include_deleted": include_deleted}
        )

    def delete_service(
        self, service: str, *, purge: bool = False, volumes: bool = False
    ) -> DeleteReport:
        return self._call(_requests.delete("service", service, purge, volumes))

    def restore_service(self, service: str) -> Service:
        return self._call({"op": "restore_service", "service": service})

    def stop_service(self, service: str) -> Service:
        return self._call({"op": "stop_service", "service": service})

    def start_service(self, service: str) -> Service:
        return self._call({"op": "start_service", "service": service})

    # ---- Templates and stacks ---------------------------------------------------------------

    def list_templates(self) -> List[Dict[str, Any]]:
        return self._call({"op": "list_templates"})

    def template(self, name: str) -> Dict[str, Any]:
        return self._call({"op": "get_template", "name": name})

    def create_stack(
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
        return self._call(
            _requests.create_stack(environment, template, name, inputs, images, domain, lan)
        )

    def stacks(self, environment: str) -> List[Dict[str, Any]]:
        return self._call({"op": "list_stacks", "environment": environment})

    def stack(self, stack: str) -> Dict[str, Any]:
        return self._call({"op": "get_stack", "stack": stack})

    def upgrade_stack(
        self, stack: str, *, to: Optional[str] = None, apply: Optional[str] = None
    ) -> Dict[str, Any]:
        return self._call(_requests.upgrade_stack(stack, to, apply))

    def set_config(
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
        tgt = _requests.target(workspace, project, environment, service, team)
        return self._call(_requests.set_config(tgt, values, secrets, unset))

    def config(
        self,
        *,
        workspace: Optional[str] = None,
        project: Optional[str] = None,
        environment: Optional[str] = None,
        service: Optional[str] = None,
        team: Optional[str] = None,
    ) -> List[ConfigVar]:
        tgt = _requests.target(workspace, project, environment, service, team)
        return self._call({"op": "get_config", "target": tgt})

    def resolved_config(self, service: str) -> List[ResolvedVar]:
        return self._call({"op": "resolved_config", "service": service})

    def deploy(self, service: str) -> Deployment:
        return self._call({"op": "deploy", "service": service})

    def rollback(self, service: str, number: int) -> Deployment:
        return self._call({"op": "rollback", "service": service, "number": number})

    def cancel(self, service: str, number: int) -> Deployment:
        return self._call({"op": "cancel", "service": service, "number": number})

    def deployment(self, service: str, number: int) -> Deployment:
        return self._call({"op": "get_deployment", "service": service, "number": number})

    def deployments(self, service: str, *, limit: int = 20, before: Optional[int] = None) -> List[Deployment]:
        return self._call({"op": "list_deployments", "service": service, "limit": limit, "before": before})

    def builds(
        self, service: str, *, limit: int = 20, before: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        return self._call({"op": "list_builds", "service": service, "limit": limit, "before": before})

    def build(self, service: str, number: int) -> Dict[str, Any]:
        return self._call({"op": "get_build", "service": service, "number": number})

    def deploy_log(self, service: str, number: int) -> List[LogEntry]:
        return self._call({"op": "deploy_log", "service": service, "number": number})

    def wait(self, service: str, number: int, *, timeout: float = 300.0) -> Deployment:
        return self._call({"op": "wait", "service": service, "number": number, "timeout_s": float(timeout)})

    def endpoints(self, service: str, number: int) -> List[str]:
        return self._call({"op": "endpoints", "service": service, "number": number})

    # ---- What runs: status, logs, exec -------------------------------------------------------

    def status(self, service: str) -> Dict[str, Any]:
        """What ``clank status`` shows: ``service``, ``active`` (the ACTIVE deployment however
        old, ``None`` when nothing runs) and ``recent`` (the five newest deployments)."""
        return self._call({"op": "status", "service": service})

    def logs(
        self,
        service: str,
        *,
        tail: Optional[int] = None,
        process: Optional[str] = None,
        replica: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """The running service's recent output, oldest first: at most ``tail`` lines (default
        100) per workload, each naming its ``process``, ``replica`` and ``stream``."""
        return self._call(_requests.logs(service, tail, process, replica))

    def exec(
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
        return self._call(_requests.exec_(service, command, timeout, process, replica))

    # ---- Servers ------------------------------------------------------------------------------

    def servers(self, *, workspace: Optional[str] = None) -> List[Dict[str, Any]]:
        """The workspace's remote servers with their live state."""
        return self._call({"op": "list_servers", "workspace": workspace})

    def create_server(self, name: str, *, workspace: Optional[str] = None) -> Dict[str, Any]:
        """Register a server: its ``join_token`` (shown once) enrolls its agent."""
        return self._call(_requests.server("create_server", name, workspace))

    def server(self, name: str, *, workspace: Optional[str] = None) -> Dict[str, Any]:
        return self._call(_requests.server("get_server", name, workspace))

    def server_join_token(
        self, name: str, *, workspace: Optional[str] = None
    ) -> Dict[str, Any]:
        """A new join token for the server (the previous one stops working)."""
        return self._call(_requests.server("server_join_token", name, workspace))

    def revoke_server(self, name: str, *, workspace: Optional[str] = None) -> Dict[str, Any]:
        """Disconnect the server's agent for good."""
        return self._call(_requests.server("revoke_server", name, workspace))

    # ---- Members, tokens, the audit log (a daemon's: :meth:`connect`) ---------------------

    def members(self) -> List[Dict[str, Any]]:
        return self._call({"op": "list_members"})

    def add_member(self, email: str, *, name: str, role: str) -> Dict[str, Any]:
        """Add a member (``owner``, ``admin``, ``developer`` or ``viewer``); the answer's
        ``token`` is their first, shown once."""
        return self._call(_requests.add_member(email, name, role))

    def set_member_role(self, member: str, role: str) -> Dict[str, Any]:
        return self._call({"op": "update_member", "member": member, "role": role})

    def remove_member(self, member: str) -> Dict[str, Any]:
        """Remove a member (email or user id) with their tokens."""
        return self._call({"op": "remove_member", "member": member})

    def tokens(self, *, all: bool = False) -> List[Dict[str, Any]]:
        """Your tokens, or with ``all=True`` every member's (Admin and Owner)."""
        return self._call({"op": "list_tokens", "all": all})

    def create_token(self, name: str, *, role: Optional[str] = None) -> Dict[str, Any]:
        """A token for yourself, with at most your role; its ``token`` is shown once."""
        return self._call(_requests.create_token(name, role))

    def revoke_token(self, token_id: str) -> None:
        self._call({"op": "revoke_token", "token": token_id})

    def audit(
        self,
        *,
        limit: Optional[int] = None,
        before: Optional[str] = None,
        workspace: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """The workspace's audit log, newest first (``limit`` 1..1000, default 50; ``before``
        an event id, for the next page)."""
        return self._call(_requests.audit(limit, before, workspace))

    def events(self, service: Optional[str] = None) -> Events:
        """Follow events from now on (a blocking iterator); create it before the action."""
        return Events(self._native.subscribe(service))

    def follow_logs(
        self,
        service: str,
        *,
        tail: Optional[int] = None,
        process: Optional[str] = None,
        replica: Optional[int] = None,
    ) -> Logs:
        """Follow the running service's output (a blocking iterator): see
        :meth:`clank.Platform.follow_logs`."""
        return Logs(self._native.follow_logs(service, _tail(tail), process, replica))


def open(data_dir: PathLike, runtime: str = "auto") -> Platform:
    """:meth:`Platform.open`: the embedded platform in ``data_dir``."""
    return Platform.open(data_dir, runtime)


def connect(
    url: str,
    token: str,
    *,
    timeout: float = 30.0,
    retries: int = 2,
    workspace: Optional[str] = None,
    ca_cert: Optional[PathLike] = None,
) -> Platform:
    """:meth:`Platform.connect`: a running daemon, with an API token."""
    return Platform.connect(
        url, token, timeout=timeout, retries=retries, workspace=workspace, ca_cert=ca_cert
    )
