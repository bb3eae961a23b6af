"""Hardware model profiles, loaded strictly from models.yaml.

The file lives at the top of the tree (development) or /usr/share/archiver/models.yaml
(an image); ARCHIVER_MODELS points elsewhere. Each field is documented in the file itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ArchiverError
from .strict import ConfigError, build, field, load_yaml, positive

TREE_MODELS_FILE = Path(__file__).resolve().parent.parent / "models.yaml"
IMAGE_MODELS_FILE = Path("/usr/share/archiver/models.yaml")
POSITIVE = "a positive integer"


@dataclass(frozen=True)
class Features:
    mirroring: bool = field("copies everything it archives to peers of its model and firmware")
    custom_branding: bool = field("the web UI may carry the customer's logo and colours")


@dataclass(frozen=True)
class SmtpLimits:
    concurrency: int = field("SMTP sessions served at once", check=positive, expected=POSITIVE)
    max_message_mb: int = field("largest message accepted (552 above it)", check=positive,
                                expected=POSITIVE)
    sessions_per_address: int = field("sessions one untrusted client address (an IPv6 "
                                      "client's /64) holds at once", check=positive,
                                      expected=POSITIVE)
    reserved_for_trusted: int = field("sessions only trusted servers may take",
                                      check=lambda v: v >= 0, expected="0 or more")
    data_memory_mb: int = field("memory for the messages SMTP is storing at once",
                                check=positive, expected=POSITIVE)

    @property
    def data_memory_bytes(self) -> int:
        return self.data_memory_mb * 1024 * 1024

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024


# Storing a message takes at most this many times its size in memory at once: its raw
# bytes, the original a journal report carries (a slice of them), the zstd output and the
# LMDB pages that hold it until the commit (measured: 3.0x for a random 8-bit body, 4.0x
# for a journal report wrapping one) ...
MESSAGE_MEMORY_COPIES = 4
# ... and up to this much more to parse its header summary (at most 256 KiB of header
# fields are parsed: services.archive.mime.SUMMARY_HEADER_LIMIT; measured 14 MiB for
# 256 KiB of "X:" lines). smtp.data_memory_mb holds at least one message of
# smtp.max_message_mb, so the largest message is never refused for memory, only delayed.
HEADER_SUMMARY_MEMORY_MB = 16


@dataclass(frozen=True)
class IntakeLimits:
    index_backlog: int = field("stored-but-unindexed messages before intake answers 4xx",
                               check=positive, expected=POSITIVE)
    min_free_disk_mb: int = field("free disk below which intake answers 4xx", check=positive,
                                  expected=POSITIVE)

    @property
    def min_free_disk_bytes(self) -> int:
        return self.min_free_disk_mb * 1024 * 1024


@dataclass(frozen=True)
class ExtractionLimits:
    timeout_s: int = field("CPU seconds one message may use in the extraction worker",
                           check=positive, expected=POSITIVE)
    memory_mb: int = field("address-space limit of an extraction worker", check=positive,
                           expected=POSITIVE)


@dataclass(frozen=True)
class IndexingLimits:
    workers: int = field("extraction worker processes", check=positive, expected=POSITIVE)
    memory_mb: int = field("memory of the indexer's batches in flight", check=positive,
                           expected=POSITIVE)

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024


@dataclass(frozen=True)
class VirtualAppliance:
    vcpus: int = field("virtual CPUs of the QEMU appliance", check=positive, expected=POSITIVE)
    memory_mb: int = field("memory of the QEMU appliance", check=positive, expected=POSITIVE)
    disk_gb: int = field("virtual disk size of the QEMU appliance", check=positive,
                         expected=POSITIVE)


@dataclass(frozen=True)
class ModelProfile:
    model: int = field("model number", check=positive, expected="a model number (a positive integer)")
    name: str = field("product name")
    storage_gb: int = field("archive storage capacity; sizes the LMDB map", check=positive,
                            expected=POSITIVE)
    attachment_text_kb: int = field("attachment text the index takes per attachment",
                                    check=positive, expected=POSITIVE)
    extraction: ExtractionLimits = field("limits of the sandboxed attachment reader")
    indexing: IndexingLimits = field("the indexer's workers and memory")
    features: Features = field("what the model may do")
    smtp: SmtpLimits = field("SMTP intake limits")
    intake: IntakeLimits = field("back-pressure limits of all intake")
    vm: VirtualAppliance = field("the virtual appliance of the QEMU harness")

    @property
    def storage_bytes(self) -> int:
        return self.storage_gb * 1024**3

    @property
    def attachment_text_bytes(self) -> int:
        return self.attachment_text_kb * 1024


@dataclass(frozen=True)
class _ModelsFile:
    models: list = field("the model profiles")


class UnknownModel(ArchiverError, LookupError):
    pass


class ModelCatalog:
    """All model profiles of one models.yaml, by model number."""

    def __init__(self, profiles: list[ModelProfile], source: Path):
        self.source = source
        self._by_number = {p.model: p for p in sorted(profiles, key=lambda p: p.model)}

    def __iter__(self):
        return iter(self._by_number.values())

    def __contains__(self, model: int) -> bool:
        return model in self._by_number

    def get(self, model: int | str) -> ModelProfile:
        try:
            return self._by_number[int(model)]
        except (KeyError, ValueError):
            known = ", ".join(str(m) for m in self._by_number)
            raise UnknownModel(f"unknown model {model!r}: {self.source} defines {known}") from None

    def lowest_mirroring_model(self) -> int | None:
        return min((p.model for p in self if p.features.mirroring), default=None)


def models_file() -> Path:
    if os.environ.get("ARCHIVER_MODELS"):
        return Path(os.environ["ARCHIVER_MODELS"])
    return TREE_MODELS_FILE if TREE_MODELS_FILE.exists() else IMAGE_MODELS_FILE


def load_models(path: str | Path | None = None) -> ModelCatalog:
    """Load and validate every profile; raise ConfigError naming file, model and key."""
    path = Path(path) if path else models_file()
    top = build(_ModelsFile, load_yaml(path), file=path)
    if not isinstance(top.models, list) or not top.models:
        raise ConfigError(path, "models", "a non-empty list of model profiles", got=top.models)
    profiles: dict[int, ModelProfile] = {}
    for position, entry in enumerate(top.models, start=1):
        where = _where(entry, position)
        profile = build(ModelProfile, entry, file=path, where=where)
        _check_smtp(profile.smtp, path, where)
        if profile.model in profiles:
            raise ConfigError(path, "model", "each model once, but it is defined twice",
                              got=profile.model, where=where)
        profiles[profile.model] = profile
    return ModelCatalog(list(profiles.values()), path)


def _check_smtp(smtp: SmtpLimits, path: Path, where: str) -> None:
    """What the SMTP limits must say about each other (sessions, memory)."""
    if smtp.reserved_for_trusted >= smtp.concurrency:
        raise ConfigError(path, "smtp.reserved_for_trusted", f"fewer than smtp.concurrency "
                          f"({smtp.concurrency}), so others get a session too",
                          got=smtp.reserved_for_trusted, where=where)
    untrusted = smtp.concurrency - smtp.reserved_for_trusted
    if smtp.sessions_per_address > untrusted:
        raise ConfigError(path, "smtp.sessions_per_address", f"at most the {untrusted} sessions "
                          "not reserved for trusted servers", got=smtp.sessions_per_address,
                          where=where)
    needed = MESSAGE_MEMORY_COPIES * smtp.max_message_mb + HEADER_SUMMARY_MEMORY_MB
    if smtp.data_memory_mb < needed:
        raise ConfigError(path, "smtp.data_memory_mb", f"at least {needed} ({MESSAGE_MEMORY_COPIES}"
                          f" x smtp.max_message_mb + {HEADER_SUMMARY_MEMORY_MB}: storing the "
                          "largest message takes that)", got=smtp.data_memory_mb, where=where)


def _where(entry: object, position: int) -> str:
    number = entry.get("model") if isinstance(entry, dict) else None
    if isinstance(number, int) and not isinstance(number, bool):
        return f"model {number}"
    return f"models[{position}]" + (f" (model {number!r})" if number is not None else "")
