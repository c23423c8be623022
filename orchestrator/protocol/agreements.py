"""Bilateral compute-access agreements, loaded from TOML and validated with pydantic.

An agreement between two nations names the priority areas in which one party's
data may be used on the other party's facilities, the access tier of each area
(``pre-approved`` or ``case-by-case``), its validity window (inclusive calendar
dates) and the GPU-hour volume above which the oversight body must be notified.

File format (TOML 1.0, read with :mod:`tomllib`)::

    [agreement]
    id = "AUS-USA-SONAR-2026"
    title = "AUKUS Pillar II undersea capability: compute access"
    parties = ["AUS", "USA"]            # ISO 3166-1 alpha-3, exactly two
    valid_from = 2026-01-01             # inclusive
    valid_until = 2028-12-31            # inclusive, after valid_from
    notification_threshold_gpu_hours = 500.0
    oversight_body = "AUKUS Joint Steering Group"
    tee_required = false                # optional; true: refuse software evidence
    hpke_suite = "x25519"               # optional; or "mlkem768-x25519"
    version = 1                         # optional; a superseding document: +1
    quarterly_threshold_gpu_hours = 2000.0  # optional; cumulative per quarter
    hold_until_acknowledged = false     # optional; hold over-threshold requests
    prohibited_end_uses = ["weapons-targeting"]  # optional; model end uses refused
    third_party_transfer = "prohibited" # optional; or "with-consent"
    termination = "any-party"           # optional; or "all-parties"
    code_approval = "required"          # optional; default "not-required"
    released_metrics = ["test_accuracy"]  # optional; what tasks return in clear
    max_released_metrics = 16           # optional; at most this many per task

    [[agreement.priority_area]]
    name = "undersea-autonomy"          # lower-case slug, unique
    tier = "pre-approved"               # or "case-by-case"

``tee_required`` (default ``false``) makes every custodian party to the agreement
refuse key release on software evidence (``tee_mode: none``); ``hpke_suite``
(default ``"x25519"``) names the HPKE (RFC 9180) suite the enclave key must use:
``"x25519"`` (DHKEM(X25519, HKDF-SHA256)) or ``"mlkem768-x25519"`` (the ML-KEM-768
+ X25519 hybrid). Both keys are left out of :meth:`Agreement.to_json` when they
hold their defaults, so documents and digests of older agreements are unchanged.

The sovereignty terms (all optional, all omitted from :meth:`Agreement.to_json` at
their defaults, like the two above):

``version`` (default 1)
    The document's version. A document takes effect only when every party's
    officer has signed this exact version (its :meth:`Agreement.digest`); a higher
    version of the same ``id``, once signed by every party, supersedes the lower
    (:mod:`orchestrator.policy.standing`).
``quarterly_threshold_gpu_hours`` (default none)
    Cumulative GPU-hours per calendar quarter under this agreement above which the
    oversight body is notified (per-request: ``notification_threshold_gpu_hours``).
``hold_until_acknowledged`` (default ``false``)
    A request that crosses either threshold is held until an officer of a party
    acknowledges the notification on the oversight body's behalf.
``prohibited_end_uses`` (default none)
    End-use slugs for which a model derived under this agreement may not be
    transferred (e.g. ``"weapons-targeting"``).
``third_party_transfer`` (default ``"prohibited"``)
    Whether a model may go to a nation that is not a party (``"with-consent"``:
    with every owner's signed consent; ``"prohibited"``: never), including
    re-transfer by a recipient.
``termination`` (default ``"any-party"``)
    Whose signed termination ends the agreement: any one party's officer, or
    every party's (``"all-parties"``). A termination takes effect at once.
``code_approval`` (default ``"not-required"``)
    ``"required"``: each party's custodian releases a key only for a code
    measurement its own officer approved for this agreement and area
    (:mod:`orchestrator.nation.code_approvals`).
``released_metrics`` (default: the metrics this project's workflows report,
:data:`~orchestrator.protocol.outputs.DEFAULT_RELEASED_METRICS`)
    The metric names a task under this agreement may return in clear; every
    other output is withheld at the enclave (:mod:`orchestrator.protocol.outputs`).
``max_released_metrics`` (default 16)
    At most this many clear metrics per task.

Every malformed file raises :class:`~orchestrator.errors.ConfigError` naming the
file and the field path (``agreement.priority_area[1].tier``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from orchestrator.canonical import digest_of
from orchestrator.errors import ConfigError
from orchestrator.labels import parse_nation
from orchestrator.protocol.outputs import (
    DEFAULT_MAX_RELEASED_METRICS,
    DEFAULT_RELEASED_METRICS,
    OutputRules,
)

__all__ = ["HPKE_SUITES", "AccessTier", "Agreement", "PriorityArea",
           "load_agreement", "parse_agreement", "quarter_of"]

#: Agreement ``hpke_suite`` names -> :class:`orchestrator.crypto.HpkeSuite` values.
HPKE_SUITES: dict[str, str] = {
    "x25519": "DHKEM-X25519-HKDF-SHA256/HKDF-SHA256/AES-256-GCM",
    "mlkem768-x25519": "MLKEM768-X25519/HKDF-SHA256/AES-256-GCM",
}

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_METRIC = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class AccessTier(StrEnum):
    """How a priority area is accessed under an agreement."""

    PRE_APPROVED = "pre-approved"
    """Requests in the area are permitted once every other rule passes."""
    CASE_BY_CASE = "case-by-case"
    """Each request needs an explicit approval by the owner."""


class PriorityArea(BaseModel):
    """One priority area of an agreement: a lower-case slug and its access tier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    tier: AccessTier

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.fullmatch(value):
            raise ValueError(f"area name {value!r} must be a lower-case slug "
                             "such as 'undersea-autonomy'")
        return value


class Agreement(BaseModel):
    """A bilateral agreement (immutable; see the module docstring for the format).

    Attributes
    ----------
    id
        Stable identifier, e.g. ``"AUS-USA-SONAR-2026"``.
    parties
        The two ISO 3166-1 alpha-3 codes, canonical and sorted.
    valid_from, valid_until
        Inclusive validity window; ``valid_until > valid_from``.
    notification_threshold_gpu_hours
        A request above this many GPU-hours must be notified to ``oversight_body``.
    priority_areas
        The areas (TOML key ``priority_area``), names unique.
    tee_required
        Refuse release on software evidence (``tee_mode: none``).
    hpke_suite
        ``"x25519"`` (default) or ``"mlkem768-x25519"``: the enclave's HPKE suite.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True,
                              validate_by_alias=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$", strict=True)
    title: str = Field(min_length=1, strict=True)
    parties: tuple[str, ...]
    valid_from: date
    valid_until: date
    notification_threshold_gpu_hours: float = Field(ge=0, allow_inf_nan=False,
                                                    strict=True)
    oversight_body: str = Field(min_length=1, strict=True)
    priority_areas: tuple[PriorityArea, ...] = Field(alias="priority_area",
                                                     min_length=1)
    tee_required: bool = Field(default=False, strict=True)
    hpke_suite: Literal["x25519", "mlkem768-x25519"] = "x25519"
    version: int = Field(default=1, ge=1, strict=True)
    quarterly_threshold_gpu_hours: float | None = Field(default=None, ge=0,
                                                        allow_inf_nan=False)
    hold_until_acknowledged: bool = Field(default=False, strict=True)
    prohibited_end_uses: tuple[str, ...] = ()
    third_party_transfer: Literal["prohibited", "with-consent"] = "prohibited"
    termination: Literal["any-party", "all-parties"] = "any-party"
    code_approval: Literal["not-required", "required"] = "not-required"
    released_metrics: tuple[str, ...] = DEFAULT_RELEASED_METRICS
    max_released_metrics: int = Field(default=DEFAULT_MAX_RELEASED_METRICS, ge=1,
                                      le=256, strict=True)

    @field_validator("released_metrics")
    @classmethod
    def _released(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _METRIC.fullmatch(name):
                raise ValueError(f"metric name {name!r} must be 1..64 of "
                                 "[A-Za-z0-9_.-]")
        return tuple(sorted(set(value)))

    def output_rules(self) -> OutputRules:
        """What a task under this agreement may return in clear
        (:mod:`orchestrator.protocol.outputs`)."""
        return OutputRules(self.released_metrics, self.max_released_metrics)

    @field_validator("parties")
    @classmethod
    def _parties(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            codes = [parse_nation(code) for code in value]
        except ConfigError as exc:
            raise ValueError(exc.message) from exc
        if len(codes) != 2 or len(set(codes)) != 2:
            raise ValueError("a bilateral agreement needs exactly two distinct "
                             f"parties, got {len(codes)}")
        return tuple(sorted(codes))

    @field_validator("prohibited_end_uses")
    @classmethod
    def _end_uses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for use in value:
            if not _SLUG.fullmatch(use):
                raise ValueError(f"end use {use!r} must be a lower-case slug "
                                 "such as 'weapons-targeting'")
        return tuple(sorted(set(value)))

    @field_validator("priority_areas")
    @classmethod
    def _unique_areas(cls, value: tuple[PriorityArea, ...]
                      ) -> tuple[PriorityArea, ...]:
        seen: set[str] = set()
        for area in value:
            if area.name in seen:
                raise ValueError(f"duplicate priority area {area.name!r}")
            seen.add(area.name)
        return value

    @field_validator("valid_from", "valid_until", mode="before")
    @classmethod
    def _calendar_date(cls, value: object) -> date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str) and _ISO_DATE.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise ValueError(f"expected a calendar date such as 2026-01-01, got {value!r}")

    @field_validator("valid_until")
    @classmethod
    def _window(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("valid_from")
        if isinstance(start, date) and value <= start:
            raise ValueError(f"valid_until {value} must be after valid_from {start}")
        return value

    def covers(self, nation_a: str, nation_b: str) -> bool:
        """True when the parties are exactly ``{nation_a, nation_b}`` (two nations)."""
        return nation_a != nation_b and set(self.parties) == {nation_a, nation_b}

    def is_valid_on(self, day: date) -> bool:
        """True when ``valid_from <= day <= valid_until`` (inclusive dates)."""
        return self.valid_from <= day <= self.valid_until

    def area(self, name: str) -> PriorityArea | None:
        """Return the priority area called ``name``, or ``None``."""
        for area in self.priority_areas:
            if area.name == name:
                return area
        return None

    def to_json(self) -> dict[str, Any]:
        """Return the storage document (TOML keys, dates as ISO 8601 text).

        Optional terms (``tee_required``, ``hpke_suite``, ``version``, ...) are
        omitted at their defaults, so the digests of older documents are unchanged.
        """
        doc = self.model_dump(mode="json", by_alias=True)
        for key, default in _OPTIONAL_DEFAULTS.items():
            if doc.get(key) == default:
                doc.pop(key)
        return doc

    def quarter_of(self, day: date) -> str:
        """The calendar quarter of ``day`` as ``"YYYY-Qn"`` (allocation accounting)."""
        return quarter_of(day)

    @property
    def hpke_suite_value(self) -> str:
        """The :class:`orchestrator.crypto.HpkeSuite` value of :attr:`hpke_suite`."""
        return HPKE_SUITES[self.hpke_suite]

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, source: str = "<agreement>"
                  ) -> Agreement:
        """Read a document written by :meth:`to_json`.

        Raises
        ------
        ConfigError
            Naming ``source`` and the field path.
        """
        try:
            return cls.model_validate(dict(d))
        except ValidationError as exc:
            raise _config_error(exc, source) from exc
        except TypeError as exc:
            raise ConfigError("agreement must be a JSON object", source=source) from exc

    def digest(self) -> str:
        """``"sha256:<hex>"`` of the canonical JSON of :meth:`to_json`."""
        return digest_of(self.to_json())


#: Optional terms and the defaults at which :meth:`Agreement.to_json` omits them.
_OPTIONAL_DEFAULTS: dict[str, Any] = {
    "tee_required": False, "hpke_suite": "x25519", "version": 1,
    "quarterly_threshold_gpu_hours": None, "hold_until_acknowledged": False,
    "prohibited_end_uses": [], "third_party_transfer": "prohibited",
    "termination": "any-party",
    "code_approval": "not-required",
    "released_metrics": list(DEFAULT_RELEASED_METRICS),
    "max_released_metrics": DEFAULT_MAX_RELEASED_METRICS,
}


def quarter_of(day: date) -> str:
    """``"YYYY-Qn"``: the calendar quarter (Q1 = January-March) containing ``day``."""
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


class _AgreementFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agreement: Agreement


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _config_error(exc: ValidationError, source: str, prefix: tuple[str, ...] = ()
                  ) -> ConfigError:
    errors = exc.errors()
    first = errors[0]
    message = _message(first)
    if len(errors) > 1:
        message += "; also " + "; ".join(
            f"{_loc(prefix + tuple(e['loc']))}: {_message(e)}" for e in errors[1:])
    return ConfigError(message, source=source, field=_loc(prefix + tuple(first["loc"])))


def parse_agreement(text: str, *, source: str) -> Agreement:
    """Parse and validate the TOML ``text`` of one agreement file.

    Raises
    ------
    ConfigError
        On invalid TOML or any invalid field; ``source`` and the field path are named.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", source=source) from exc
    try:
        return _AgreementFile.model_validate(data).agreement
    except ValidationError as exc:
        raise _config_error(exc, source) from exc


def load_agreement(path: Path) -> Agreement:
    """Read and validate an agreement file (UTF-8 TOML).

    Raises
    ------
    ConfigError
        If the file cannot be read or is invalid; the message names ``path``.
    """
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read agreement file: {exc.strerror or exc}",
                          source=source) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("agreement file is not UTF-8 text", source=source) from exc
    return parse_agreement(text, source=source)
