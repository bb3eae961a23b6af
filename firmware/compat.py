"""The one rule that decides whether two systems may mirror each other.

Mirror status pages and logs show `Verdict.reason` as it is, so reasons are whole
sentences that say what differs and what to do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .version import FirmwareVersion

if TYPE_CHECKING:  # the boot check imports this module and needs no YAML (firmware.models)
    from .models import ModelCatalog


@dataclass(frozen=True)
class SystemIdentity:
    model: int
    version: FirmwareVersion


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    code: str     # stable word for programs: ok, model-cannot-mirror, ...
    reason: str   # the same in words for people


def may_mirror(local: SystemIdentity, peer: SystemIdentity, catalog: ModelCatalog) -> Verdict:
    lowest = catalog.lowest_mirroring_model()
    needs = f"mirroring needs model {lowest} or higher" if lowest else "no model can mirror"
    for who, identity in (("this system", local), ("the peer", peer)):
        if identity.model not in catalog:
            return Verdict(False, "unknown-model",
                           f"{who} reports model {identity.model}, which is not a known model")
        if not catalog.get(identity.model).features.mirroring:
            return Verdict(False, "model-cannot-mirror",
                           f"{who} is a model {identity.model}, which cannot mirror: {needs}")
    if local.model != peer.model:
        return Verdict(False, "model-mismatch",
                       f"the peer is a model {peer.model} but this system is a model "
                       f"{local.model}: mirrored systems must be the same model")
    if local.version != peer.version:
        newer = "the peer" if peer.version > local.version else "this system"
        return Verdict(False, "version-mismatch",
                       f"the peer runs firmware {peer.version} but this system runs "
                       f"{local.version}: mirrored systems must run the same firmware version "
                       f"({newer} is newer; update the other to match)")
    return Verdict(True, "ok", f"same model {local.model} and firmware {local.version}")
