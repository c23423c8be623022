"""Security labels: nations, classification levels, export controls and caveats.

A :class:`Label` travels with every dataset and model. Its JSON form follows the
shape of the US Intelligence Community's machine-readable markings (IC-ISM, and its
JSON rendering JSON-ISM): ``classification``, ``ownerProducer[]`` and
``releasableTo[]`` as ISO 3166-1 alpha-3 trigraphs, plus an export-control list
(ITAR USML categories, EAR ECCNs or ``EAR99``) and end-use caveats.

The label algebra for derived products (:func:`derive_label`) is the usual one for
aggregation: owners = union, classification = highest, releasable-to =
intersection, export controls and caveats = union.

This module is pure: no I/O, no clock reads.

References
----------
ISO 3166-1:2020, *Codes for the representation of names of countries*, alpha-3 codes
(249 officially assigned). ODNI, *IC-ISM* and *JSON-ISM* data encoding specifications.
22 CFR 121 (USML categories I-XXI); 15 CFR 774 Supp. 1 (Commerce Control List, ECCNs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from orchestrator.errors import ConfigError

__all__ = [
    "ISO3166_ALPHA3",
    "Classification",
    "Label",
    "derive_label",
    "parse_export_control",
    "parse_nation",
    "parse_nations",
]

#: The 249 officially assigned ISO 3166-1 alpha-3 codes.
ISO3166_ALPHA3: frozenset[str] = frozenset("""
ABW AFG AGO AIA ALA ALB AND ARE ARG ARM ASM ATA ATF ATG AUS AUT AZE BDI BEL BEN BES
BFA BGD BGR BHR BHS BIH BLM BLR BLZ BMU BOL BRA BRB BRN BTN BVT BWA CAF CAN CCK CHE
CHL CHN CIV CMR COD COG COK COL COM CPV CRI CUB CUW CXR CYM CYP CZE DEU DJI DMA DNK
DOM DZA ECU EGY ERI ESH ESP EST ETH FIN FJI FLK FRA FRO FSM GAB GBR GEO GGY GHA GIB
GIN GLP GMB GNB GNQ GRC GRD GRL GTM GUF GUM GUY HKG HMD HND HRV HTI HUN IDN IMN IND
IOT IRL IRN IRQ ISL ISR ITA JAM JEY JOR JPN KAZ KEN KGZ KHM KIR KNA KOR KWT LAO LBN
LBR LBY LCA LIE LKA LSO LTU LUX LVA MAC MAF MAR MCO MDA MDG MDV MEX MHL MKD MLI MLT
MMR MNE MNG MNP MOZ MRT MSR MTQ MUS MWI MYS MYT NAM NCL NER NFK NGA NIC NIU NLD NOR
NPL NRU NZL OMN PAK PAN PCN PER PHL PLW PNG POL PRI PRK PRT PRY PSE PYF QAT REU ROU
RUS RWA SAU SDN SEN SGP SGS SHN SJM SLB SLE SLV SMR SOM SPM SRB SSD STP SUR SVK SVN
SWE SWZ SXM SYC SYR TCA TCD TGO THA TJK TKL TKM TLS TON TTO TUN TUR TUV TWN TZA UGA
UKR UMI URY USA UZB VAT VCT VEN VGB VIR VNM VUT WLF WSM YEM ZAF ZMB ZWE
""".split())


def parse_nation(code: str, *, source: str | None = None,
                 field: str | None = None) -> str:
    """Return the canonical (upper-case) ISO 3166-1 alpha-3 code for ``code``.

    Raises
    ------
    ConfigError
        If ``code`` is not a string or not an officially assigned alpha-3 code.
    """
    if not isinstance(code, str):
        raise ConfigError(f"nation code must be text, not {type(code).__name__}",
                          source=source, field=field)
    canon = code.strip().upper()
    if canon not in ISO3166_ALPHA3:
        raise ConfigError(f"unknown nation code {code.strip()!r} "
                          "(expected an ISO 3166-1 alpha-3 code)",
                          source=source, field=field)
    return canon


def parse_nations(text_or_list: str | Iterable[str], *, source: str | None = None,
                  field: str | None = None) -> frozenset[str]:
    """Parse ``"AUS,GBR,USA"`` or ``["AUS", "GBR", "USA"]`` into a set of codes.

    A blank string gives the empty set; an empty item (``"AUS,,GBR"``) is an error.

    Raises
    ------
    ConfigError
        On any unknown code or empty item.
    """
    if isinstance(text_or_list, str):
        if not text_or_list.strip():
            return frozenset()
        items: Iterable[Any] = text_or_list.split(",")
    else:
        items = text_or_list
    return frozenset(parse_nation(item, source=source, field=field) for item in items)


class Classification(IntEnum):
    """Protective marking levels, ordered ``UNCLASSIFIED < ... < TOP_SECRET``.

    :meth:`parse` accepts the canonical names in any case, with spaces, underscores,
    hyphens or colons as separators, and these national and alliance equivalents:

    ============== ===================================================================
    level          aliases (source)
    ============== ===================================================================
    UNCLASSIFIED   ``U``, ``UNCLAS``, ``NATO UNCLASSIFIED`` (NATO C-M(2002)49);
                   ``UNOFFICIAL`` (AUS PSPF Policy 8)
    OFFICIAL       ``OFFICIAL: SENSITIVE`` (AUS PSPF; UK GSCP ``OFFICIAL-SENSITIVE``);
                   ``R``, ``RESTRICTED``, ``NATO RESTRICTED`` (NATO; legacy UK)
    CONFIDENTIAL   ``C``, ``NATO CONFIDENTIAL`` (NATO); ``PROTECTED`` (AUS PSPF)
    SECRET         ``S``, ``NATO SECRET`` (NATO)
    TOP_SECRET     ``TS``, ``COSMIC TOP SECRET``, ``CTS`` (NATO)
    ============== ===================================================================

    The equivalences are the conservative reading of the bilateral security-of-
    information tables (e.g. AUS PSPF "Policy 8: Sensitive and classified
    information" annex of foreign equivalents; UK Government Security
    Classifications Policy 2023): a foreign marking maps to the level that protects
    it at least as strongly as its owner requires. Anything else is refused (fail
    closed).
    """

    UNCLASSIFIED = 0
    OFFICIAL = 1
    CONFIDENTIAL = 2
    SECRET = 3
    TOP_SECRET = 4

    @property
    def marking(self) -> str:
        """The banner text of the level, e.g. ``"TOP SECRET"``."""
        return self.name.replace("_", " ")

    @classmethod
    def parse(cls, text: str | Classification, *, source: str | None = None,
              field: str | None = None) -> Classification:
        """Parse a level name or alias (see the class docstring).

        Raises
        ------
        ConfigError
            If ``text`` is not a known level or alias.
        """
        if isinstance(text, Classification):
            return text
        if not isinstance(text, str):
            raise ConfigError(f"classification must be text, not {type(text).__name__}",
                              source=source, field=field)
        key = " ".join(re.sub(r"[\s_:\-]+", " ", text).upper().split())
        level = _ALIASES.get(key)
        if level is None:
            raise ConfigError(f"unknown classification {text!r} (expected one of "
                              f"{', '.join(c.name for c in cls)} or a known alias)",
                              source=source, field=field)
        return level


_ALIASES: dict[str, Classification] = {c.marking: c for c in Classification}
_ALIASES.update({
    "U": Classification.UNCLASSIFIED, "UNCLAS": Classification.UNCLASSIFIED,
    "NATO UNCLASSIFIED": Classification.UNCLASSIFIED,
    "UNOFFICIAL": Classification.UNCLASSIFIED,
    "OFFICIAL SENSITIVE": Classification.OFFICIAL, "R": Classification.OFFICIAL,
    "RESTRICTED": Classification.OFFICIAL, "NATO RESTRICTED": Classification.OFFICIAL,
    "C": Classification.CONFIDENTIAL, "NATO CONFIDENTIAL": Classification.CONFIDENTIAL,
    "PROTECTED": Classification.CONFIDENTIAL,
    "S": Classification.SECRET, "NATO SECRET": Classification.SECRET,
    "TS": Classification.TOP_SECRET, "COSMIC TOP SECRET": Classification.TOP_SECRET,
    "CTS": Classification.TOP_SECRET,
})

_ROMAN = ("I II III IV V VI VII VIII IX X XI XII XIII XIV XV XVI XVII XVIII XIX XX "
          "XXI").split()
_ITAR = re.compile(r"ITAR:USML-([IVX]+)")
_EAR = re.compile(r"EAR:([0-9][A-E][0-9]{3})((?:\.[A-Z0-9]+)*)")
_CAVEAT = re.compile(r"[A-Z0-9][A-Z0-9_.:\-]*")


def parse_export_control(tag: str, *, source: str | None = None,
                         field: str | None = None) -> str:
    """Canonicalise an export-control tag.

    Accepted forms: ``ITAR:USML-<I..XXI>`` (22 CFR 121.1 category),
    ``EAR:<ECCN>`` with an ECCN such as ``5A002`` or ``6A991`` and optional
    sub-paragraphs (``EAR:5A002.a.1``; 15 CFR 774), and ``EAR99``.

    Raises
    ------
    ConfigError
        On any other text.
    """
    text = tag.strip().upper() if isinstance(tag, str) else ""
    if text in ("EAR99", "EAR:EAR99"):
        return "EAR99"
    m = _ITAR.fullmatch(text)
    if m and m.group(1) in _ROMAN:
        return text
    m = _EAR.fullmatch(text)
    if m:
        return f"EAR:{m.group(1)}{m.group(2).lower()}"
    raise ConfigError(f"bad export-control tag {tag!r} (expected ITAR:USML-<I..XXI>, "
                      "EAR:<ECCN> such as EAR:5A002, or EAR99)",
                      source=source, field=field)


def _parse_caveat(token: str, *, source: str | None, field: str | None) -> str:
    text = token.strip().upper() if isinstance(token, str) else ""
    if not _CAVEAT.fullmatch(text):
        raise ConfigError(f"bad end-use caveat {token!r} (expected one non-empty token "
                          "of letters, digits, '_', '-', '.' or ':')",
                          source=source, field=field)
    return text


@dataclass(frozen=True)
class Label:
    """The security label of one dataset or model (IC-ISM / JSON-ISM shape).

    Build one with :meth:`create` or :meth:`from_json`; both check that every owner
    is in ``releasable_to`` (a *coherent* label). Only :func:`derive_label` (and
    :meth:`from_json` with ``derived=True``, to read a stored derived label back)
    may produce an incoherent label: aggregating AUS data releasable to {AUS, USA}
    with GBR data releasable to {GBR, USA} yields owners {AUS, GBR} but
    releasable-to {USA}. Such a product is releasable to exactly the intersection:
    no owner gains a right to another owner's data by contributing its own.
    :attr:`is_coherent` tells the two apart.

    Attributes
    ----------
    owners
        ``ownerProducer``: alpha-3 codes of the owning nations (at least one).
    classification
        The protective marking level.
    releasable_to
        ``releasableTo``: alpha-3 codes of nations the object may be released to.
    export_controls
        Canonical tags from :func:`parse_export_control`.
    caveats
        End-use caveats: upper-case tokens.
    """

    owners: frozenset[str]
    classification: Classification
    releasable_to: frozenset[str]
    export_controls: frozenset[str] = frozenset()
    caveats: frozenset[str] = frozenset()
    _derived: bool = field(default=False, repr=False, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.classification, Classification):
            raise ConfigError("classification must be a Classification",
                              field="classification")
        for name in ("owners", "releasable_to", "export_controls", "caveats"):
            if not isinstance(getattr(self, name), frozenset):
                raise ConfigError(f"{name} must be a frozenset", field=name)
        if not self.owners:
            raise ConfigError("a label needs at least one owner", field="owners")
        for name in ("owners", "releasable_to"):
            for code in getattr(self, name):
                if code not in ISO3166_ALPHA3:
                    raise ConfigError(f"unknown nation code {code!r} (expected an "
                                      "ISO 3166-1 alpha-3 code)", field=name)
        for tag in self.export_controls:
            if parse_export_control(tag, field="export_controls") != tag:
                raise ConfigError(f"export-control tag {tag!r} is not canonical",
                                  field="export_controls")
        for token in self.caveats:
            if _parse_caveat(token, source=None, field="caveats") != token:
                raise ConfigError(f"caveat {token!r} is not canonical", field="caveats")
        missing = sorted(self.owners - self.releasable_to)
        if missing and not self._derived:
            raise ConfigError(f"owner {missing[0]} must be in releasable-to",
                              field="releasable_to")

    @classmethod
    def create(cls, *, owners: str | Iterable[str],
               classification: str | Classification,
               releasable_to: str | Iterable[str],
               export_controls: Iterable[str] = (), caveats: Iterable[str] = (),
               source: str | None = None) -> Label:
        """Validate and build a coherent label.

        Raises
        ------
        ConfigError
            On no owner, unknown codes/levels/tags, or an owner missing from
            ``releasable_to`` ("owner X must be in releasable-to").
        """
        own = parse_nations(owners, source=source, field="owners")
        if not own:
            raise ConfigError("a label needs at least one owner", source=source,
                              field="owners")
        rel = parse_nations(releasable_to, source=source, field="releasable_to")
        missing = sorted(own - rel)
        if missing:
            raise ConfigError(f"owner {missing[0]} must be in releasable-to",
                              source=source, field="releasable_to")
        return cls(
            owners=own,
            classification=Classification.parse(classification, source=source,
                                                field="classification"),
            releasable_to=rel,
            export_controls=frozenset(
                parse_export_control(t, source=source, field="export_controls")
                for t in _items(export_controls, source, "export_controls")),
            caveats=frozenset(_parse_caveat(c, source=source, field="caveats")
                              for c in _items(caveats, source, "caveats")),
        )

    @property
    def is_coherent(self) -> bool:
        """True when every owner is in ``releasable_to``."""
        return self.owners <= self.releasable_to

    def to_json(self) -> dict[str, Any]:
        """Return the JSON-ISM-shaped document (lists sorted, level by name)."""
        return {
            "classification": self.classification.name,
            "ownerProducer": sorted(self.owners),
            "releasableTo": sorted(self.releasable_to),
            "exportControls": sorted(self.export_controls),
            "endUseCaveats": sorted(self.caveats),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, source: str | None = None,
                  derived: bool = False) -> Label:
        """Read a document written by :meth:`to_json`, strictly.

        Every key of :meth:`to_json` is required and no other is allowed;
        ``classification`` must be a canonical level name; lists must hold
        canonical, distinct values. ``derived=True`` admits an incoherent label (a
        stored output of :func:`derive_label`).

        Raises
        ------
        ConfigError
            Naming the offending field.
        """
        if not isinstance(d, Mapping):
            raise ConfigError("label must be a JSON object", source=source)
        keys = ("classification", "ownerProducer", "releasableTo", "exportControls",
                "endUseCaveats")
        for key in d:
            if key not in keys:
                raise ConfigError(f"unknown label key {key!r}", source=source,
                                  field=str(key))
        for key in keys:
            if key not in d:
                raise ConfigError("missing label key", source=source, field=key)
        level = d["classification"]
        if not isinstance(level, str) or level not in Classification.__members__:
            raise ConfigError(f"bad classification {level!r} (expected one of "
                              f"{', '.join(Classification.__members__)})",
                              source=source, field="classification")
        parsers = {"ownerProducer": parse_nation, "releasableTo": parse_nation,
                   "exportControls": parse_export_control,
                   "endUseCaveats": _parse_caveat}
        sets: dict[str, frozenset[str]] = {}
        for key, parse in parsers.items():
            values = d[key]
            if not isinstance(values, list):
                raise ConfigError("must be a JSON array", source=source, field=key)
            canon = [parse(v, source=source, field=key) for v in values]
            if canon != values or len(set(canon)) != len(canon):
                raise ConfigError("values must be canonical and distinct",
                                  source=source, field=key)
            sets[key] = frozenset(canon)
        try:
            return cls(owners=sets["ownerProducer"],
                       classification=Classification[level],
                       releasable_to=sets["releasableTo"],
                       export_controls=sets["exportControls"],
                       caveats=sets["endUseCaveats"], _derived=derived)
        except ConfigError as exc:
            raise ConfigError(exc.message, source=source, field={
                "owners": "ownerProducer", "releasable_to": "releasableTo",
            }.get(exc.field or "", exc.field)) from exc

    def marking(self) -> str:
        """Return the banner line, e.g. ``"SECRET//REL TO AUS, GBR, USA"``.

        Export controls and caveats follow as extra ``//``-separated blocks, each
        ``/``-joined; an empty releasable-to set reads ``REL TO NONE``.
        """
        rel = ", ".join(sorted(self.releasable_to)) or "NONE"
        parts = [self.classification.marking, f"REL TO {rel}"]
        if self.export_controls:
            parts.append("/".join(sorted(self.export_controls)))
        if self.caveats:
            parts.append("/".join(sorted(self.caveats)))
        return "//".join(parts)


def _items(values: Iterable[str], source: str | None, field: str) -> Iterable[str]:
    if isinstance(values, str):
        raise ConfigError("expected a list of tags, not one string", source=source,
                          field=field)
    return values


def derive_label(labels: Iterable[Label]) -> Label:
    """Return the label of a product derived from objects with ``labels``.

    owners = union, classification = highest, releasable-to = intersection,
    export controls = union, caveats = union. The operation is commutative,
    associative and idempotent. The result may be incoherent (an owner outside
    releasable-to; see :class:`Label`), and is then releasable only to the
    intersection.

    Raises
    ------
    ValueError
        If ``labels`` is empty.
    """
    items = list(labels)
    if not items:
        raise ValueError("derive_label needs at least one input label")
    return Label(
        owners=frozenset().union(*(x.owners for x in items)),
        classification=max(x.classification for x in items),
        releasable_to=frozenset.intersection(*(x.releasable_to for x in items)),
        export_controls=frozenset().union(*(x.export_controls for x in items)),
        caveats=frozenset().union(*(x.caveats for x in items)),
        _derived=True,
    )
