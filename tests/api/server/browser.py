"""Headless Chromium from the Debian packages, driven by chromedriver, for the page's tests."""

import os
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def chromium(scratch: Path, *arguments: str) -> WebDriver:
    """Headless Chromium with these extra command-line `arguments`, its temporary files under
    `scratch`; fails (not skips) when the Debian packages are missing.

    Chromium leaves a folder holding its singleton socket in the temporary folder even after
    `quit()` (two a test run in /tmp, found after many runs); TMPDIR puts it under `scratch`."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: `make test` installs the Debian packages "
            "chromium and chromium-driver (apt-get install chromium chromium-driver)",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,900", *arguments):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(str(CHROMEDRIVER), env={**os.environ, "TMPDIR": str(scratch)})
    return webdriver.Chrome(service=service, options=options)
