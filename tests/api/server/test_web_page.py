"""The web page in headless Chromium against the live app and the real embedded model."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from api.server.app import create_app
from api.service import Settings
from tests.api.server.browser import chromium
from tests.llm_servers import serve_app

NAME = "vellmar-lighthouse.md"
DOCUMENT = """# The Vellmar lighthouse

The Vellmar lighthouse stands on the northern cape of the island. Its light can be seen
twenty miles out to sea on a clear night, and ships use it to find the harbour entrance.

The Vellmar lighthouse lens is cleaned every 14 days by the keeper. The keeper uses a soft
cloth and distilled water, and writes the date of each cleaning in the logbook.

The fog horn is sounded whenever the far buoy cannot be seen from the gallery. It was
replaced in 1998 by an electric horn that the keeper tests every Sunday at noon.
"""


@dataclass
class Page:
    """The browser showing the live app."""

    driver: WebDriver

    def wait(self, timeout: float = 60) -> WebDriverWait[WebDriver]:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2)

    def rows(self) -> dict[str, str]:
        """Status by name of the documents table's rows (read at once: the page redraws it)."""
        rows: dict[str, str] = self.driver.execute_script(
            "return Object.fromEntries([...document.querySelectorAll('#documents-table "
            "tr.document')].map((row) => [row.dataset.name, row.dataset.status]))"
        )
        return rows

    def searchable(self, name: str) -> bool:
        """The document's row says ingested and the page reports no work left (indexing)."""
        progress = self.driver.execute_script(
            "return document.getElementById('ingest-progress').textContent"
        )
        return self.rows().get(name) == "ingested" and not progress

    def severe_console_errors(self) -> list[dict[str, Any]]:
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Page]:
    """The page of a live app, with the document uploaded through it and ingested."""
    root = tmp_path_factory.mktemp("web")
    settings = Settings(
        data=root / "data", workers=2, convert_timeout_s=30, llm="llamacpp",
        model_dir=model_dir, watch_settle_s=0.3, llm_context_tokens=2048,
        temperature=0, seed=0, answer_tokens=48,
    )  # fmt: skip
    document = root / NAME  # outside the inbox: the page's upload puts it there
    document.write_text(DOCUMENT)
    driver = chromium(root)
    try:
        with serve_app(create_app(settings)) as url:
            opened = Page(driver)
            driver.get(url)
            driver.find_element(By.ID, "tab-documents").click()
            driver.find_element(By.ID, "upload-input").send_keys(str(document))
            opened.wait(120).until(lambda _: opened.searchable(NAME))
            yield opened
    finally:
        driver.quit()


def test_asking_streams_the_answer_and_cites_the_uploaded_file(page: Page, tmp_path: Path) -> None:
    driver = page.driver
    driver.find_element(By.ID, "tab-ask").click()
    question = driver.find_element(By.ID, "question")
    question.send_keys("How often is the Vellmar lighthouse lens cleaned?", Keys.ENTER)
    page.wait(120).until(
        lambda _: driver.find_elements(By.CSS_SELECTOR, '.turn[aria-busy="false"]')
    )

    turn = driver.find_element(By.CSS_SELECTOR, ".turn")
    events = driver.execute_script("return window.archivistEvents")
    tokens = [event for event in events if event["type"] == "token"]
    assert [event["type"] for event in events][-2:] == ["citations", "done"], turn.text
    # The answer grew on screen as the checked sentences arrived (a short answer is one piece:
    # the service shows a sentence once it has passed the answer checks).
    lengths = [event["length"] for event in tokens]
    assert tokens and lengths == sorted(set(lengths)) and lengths[0] > 0, events

    assert turn.find_element(By.CSS_SELECTOR, ".answer").text.strip()
    assert "failed" not in (turn.get_attribute("class") or "")
    assert "backend llamacpp" in turn.find_element(By.CSS_SELECTOR, ".timings").text
    chips = turn.find_elements(By.CSS_SELECTOR, ".citation")
    cited = [chip for chip in chips if (chip.get_attribute("data-path") or "").endswith(NAME)]
    assert cited, [chip.text for chip in chips]
    assert cited[0].text.startswith("[") and NAME in cited[0].text
    assert "/documents/" in (cited[0].get_attribute("href") or "")
    assert "llamacpp" in driver.find_element(By.ID, "footer").text

    assert page.severe_console_errors() == []
    screenshot = tmp_path / "page.png"
    assert driver.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 0


def test_search_finds_the_file_and_delete_removes_its_row(page: Page) -> None:
    driver = page.driver
    driver.find_element(By.ID, "tab-search").click()
    driver.find_element(By.ID, "search-query").send_keys("lens cleaned every 14 days")
    driver.find_element(By.ID, "search-button").click()
    hits = page.wait().until(lambda _: driver.find_elements(By.CSS_SELECTOR, ".search-hit"))
    assert NAME in hits[0].text
    assert (hits[0].get_attribute("data-path") or "").endswith(NAME)

    driver.find_element(By.ID, "tab-documents").click()
    row = f'#documents-table tr.document[data-name="{NAME}"]'
    driver.find_element(By.CSS_SELECTOR, f"{row} button.delete").click()
    driver.switch_to.alert.accept()
    page.wait().until(lambda _: NAME not in page.rows())
    assert page.severe_console_errors() == []
