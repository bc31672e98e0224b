"""The web UI: static files shipped in the package (no CDN), served under ``/ui/``.

The pages are plain HTML/CSS/JS that call the same JSON API as any client, with the key the
user types in (kept in the browser's localStorage), so the UI has no privileges of its own.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles
from starlette.routing import Mount

STATIC_DIR = Path(__file__).with_name("static")

router = APIRouter()
router.routes.append(Mount("/ui", app=StaticFiles(directory=STATIC_DIR, html=True), name="ui"))
