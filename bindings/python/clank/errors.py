"""The exceptions Clank raises: one class per error kind, all under :class:`ClankError`.

Each carries the message, ``code`` (a stable lowercase kind code shared with the REST API and
the Node binding: ``not_found``, ``conflict``, ``invalid``, ...) and ``field`` (the offending
input field for :class:`InvalidInput`, else ``None``). A call on a closed platform raises
:class:`Closed` (code ``closed``, the same in the Node binding).
"""

from __future__ import annotations

from typing import Optional

__all__ = [
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


class ClankError(Exception):
    """Base class of every error the platform reports."""

    code: str = "internal"
    field: Optional[str] = None

    def __init__(self, message: str, code: Optional[str] = None, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field

    def __repr__(self) -> str:
        extra = f", field={self.field!r}" if self.field else ""
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}{extra})"


class NotFound(ClankError, LookupError):
    """A workspace, project, environment, service or deployment does not exist."""

    code = "not_found"


class Conflict(ClankError):
    """The request conflicts with the current state (a duplicate slug, an illegal transition)."""

    code = "conflict"


class InvalidInput(ClankError, ValueError):
    """An argument was rejected; ``field`` is the path of the bad value, dotted, ``[i]`` for
    list items (``slug``, ``settings.port``, ``volumes[1].mount_path``): inside the argument
    that holds it for dicts a method passes on as they are (``settings=``, a declaration),
    as in the REST API. ``op`` or ``request`` for a malformed request."""

    code = "invalid"


class Unauthorized(ClankError):
    """No valid credentials (daemon connections)."""

    code = "unauthorized"


class Forbidden(ClankError, PermissionError):
    """Credentials are valid but not allowed to do this."""

    code = "forbidden"


class Unavailable(ClankError):
    """The store or the container engine cannot be reached."""

    code = "unavailable"


class Timeout(ClankError, TimeoutError):
    """The platform or a runtime did not answer in time."""

    code = "timeout"


class Internal(ClankError):
    """A bug or a corrupt record: report it."""

    code = "internal"


class Closed(ClankError):
    """The platform was closed (:meth:`clank.Platform.close`): every later call raises this,
    and event iterators raise it too. Not a platform error kind: code ``closed``."""

    code = "closed"
