"""On-demand verifier runs (inspectors and admins)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from registry.api.body import StrictJsonRoute
from registry.api.deps import CallerDep, ContextDep, SessionDep
from registry.api.schemas.common import UtcDatetime
from registry.auth import Role
from registry.errors import InvalidRequest, reported_as

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1/verifier", tags=["verifier"])


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: str = Field(default="default", pattern=r"^[a-z0-9_-]{1,40}$")
    as_of: UtcDatetime | None = None
    since: UtcDatetime | None = Field(
        default=None, description="judge only [since, as_of); default: all history"
    )


class RunSummary(BaseModel):
    as_of: datetime
    since: datetime | None
    policy_id: str
    policy_version: str
    reports_examined: int
    findings: int
    new_findings: int


@router.post("/runs", response_model=RunSummary)
def run_verifier(
    body: RunRequest, caller: CallerDep, session: SessionDep, ctx: ContextDep
) -> RunSummary:
    """Judge the period ``[since, as_of)`` (default: all history up to now); store new findings."""
    # The verifier (its whole rule engine) is imported by the first run, not by every API
    # process at start-up: that import is on the path from a restart to the first report.
    from registry.services.verification import VerificationService
    from verifier.policy import load_builtin_policy

    caller.require(Role.ADMIN, Role.INSPECTOR)
    with reported_as("unknown_policy"):  # the request names a policy: say which part is wrong
        policy = load_builtin_policy(body.policy)
    if body.since is not None and body.as_of is not None and body.since >= body.as_of:
        raise InvalidRequest("since must be before as_of", code="bad_window")
    run = VerificationService(session, ctx.clock).run(policy, as_of=body.as_of, since=body.since)
    return RunSummary(
        as_of=run.as_of,
        since=run.since,
        policy_id=run.policy_id,
        policy_version=run.policy_version,
        reports_examined=run.reports_examined,
        findings=len(run.findings),
        new_findings=run.new_findings,
    )
