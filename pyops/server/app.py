"""The HTTP API (FastAPI). Every request needs the token and a loopback Host header; files are only read and
written under the allowed roots (path mode) or in the server's own spool folder (upload mode)."""

import asyncio
import hmac
import json
import re
import shutil
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from pyops import __version__
from pyops.io.images import FORMATS
from pyops.memory import default_limit, refusal
from pyops.ops.deconv import psf as psfmod
from pyops.registry import get, operators
from pyops.server.jobs import TERMINAL, Job, JobManager
from pyops.server.spool import Spool

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
BROWSER_PAGES = {"/docs", "/openapi.json"}  # the only places a ?token= is accepted (tokens in URLs end up in logs)


@dataclass
class ServerConfig:
    token: str
    roots: list[Path]
    spool: Path
    workers: int = 1
    time_limit: float = 3600.0
    max_megapixels: float = 200.0
    max_memory: int = field(default_factory=default_limit)  # bytes one job may need (pyops.memory)
    max_upload_mb: float = 1024.0
    spool_quota_mb: float = 4096.0
    spool_ttl: float = 3600.0  # s an unused upload or an unfetched result is kept
    extra_hosts: set[str] = field(default_factory=set)


class InputRef(BaseModel):
    """One input: a local `path` (path mode) or the id of an upload (upload mode)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [  # what _one_of checks
        {"required": ["path"], "properties": {"path": {"type": "string"}, "upload": {"type": "null"}}},
        {"required": ["upload"], "properties": {"upload": {"type": "string"}, "path": {"type": "null"}}}]})
    path: str | None = Field(None, json_schema_extra={"pattern": "^/"},  # checked by `allowed`, with a reason
                             description="absolute path of a file under the server's allowed roots")
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


ERRORS = {  # what each refusal means; every error body is {"detail": reason} (422: also FastAPI's list of errors)
    400: "the body is not valid JSON", 401: "missing or wrong token", 403: "Host not allowed, or a path outside "
    "the allowed roots", 404: "no such job, upload, result or file", 409: "conflicts with the resource's state",
    410: "the result was removed", 413: "too large for this server (pixels, memory, upload size)",
    422: "invalid parameters", 507: "the spool is full"}
PROBLEM = {"type": "object", "required": ["detail"], "properties": {"detail": {"anyOf": [
    {"type": "string"}, {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}]}}}
UPLOAD_NAME = r"^[^/\x00.][^/\x00]*$"  # a file name: no folder, not hidden
UPLOAD_NAME_BYTES = 200  # longer names are shortened (room for the result's suffix within 255 bytes)
UPLOAD_BODY = {"requestBody": {"required": True, "content": {  # the file's bytes, read as a stream by the route
    "application/octet-stream": {"schema": {"type": "string", "format": "binary", "minLength": 1}}}}}


def errors(*codes: int) -> dict:
    """`responses=` entries for the refusals a route makes (401 and 403 are added to every route)."""
    return {c: {"description": ERRORS[c], "content": {"application/json": {"schema": PROBLEM}}} for c in codes}


def _truthful_openapi(app: FastAPI) -> dict:
    """FastAPI's schema plus what the routes do not declare themselves: the guard's 401/403 on every route, one
    error shape (its 422 says the detail is a list, but the server's own 422s give a reason string), and the
    links a stateful fuzzer follows from a created job or upload."""
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    ids = {}
    for path, item in schema["paths"].items():
        for method, op in item.items():
            ids[method, path] = op["operationId"]
            for code, entry in errors(401, 403).items():
                op["responses"].setdefault(str(code), entry)
            if "422" in op["responses"]:
                op["responses"]["422"] = errors(422)[422]
    job = {"job_id": "$response.body#/id"}
    schema["paths"]["/v1/jobs"]["post"]["responses"]["202"]["links"] = {
        "GetJob": {"operationId": ids["get", "/v1/jobs/{job_id}"], "parameters": job},
        "CancelJob": {"operationId": ids["delete", "/v1/jobs/{job_id}"], "parameters": job},
        "JobEvents": {"operationId": ids["get", "/v1/jobs/{job_id}/events"], "parameters": job}}
    schema["paths"]["/v1/uploads"]["post"]["responses"]["201"]["links"] = {
        "DeleteUpload": {"operationId": ids["delete", "/v1/uploads/{upload_id}"],
                         "parameters": {"upload_id": "$response.body#/upload_id"}}}
    return schema


def _fit_name(name: str) -> str:
    """`name` shortened to UPLOAD_NAME_BYTES of UTF-8 (its suffix kept) if longer."""
    if len(name.encode()) <= UPLOAD_NAME_BYTES:
        return name
    suffix = Path(name).suffix if len(Path(name).suffix) <= 16 else ""
    stem = name[: len(name) - len(suffix)].encode()[: UPLOAD_NAME_BYTES - len(suffix.encode())]
    return stem.decode(errors="ignore") + suffix


def create_app(config: ServerConfig, manager: JobManager) -> FastAPI:
    app = FastAPI(title="pyops operator server", version=__version__,
                  description="Image operators for photographers. Authenticate with `Authorization: Bearer "
                              "<token>` (the token is in the server's state file).", docs_url=None)
    allowed_hosts = LOOPBACK | config.extra_hosts
    spool = app.state.spool = Spool(config.spool, int(config.spool_quota_mb * 1e6), config.spool_ttl)
    uploads, results_root = spool.uploads, spool.results
    JobRequest = _job_request_models()

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = _truthful_openapi(app)
        return app.openapi_schema

    app.openapi = openapi

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        """FastAPI's answer; a 405 names every method of the path in `Allow` (Starlette names only those of
        the first route that matched the path)."""
        if exc.status_code == 405:
            methods = {m for r in app.routes if r.matches(request.scope)[0] is not Match.NONE
                       for m in getattr(r, "methods", ())}
            exc.headers = dict(exc.headers or {}, Allow=", ".join(sorted(methods)))
        return await http_exception_handler(request, exc)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = _host_name(request.headers.get("host", ""))
        if host not in allowed_hosts:
            return JSONResponse({"detail": f"Host {host!r} is not a loopback name (DNS-rebinding protection)"}, 403)
        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else ""
        if not given and request.method == "GET" and request.url.path in BROWSER_PAGES:
            given = request.query_params.get("token", "")  # a browser cannot send the header; nowhere else
        if not hmac.compare_digest(given.encode(), config.token.encode()):
            return JSONResponse({"detail": "missing or wrong token (Authorization: Bearer <token>)"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    def allowed(raw: str, what: str, must_exist: bool) -> Path:
        """The real path of `raw` if it lies under the roots. The roots are checked on the resolved path before
        anything is looked up, so the answer about a path outside them (403) never tells whether it exists."""
        p = Path(raw)
        if "\0" in raw or not p.is_absolute():
            raise HTTPException(422, f"{what} must be an absolute path: {raw!r}")
        try:
            real = p.resolve(strict=False)
        except (OSError, RuntimeError, ValueError) as err:
            raise HTTPException(422, f"{what} cannot be resolved: {raw!r} ({err})") from None
        if not any(real.is_relative_to(r) for r in config.roots):
            raise HTTPException(403, f"{what} {raw} is outside the allowed roots ({', '.join(map(str, config.roots))})"
                                     "; allow its folder with `pyops serve --allow-root DIR`, or PYOPS_ALLOW_ROOTS "
                                     "for a server the client starts")
        if must_exist and not real.exists():
            raise HTTPException(404, f"{what} not found: {raw}")
        return real

    def check_size(path: Path, name: str) -> None:
        from pyops.io.probe import megapixels

        mp = megapixels(path)
        if mp is not None and mp > config.max_megapixels:
            raise HTTPException(413, f"{name}: {mp:.1f} MP is above this server's limit of "
                                     f"{config.max_megapixels:g} MP (pyops serve --max-megapixels)")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI for a browser opened at /docs?token=T: the page fetches the schema with the token too."""
        return get_swagger_ui_html(openapi_url=f"{app.openapi_url}?{urllib.parse.urlencode({'token': config.token})}",
                                   title=f"{app.title} - Swagger UI")

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
        out = []
        for name in psfmod.names():
            meta = psfmod.record(name)
            out.append({"name": name, "shape": meta.get("shape"), "made_by": meta.get("made_by", "")})
        return out

    @app.post("/v1/uploads", status_code=201, responses=errors(413, 422, 507), openapi_extra=UPLOAD_BODY)
    async def upload(request: Request, filename: Annotated[str, Query(
            min_length=1, max_length=255, pattern=UPLOAD_NAME, description="the file's name (no folder, not "
            f"hidden); longer than {UPLOAD_NAME_BYTES} bytes of UTF-8, it is shortened")]) -> dict:
        name = _fit_name(filename)
        limit = int(config.max_upload_mb * 1e6)
        room = spool.quota - spool.usage()
        full = HTTPException(507, f"the server's spool is full: this upload would take it past its quota of "
                                  f"{config.spool_quota_mb:g} MB (pyops serve --spool-quota-mb); fetch or delete "
                                  "earlier results and uploads (DELETE /v1/uploads/ID)")
        if int(request.headers.get("content-length") or 0) > room:
            raise full
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
                    if size > room:
                        raise full
                    fh.write(chunk)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if size == 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise HTTPException(422, f"{name}: empty upload")
        return {"upload_id": upload_id, "filename": name, "size": size}

    def upload_folder(upload_id: str) -> Path:
        folder = uploads / upload_id
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id) or not folder.is_dir():
            raise HTTPException(404, f"no upload {upload_id!r}")
        user = next((j for j in manager.active() if folder in j.cleanup), None)
        if user is not None:
            raise HTTPException(409, f"upload {upload_id} is in use by job {user.id}")
        return folder

    @app.delete("/v1/uploads/{upload_id}", status_code=204, responses=errors(404, 409))
    def delete_upload(upload_id: str) -> Response:
        shutil.rmtree(upload_folder(upload_id), ignore_errors=True)
        return Response(status_code=204)

    @app.post("/v1/jobs", status_code=202, responses=errors(400, 404, 409, 413, 422))
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
                files = list(upload_folder(ref.upload).glob("*"))
                if not files:
                    raise HTTPException(404, f"no upload {ref.upload!r}")
                path, name = files[0], files[0].name
            check_size(path, name)
            too_big = refusal(get(request.operator), request.params, path, config.max_memory, "this server allows",
                              request.output.format)
            if too_big:
                raise HTTPException(413, f"{too_big} (pyops serve --max-memory-gb)")
            inputs.append(path)
            names.append(name)
        if mode == "upload":
            if request.output.dir is not None:
                raise HTTPException(422, "output.dir is for path mode; upload results are downloaded")
            out_dir = None
        else:
            # default: next to each input, inside the roots since the input is
            out_dir = allowed(request.output.dir, "output folder", must_exist=False) if request.output.dir else None
        files = {}  # parameters that name a file (a PSF): under the roots, and the job reads the checked path
        for name, fld in type(request.params).model_fields.items():
            value = getattr(request.params, name)
            if (fld.json_schema_extra or {}).get("path") and isinstance(value, str) and psfmod.names_a_file(value):
                real = allowed(value, f"{name} file", must_exist=True)
                if not real.is_file():
                    raise HTTPException(422, f"{name} file is not a file: {value}")
                files[name] = str(real)
        if files:
            request.params = request.params.model_copy(update=files)
        job = Job(request.operator, request.params, inputs, names, out_dir, request.output.format, mode)
        if mode == "upload":  # its uploads go when it ends; its results once downloaded (or after the ttl)
            job.out_dir = results_root / job.id
            job.cleanup = [p.parent for p in inputs]
        return manager.submit(job).view()

    def find(job_id: str) -> Job:
        job = manager.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job

    @app.get("/v1/jobs")
    def list_jobs() -> list[dict[str, Any]]:
        return [j.view() for j in list(manager.jobs.values())]

    @app.get("/v1/jobs/{job_id}", responses=errors(404))
    def job_status(job_id: str) -> dict[str, Any]:
        return find(job_id).view()

    @app.delete("/v1/jobs/{job_id}", status_code=202, responses=errors(404))
    def cancel(job_id: str) -> dict[str, Any]:
        job = find(job_id)
        manager.cancel(job)
        return job.view()

    @app.get("/v1/jobs/{job_id}/events", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
                        **errors(404)})
    async def events(job_id: str, cancel_on_disconnect: bool = False):
        """Server-sent events: the job's state as JSON each time it changes, until it ends. With
        `cancel_on_disconnect`, a client that goes away (closed, killed) cancels the job: a GIMP plug-in that the
        user stops from its progress bar is killed, and its job must not run on."""
        job = find(job_id)

        async def stream():
            seen, grace = -1, 200  # when the server stops: up to 2 s more for the job's last state, then end
            try:
                while grace > 0:
                    version, view = job.version, job.view()
                    if version != seen:
                        seen = version
                        yield f"data: {json.dumps(view, default=str)}\n\n"
                    if view["state"] in TERMINAL:
                        return
                    grace -= manager.stopping.is_set()
                    await asyncio.sleep(0.01)
            finally:
                if cancel_on_disconnect and job.state not in TERMINAL:
                    manager.cancel(job)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    @app.get("/v1/jobs/{job_id}/results/{n}", response_class=FileResponse,
             responses={200: {"content": {"application/octet-stream": {}}}, **errors(404, 409, 410)})
    def result_file(job_id: str, n: int):
        job = find(job_id)
        if job.mode != "upload":
            raise HTTPException(409, "path-mode results are files on disk: see the job's results")
        if not 0 <= n < len(job.results) or job.results[n].output is None:
            raise HTTPException(404, f"job {job_id} has no result {n}")
        out = job.results[n].output
        if not out.is_file():
            raise HTTPException(410, f"result {n} of job {job_id} is gone: results are removed once downloaded "
                                     f"or after {config.spool_ttl:g} s")
        return FileResponse(out, filename=out.name, media_type="application/octet-stream",
                            background=BackgroundTask(spool.remove_result, out))

    return app
