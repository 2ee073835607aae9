"""The HTTP API (FastAPI). Every request needs the token and a loopback Host header; files are only read and
written under the allowed roots (path mode) or in the server's own spool folder (upload mode)."""

import asyncio
import hmac
import json
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from pyops import __version__
from pyops.io.images import FORMATS
from pyops.registry import operators
from pyops.server.jobs import TERMINAL, Job, JobManager

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class ServerConfig:
    token: str
    roots: list[Path]
    spool: Path
    workers: int = 1
    time_limit: float = 3600.0
    max_megapixels: float = 200.0
    max_upload_mb: float = 1024.0
    extra_hosts: set[str] = field(default_factory=set)


class InputRef(BaseModel):
    """One input: a local `path` (path mode) or the id of an upload (upload mode)."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = Field(None, description="absolute path of a file under the server's allowed roots")
    upload: str | None = Field(None, description="id returned by POST /v1/uploads")

    @model_validator(mode="after")
    def _one_of(self):
        if (self.path is None) == (self.upload is None):
            raise ValueError("give exactly one of 'path' or 'upload'")
        return self


class OutputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dir: str | None = Field(None, description="folder for results (path mode; default: next to each input)")
    format: Literal[tuple(FORMATS)] | None = Field(None, description="output format (default: dng for raw-domain "
                                                                     "results, else 16-bit linear TIFF)")


def _job_request_models():
    """One request model per operator, discriminated by `operator`: the OpenAPI schema shows each operator's
    own parameters, straight from the registry."""
    models = []
    for op in operators():
        models.append(create_model(
            f"Job_{op.name}", __config__=ConfigDict(extra="forbid"),
            operator=(Literal[op.name], ...),
            params=(op.params, Field(default_factory=op.params, description=op.summary)),
            inputs=(list[InputRef], Field(..., min_length=1, max_length=10000)),
            output=(OutputSpec, Field(default_factory=OutputSpec)),
        ))
    return Annotated[Union[tuple(models)], Field(discriminator="operator")]


def _host_name(host_header: str) -> str:
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\](?::\d+)?|([^:]+)(?::\d+)?", host_header.strip())
    return (m.group(1) or m.group(2) or "").lower() if m else ""


def create_app(config: ServerConfig, manager: JobManager) -> FastAPI:
    app = FastAPI(title="pyops operator server", version=__version__,
                  description="Image operators for photographers. Authenticate with `Authorization: Bearer "
                              "<token>` (the token is in the server's state file).")
    allowed_hosts = LOOPBACK | config.extra_hosts
    uploads = config.spool / "uploads"
    results_root = config.spool / "results"
    JobRequest = _job_request_models()

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = _host_name(request.headers.get("host", ""))
        if host not in allowed_hosts:
            return JSONResponse({"detail": f"Host {host!r} is not a loopback name (DNS-rebinding protection)"}, 403)
        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else request.query_params.get("token", "")
        if not hmac.compare_digest(given.encode(), config.token.encode()):
            return JSONResponse({"detail": "missing or wrong token (Authorization: Bearer <token>)"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    def allowed(raw: str, what: str, must_exist: bool) -> Path:
        p = Path(raw)
        if "\0" in raw or not p.is_absolute():
            raise HTTPException(422, f"{what} must be an absolute path: {raw!r}")
        try:
            real = p.resolve(strict=must_exist)
        except (FileNotFoundError, NotADirectoryError):
            raise HTTPException(404, f"{what} not found: {raw}") from None
        except (OSError, RuntimeError, ValueError) as err:
            raise HTTPException(422, f"{what} cannot be resolved: {raw!r} ({err})") from None
        if not any(real.is_relative_to(r) for r in config.roots):
            raise HTTPException(403, f"{what} {raw} is outside the allowed roots ({', '.join(map(str, config.roots))})"
                                     "; allow its folder with `pyops serve --allow-root DIR`, or PYOPS_ALLOW_ROOTS "
                                     "for a server the client starts")
        return real

    def check_size(path: Path, name: str) -> None:
        from pyops.io.probe import megapixels

        mp = megapixels(path)
        if mp is not None and mp > config.max_megapixels:
            raise HTTPException(413, f"{name}: {mp:.1f} MP is above this server's limit of "
                                     f"{config.max_megapixels:g} MP (pyops serve --max-megapixels)")

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "jobs": manager.counts(), "scheduler": manager.scheduler}

    @app.get("/v1/operators")
    def list_operators() -> list[dict[str, Any]]:
        return [{"name": op.name, "summary": op.summary, "raw_when": op.raw_when, "output": op.output, "params": json.loads(json.dumps(op.describe(), default=str)),
                 "schema": op.params.model_json_schema()} for op in operators()]

    @app.get("/v1/psfs")
    def list_psfs() -> list[dict[str, Any]]:
        """The PSF library: what deconvolve's `psf` accepts by name (psf_estimate adds to it)."""
        from pyops.ops.deconv import psf as psfmod

        out = []
        for name in psfmod.names():
            meta = psfmod.record(name)
            out.append({"name": name, "shape": meta.get("shape"), "made_by": meta.get("made_by", "")})
        return out

    @app.post("/v1/uploads", status_code=201)
    async def upload(request: Request, filename: Annotated[str, Query(min_length=1, max_length=255)]) -> dict:
        name = Path(filename).name
        if not name or name.startswith(".") or "\0" in name or len(name.encode()) > 200:
            raise HTTPException(422, f"bad file name {filename!r}")
        limit = int(config.max_upload_mb * 1e6)
        upload_id = uuid.uuid4().hex
        folder = uploads / upload_id
        folder.mkdir(parents=True)
        size = 0
        try:
            with open(folder / name, "wb") as fh:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise HTTPException(413, f"upload larger than {config.max_upload_mb:g} MB")
                    fh.write(chunk)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if size == 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise HTTPException(422, f"{name}: empty upload")
        return {"upload_id": upload_id, "filename": name, "size": size}

    @app.post("/v1/jobs", status_code=202)
    def submit(request: Annotated[JobRequest, Body(embed=False)]) -> dict[str, Any]:
        inputs, names = [], []
        modes = {"upload" if ref.upload else "path" for ref in request.inputs}
        if len(modes) > 1:
            raise HTTPException(422, "a job takes either paths or uploads, not both")
        mode = modes.pop()
        for ref in request.inputs:
            if ref.path is not None:
                path = allowed(ref.path, "input", must_exist=True)
                if not path.is_file():
                    raise HTTPException(422, f"input is not a file: {ref.path}")
                name = ref.path
            else:
                if not re.fullmatch(r"[0-9a-f]{32}", ref.upload):
                    raise HTTPException(404, f"no upload {ref.upload!r}")
                files = list((uploads / ref.upload).glob("*"))
                if not files:
                    raise HTTPException(404, f"no upload {ref.upload!r}")
                path, name = files[0], files[0].name
            check_size(path, name)
            inputs.append(path)
            names.append(name)
        if mode == "upload":
            if request.output.dir is not None:
                raise HTTPException(422, "output.dir is for path mode; upload results are downloaded")
            out_dir = None
        else:
            # default: next to each input, inside the roots since the input is
            out_dir = allowed(request.output.dir, "output folder", must_exist=False) if request.output.dir else None
        for name, fld in type(request.params).model_fields.items():  # parameters that may name a file (a PSF)
            value = getattr(request.params, name)
            if (fld.json_schema_extra or {}).get("path") and isinstance(value, str) and "/" in value:
                allowed(value, f"{name} file", must_exist=True)
        job = Job(request.operator, request.params, inputs, names, out_dir, request.output.format, mode)
        if mode == "upload":
            job.out_dir = results_root / job.id
        return manager.submit(job).view()

    def find(job_id: str) -> Job:
        job = manager.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job

    @app.get("/v1/jobs")
    def list_jobs() -> list[dict[str, Any]]:
        return [j.view() for j in list(manager.jobs.values())]

    @app.get("/v1/jobs/{job_id}")
    def job_status(job_id: str) -> dict[str, Any]:
        return find(job_id).view()

    @app.delete("/v1/jobs/{job_id}", status_code=202)
    def cancel(job_id: str) -> dict[str, Any]:
        job = find(job_id)
        manager.cancel(job)
        return job.view()

    @app.get("/v1/jobs/{job_id}/events", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
    async def events(job_id: str, cancel_on_disconnect: bool = False):
        """Server-sent events: the job's state as JSON each time it changes, until it ends. With
        `cancel_on_disconnect`, a client that goes away (closed, killed) cancels the job: a GIMP plug-in that the
        user stops from its progress bar is killed, and its job must not run on."""
        job = find(job_id)

        async def stream():
            seen = -1
            try:
                while True:
                    version, view = job.version, job.view()
                    if version != seen:
                        seen = version
                        yield f"data: {json.dumps(view, default=str)}\n\n"
                    if view["state"] in TERMINAL:
                        return
                    await asyncio.sleep(0.01)
            finally:
                if cancel_on_disconnect and job.state not in TERMINAL:
                    manager.cancel(job)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    @app.get("/v1/jobs/{job_id}/results/{n}", response_class=FileResponse,
             responses={200: {"content": {"application/octet-stream": {}}}})
    def result_file(job_id: str, n: int):
        job = find(job_id)
        if job.mode != "upload":
            raise HTTPException(409, "path-mode results are files on disk: see the job's results")
        if not 0 <= n < len(job.results) or job.results[n].output is None:
            raise HTTPException(404, f"job {job_id} has no result {n}")
        out = job.results[n].output
        return FileResponse(out, filename=out.name, media_type="application/octet-stream")

    return app
