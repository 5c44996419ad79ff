"""Pipelines: validate, create, version, list, read and archive configs.

A config arrives as JSON, or as YAML with an `application/yaml` content type
(also `application/x-yaml`, `text/yaml`). Its adapters must be known to the
workers: a registered adapter, a handler of a pipeline file the server
loaded, or a `module:function` path under a module the operator allowed with
STAGELINE_ADAPTER_MODULES. Other import paths are refused unimported: a config
sent over the API must not make workers run arbitrary code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse

from stageline.adapters.registry import registered_names, resolve
from stageline.api import cursor as cursors
from stageline.api.deps import RuntimeDep, TenantDep, get_tenant
from stageline.api.errors import ApiError
from stageline.domain.config import PipelineConfig
from stageline.domain.validation import AdapterCatalog, Format, ValidationReport, validate_body
from stageline.runtime import Runtime
from stageline.schemas.errors import ErrorResponse, HTTPValidationError
from stageline.schemas.pipelines import (
    ConfigFinding,
    InvalidConfigResponse,
    PipelineDetail,
    PipelineList,
    PipelineSummary,
    PipelineVersionList,
    PipelineVersionResponse,
    PipelineVersionSummary,
    ValidationResponse,
)
from stageline.store import pipelines
from stageline.store.pipelines import PipelineArchived, PipelineExists, PipelineInfo, Version

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
MAX_VERSION = 2**31 - 1

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Pipeline or version not found"},
    422: {"model": HTTPValidationError, "description": "Validation Error"},
}
CONFIG_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "Name taken (pipeline_exists) or archived "
                                                 "(pipeline_archived)"},
    413: {"model": ErrorResponse, "description": "Body over the size limit"},
    415: {"model": ErrorResponse, "description": "Neither JSON nor YAML"},
    422: {"description": "The config is invalid (error_code invalid_config, with its "
                         "findings), or the request itself is (HTTPValidationError)",
          "content": {"application/json": {"schema": {"anyOf": [
              {"$ref": "#/components/schemas/InvalidConfigResponse"},
              {"$ref": "#/components/schemas/HTTPValidationError"}]}}}},
}
router = APIRouter(tags=["pipelines"], responses=ERRORS)

Name = Annotated[str, Path(min_length=1, max_length=128, description="Pipeline name")]


# --- the config body --------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigBody:
    data: bytes
    format: Format


async def config_body(request: Request) -> ConfigBody:
    """The raw body, read here so that parsing and validating run off the event loop."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return ConfigBody(await request.body(), _format_of(media))


def _format_of(media: str) -> Format:
    if media in YAML_TYPES:
        return Format.YAML
    if media in ("", "application/json") or media.endswith("+json"):
        return Format.JSON
    raise ApiError(415, "unsupported_media_type",
                   f"send the config as application/json or application/yaml, not {media}")


ConfigBodyDep = Annotated[ConfigBody, Depends(config_body)]


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """A JSON schema with its `$defs` references replaced by the definitions."""
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return {**_inline_refs(defs[ref.removeprefix("#/$defs/")], defs), **siblings}
    return {key: _inline_refs(value, defs) for key, value in node.items()}


def _config_schema() -> dict[str, Any]:
    schema = PipelineConfig.model_json_schema()
    inlined: dict[str, Any] = _inline_refs(schema, schema.pop("$defs", {}))
    return inlined


# The body is read by `config_body`, so OpenAPI is told its shape here.
CONFIG_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _config_schema()},
    "application/yaml": {"schema": {"type": "string",
                                    "description": "The same config written in YAML"}},
}}}


# --- validation -------------------------------------------------------------------------


def _importable(allowed: list[str]) -> Callable[[str], bool]:
    def check(name: str) -> bool:
        module = name.partition(":")[0]
        if not any(module == p or module.startswith(p + ".") for p in allowed):
            return False  # never imported: importing runs the module's code
        try:
            resolve(name)
        except (Exception, SystemExit):  # whatever importing raises (even sys.exit),
            return False  # the name is not a usable adapter
        return True

    return check


def _catalog(runtime: Runtime) -> AdapterCatalog:
    return AdapterCatalog(frozenset(registered_names()) | frozenset(runtime.handlers),
                          _importable(runtime.settings.adapter_module_list))


def _validate(body: ConfigBody, runtime: Runtime) -> ValidationReport:
    return validate_body(body.data, body.format, _catalog(runtime))


def _findings(report: ValidationReport) -> list[ConfigFinding]:
    return [ConfigFinding(code=f.code, path=f.path, message=f.message, remedy=f.remedy)
            for f in report.findings]


def _warnings(report: ValidationReport) -> list[ConfigFinding]:
    return [ConfigFinding(code=f.code, path=f.path, message=f.message, remedy=f.remedy,
                          severity="warning") for f in report.warnings]


def _invalid(request: Request, report: ValidationReport) -> JSONResponse:
    """422 invalid_config: seed 000's ErrorResponse plus the report's findings."""
    listed = "; ".join(f"{f.path or 'document'}: {f.message}" for f in report.findings[:3])
    detail = f"the config is invalid ({len(report.findings)} finding(s)): {listed}"
    body = InvalidConfigResponse(
        detail=detail, error_code="invalid_config", timestamp=datetime.now(UTC),
        correlation_id=getattr(request.state, "request_id", None), findings=_findings(report))
    return JSONResponse(body.model_dump(mode="json"), status_code=422)


@contextmanager
def _conflicts() -> Iterator[None]:
    try:
        yield
    except PipelineExists as exc:
        raise ApiError(409, "pipeline_exists", str(exc)) from exc
    except PipelineArchived as exc:
        raise ApiError(409, "pipeline_archived", str(exc)) from exc


# --- records to responses ---------------------------------------------------------------


def _version_out(version: Version) -> PipelineVersionResponse:
    return PipelineVersionResponse(
        pipeline=version.pipeline, version=version.version, config_id=version.config_id,
        config_snapshot=version.config.snapshot(), created_at=version.created_at)


def _summary(info: PipelineInfo) -> PipelineSummary:
    return PipelineSummary(
        name=info.name, latest_version=info.latest_version,
        latest_config_id=info.latest_config_id, archived=info.archived,
        archived_at=info.archived_at, created_at=info.created_at, updated_at=info.updated_at)


# --- routes -----------------------------------------------------------------------------


@router.post("/api/v1/pipelines/validate", response_model=ValidationResponse,
             dependencies=[Depends(get_tenant)], openapi_extra=CONFIG_BODY,
             responses={413: CONFIG_ERRORS[413], 415: CONFIG_ERRORS[415]})
def validate_pipeline(body: ConfigBodyDep, runtime: RuntimeDep) -> ValidationResponse:
    """Validate a config (JSON or YAML) and report every finding; nothing is saved.

    Answers 200 whether the config is valid or not: look at `valid` and `findings`.
    """
    report = _validate(body, runtime)
    return ValidationResponse(valid=report.valid,
                              findings=_findings(report) + _warnings(report))


@router.post("/api/v1/pipelines", status_code=status.HTTP_201_CREATED,
             response_model=PipelineVersionResponse, openapi_extra=CONFIG_BODY,
             responses=CONFIG_ERRORS)
def create_pipeline(body: ConfigBodyDep, request: Request, runtime: RuntimeDep,
                    tenant: TenantDep) -> PipelineVersionResponse | JSONResponse:
    """Create a pipeline from a config; it becomes version 1."""
    report = _validate(body, runtime)
    if report.config is None or not report.valid:
        return _invalid(request, report)
    with runtime.db.write() as conn, _conflicts():
        version = pipelines.create(conn, tenant, report.config)
    return _version_out(version)


@router.post("/api/v1/pipelines/{name}/versions", status_code=status.HTTP_201_CREATED,
             response_model=PipelineVersionResponse, openapi_extra=CONFIG_BODY,
             responses={200: {"model": PipelineVersionResponse,
                              "description": "Same config as the latest version: no new one"},
                        400: {"model": ErrorResponse}, **CONFIG_ERRORS})
def publish_version(name: Name, body: ConfigBodyDep, request: Request, response: Response,
                    runtime: RuntimeDep, tenant: TenantDep,
                    ) -> PipelineVersionResponse | JSONResponse:
    """Publish a new version (201); a config equal to the latest answers that version (200).

    Executions already started keep running on the version they started with.
    """
    report = _validate(body, runtime)
    if report.config is None or not report.valid:
        return _invalid(request, report)
    if report.config.name != name:
        raise ApiError(400, "pipeline_name_mismatch",
                       f"the config is named {report.config.name!r}, not {name!r}")
    with runtime.db.write() as conn, _conflicts():
        version, created = pipelines.publish(conn, tenant, report.config)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _version_out(version)


@router.get("/api/v1/pipelines", response_model=PipelineList)
def list_pipelines(
    runtime: RuntimeDep, tenant: TenantDep,
    include_archived: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PipelineList:
    """Pipelines with their latest version, newest first, with a cursor to the next page."""
    after = cursors.decode(cursor) if cursor else None
    with runtime.db.read() as conn:
        rows = pipelines.list_page(conn, tenant, include_archived=include_archived,
                                   limit=limit + 1, cursor=after)
    page = rows[:limit]
    next_cursor = cursors.encode(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return PipelineList(items=[_summary(p) for p in page],
                        next_cursor=next_cursor)


@router.get("/api/v1/pipelines/{name}", response_model=PipelineDetail)
def get_pipeline(name: Name, runtime: RuntimeDep, tenant: TenantDep) -> PipelineDetail:
    """A pipeline, archived or not, with its latest version's config."""
    with runtime.db.read() as conn:
        info = pipelines.get_info(conn, tenant, name)
        latest = pipelines.find(conn, tenant, name, info.latest_version)
    return PipelineDetail(**_summary(info).model_dump(), description=latest.config.description,
                          latest=_version_out(latest))


@router.get("/api/v1/pipelines/{name}/versions", response_model=PipelineVersionList)
def list_versions(
    name: Name, runtime: RuntimeDep, tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[int | None, Query(ge=1, le=MAX_VERSION,
                                        description="next_cursor of the previous page")] = None,
) -> PipelineVersionList:
    """A pipeline's versions, newest first, without their configs."""
    with runtime.db.read() as conn:
        rows = pipelines.versions_page(conn, tenant, name, limit=limit + 1, before=cursor)
    page = rows[:limit]
    items = [PipelineVersionSummary(pipeline=v.pipeline, version=v.version,
                                    config_id=v.config_id, created_at=v.created_at)
             for v in page]
    return PipelineVersionList(items=items,
                               next_cursor=page[-1].version if len(rows) > limit else None)


@router.get("/api/v1/pipelines/{name}/versions/{number}", response_model=PipelineVersionResponse)
def get_version(name: Name, number: Annotated[int, Path(ge=1, le=MAX_VERSION)],
                runtime: RuntimeDep, tenant: TenantDep) -> PipelineVersionResponse:
    """One version of a pipeline, with its config snapshot."""
    with runtime.db.read() as conn:
        version = pipelines.find(conn, tenant, name, number)
    return _version_out(version)


@router.get("/api/v1/configs/{config_id}", response_model=PipelineVersionResponse)
def get_config(config_id: UUID, runtime: RuntimeDep, tenant: TenantDep,
               ) -> PipelineVersionResponse:
    """The pipeline version with this config id, with its config snapshot."""
    with runtime.db.read() as conn:
        version = pipelines.by_config_id(conn, tenant, config_id)
    return _version_out(version)


@router.post("/api/v1/pipelines/{name}/archive", response_model=PipelineSummary)
def archive_pipeline(name: Name, runtime: RuntimeDep, tenant: TenantDep) -> PipelineSummary:
    """Archive a pipeline: it is listed only with include_archived, takes no new versions
    and starts no new executions. Executions already started finish on their version."""
    with runtime.db.write() as conn:
        info = pipelines.archive(conn, tenant, name)
    return _summary(info)
