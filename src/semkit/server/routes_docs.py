"""Interactive API docs (Swagger UI) at ``/docs``, working offline.

FastAPI's own ``/docs`` page loads Swagger UI's script and stylesheet from a CDN, which fails
on a machine without internet (and leaks every docs visit to a third party). Here the assets
come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5, which reads the OpenAPI 3.1
schema FastAPI publishes), served under ``/docs/assets``. Public like ``/openapi.json``: the
page holds no data; calls made from it need a key like any other.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Mount

from .. import errors

ASSETS = "/docs/assets"


def swagger_ui_folder() -> Path | None:
    """Where the installed Swagger UI files are, or ``None`` without the package."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    return Path(str(swagger_ui_path))


router = APIRouter(include_in_schema=False)
_FOLDER = swagger_ui_folder()
if _FOLDER is not None:
    router.routes.append(Mount(ASSETS, app=StaticFiles(directory=_FOLDER), name="swagger-ui"))


@router.get("/docs")
async def docs() -> HTMLResponse:
    if _FOLDER is None:
        raise errors.MissingDependency("swagger-ui-bundle-v2", "server", "The /docs page")
    return get_swagger_ui_html(
        openapi_url="/openapi.json", title="semkit API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
    )
