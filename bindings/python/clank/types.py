"""The shapes Clank returns: plain dicts, typed for checkers.

Timestamps are integers, milliseconds since the Unix epoch (UTC). Ids are UUID strings.
Config values of secrets are always ``"********"``: no plaintext or ciphertext ever leaves the
platform through these views. A config scope is a string ``"<level>:<id>"``
(``"service:0193…"``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, TypedDict

__all__ = [
    "Workspace",
    "Project",
    "Environment",
    "ProcessSpec",
    "VolumeMount",
    "ServiceSettings",
    "Service",
    "ConfigVar",
    "ResolvedVar",
    "StatusChange",
    "Deployment",
    "LogEntry",
    "Event",
    "Team",
    "TeamView",
    "Member",
    "DeleteReport",
]


class Workspace(TypedDict):
    id: str
    slug: str
    name: str
    created_at: int


class Project(TypedDict):
    id: str
    workspace_id: str
    team_id: Optional[str]
    name: str
    slug: str
    created_at: int
    deleted_at: Optional[int]


class Environment(TypedDict):
    id: str
    project_id: str
    name: str
    kind: str
    created_at: int


class ProcessSpec(TypedDict, total=False):
    command: Optional[List[str]]
    replicas: int


class VolumeMount(TypedDict):
    name: str
    mount_path: str


class ServiceSettings(TypedDict, total=False):
    port: Optional[int]
    health_check_path: str
    health_check_interval_s: int
    health_check_retries: int
    build_timeout_s: int
    deploy_timeout_s: int
    cpu_limit: float
    memory_limit_mb: int
    auto_deploy: bool
    is_public: bool


class Service(TypedDict):
    id: str
    workspace_id: str
    project_id: str
    environment_id: str
    slug: str
    name: str
    #: ``{"type": "docker_image", "image": ...}``, ``{"type": "git", ...}`` or a template.
    source: Dict[str, Any]
    settings: ServiceSettings
    server_id: Optional[str]
    volumes: List[VolumeMount]
    endpoint: Optional[Dict[str, Any]]
    processes: Dict[str, ProcessSpec]
    active_deployment: Optional[str]
    next_deployment_number: int
    next_build_number: int
    #: Set (Unix milliseconds) while the service is stopped; absent (not null) when it runs.
    stopped_at: Optional[int]
    created_at: int
    updated_at: int


class ConfigVar(TypedDict):
    """A variable set at one scope."""

    key: str
    value: str
    secret: bool
    updated_at: int


class ResolvedVar(TypedDict):
    """A variable after the cascade, with its provenance."""

    key: str
    value: str
    secret: bool
    #: The scope the value came from, e.g. ``"project:…"``.
    source: str
    #: Scopes that set the key too but lost to ``source``.
    overridden: List[str]


#: One step of a deployment's history; ``from`` is ``None`` for the creation entry.
StatusChange = TypedDict(
    "StatusChange",
    {"from": Optional[str], "to": str, "at": int, "reason": Optional[str]},
)


class Deployment(TypedDict):
    id: str
    service_id: str
    number: int
    #: ``PENDING``, ``BUILDING``, ``DEPLOYING``, ``HEALTH_CHECKING``, ``ACTIVE``,
    #: ``SUPERSEDED``, ``FAILED`` or ``CANCELLED``.
    status: str
    reason: Optional[str]
    #: ``{"kind": "manual", ...}``, ``{"kind": "rollback_of", "number": 1, ...}``, ...
    trigger: Dict[str, Any]
    artifact: Dict[str, Any]
    image: Optional[str]
    created_at: int
    deadline: Optional[int]
    history: List[StatusChange]
    #: The resolved config frozen into the deployment, secrets masked.
    config: List[ResolvedVar]
    settings: ServiceSettings
    processes: Dict[str, ProcessSpec]
    volumes: List[VolumeMount]
    endpoint: Optional[Dict[str, Any]]
    cancel_requested: bool


class LogEntry(TypedDict):
    at: int
    message: str


class _EventBase(TypedDict):
    at: int
    #: The service's id.
    service: str
    #: The deployment's id.
    deployment: str
    number: int
    #: ``created``, ``transition``, ``log`` or ``restarted``.
    type: str


_EventDetails = TypedDict(
    "_EventDetails",
    {"from": str, "to": str, "reason": Optional[str], "message": str},
    total=False,
)


class Event(_EventBase, _EventDetails):
    """Something that happened to a deployment: the base keys, plus ``from``/``to``/``reason``
    for a ``transition``, ``message`` for a ``log``, ``reason`` for a ``restarted``."""


class Team(TypedDict):
    id: str
    workspace_id: str
    slug: str
    name: str
    created_at: int


class TeamView(Team):
    """A team with how many members it has and its projects' slugs."""

    members: int
    projects: List[str]


class Member(TypedDict):
    """A workspace member: ``role`` and ``teams`` (team ids), with the user's name and email."""

    workspace_id: str
    user_id: str
    role: str
    teams: List[str]
    joined_at: int
    name: Optional[str]
    email: Optional[str]


class DeleteReport(TypedDict, total=False):
    """What a delete did: ``target`` (an address), ``deleted_at``, ``restorable_until``
    (``None`` once purged) and, for a purge, ``purged`` (what was removed and kept)."""

    target: str
    deleted_at: int
    restorable_until: Optional[int]
    purged: Dict[str, Any]
