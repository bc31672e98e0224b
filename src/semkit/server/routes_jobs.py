"""Background jobs: list yours, poll one (progress, then result or error), cancel one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from .. import errors
from .auth import Principal
from .dependencies import Caller, state_of
from .jobs import Job
from .responses import ApiError
from .schemas import JobOut

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("", response_model=list[JobOut], summary="Your jobs, newest first (without results)")
async def list_jobs(request: Request, principal: Caller) -> Any:
    return [j.as_dict(with_result=False) for j in state_of(request).jobs.list(principal.id)]


@router.get("/{job_id}", response_model=JobOut, summary="A job's state, progress and (when done) result")
async def get_job(job_id: JobId, request: Request, principal: Caller) -> Any:
    return _find(request, principal, job_id).as_dict()


@router.delete("/{job_id}", response_model=JobOut, summary="Cancel a job (queued jobs never start; "
               "running upserts stop at the next batch)")
async def cancel_job(job_id: JobId, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    _find(request, principal, job_id)
    return state.jobs.cancel(job_id, principal.id).as_dict(with_result=False)


def _find(request: Request, principal: Principal, job_id: str) -> Job:
    try:
        return state_of(request).jobs.get(job_id, principal.id)
    except errors.InvalidInput as exc:
        raise ApiError(404, str(exc), "job_not_found") from None
