"""A client written from docs/PROTOCOL.md alone.

It deliberately imports nothing from chipreg's own packages for the protocol work: only the
standard library, ``cryptography`` and ``httpx``, building certificates, statements, the DSSE
PAE and the envelope by hand. If this test passes, the document is enough to interoperate.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from registry.auth import Role
from tests.conftest import LiveRegistry

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def name(**attrs: str) -> x509.Name:
    oids = {
        "cn": NameOID.COMMON_NAME,
        "serial": NameOID.SERIAL_NUMBER,
        "title": NameOID.TITLE,
        "org": NameOID.ORGANIZATION_NAME,
    }
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attrs.items()])


def vendor_root(key: Ed25519PrivateKey, vendor: str) -> x509.Certificate:
    subject = name(org=vendor, cn=f"{vendor} Root")
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, None)
    )


def chip_cert(
    root: x509.Certificate, root_key: Ed25519PrivateKey, chip_key: Ed25519PrivateKey, chip_id: str
) -> x509.Certificate:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(
            name(cn=chip_id, serial=chip_id, title="H100-SXM5-80GB", org="Independent Vendor")
        )
        .issuer_name(root.subject)
        .public_key(chip_key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(root_key, None)
    )


def pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def envelope(
    chip_key: Ed25519PrivateKey, chip_id: str, seq: int, prev: str, start: datetime
) -> bytes:
    key_id = hashlib.sha256(raw(chip_key)).hexdigest()
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": f"chip:{chip_id}", "digest": {"sha256": key_id}}],
        "predicateType": "https://chipreg.org/attestation/usage/v1",
        "predicate": {
            "chip_id": chip_id,
            "seq": seq,
            "prev_digest": prev,
            "window": {
                "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": (start + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "utilization": 0.75,
            "energy_j": 472500.0,
            "interconnect": [
                {"peer": "IV-0002", "link": "infiniband", "tx_bytes": 5, "rx_bytes": 7}
            ],
        },
    }
    # Deliberately not chipreg's own serialisation: pretty-printed, unsorted. The registry must
    # verify the exact bytes, whatever their layout.
    payload = json.dumps(statement, indent=1).encode()
    sig = chip_key.sign(pae(PAYLOAD_TYPE, payload))
    return json.dumps(
        {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"keyid": key_id, "sig": base64.b64encode(sig).decode()}],
        }
    ).encode()


def test_independent_client_enrolls_and_reports(live_registry: LiveRegistry) -> None:
    root_key, chip_key, op_key = (Ed25519PrivateKey.generate() for _ in range(3))
    root = vendor_root(root_key, "Independent Vendor")
    chip_id = "IV-0001"
    admin = {"Authorization": f"Bearer {live_registry.admin_token}"}
    with httpx.Client(base_url=live_registry.url, timeout=30) as http:
        vendor = http.post(
            "/v1/vendors",
            headers=admin,
            json={
                "name": "Independent Vendor",
                "root_certificate_pem": root.public_bytes(serialization.Encoding.PEM).decode(),
            },
        ).json()
        operator = http.post(
            "/v1/operators",
            headers=admin,
            json={
                "name": "Indie Ops",
                "country": "DE",
                "public_key": base64.b64encode(raw(op_key)).decode(),
            },
        ).json()
        vendor_token = live_registry.token(Role.VENDOR, vendor_id=vendor["id"])
        op_token = live_registry.token(Role.OPERATOR, operator_id=operator["id"])
        as_vendor = {"Authorization": f"Bearer {vendor_token}"}
        as_op = {"Authorization": f"Bearer {op_token}"}
        cert = chip_cert(root, root_key, chip_key, chip_id)
        r = http.post(
            "/v1/chips",
            headers=as_vendor,
            json={
                "vendor_id": vendor["id"],
                "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
                "peak_tflops_bf16": 989,
                "tdp_watts": 700,
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["key_id"] == hashlib.sha256(raw(chip_key)).hexdigest()
        facility = http.post(
            "/v1/facilities",
            headers=as_op,
            json={
                "operator_id": operator["id"],
                "name": "Frankfurt 1",
                "country": "DE",
                "latitude": 50.1,
                "longitude": 8.7,
                "declared_power_kw": 5000,
            },
        ).json()
        # Declarations are DSSE envelopes signed by the operator key; pretty-printed on purpose.
        declaration = json.dumps(
            {
                "type": "chipreg.dev/declaration/installation/v1",
                "chip_id": chip_id,
                "facility_id": facility["id"],
                "installed_at": "2026-01-01T00:00:00Z",
            },
            indent=2,
        ).encode()
        decl_type = "application/vnd.chipreg.declaration+json"
        r = http.post(
            "/v1/installations",
            headers=as_op,
            json={
                "payload": base64.b64encode(declaration).decode(),
                "payloadType": decl_type,
                "signatures": [
                    {"sig": base64.b64encode(op_key.sign(pae(decl_type, declaration))).decode()}
                ],
            },
        )
        assert r.status_code == 201, r.text

        start = datetime(2026, 2, 1, tzinfo=UTC)
        first = envelope(chip_key, chip_id, 1, "0" * 64, start)
        r = http.post(
            "/v1/reports", headers={**as_op, "Content-Type": "application/json"}, content=first
        )
        assert r.status_code == 201, r.text
        payload = base64.b64decode(json.loads(first)["payload"])
        assert r.json()["digest"] == hashlib.sha256(payload).hexdigest()

        second = envelope(
            chip_key, chip_id, 2, hashlib.sha256(payload).hexdigest(), start + timedelta(minutes=15)
        )
        body = b'{"reports":[' + second + b"]}"
        r = http.post(
            "/v1/reports/batch", headers={**as_op, "Content-Type": "application/json"}, content=body
        )
        assert r.json()["results"][0]["status"] == "accepted", r.text

        # One flipped byte, a replay and an unknown chip: three distinct 4xx codes.
        doc = json.loads(second)
        sig = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
        sig[0] ^= 0x80
        doc["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
        flipped = json.dumps(doc).encode()
        unknown = envelope(Ed25519PrivateKey.generate(), "IV-0404", 1, "0" * 64, start)
        seen = {}
        for label, data in (("flipped", flipped), ("replay", second), ("unknown", unknown)):
            r = http.post(
                "/v1/reports", headers={**as_op, "Content-Type": "application/json"}, content=data
            )
            assert 400 <= r.status_code < 500
            assert r.headers["content-type"].startswith("application/problem+json")
            seen[label] = (r.status_code, r.json()["code"])
        assert seen == {
            "flipped": (422, "bad_signature"),
            "replay": (409, "replayed_report"),
            "unknown": (404, "unknown_chip"),
        }
