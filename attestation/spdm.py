"""SPDM 1.1 GET_MEASUREMENTS request and MEASUREMENTS response, as NVIDIA GPUs emit them.

Written from DMTF DSP0274 (SPDM) 1.1.x, sections 10.11 (GET_MEASUREMENTS / MEASUREMENTS),
10.11.1 (measurement block) and 10.11.1.1 (DMTF measurement), and checked against NVIDIA's
``nv-local-gpu-verifier`` (``verifier/attestation/spdm_msrt_*_msg.py``). An NVIDIA
"attestation report" (what ``nvmlDeviceGetConfComputeGpuAttestationReport`` returns) is the
requester's GET_MEASUREMENTS message immediately followed by the responder's MEASUREMENTS
message; the responder's signature is the last field.

Parsing is strict: every length is checked against the bytes actually present, nothing may
trail, and anything this module does not understand in the signed part is an error. The
signature itself is checked in :mod:`attestation.gpu`; this module only says which bytes it
covers (:attr:`AttestationReport.signed_bytes`). Pure: bytes in, frozen values out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from attestation.errors import GpuEvidenceFormatError

__all__ = [
    "MEASUREMENT_SIGNATURE_SIZE",
    "NONCE_SIZE",
    "SPDM_VERSION_1_1",
    "AttestationReport",
    "MeasurementBlock",
    "MeasurementsRequest",
    "MeasurementsResponse",
    "OpaqueField",
    "encode_attestation_report",
    "encode_nvidia_opaque_data",
    "format_vbios_version",
    "parse_attestation_report",
    "parse_nvidia_opaque_data",
]

SPDM_VERSION_1_1 = 0x11
GET_MEASUREMENTS = 0xE0
MEASUREMENTS = 0x60
NONCE_SIZE = 32
# TPM_ALG_ECDSA_ECC_NIST_P384: r || s, 48 bytes each, big-endian (DSP0274 1.1, "Signature").
MEASUREMENT_SIGNATURE_SIZE = 96
# GET_MEASUREMENTS with the signature bit set carries Nonce and SlotIDParam (1.1+).
REQUEST_SIZE = 4 + NONCE_SIZE + 1
# Param1 bit 0 of GET_MEASUREMENTS: "the responder shall sign the response".
_SIGNATURE_REQUESTED = 0x01
# MeasurementSpecification bit 0: DMTF-defined measurement (the only one SPDM 1.1 defines).
_DMTF_MEASUREMENT_SPEC = 0x01
# DSP0274 1.1 caps OpaqueLength at 1024 bytes.
_MAX_OPAQUE = 1024
_RESPONSE_FIXED = 4 + 1 + 3  # header, NumberOfBlocks, MeasurementRecordLength

# NVIDIA opaque data field types (OPAQUE_FIELD_ID_* in NVIDIA's verifier) that chipreg reads.
OPAQUE_DRIVER_VERSION = 3
OPAQUE_VBIOS_VERSION = 6
OPAQUE_FWID = 20


@dataclass(frozen=True)
class MeasurementsRequest:
    """A parsed GET_MEASUREMENTS request (signature requested)."""

    version: int
    operation: int  # Param2: 0xFF = all measurements, 0 = count only, else one index
    nonce: bytes
    slot_id: int


@dataclass(frozen=True)
class MeasurementBlock:
    """One measurement block with its DMTF measurement (DSP0274 1.1 tables 45 and 46)."""

    index: int
    value_type: int  # DMTFSpecMeasurementValueType: bit 7 = raw bit stream, bits 6:0 = kind
    value: bytes


@dataclass(frozen=True)
class OpaqueField:
    """One NVIDIA opaque data field: a little-endian 16-bit type and its raw value."""

    field_type: int
    value: bytes


@dataclass(frozen=True)
class MeasurementsResponse:
    """A parsed MEASUREMENTS response; ``opaque_data`` is kept as the bytes the GPU signed."""

    version: int
    param1: int
    slot_id: int
    blocks: tuple[MeasurementBlock, ...]
    nonce: bytes  # the responder's own nonce
    opaque_data: bytes
    signature: bytes


@dataclass(frozen=True)
class AttestationReport:
    """An NVIDIA attestation report: the request, the response, and the exact signed bytes."""

    request: MeasurementsRequest
    response: MeasurementsResponse
    opaque_fields: tuple[OpaqueField, ...]
    signed_bytes: bytes


class _Reader:
    """A cursor over bytes whose every read is bounds-checked."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int, field: str) -> bytes:
        if n > self.remaining:
            raise GpuEvidenceFormatError(
                f"{self._what} truncated in {field}: need {n} bytes at offset {self._pos}, "
                f"{self.remaining} left"
            )
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def le(self, n: int, field: str) -> int:
        return int.from_bytes(self.take(n, field), "little")

    def end(self) -> None:
        if self.remaining:
            raise GpuEvidenceFormatError(
                f"{self.remaining} unexpected trailing bytes after the {self._what}"
            )


def _parse_request(data: bytes) -> MeasurementsRequest:
    r = _Reader(data, "GET_MEASUREMENTS request")
    version = r.u8("SPDMVersion")
    if version != SPDM_VERSION_1_1:
        # SPDM 1.2+ signs a different transcript (a version prefix over the message hash);
        # accepting it here would verify the wrong bytes.
        raise GpuEvidenceFormatError(f"SPDM version 0x{version:02x} is not 1.1 (0x11)")
    code = r.u8("RequestResponseCode")
    if code != GET_MEASUREMENTS:
        raise GpuEvidenceFormatError(f"request code 0x{code:02x} is not GET_MEASUREMENTS (0xe0)")
    param1 = r.u8("Param1")
    if param1 != _SIGNATURE_REQUESTED:
        raise GpuEvidenceFormatError(
            f"GET_MEASUREMENTS Param1 0x{param1:02x}: a signed response must be requested (0x01)"
        )
    operation = r.u8("Param2")
    nonce = r.take(NONCE_SIZE, "Nonce")
    slot_param = r.u8("SlotIDParam")
    if slot_param > 7:  # bits 7:4 reserved, slots 0-7
        raise GpuEvidenceFormatError(f"SlotIDParam 0x{slot_param:02x} is not a slot 0-7")
    r.end()
    return MeasurementsRequest(
        version=version, operation=operation, nonce=nonce, slot_id=slot_param
    )


def _parse_blocks(record: bytes, count: int) -> tuple[MeasurementBlock, ...]:
    r = _Reader(record, "measurement record")
    blocks: list[MeasurementBlock] = []
    for _ in range(count):
        index = r.u8("Index")
        if index in (0, 0xFF) or (blocks and index <= blocks[-1].index):
            raise GpuEvidenceFormatError(
                f"measurement index {index} is reserved or not strictly increasing"
            )
        spec = r.u8("MeasurementSpecification")
        if spec != _DMTF_MEASUREMENT_SPEC:
            raise GpuEvidenceFormatError(
                f"measurement {index}: specification 0x{spec:02x} is not DMTF (0x01)"
            )
        size = r.le(2, "MeasurementSize")
        m = _Reader(r.take(size, "Measurement"), f"DMTF measurement {index}")
        value_type = m.u8("DMTFSpecMeasurementValueType")
        value_size = m.le(2, "DMTFSpecMeasurementValueSize")
        value = m.take(value_size, "DMTFSpecMeasurementValue")
        m.end()
        blocks.append(MeasurementBlock(index=index, value_type=value_type, value=value))
    r.end()
    return tuple(blocks)


def _parse_response(data: bytes, request: MeasurementsRequest) -> MeasurementsResponse:
    r = _Reader(data, "MEASUREMENTS response")
    version = r.u8("SPDMVersion")
    if version != request.version:
        raise GpuEvidenceFormatError(
            f"response SPDM version 0x{version:02x} differs from the request's"
        )
    code = r.u8("RequestResponseCode")
    if code != MEASUREMENTS:
        raise GpuEvidenceFormatError(f"response code 0x{code:02x} is not MEASUREMENTS (0x60)")
    param1 = r.u8("Param1")
    param2 = r.u8("Param2")
    if param2 & 0x0F != request.slot_id or param2 & 0xF0:
        raise GpuEvidenceFormatError(
            f"response Param2 0x{param2:02x} does not name the requested slot {request.slot_id}"
        )
    count = r.u8("NumberOfBlocks")
    record_len = r.le(3, "MeasurementRecordLength")
    if request.operation == 0 and (count or record_len):
        raise GpuEvidenceFormatError("a count-only request was answered with measurement blocks")
    blocks = _parse_blocks(r.take(record_len, "MeasurementRecord"), count)
    nonce = r.take(NONCE_SIZE, "Nonce")
    opaque_len = r.le(2, "OpaqueLength")
    if opaque_len > _MAX_OPAQUE:
        raise GpuEvidenceFormatError(f"OpaqueLength {opaque_len} exceeds SPDM's {_MAX_OPAQUE}")
    opaque = r.take(opaque_len, "OpaqueData")
    signature = r.take(MEASUREMENT_SIGNATURE_SIZE, "Signature")
    r.end()
    return MeasurementsResponse(
        version=version,
        param1=param1,
        slot_id=param2,
        blocks=blocks,
        nonce=nonce,
        opaque_data=opaque,
        signature=signature,
    )


def parse_nvidia_opaque_data(data: bytes) -> tuple[OpaqueField, ...]:
    """Split NVIDIA's opaque data into its ``type(2, LE) | size(2, LE) | value`` fields.

    Unknown types are kept (NVIDIA adds types with new firmware); a repeated type is an error,
    since a reader taking the first and one taking the last would disagree.
    """
    r = _Reader(data, "NVIDIA opaque data")
    fields: list[OpaqueField] = []
    seen: set[int] = set()
    while r.remaining:
        field_type = r.le(2, "DataType")
        size = r.le(2, "DataSize")
        value = r.take(size, f"opaque field {field_type}")
        if field_type in seen:
            raise GpuEvidenceFormatError(f"opaque field type {field_type} appears twice")
        seen.add(field_type)
        fields.append(OpaqueField(field_type=field_type, value=value))
    return tuple(fields)


def parse_attestation_report(report: bytes) -> AttestationReport:
    """Parse an NVIDIA attestation report (GET_MEASUREMENTS || MEASUREMENTS) strictly.

    Raises :class:`GpuEvidenceFormatError` for anything truncated, trailing, out of range or of
    another SPDM version. The returned ``signed_bytes`` are the SPDM 1.1 transcript L1 for a
    single exchange: the request followed by the response up to, not including, its signature.
    """
    if not isinstance(report, bytes):
        raise GpuEvidenceFormatError("an attestation report must be bytes")
    if len(report) < REQUEST_SIZE + _RESPONSE_FIXED:
        raise GpuEvidenceFormatError(f"attestation report of {len(report)} bytes is truncated")
    request = _parse_request(report[:REQUEST_SIZE])
    response = _parse_response(report[REQUEST_SIZE:], request)
    return AttestationReport(
        request=request,
        response=response,
        opaque_fields=parse_nvidia_opaque_data(response.opaque_data),
        signed_bytes=report[: len(report) - MEASUREMENT_SIGNATURE_SIZE],
    )


def format_vbios_version(raw: bytes) -> str:
    """NVIDIA's dotted VBIOS version from the opaque field, as ``nvidia-smi`` prints it.

    The field is a little-endian integer: its upper half gives the first four components and
    the low byte of its lower half the fifth (``009f009601000000`` -> ``96.00.9f.00.01``).
    """
    if len(raw) < 2 or len(raw) % 2:
        raise GpuEvidenceFormatError(f"VBIOS version field of {len(raw)} bytes")
    be = raw[::-1]
    half = len(be) // 2
    return ".".join(f"{b:02x}" for b in be[half:] + be[half - 1 : half])


def encode_nvidia_opaque_data(fields: Sequence[OpaqueField]) -> bytes:
    """The inverse of :func:`parse_nvidia_opaque_data`."""
    out = bytearray()
    for f in fields:
        if not 0 <= f.field_type <= 0xFFFF or len(f.value) > 0xFFFF:
            raise GpuEvidenceFormatError(f"opaque field {f.field_type} out of range")
        out += f.field_type.to_bytes(2, "little") + len(f.value).to_bytes(2, "little") + f.value
    return bytes(out)


def encode_attestation_report(
    *,
    nonce: bytes,
    responder_nonce: bytes,
    blocks: Sequence[MeasurementBlock],
    opaque_fields: Sequence[OpaqueField],
    sign: Callable[[bytes], bytes],
    slot_id: int = 0,
) -> bytes:
    """Build an attestation report the way a GPU answers GET_MEASUREMENTS(all, signed).

    For simulated GPUs: ``sign`` receives the SPDM 1.1 transcript (request || response
    without signature) and returns the 96-byte raw P-384 signature ``r || s``. The result
    parses back with :func:`parse_attestation_report` to the same values.
    """
    if len(nonce) != NONCE_SIZE or len(responder_nonce) != NONCE_SIZE:
        raise GpuEvidenceFormatError(f"nonces must be {NONCE_SIZE} bytes")
    if not 0 <= slot_id <= 7:
        raise GpuEvidenceFormatError("slot id must be 0-7")
    request = (
        bytes([SPDM_VERSION_1_1, GET_MEASUREMENTS, _SIGNATURE_REQUESTED, 0xFF])
        + nonce
        + bytes([slot_id])
    )
    record = bytearray()
    for b in blocks:
        measurement = bytes([b.value_type]) + len(b.value).to_bytes(2, "little") + b.value
        record += bytes([b.index, _DMTF_MEASUREMENT_SPEC])
        record += len(measurement).to_bytes(2, "little") + measurement
    opaque = encode_nvidia_opaque_data(opaque_fields)
    response = (
        bytes([SPDM_VERSION_1_1, MEASUREMENTS, 0, slot_id, len(blocks)])
        + len(record).to_bytes(3, "little")
        + bytes(record)
        + responder_nonce
        + len(opaque).to_bytes(2, "little")
        + opaque
    )
    signature = sign(request + response)
    if len(signature) != MEASUREMENT_SIGNATURE_SIZE:
        raise GpuEvidenceFormatError(f"signature must be {MEASUREMENT_SIGNATURE_SIZE} bytes")
    report = request + response + signature
    parse_attestation_report(report)  # refuse to emit what the verifier would not read
    return report
