"""What the e2e conftest and journeys share: the credentials, the server handle, screenshots."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from playwright.sync_api import Page

CHROMIUM = os.environ.get("VERSIONED_ADMIN_CHROMIUM") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "e2e-secret-pw"


@dataclass
class LiveServer:
    """The demo app served on 127.0.0.1 in a thread."""

    url: str
    app: Flask
    backend: str

    def shot(self, page: Page, name: str) -> Path:
        """Save a full-page screenshot as test-artifacts/screenshots/<name>.png."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        suffix = "" if self.backend == "sqlite" else f"-{self.backend}"
        path = SCREENSHOTS / f"{name}{suffix}.png"
        page.evaluate("window.scrollTo(0, 0)")  # a sticky header would land mid-page otherwise
        page.screenshot(path=str(path), full_page=True)
        return path
