"""NVML backend: the data path with a fake ``pynvml`` (no GPU can exist here), and the real
``pynvml`` on this driver-less host."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from agents.backends.nvml import NvmlBackend, sanitize_chip_id
from agents.errors import BackendUnavailable
from attestation.report import LinkKind

NOT_SUPPORTED = 3
INVALID_ARGUMENT = 2
T0 = datetime(2026, 11, 22, 12, tzinfo=UTC)
W = timedelta(minutes=15)


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass
class FakeGpu:
    serial: str | None
    uuid: str
    bus: str
    energy_mj: int = 0
    util: int = 0
    # link number -> remote bus id (None: NVLink state query not supported)
    links: dict[int, str] = field(default_factory=dict)
    tx_kib: dict[int, int] = field(default_factory=dict)
    rx_kib: dict[int, int] = field(default_factory=dict)
    unsupported_fields: set[int] = field(default_factory=set)


class FakePynvml:
    """The slice of the pynvml module surface the backend uses."""

    NVMLError = FakeNVMLError
    NVML_ERROR_NOT_SUPPORTED = NOT_SUPPORTED
    NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX = 138
    NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX = 139
    NVML_NVLINK_MAX_LINKS = 18

    def __init__(self, gpus: list[FakeGpu]) -> None:
        self.gpus = gpus
        self.initialised = False

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        return self.gpus[i]

    def nvmlDeviceGetSerial(self, h: FakeGpu) -> str:
        if h.serial is None:
            raise FakeNVMLError(NOT_SUPPORTED)
        return h.serial

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        return h.uuid

    def nvmlDeviceGetName(self, h: FakeGpu) -> bytes:
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetPciInfo(self, h: FakeGpu) -> SimpleNamespace:
        return SimpleNamespace(busId=h.bus.encode())

    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeGpu) -> int:
        return h.energy_mj

    def nvmlDeviceGetUtilizationRates(self, h: FakeGpu) -> SimpleNamespace:
        return SimpleNamespace(gpu=h.util, memory=0)

    def nvmlDeviceGetNvLinkState(self, h: FakeGpu, link: int) -> int:
        if not h.links:
            raise FakeNVMLError(NOT_SUPPORTED)
        if link >= 4:
            raise FakeNVMLError(INVALID_ARGUMENT)
        return 1 if link in h.links else 0

    def nvmlDeviceGetNvLinkRemotePciInfo(self, h: FakeGpu, link: int) -> SimpleNamespace:
        return SimpleNamespace(busId=h.links[link].encode())

    def nvmlDeviceGetFieldValues(
        self, h: FakeGpu, fields: list[tuple[int, int]]
    ) -> list[SimpleNamespace]:
        out = []
        for fid, link in fields:
            counters = h.tx_kib if fid == self.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX else h.rx_kib
            ret = NOT_SUPPORTED if fid in h.unsupported_fields else 0
            out.append(
                SimpleNamespace(nvmlReturn=ret, value=SimpleNamespace(ullVal=counters.get(link, 0)))
            )
        return out


def _two_gpus() -> tuple[FakeGpu, FakeGpu, FakeGpu]:
    a = FakeGpu(
        "1654922007418",
        "GPU-aaaa",
        "00000000:18:00.0",
        links={0: "0000:2A:00.0", 1: "0000:2a:00.0", 2: "00000000:99:00.0"},
    )
    b = FakeGpu(
        None,
        "GPU-5f1e7c2a-1b2c-4d5e-8f90-0123456789ab",
        "00000000:2A:00.0",
        links={0: "00000000:18:00.0"},
    )
    c = FakeGpu("N/A", "GPU-cccc", "00000000:3b:00.0")  # no NVLink at all
    return a, b, c


def test_keys_must_be_provisioned_first_then_are_0600(tmp_path: Path) -> None:
    fake = FakePynvml(list(_two_gpus()))
    backend = NvmlBackend(tmp_path / "keys", nvml=fake)
    with pytest.raises(BackendUnavailable, match="keygen"):
        backend.discover()
    keys = backend.provision_keys()
    assert set(keys) == {"1654922007418", "GPU-5f1e7c2a-1b2c-4d5e-8f90-0123456789ab", "GPU-cccc"}
    for path in (tmp_path / "keys").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Provisioning again keeps the existing keys (an endorsement names them).
    assert NvmlBackend(tmp_path / "keys", nvml=fake).provision_keys() == keys


def test_data_path_energy_utilization_and_nvlink_deltas(tmp_path: Path) -> None:
    a, b, c = _two_gpus()
    fake = FakePynvml([a, b, c])
    backend = NvmlBackend(tmp_path, nvml=fake)
    keys = backend.provision_keys()
    a.energy_mj, a.tx_kib, a.rx_kib = 1_000_000, {0: 100, 1: 200, 2: 5}, {0: 10, 1: 20, 2: 5}
    devices = {d.chip_id: d for d in backend.discover()}  # primes the counters
    assert devices["1654922007418"].public_key == keys["1654922007418"]
    assert devices["1654922007418"].model == "NVIDIA H100 80GB HBM3"

    a.energy_mj += 630_000_000  # 630 kJ
    a.tx_kib = {0: 1100, 1: 2200, 2: 999}
    a.rx_kib = {0: 60, 1: 70, 2: 999}
    for util in (80, 100):
        a.util = util
        backend.sample()
    tel = devices["1654922007418"].read_window(T0, T0 + W)
    assert tel.energy_j == pytest.approx(630_000.0)
    assert tel.utilization == pytest.approx(0.9)
    # Links 0 and 1 go to GPU b (bus ids normalised); link 2 goes to a non-GPU: skipped.
    (link,) = tel.interconnect
    assert link.peer == "GPU-5f1e7c2a-1b2c-4d5e-8f90-0123456789ab"
    assert link.link is LinkKind.NVLINK
    assert (link.tx_bytes, link.rx_bytes) == ((1000 + 2000) * 1024, (50 + 50) * 1024)

    # No samples in the next window: the instantaneous utilization is used.
    a.util = 30
    tel2 = devices["1654922007418"].read_window(T0 + W, T0 + 2 * W)
    assert tel2.utilization == pytest.approx(0.3)
    assert tel2.energy_j == 0.0
    assert tel2.interconnect[0].tx_bytes == 0

    # A GPU without NVLink reports no links and does not crash.
    assert devices["GPU-cccc"].read_window(T0, T0 + W).interconnect == ()


def test_unsupported_nvlink_fields_are_skipped(tmp_path: Path) -> None:
    a, b, c = _two_gpus()
    a.unsupported_fields = {FakePynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX}
    backend = NvmlBackend(tmp_path, nvml=FakePynvml([a, b, c]))
    backend.provision_keys()
    dev = next(d for d in backend.discover() if d.chip_id == "1654922007418")
    a.tx_kib = {0: 4, 1: 4}
    (link,) = dev.read_window(T0, T0 + W).interconnect
    assert (link.tx_bytes, link.rx_bytes) == (8 * 1024, 0)


def test_sign_uses_chip_key(tmp_path: Path) -> None:
    backend = NvmlBackend(tmp_path, nvml=FakePynvml(list(_two_gpus())))
    backend.provision_keys()
    dev = backend.discover()[0]
    dev.public_key.verify(dev.sign(b"msg"), b"msg")


def test_sanitize_chip_id() -> None:
    assert sanitize_chip_id(" GPU-12ab/x y ") == "GPU-12ab-x-y"
    assert sanitize_chip_id("-._abc") == "abc"
    assert len(sanitize_chip_id("A" * 100)) == 64
    with pytest.raises(BackendUnavailable):
        sanitize_chip_id("///")


def test_real_pynvml_without_driver_raises_clear_error(tmp_path: Path) -> None:
    # This host has no NVIDIA driver: the real pynvml must fail with an actionable message.
    with pytest.raises(BackendUnavailable) as info:
        NvmlBackend(tmp_path).discover()
    message = str(info.value)
    assert "no NVIDIA driver/NVML found on this host" in message
    assert "--backend simulated" in message
