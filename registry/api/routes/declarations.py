"""Facilities, chip enrollment, installations and declared clusters.

Installations (moves, transfers) and clusters are declarations signed by the operator's key:
the request body is the DSSE envelope, whose payload is the declaration JSON.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from attestation.dsse import Envelope
from attestation.errors import FormatError
from attestation.records import ClusterDeclaration, Declaration, InstallationDeclaration
from registry.api.body import StrictJsonRoute
from registry.api.deps import CallerDep, ContextDep, SessionDep
from registry.api.routes.gpu import gpu_service
from registry.api.schemas.declarations import (
    ChipBatchCreate,
    ChipBatchEnrolled,
    ChipCreate,
    ChipPublic,
    ClusterCreate,
    ClusterPublic,
    FacilityCreate,
    FacilityPublic,
    InstallationCreate,
    InstallationPublic,
    SignedDeclaration,
)
from registry.errors import reported_as
from registry.services.enrollment import ChipEnrollment, EnrollmentService
from registry.services.gpu_attestation import SubmittedEvidence

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["declarations"])

D = TypeVar("D", bound=Declaration)


def _open(
    body: SignedDeclaration, declaration: type[D], schema: type[BaseModel]
) -> tuple[Envelope, D]:
    """Parse the envelope and its declaration payload (the service checks the signature).

    ``schema`` checks the bounds (id ranges, name lengths, time range); the values come from
    the typed declaration, as the partner's audit reads them from the log (pydantic would strip
    a name's spaces, and a finding naming the cluster would then differ).
    """
    with reported_as("malformed_declaration"):
        envelope = Envelope.from_dict(body.model_dump())
        fields = declaration.payload_fields(envelope)
    try:
        schema.model_validate(fields)
        # The audit reads the logged payload with the typed parser: whatever pydantic would
        # coerce ("3" for 3, true for 1) is refused here too, so both accept the same bytes.
        declared = declaration.from_dict(fields, "payload")
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", "payload", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from exc
    except FormatError as exc:
        error = {"loc": ("body", "payload"), "msg": str(exc), "type": "value_error"}
        raise RequestValidationError([error]) from exc
    return envelope, declared


@router.post("/facilities", status_code=201, response_model=FacilityPublic)
def create_facility(
    body: FacilityCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    return EnrollmentService(session, ctx.clock).create_facility(caller, **body.model_dump())


@router.post("/chips", status_code=201, response_model=ChipPublic)
def enroll_chip(
    body: ChipCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    """Enroll a chip key endorsed by its vendor; with ``gpu_evidence``, hardware-attested."""
    fields = body.model_dump(exclude={"gpu_evidence"})
    evidence = None
    if body.gpu_evidence is not None:
        e = body.gpu_evidence
        evidence = SubmittedEvidence.from_wire(e.nonce, e.report, e.certificates)
    return EnrollmentService(session, ctx.clock, gpu_service(session, ctx)).enroll_chip(
        caller, **fields, gpu_evidence=evidence
    )


@router.post("/chips/batch", status_code=201, response_model=ChipBatchEnrolled)
def enroll_chips(
    body: ChipBatchCreate, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> ChipBatchEnrolled:
    """Enroll up to 10,000 chips of one vendor in one transaction, all or nothing.

    Each item is checked as ``POST /v1/chips`` checks one. If any fails, the answer is 422
    ``batch_rejected`` with ``errors``: one ``{index, chip_id, status, code, detail}`` per
    failing item, and nothing is enrolled. Enrollment records are logged in request order.
    """
    items = [ChipEnrollment(**item.model_dump()) for item in body.chips]
    chip_ids, first = EnrollmentService(session, ctx.clock).enroll_chips(
        caller, vendor_id=body.vendor_id, items=items
    )
    return ChipBatchEnrolled(enrolled=len(chip_ids), chip_ids=chip_ids, first_log_index=first)


@router.post("/installations", status_code=201, response_model=InstallationPublic)
def install_chip(
    body: SignedDeclaration, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> object:
    """Declare that a chip is (now) at a facility: an installation, a move or a transfer.

    The body is a DSSE envelope signed by the facility operator's key; its payload is
    ``{"type": "chipreg.dev/declaration/installation/v1", "chip_id", "facility_id",
    "installed_at"}``. The envelope is appended to the log as kind ``installation``.
    """
    envelope, declared = _open(body, InstallationDeclaration, InstallationCreate)
    return EnrollmentService(session, ctx.clock).install(
        caller,
        envelope=envelope,
        chip_id=declared.chip_id,
        facility_id=declared.facility_id,
        installed_at=declared.installed_at,
    )


@router.post("/clusters", status_code=201, response_model=ClusterPublic)
def declare_cluster(
    body: SignedDeclaration, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> ClusterPublic:
    """Declare a cluster of chips working together over a period.

    The body is a DSSE envelope signed by the facility operator's key; its payload is
    ``{"type": "chipreg.dev/declaration/cluster/v1", "facility_id", "name", "purpose",
    "chip_ids", "start", "end"}``. Logged as kind ``cluster``; the cluster id is its log index.
    """
    envelope, declared = _open(body, ClusterDeclaration, ClusterCreate)
    cluster = EnrollmentService(session, ctx.clock).declare_cluster(
        caller,
        envelope=envelope,
        facility_id=declared.facility_id,
        name=declared.name,
        purpose=declared.purpose,
        chip_ids=declared.chip_ids,
        start=declared.start,
        end=declared.end,
    )
    return ClusterPublic(
        id=cluster.id,
        operator_id=cluster.operator_id,
        facility_id=cluster.facility_id,
        name=cluster.name,
        purpose=cluster.purpose,
        start=cluster.start,
        end=cluster.end,
        chip_ids=sorted(m.chip_id for m in cluster.members),
    )
