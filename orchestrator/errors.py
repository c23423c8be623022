"""One error hierarchy for the whole project.

Every error the CLI can show derives from :class:`SovereignError`, which carries a
one-line human ``diagnostics()`` naming the file and field at fault where there is
one. Low-level exceptions (``cryptography.exceptions.InvalidTag``,
``InvalidSignature``, ``sqlite3.Error``, ``tomllib.TOMLDecodeError``, pydantic's
``ValidationError``) are translated at the module boundary with ``raise ... from``.
"""

from __future__ import annotations

from typing import Any


class SovereignError(Exception):
    """Base class of every error this project raises on purpose.

    Parameters
    ----------
    message
        What went wrong, in one sentence.
    source
        The file, object or record at fault (a path, a dataset id, ...), if any.
    field
        The field inside ``source`` at fault (``"site.accreditation"``, ``"row 17"``).
    """

    exit_code: int = 1

    def __init__(
        self, message: str, *, source: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.field = field

    def diagnostics(self) -> str:
        """Return the one-line message shown to the user by the CLI."""
        where = ""
        if self.source and self.field:
            where = f"{self.source}: {self.field}: "
        elif self.source:
            where = f"{self.source}: "
        elif self.field:
            where = f"{self.field}: "
        return f"{where}{self.message}"

    def __str__(self) -> str:
        return self.diagnostics()

    def __reduce__(self) -> tuple[object, ...]:
        # Keep keyword attributes (reasons, index, ...) across pickling, which Parsl
        # uses to carry a task's exception from the worker back to the driver.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(
    cls: type[SovereignError], message: str, state: dict[str, object]
) -> SovereignError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigError(SovereignError):
    """A config, manifest, agreement, workflow or CLI argument is malformed."""

    exit_code = 2


class DataError(SovereignError):
    """Input data (a CSV to seal, say) is malformed."""

    exit_code = 2


class IntegrityError(SovereignError):
    """Ciphertext, a signature or a log entry failed verification.

    Raised for tampered, truncated, reordered or re-labelled sealed objects, wrong keys
    and forged signatures alike: the caller learns *that* verification failed, never
    which byte would have passed.
    """

    exit_code = 3


class PolicyDenied(SovereignError):
    """A custodian refused a request; ``reasons`` lists every failed rule."""

    exit_code = 4

    def __init__(
        self,
        message: str,
        *,
        reasons: list[str] | None = None,
        source: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, source=source, field=field)
        self.reasons = list(reasons or [])

    def diagnostics(self) -> str:
        base = super().diagnostics()
        if self.reasons:
            return f"{base} ({'; '.join(self.reasons)})"
        return base


class DecisionPending(PolicyDenied):
    """A request waits on a person: a case-by-case approval or an oversight hold.

    A :class:`PolicyDenied` (so anything that does not know the difference fails
    closed); ``outcome`` is ``"needs-approval"`` or ``"held"`` and ``reasons`` says
    who must act (``sovereign approvals list``, ``sovereign notifications list``).
    """

    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        outcome: str = "needs-approval",
        reasons: list[str] | None = None,
        source: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, reasons=reasons, source=source, field=field)
        self.outcome = outcome


class AttestationError(SovereignError):
    """Attestation evidence was missing, stale, replayed, mis-bound or badly signed."""

    exit_code = 4


class NotFound(SovereignError):
    """A named nation, site, dataset, agreement, job or model is not registered."""

    exit_code = 5


class AlreadyExists(SovereignError):
    """A registration would overwrite an existing record."""

    exit_code = 6


class LedgerError(SovereignError):
    """The custody log could not durably record an event (callers fail closed)."""

    exit_code = 7


class LedgerVerificationError(IntegrityError):
    """The custody log failed verification; ``index``: first bad entry (0-based)."""

    def __init__(
        self, message: str, *, index: int | None = None, source: str | None = None
    ) -> None:
        super().__init__(
            message, source=source, field=None if index is None else f"entry {index}"
        )
        self.index = index


class DispatchError(SovereignError):
    """A workflow task failed on the site for a reason outside security checks."""

    exit_code = 8


class JobInterrupted(DispatchError):
    """Some tasks of a job could not finish for a transient reason (a custodian
    or the custody log out of reach, a lost worker) after their retries, and
    none failed a security check: the job is kept, resumable
    (``sovereign jobs resume``).

    Attributes
    ----------
    completed
        Task name -> its result, for the tasks that finished.
    failed
        Names of the tasks that did not.
    """

    exit_code = 9

    def __init__(self, message: str, *, completed: dict[str, Any] | None = None,
                 failed: list[str] | None = None, source: str | None = None) -> None:
        super().__init__(message, source=source)
        self.completed: dict[str, Any] = dict(completed or {})
        self.failed: list[str] = list(failed or [])

