"""NVIDIA GPUs through NVML (``pynvml``, package nvidia-ml-py). All pynvml code lives here.

Identity: the chip id is the board serial (``nvmlDeviceGetSerial``), or the GPU UUID where the
board has no serial, sanitised to the chip id alphabet.

Signing key, honestly: NVML exposes no in-chip signing key. Until GPUs expose an attestation key
for usage reports, this backend keeps one Ed25519 key per chip in ``key_dir/<chip_id>.pem``
(mode 0600), created once by :meth:`NvmlBackend.provision_keys` and endorsed at enrollment. It
is a stand-in for a hardware-held key: anyone with root on the host can read it, and the
verifier's cross-checks (power meters, both ends of each link) are what make forging costly.

Telemetry per window: energy is the delta of ``nvmlDeviceGetTotalEnergyConsumption`` (mJ) since
the previous read; utilization is the mean of ``nvmlDeviceGetUtilizationRates().gpu`` samples
taken by :meth:`NvmlBackend.sample` (the instantaneous value when there are none); NVLink bytes
are deltas of ``NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX/RX`` (KiB) per link, attributed to the
local GPU at the far end (``nvmlDeviceGetNvLinkRemotePciInfo``). Links whose far end is not a
local GPU (NVSwitch fabrics) cannot be attributed to a peer chip through NVML and are skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agents.backends.base import Accelerator, WindowTelemetry
from agents.errors import BackendUnavailable, GpuEvidenceUnavailable
from attestation.errors import FormatError, GpuEvidenceFormatError
from attestation.gpu import GpuEvidence, split_pem_chain
from attestation.keys import PrivateKey, PublicKey
from attestation.report import LinkKind, LinkTraffic

__all__ = ["NvmlAccelerator", "NvmlBackend", "collect_gpu_evidence", "sanitize_chip_id"]

_NO_DRIVER = (
    "no NVIDIA driver/NVML found on this host; use --backend simulated for a demo, or install "
    "the NVIDIA driver (libnvidia-ml.so.1) on a host with NVIDIA GPUs"
)
_NVML_SUCCESS = 0
_KIB = 1024
_INVALID = re.compile(r"[^A-Za-z0-9._:-]")


def sanitize_chip_id(raw: str) -> str:
    """Map a serial or UUID onto the chip id alphabet ``[A-Za-z0-9._:-]``, 1..64 chars."""
    cleaned = _INVALID.sub("-", raw.strip()).lstrip("._:-")[:64]
    if not cleaned:
        raise BackendUnavailable(f"device identifier {raw!r} yields no usable chip id")
    return cleaned


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _bus_key(bus_id: object) -> str:
    """Normalise a PCI bus id: NVML reports ``00000000:18:00.0`` or the legacy ``0000:18:00.0``."""
    text = _text(bus_id).strip().lower()
    domain, _, rest = text.partition(":")
    try:
        return f"{int(domain, 16):08x}:{rest}"
    except ValueError:
        return text


# NVML return codes (nvml.h) used to explain why evidence cannot be had.
_NVML_ERROR_NOT_SUPPORTED = 3
_NVML_ERROR_LIBRARY_NOT_FOUND = 12
_NVML_ERROR_FUNCTION_NOT_FOUND = 13
_CC_FEATURE_ENABLED = 1  # NVML_CC_SYSTEM_FEATURE_ENABLED


def _evidence_failure(exc: BaseException, what: str) -> GpuEvidenceUnavailable:
    value = getattr(exc, "value", None)
    if value == _NVML_ERROR_FUNCTION_NOT_FOUND:
        return GpuEvidenceUnavailable(
            "old_driver", f"the driver has no {what}: confidential computing needs R535 or later"
        )
    if value == _NVML_ERROR_NOT_SUPPORTED:
        return GpuEvidenceUnavailable(
            "not_supported", f"{what} is not supported by this GPU (Hopper or later needed)"
        )
    if value == _NVML_ERROR_LIBRARY_NOT_FOUND:
        return GpuEvidenceUnavailable("no_nvml", _NO_DRIVER)
    return GpuEvidenceUnavailable("nvml_error", f"{what} failed: {exc}")


def collect_gpu_evidence(nvml: Any, handle: object, nonce: bytes) -> GpuEvidence:
    """Ask one GPU, through NVML, to sign its measurements over the 32-byte SPDM ``nonce``.

    Uses ``nvmlSystemGetConfComputeState`` (is confidential-computing mode on?),
    ``nvmlDeviceGetConfComputeGpuAttestationReport`` and
    ``nvmlDeviceGetConfComputeGpuCertificate``; raises :class:`GpuEvidenceUnavailable` with a
    reason a person can act on when any of them cannot answer.
    """
    if len(nonce) != 32:
        raise ValueError("the SPDM nonce is 32 bytes")
    calls = (
        "nvmlSystemGetConfComputeState",
        "nvmlDeviceGetConfComputeGpuAttestationReport",
        "nvmlDeviceGetConfComputeGpuCertificate",
    )
    missing = [c for c in calls if not hasattr(nvml, c)]
    if missing:
        raise GpuEvidenceUnavailable(
            "old_bindings", f"pynvml lacks {', '.join(missing)}: upgrade nvidia-ml-py"
        )
    try:
        state = nvml.nvmlSystemGetConfComputeState()
    except nvml.NVMLError as exc:
        raise _evidence_failure(exc, "confidential-computing state query") from exc
    if int(state.ccFeature) != _CC_FEATURE_ENABLED:
        raise GpuEvidenceUnavailable(
            "cc_off",
            "confidential-computing mode is off on this system; GPU attestation needs it on "
            "(nvidia-smi conf-compute -srs / the CC-mode tools, with a CC-capable CPU TEE)",
        )
    try:
        report = nvml.nvmlDeviceGetConfComputeGpuAttestationReport(handle, nonce)
        certs = nvml.nvmlDeviceGetConfComputeGpuCertificate(handle)
    except nvml.NVMLError as exc:
        raise _evidence_failure(exc, "GPU attestation report or certificate call") from exc
    report_bytes = bytes(report.attestationReport[: int(report.attestationReportSize)])
    chain_pem = bytes(certs.attestationCertChain[: int(certs.attestationCertChainSize)])
    try:
        chain = split_pem_chain(chain_pem)
    except GpuEvidenceFormatError as exc:
        raise GpuEvidenceUnavailable("nvml_error", f"unreadable certificate chain: {exc}") from exc
    return GpuEvidence(report=report_bytes, cert_chain=chain)


@dataclass
class _Link:
    link: int
    peer: str


@dataclass
class _Counters:
    energy_mj: int | None
    tx_kib: dict[int, int] = field(default_factory=dict)
    rx_kib: dict[int, int] = field(default_factory=dict)


class NvmlAccelerator:
    """One NVIDIA GPU as an :class:`~agents.backends.base.Accelerator`."""

    def __init__(
        self, nvml: Any, handle: object, chip_id: str, model: str, key: PrivateKey
    ) -> None:
        self._nvml = nvml
        self._handle = handle
        self._chip_id = chip_id
        self._model = model
        self._key = key
        self._public_key = key.public_key
        self._links: list[_Link] = []
        self._samples: list[float] = []
        self._last: _Counters | None = None

    @property
    def chip_id(self) -> str:
        """Board serial (or sanitised UUID)."""
        return self._chip_id

    @property
    def model(self) -> str:
        """``nvmlDeviceGetName``."""
        return self._model

    @property
    def public_key(self) -> PublicKey:
        """The per-chip key from ``key_dir`` (stand-in for a hardware-held key)."""
        return self._public_key

    def sign(self, message: bytes) -> bytes:
        """Sign with the per-chip key."""
        return self._key.sign(message)

    def attestation_evidence(self, nonce: bytes) -> GpuEvidence:
        """This GPU's SPDM evidence over ``nonce`` (see :func:`collect_gpu_evidence`)."""
        return collect_gpu_evidence(self._nvml, self._handle, nonce)

    def _not_supported(self, exc: BaseException) -> bool:
        return bool(getattr(exc, "value", None) == self._nvml.NVML_ERROR_NOT_SUPPORTED)

    def _call(self, what: str, fn: Any, *args: object) -> Any:
        try:
            return fn(*args)
        except self._nvml.NVMLError as exc:
            raise BackendUnavailable(f"NVML {what} failed for {self._chip_id}: {exc}") from exc

    def set_links(self, links: list[_Link]) -> None:
        """Record which NVLink goes to which local peer GPU (topology is static)."""
        self._links = links

    def sample(self) -> None:
        """Record one utilization sample (percent busy / 100)."""
        rates = self._call("utilization", self._nvml.nvmlDeviceGetUtilizationRates, self._handle)
        self._samples.append(float(rates.gpu) / 100.0)

    def _read_counters(self) -> _Counters:
        nvml = self._nvml
        try:
            energy: int | None = int(nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except nvml.NVMLError as exc:
            if not self._not_supported(exc):  # pre-Volta GPUs have no energy counter
                raise BackendUnavailable(
                    f"NVML energy counter failed for {self._chip_id}: {exc}"
                ) from exc
            energy = None
        counters = _Counters(energy_mj=energy)
        if not self._links:
            return counters
        tx_id = nvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX
        rx_id = nvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX
        request = [(fid, link.link) for link in self._links for fid in (tx_id, rx_id)]
        try:
            values = nvml.nvmlDeviceGetFieldValues(self._handle, request)
        except nvml.NVMLError as exc:
            if self._not_supported(exc):
                return counters
            raise BackendUnavailable(
                f"NVML field values failed for {self._chip_id}: {exc}"
            ) from exc
        for (fid, link_no), value in zip(request, values, strict=True):
            if value.nvmlReturn != _NVML_SUCCESS:
                continue  # this field is not supported on this link: skip, don't guess
            target = counters.tx_kib if fid == tx_id else counters.rx_kib
            target[link_no] = int(value.value.ullVal)
        return counters

    def prime(self) -> None:
        """Take the baseline counter values the first window is measured from."""
        self._last = self._read_counters()

    def read_window(self, start: datetime, end: datetime) -> WindowTelemetry:
        """Counter deltas since the previous read; ``start``/``end`` only label the window."""
        current = self._read_counters()
        previous = self._last if self._last is not None else current
        self._last = current

        energy_j = 0.0
        if current.energy_mj is not None and previous.energy_mj is not None:
            delta = current.energy_mj - previous.energy_mj
            # A smaller value means the driver reloaded; the counter restarted from zero.
            energy_j = (delta if delta >= 0 else current.energy_mj) / 1000.0

        if self._samples:
            utilization = sum(self._samples) / len(self._samples)
            self._samples.clear()
        else:
            rates = self._call(
                "utilization", self._nvml.nvmlDeviceGetUtilizationRates, self._handle
            )
            utilization = float(rates.gpu) / 100.0

        per_peer: dict[str, list[int]] = {}
        for link in self._links:
            totals = per_peer.setdefault(link.peer, [0, 0])
            for idx, (now_c, then_c) in enumerate(
                ((current.tx_kib, previous.tx_kib), (current.rx_kib, previous.rx_kib))
            ):
                if link.link in now_c and link.link in then_c:
                    delta = now_c[link.link] - then_c[link.link]
                    totals[idx] += (delta if delta >= 0 else now_c[link.link]) * _KIB
        interconnect = tuple(
            LinkTraffic(peer=peer, link=LinkKind.NVLINK, tx_bytes=tx, rx_bytes=rx)
            for peer, (tx, rx) in sorted(per_peer.items())
        )
        return WindowTelemetry(
            utilization=min(max(utilization, 0.0), 1.0),
            energy_j=energy_j,
            interconnect=interconnect,
        )


class NvmlBackend:
    """All NVIDIA GPUs on this host, via NVML.

    ``nvml`` defaults to the real ``pynvml`` module; tests pass a fake module object because a
    GPU cannot exist in the test environment.
    """

    name = "nvml"

    def __init__(self, key_dir: Path, *, nvml: Any = None) -> None:
        self.key_dir = Path(key_dir)
        self._nvml: Any = nvml
        self._devices: list[NvmlAccelerator] | None = None

    def _lib(self) -> Any:
        if self._nvml is None:
            import pynvml  # noqa: PLC0415 -- only hosts that choose this backend need it

            self._nvml = pynvml
        return self._nvml

    def _init(self) -> Any:
        nvml = self._lib()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise BackendUnavailable(f"{_NO_DRIVER} (NVML: {exc})") from exc
        except OSError as exc:  # a broken libnvidia-ml.so can fail while loading
            raise BackendUnavailable(f"{_NO_DRIVER} ({exc})") from exc
        return nvml

    def _enumerate(self) -> list[tuple[object, str, str, str]]:
        """``(handle, chip_id, model, pci bus key)`` for each GPU."""
        nvml = self._init()
        try:
            count = int(nvml.nvmlDeviceGetCount())
            found = []
            for index in range(count):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                try:
                    serial = _text(nvml.nvmlDeviceGetSerial(handle)).strip()
                except nvml.NVMLError:
                    serial = ""  # consumer boards have no serial; fall back to the UUID
                if not serial or serial.upper() in {"N/A", "0"}:
                    serial = _text(nvml.nvmlDeviceGetUUID(handle))
                model = _text(nvml.nvmlDeviceGetName(handle)).strip()
                bus = _bus_key(nvml.nvmlDeviceGetPciInfo(handle).busId)
                found.append((handle, sanitize_chip_id(serial), model, bus))
        except nvml.NVMLError as exc:
            raise BackendUnavailable(f"NVML device enumeration failed: {exc}") from exc
        return found

    def _key_path(self, chip_id: str) -> Path:
        return self.key_dir / f"{quote(chip_id, safe='')}.pem"

    def provision_keys(self) -> dict[str, PublicKey]:
        """Create the per-chip key of every GPU that has none yet (mode 0600); return all keys.

        Run once at install time (``keygen``); the public keys go into the endorsement step.
        """
        self.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys: dict[str, PublicKey] = {}
        for _, chip_id, _, _ in self._enumerate():
            path = self._key_path(chip_id)
            if not path.exists():
                key = PrivateKey.generate()
                # O_EXCL: never overwrite a key that an endorsement already names.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(key.to_pem())
                    fh.flush()
                    os.fsync(fh.fileno())
            keys[chip_id] = self._load_key(chip_id).public_key
        return keys

    def _load_key(self, chip_id: str) -> PrivateKey:
        path = self._key_path(chip_id)
        try:
            return PrivateKey.from_pem(path.read_bytes())
        except FileNotFoundError as exc:
            raise BackendUnavailable(
                f"no chip key for {chip_id} in {self.key_dir}; run the keygen step "
                "(NvmlBackend.provision_keys) once, then enroll the public key"
            ) from exc
        except (OSError, FormatError) as exc:
            raise BackendUnavailable(f"cannot load chip key {path}: {exc}") from exc

    def _peer_links(self, handle: object, by_bus: dict[str, str], own: str) -> list[_Link]:
        nvml = self._lib()
        links: list[_Link] = []
        for link_no in range(int(nvml.NVML_NVLINK_MAX_LINKS)):
            try:
                if not nvml.nvmlDeviceGetNvLinkState(handle, link_no):
                    continue
                remote = nvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link_no)
            except nvml.NVMLError:
                # NOT_SUPPORTED (no NVLink) or INVALID_ARGUMENT (past the last link): no info.
                continue
            peer = by_bus.get(_bus_key(remote.busId))
            if peer is not None and peer != own:
                links.append(_Link(link=link_no, peer=peer))
        return links

    def discover(self) -> Sequence[Accelerator]:
        """The GPUs of this host, with their NVLink peers; counters primed on first call."""
        if self._devices is not None:
            return list(self._devices)
        found = self._enumerate()
        nvml = self._lib()
        by_bus = {bus: chip_id for _, chip_id, _, bus in found}
        devices: list[NvmlAccelerator] = []
        for handle, chip_id, model, _ in found:
            device = NvmlAccelerator(nvml, handle, chip_id, model, self._load_key(chip_id))
            device.set_links(self._peer_links(handle, by_bus, chip_id))
            device.prime()
            devices.append(device)
        self._devices = devices
        return list(devices)

    def attestation_evidence(self, chip_id: str, nonce: bytes) -> GpuEvidence:
        """GPU ``chip_id``'s SPDM evidence over ``nonce``, or why it cannot be had.

        Needs no chip key: usable before keygen, to check a host can attest at all.
        """
        try:
            nvml = self._init()
            found = self._enumerate()
        except BackendUnavailable as exc:
            raise GpuEvidenceUnavailable("no_nvml", str(exc)) from exc
        for handle, found_id, _, _ in found:
            if found_id == chip_id:
                return collect_gpu_evidence(nvml, handle, nonce)
        raise GpuEvidenceUnavailable("nvml_error", f"no GPU {chip_id!r} on this host")

    def sample(self) -> None:
        """Take one utilization sample of every discovered GPU."""
        for device in self._devices or []:
            device.sample()
