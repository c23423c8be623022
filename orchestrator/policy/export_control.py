"""Export-control tags as the transfer policy reads them (rule 4 of
:func:`orchestrator.policy.transfer.evaluate_transfer`). Pure: no I/O.

Tags are those of :func:`orchestrator.labels.parse_export_control`. The
orchestrator cannot decide whether an export is licensed; the owner can, so:

* ``ITAR:USML-<cat>`` (technical data of a defense article on the US Munitions
  List, 22 CFR 121; exports, reexports and retransfers need an authorisation,
  22 CFR 120.50-120.52, parts 123-126) and ``EAR:<ECCN>`` (an item on the
  Commerce Control List, 15 CFR 774 Supp. 1, which may need a licence, 15 CFR
  738 and 740-742): the recipient must be in ``releasableTo`` *and* every
  owner's counting consent must name the exact tag in its ``export_controls``
  list, i.e. each owner's officer attests that the export is authorised (licence,
  agreement or exemption) for this recipient and end use.
* ``EAR99`` (subject to the EAR but on no ECCN, 15 CFR 734.3(c)): the recipient
  must be in ``releasableTo``; owners express embargo and end-user screening
  (15 CFR 744, 746) through releasability.
* Any other tag is unknown and denies (fail closed).

Sources: 22 CFR parts 120-130 (International Traffic in Arms Regulations, ITAR);
15 CFR parts 730-774 (Export Administration Regulations, EAR).
"""

from __future__ import annotations

import re

__all__ = ["classify_export_control"]

_ITAR = re.compile(r"ITAR:USML-(?:XXI|XX|XIX|XVIII|XVII|XVI|XV|XIV|XIII|XII|XI|X|IX|"
                   r"VIII|VII|VI|V|IV|III|II|I)")
_EAR = re.compile(r"EAR:[0-9][A-E][0-9]{3}(?:\.[a-z0-9]+)*")


def classify_export_control(tag: str) -> str:
    """``"itar"``, ``"ear-eccn"``, ``"ear99"`` or ``"unknown"`` for a stored tag.

    Only canonical tags (:func:`orchestrator.labels.parse_export_control`) are
    recognised; anything else is ``"unknown"`` (and denies).
    """
    if not isinstance(tag, str):
        return "unknown"
    if tag == "EAR99":
        return "ear99"
    if _ITAR.fullmatch(tag):
        return "itar"
    if _EAR.fullmatch(tag):
        return "ear-eccn"
    return "unknown"
