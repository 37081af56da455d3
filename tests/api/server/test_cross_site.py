"""Other web pages cannot use the server through the user's browser; programs and the page can.

The requests as a browser sends them, its `Origin`, `Sec-Fetch-Site` and `Host` headers
written out; test_cross_site_browser.py does the same in the real Chromium.
"""

import httpx
import pytest

from api.server.origin import allowed_hosts
from api.service import Settings
from tests.api.server.live import live_server

NOTE = "# Supplies\n\nThe store holds lamp oil and wicks for the Vellmar lighthouse.\n"
PLANTED = "The lens of the Vellmar lighthouse is never cleaned."
QUESTION = {"question": "What does the store hold?"}
UPLOAD = {"files": ("planted.md", PLANTED.encode(), "text/markdown")}


@pytest.fixture
def noted(settings: Settings) -> Settings:
    """An inbox with one note, ingested by the server's start-up scan."""
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "notes.md").write_text(NOTE)
    return settings


def _reason(response: httpx.Response) -> str:
    reason: str = response.json()["reason"]
    return reason


# --- Changes from another page: 403


def test_an_upload_from_another_page_is_refused(noted: Settings) -> None:
    with live_server(noted) as live:
        other = live.url.rsplit(":", 1)[0] + ":9"  # the same machine, another port
        refused = live.http.post("/documents", files=UPLOAD, headers={"Origin": other})
        assert refused.status_code == 403 and _reason(refused) == "cross-origin"
        assert "Archivist's own page" in refused.json()["detail"]
        assert not (noted.inbox / "planted.md").exists()


def test_a_delete_marked_cross_site_is_refused(noted: Settings) -> None:
    with live_server(noted) as live:
        (document,) = live.http.get("/documents").json()["documents"]
        refused = live.http.delete(
            f"/documents/{document['id']}", headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert refused.status_code == 403 and _reason(refused) == "cross-origin"
        live.settle()
        assert live.names() == {"notes.md": "ingested"}
        assert (noted.inbox / "notes.md").exists()


def test_a_question_from_another_page_or_a_sandboxed_one_is_refused(noted: Settings) -> None:
    with live_server(noted) as live:
        for origin in ("http://attacker.test", "null"):
            refused = live.http.post("/ask", json=QUESTION, headers={"Origin": origin})
            assert refused.status_code == 403 and _reason(refused) == "cross-origin", origin
        same_site = live.http.post("/ask", json=QUESTION, headers={"Sec-Fetch-Site": "same-site"})
        assert same_site.status_code == 403  # another port of the same host is another origin


def test_the_openai_endpoint_refuses_other_pages_in_its_own_error_shape(noted: Settings) -> None:
    body = {"model": "archivist", "messages": [{"role": "user", "content": "What is stored?"}]}
    with live_server(noted) as live:
        refused = live.http.post(
            "/v1/chat/completions", json=body, headers={"Origin": "http://attacker.test"}
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "cross-origin"
        assert live.http.post("/v1/chat/completions", json=body).status_code == 200


def test_programs_and_the_servers_own_page_still_make_changes(noted: Settings) -> None:
    with live_server(noted) as live:
        port = live.url.rsplit(":", 1)[1]
        own_page = {"Origin": live.url, "Sec-Fetch-Site": "same-origin"}
        uploaded = live.http.post("/documents", files=UPLOAD, headers=own_page)
        assert uploaded.status_code == 202, uploaded.text
        assert live.http.post("/ask", json=QUESTION).status_code == 200  # curl, scripts
        by_name = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
        assert live.http.post("/ask", json=QUESTION, headers=by_name).status_code == 200
        # Reading needs no check: a browser keeps a cross-origin answer from its page.
        listed = live.http.get("/documents", headers={"Sec-Fetch-Site": "cross-site"})
        assert listed.status_code == 200
        live.settle()
        assert (noted.inbox / "planted.md").exists()


# --- Requests to another name (DNS rebinding): 400


def test_a_request_to_another_name_is_refused(noted: Settings) -> None:
    with live_server(noted) as live:
        port = live.url.rsplit(":", 1)[1]
        rebound = {"Host": f"attacker.test:{port}"}
        for method, path in [("GET", "/"), ("GET", "/documents"), ("POST", "/ask")]:
            refused = live.http.request(method, path, json=QUESTION, headers=rebound)
            assert refused.status_code == 400 and _reason(refused) == "unknown-host", path
            assert "ARCHIVIST_ALLOWED_HOSTS" in refused.json()["detail"]
            assert f"http://localhost:{port}/" in refused.json()["detail"]
            assert "lamp oil" not in refused.text


def test_loopback_names_and_addresses_are_answered(noted: Settings) -> None:
    with live_server(noted) as live:
        port = live.url.rsplit(":", 1)[1]
        addresses = [f"127.0.0.1:{port}", f"[::1]:{port}", f"192.168.1.5:{port}"]
        for host in [f"localhost:{port}", "LOCALHOST.", *addresses]:  # an address is never rebound
            answered = live.http.get("/documents", headers={"Host": host})
            assert answered.status_code == 200, host


def test_allowed_hosts_adds_names(noted: Settings) -> None:
    settings = noted.model_copy(update={"allowed_hosts": ["archivist.lan"]})
    with live_server(settings) as live:
        port = live.url.rsplit(":", 1)[1]
        named = live.http.get("/documents", headers={"Host": f"archivist.lan:{port}"})
        assert named.status_code == 200
        other = live.http.get("/documents", headers={"Host": f"attacker.test:{port}"})
        assert other.status_code == 400


def test_with_an_api_key_any_name_reaches_the_key_check(noted: Settings) -> None:
    settings = noted.model_copy(update={"api_key": "s3cret"})
    with live_server(settings) as live:
        rebound = {"Host": "attacker.test"}
        assert live.http.get("/documents", headers=rebound).status_code == 401
        keyed = rebound | {"Authorization": "Bearer s3cret"}
        assert live.http.get("/documents", headers=keyed).status_code == 200


def test_the_names_a_server_answers_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVIST_ALLOWED_HOSTS", " Archivist.LAN:8000, nas.local. ,")
    assert Settings().allowed_hosts == ["archivist.lan", "nas.local"]
    assert allowed_hosts(Settings(host="0.0.0.0")) == {"archivist.lan", "nas.local"}
    assert allowed_hosts(Settings(host="nas")) == {"archivist.lan", "nas.local", "nas"}
    assert allowed_hosts(Settings(allowed_hosts=[])) == {"127.0.0.1"}
    assert allowed_hosts(Settings(allowed_hosts=["*"])) is None
    assert allowed_hosts(Settings(allowed_hosts=[], api_key="k")) is None
    assert allowed_hosts(Settings(api_key="k")) == {"archivist.lan", "nas.local", "127.0.0.1"}
