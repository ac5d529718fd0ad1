"""Requests of the native module, built in one place for the async and the sync API.

Each function returns the JSON-able request for one ``clank_platform::Request`` variant.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional

from .errors import InvalidInput

Request = Dict[str, Any]


def target(
    workspace: Optional[str],
    project: Optional[str],
    environment: Optional[str],
    service: Optional[str],
    team: Optional[str] = None,
) -> Dict[str, str]:
    given = {
        k: v
        for k, v in (
            ("workspace", workspace),
            ("project", project),
            ("environment", environment),
            ("service", service),
            ("team", team),
        )
        if v is not None
    }
    if len(given) != 1:
        raise InvalidInput(
            "name exactly one of workspace=, team=, project=, environment= or service=",
            field="target",
        )
    return given


def set_config(
    tgt: Dict[str, str],
    values: Optional[Mapping[str, str]],
    secrets: Optional[Mapping[str, str]],
    unset: Iterable[str],
) -> Request:
    changes: List[Dict[str, Any]] = []
    for key, value in (values or {}).items():
        changes.append({"key": key, "value": value, "secret": False})
    for key, value in (secrets or {}).items():
        changes.append({"key": key, "value": value, "secret": True})
    if isinstance(unset, str):
        unset = [unset]
    for key in unset:
        changes.append({"key": key, "unset": True})
    return {"op": "set_config", "target": tgt, "changes": changes}


def create_service(
    environment: str,
    slug: str,
    image: Optional[str],
    source: Optional[Mapping[str, Any]],
    name: Optional[str],
    settings: Optional[Mapping[str, Any]],
    volumes: Optional[Iterable[Mapping[str, str]]],
    endpoint: Optional[Mapping[str, Any]],
    processes: Optional[Mapping[str, Mapping[str, Any]]],
    command: Optional[Iterable[str]],
) -> Request:
    if (image is None) == (source is None):
        raise InvalidInput("give exactly one of image= or source=", field="source")
    spec: Dict[str, Any] = {
        "slug": slug,
        "source": dict(source) if source is not None else {"type": "docker_image", "image": image},
    }
    if name is not None:
        spec["name"] = name
    if settings is not None:
        spec["settings"] = dict(settings)
    if volumes is not None:
        spec["volumes"] = [dict(v) for v in volumes]
    if endpoint is not None:
        spec["endpoint"] = dict(endpoint)
    if command is not None:
        if processes is not None:
            raise InvalidInput("give command= or processes=, not both", field="command")
        processes = {"web": {"command": list(command), "replicas": 1}}
    if processes is not None:
        spec["processes"] = {k: dict(v) for k, v in processes.items()}
    return {"op": "create_service", "environment": environment, "spec": spec}


_PATCH_FIELDS = ("name", "source", "settings", "volumes", "endpoint", "processes", "server_id")


def update_service(service: str, changes: Mapping[str, Any]) -> Request:
    unknown = sorted(set(changes) - set(_PATCH_FIELDS))
    if unknown:
        raise InvalidInput(
            f"unknown service field(s) {', '.join(unknown)}; known: {', '.join(_PATCH_FIELDS)}",
            field=unknown[0],
        )
    return {"op": "update_service", "service": service, "patch": dict(changes)}


def create_stack(
    environment: str,
    template: str,
    name: Optional[str],
    inputs: Optional[Mapping[str, str]],
    images: Optional[Mapping[str, str]],
    domain: Optional[str],
    lan: bool,
) -> Request:
    stack: Dict[str, Any] = {
        "template": template,
        "inputs": dict(inputs or {}),
        "images": dict(images or {}),
        "lan": lan,
    }
    if name is not None:
        stack["name"] = name
    if domain is not None:
        stack["domain"] = domain
    return {"op": "create_stack", "environment": environment, "stack": stack}


def upgrade_stack(stack: str, to: Optional[str], apply: Optional[str]) -> Request:
    return {"op": "upgrade_stack", "stack": stack, "to": to, "apply": apply}


def delete(kind: str, address: str, purge: bool, volumes: bool) -> Request:
    """``delete_project`` / ``delete_environment`` / ``delete_service``."""
    return {"op": f"delete_{kind}", kind: address, "purge": purge, "volumes": volumes}


def clone_environment(
    environment: str,
    name: str,
    domain_pattern: Optional[str],
    copy_config: bool,
    deploy: bool,
    copy_volumes: bool = False,
) -> Request:
    clone: Dict[str, Any] = {
        "name": name,
        "copy_config": copy_config,
        "deploy": deploy,
        "copy_volumes": copy_volumes,
    }
    if domain_pattern is not None:
        clone["domain_pattern"] = domain_pattern
    return {"op": "clone_environment", "environment": environment, "clone": clone}


def logs(
    service: str, tail: Optional[int], process: Optional[str], replica: Optional[int]
) -> Request:
    return {
        "op": "logs",
        "service": service,
        "tail": tail,
        "process": process,
        "replica": replica,
    }


def exec_(
    service: str,
    command: Iterable[str],
    timeout: Optional[int],
    process: Optional[str],
    replica: Optional[int],
) -> Request:
    argv = [command] if isinstance(command, str) else list(command)
    return {
        "op": "exec",
        "service": service,
        "exec": {
            "command": argv,
            "timeout_s": timeout,
            "process": process,
            "replica": replica,
        },
    }


def server(op: str, name: str, workspace: Optional[str]) -> Request:
    key = "name" if op == "create_server" else "server"
    return {"op": op, key: name, "workspace": workspace}


def audit(limit: Optional[int], before: Optional[str], workspace: Optional[str]) -> Request:
    return {"op": "list_audit", "limit": limit, "before": before, "workspace": workspace}


def add_member(email: str, name: str, role: str) -> Request:
    return {"op": "add_member", "member": {"name": name, "email": email, "role": role}}


def create_token(name: str, role: Optional[str]) -> Request:
    return {"op": "create_token", "token": {"name": name, "role": role}}
