"""A log entry made readable: the DSSE envelope opened, its payload parsed into fields, each
signature matched to the registered key it claims (chip, operator, landmark, meter) and checked.

The decoded view is a convenience for people; the exact bytes (``GET /v1/log/entries``) stay
the evidence. A signature is reported ``verified`` only if it verifies under the registered key
of the holder its key id names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from attestation.dsse import Envelope, verify_envelope
from attestation.errors import AttestationError
from attestation.keys import PublicKey
from attestation.logentries import DECLARATION_KINDS, SENSOR_KINDS, USAGE_REPORT
from attestation.records import parse_record
from registry.repositories.inventory import InventoryRepository
from registry.services.log import LogEntryOut

__all__ = ["DecodedEntry", "EntryDecoder", "SignerView"]

ENVELOPE_KINDS = frozenset({USAGE_REPORT, *DECLARATION_KINDS, *SENSOR_KINDS})


@dataclass(frozen=True)
class SignerView:
    keyid: str
    holder_type: str | None  # chip, operator, landmark, meter; None: no registered key
    holder_id: str | None
    holder_name: str | None
    verified: bool


@dataclass(frozen=True)
class DecodedEntry:
    index: int
    kind: str
    leaf_hash: bytes
    created_at: datetime
    payload_type: str | None  # None: a registry record (canonical JSON, unsigned)
    fields: dict[str, Any]
    signers: list[SignerView]
    error: str | None = None  # the body could not be decoded (it is still what was logged)


def _flatten_statement(payload: dict[str, Any]) -> dict[str, Any]:
    """An in-toto statement's predicate as top-level fields, with its subject names."""
    fields: dict[str, Any] = {}
    subjects = payload.get("subject")
    if isinstance(subjects, list):
        fields["subject"] = [s.get("name") for s in subjects if isinstance(s, dict)]
    fields["predicate_type"] = payload.get("predicateType")
    predicate = payload.get("predicate")
    if isinstance(predicate, dict):
        fields.update(predicate)
    return fields


class EntryDecoder:
    def __init__(self, session: Session) -> None:
        self.repo = InventoryRepository(session)
        self._operator_keys: dict[str, list[tuple[str, str, str, bytes]]] | None = None
        # Registered holders by key id, filled by decode_many for all its entries at once.
        self._holders_known: dict[str, list[tuple[str, str, str, bytes]]] = {}

    def _holders(self, keyid: str) -> list[tuple[str, str, str, bytes]]:
        if self._operator_keys is None:
            # Operators' keys are stored as base64, not by key id: index them once per decoder.
            self._operator_keys = {}
            for op in self.repo.operators():
                try:
                    key = PublicKey.from_b64(op.public_key)
                except AttestationError:
                    continue
                self._operator_keys.setdefault(key.key_id, []).append(
                    ("operator", str(op.id), op.name, key.raw)
                )
        registered = self._holders_known.get(keyid)
        if registered is None:
            registered = self.repo.key_holders(keyid)
        return registered + self._operator_keys.get(keyid, [])

    def decode_many(self, indexes: Sequence[int]) -> list[DecodedEntry]:
        """The entries at these indexes (those in the log), decoded, in the order asked: one
        query for the entries and three for all their signers' keys (a finding's evidence
        cites a dozen reports of as many chips)."""
        rows = {e.index: e for e in self.repo.entries_at(indexes)}
        entries = [
            LogEntryOut(e.index, e.kind, bytes(e.leaf_hash), bytes(e.body), e.created_at)
            for e in (rows[i] for i in indexes if i in rows)
        ]
        key_ids = []
        for entry in entries:
            if entry.kind in ENVELOPE_KINDS:
                try:
                    key_ids += [s.keyid for s in Envelope.from_json(entry.body).signatures]
                except (AttestationError, ValueError):
                    continue  # decode() reports it
        self._holders_known.update(self.repo.key_holders_of(key_ids))
        return [self.decode(entry) for entry in entries]

    def _signers(self, envelope: Envelope) -> list[SignerView]:
        views = []
        for sig in envelope.signatures:
            view = SignerView(sig.keyid, None, None, None, False)
            for kind, holder_id, name, raw in self._holders(sig.keyid):
                single = Envelope(envelope.payload, envelope.payload_type, (sig,))
                try:
                    verify_envelope(single, PublicKey(raw))
                except AttestationError:
                    ok = False
                else:
                    ok = True
                view = SignerView(sig.keyid, kind, holder_id, name, ok)
                if ok:
                    break
            views.append(view)
        return views

    def decode(self, entry: LogEntryOut) -> DecodedEntry:
        def decoded(
            payload_type: str | None,
            fields: dict[str, Any],
            signers: list[SignerView],
            error: str | None = None,
        ) -> DecodedEntry:
            return DecodedEntry(
                entry.index,
                entry.kind,
                entry.leaf_hash,
                entry.created_at,
                payload_type,
                fields,
                signers,
                error,
            )

        try:
            if entry.kind not in ENVELOPE_KINDS:
                return decoded(None, parse_record(entry.body, entry.kind).to_dict(), [])
            envelope = Envelope.from_json(entry.body)
            payload = json.loads(envelope.payload)
            fields = (
                _flatten_statement(payload)
                if entry.kind == USAGE_REPORT and isinstance(payload, dict)
                else payload
            )
            if not isinstance(fields, dict):
                fields = {"payload": fields}
            return decoded(envelope.payload_type, fields, self._signers(envelope))
        except (AttestationError, ValueError) as exc:
            return decoded(None, {}, [], str(exc))
