"""The demo page at ``/`` as the server sends it: the page, its CSP, the static files,
and that nothing refers to another origin (Flask test client). The page in a real
browser is tests/system/test_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"


# -- the page as the server sends it (Flask test client) ------------------------------------


def test_page_is_served_with_a_strict_csp(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    for hook in ("canvas", "clear", "file-input", "prediction", "probabilities"):
        assert f'data-testid="{hook}"' in html
    csp = dict(part.strip().split(" ", 1) for part in r.headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert "data:" in csp["img-src"]
    assert "unsafe" not in r.headers["Content-Security-Policy"]
    # No inline script, style or event handler: the CSP would block them.
    assert not re.search(r"<script(?![^>]*\ssrc=)|<style|\sstyle=|\son[a-z]+=", html, re.I)
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_every_asset_the_page_links_is_served_and_cacheable(client):
    html = client.get("/").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert {a.split("?")[0] for a in assets} >= {"/static/app.js", "/static/app.css", "/static/favicon.svg"}
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for url in assets:
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.mimetype == types[Path(url.split("?")[0]).suffix], url
        assert "?v=" in url and "immutable" in r.headers["Cache-Control"], url
    # Without the current content hash, a static file is revalidated rather than kept.
    r = client.get("/static/app.js")
    assert r.status_code == 200 and "no-cache" in r.headers["Cache-Control"] and r.headers["ETag"]
    assert "immutable" not in client.get("/static/app.js?v=stale").headers["Cache-Control"]


def test_page_and_assets_refer_to_no_other_origin():
    files = [*sorted((SERVICE / "templates").rglob("*.html")), *sorted((SERVICE / "static").rglob("*.*"))]
    assert len(files) >= 4
    for path in files:
        text = path.read_text()
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a namespace name, never fetched
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), path
        assert "@import" not in text and "@font-face" not in text, path
