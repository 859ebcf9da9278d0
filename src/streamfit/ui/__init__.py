"""The dashboard: one page at ``/`` that follows the pipelines live, without reloading.

The page (``static/index.html``) and its script (``static/dashboard.js``, ours) poll the
``/v1`` API every two seconds and draw with plotly.js. plotly.js is served from the installed
``plotly`` Python package (its bundled ``package_data/plotly.min.js``): nothing comes from a
CDN, and no charting code is copied into this repository.

Charts: each model's windowed metric over time, the serving model drawn bold; throughput,
lag per partition and dead letters; per field, its histogram and its quantile bands over time;
anomaly scores of the flagged events with their quantile bands.

The page and its files hold no data; the API calls it makes are checked as any other. Where
reads need a key, open the page as ``/#key=KEY``: the script sends it with each call.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response

__all__ = ["mount_dashboard", "plotly_js"]

_STATIC = resources.files("streamfit.ui").joinpath("static")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def plotly_js() -> Path:
    """The plotly.js bundle that the installed ``plotly`` package ships."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"the plotly package has no bundled plotly.js at {path}")
    return path


def mount_dashboard(app: FastAPI) -> None:
    """Add ``/`` (the page) and ``/ui/...`` (its script, style and plotly.js) to ``app``."""
    index = _STATIC.joinpath("index.html").read_text(encoding="utf-8")
    files = {
        name: _STATIC.joinpath(name).read_bytes() for name in ("dashboard.js", "dashboard.css")
    }
    cache = {"Cache-Control": "no-cache"}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(index, headers=cache)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/ui/plotly.min.js", include_in_schema=False)
    def plotly_bundle() -> FileResponse:
        return FileResponse(
            plotly_js(),
            media_type=_TYPES[".js"],
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get("/ui/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        found: Any = files.get(name)
        if found is None:
            raise HTTPException(404, "no such file")
        return Response(found, media_type=_TYPES[Path(name).suffix], headers=cache)
