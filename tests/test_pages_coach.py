"""The coach's inbox page in Chromium: sign in, resolve a name, confirm its draft.

The acceptance story end to end: a note mentions an ambiguous name; the coach
resolves it in the inbox; the claim's draft appears; the coach confirms it; the
insight exists; the events stand in the artifact's timeline in order; the
coach's next note with that name resolves by itself (use count 2) and another
coach's does not. Then the access rules of the page over plain HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conftest import BrowserSession, LiveServer
from pipeline_helpers import make_pipeline
from test_decisions import EXTRA_ROSTER, SEAN_KELLY
from voicewatch import event_queries
from voicewatch.coaching.people import add_coach, set_coach_login
from voicewatch.pipeline import clubs
from voicewatch.pipeline import repository as repo
from voicewatch.pipeline.intake import submit_note
from voicewatch.store import read_connection
from voicewatch.store.tables import coach_player_aliases, voice_note_insights

COACH_EMAIL = "jim@clonmore.test"
COACH_PASSWORD = "hurling is life 2026"


@pytest.fixture
def story(sqlite_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    ctx, driver = make_pipeline(sqlite_url)
    clubs.import_roster(ctx.engine, "org_clg", EXTRA_ROSTER)
    add_coach(ctx.engine, "coach_1", "org_clg", "Jim Murphy")
    add_coach(ctx.engine, "coach_2", "org_clg", "Siobhán Walsh")
    set_coach_login(ctx.engine, "coach_1", COACH_EMAIL, COACH_PASSWORD)
    server = LiveServer(sqlite_url, queue_url=f"sqlite:///{tmp_path / 'queue.db'}")
    yield {"ctx": ctx, "driver": driver, "server": server}
    server.stop()
    ctx.monitor.close()


def _note(story: dict[str, Any], text: str, coach: str = "coach_1") -> str:
    artifact = submit_note(story["ctx"], organization_id="org_clg", coach_user_id=coach, text=text)
    story["driver"].drain()
    return str(artifact["artifact_id"])


def test_the_story_in_the_inbox(browser: object, story: dict[str, Any], tmp_path: Path) -> None:
    server: LiveServer = story["server"]
    first = _note(story, "Sean was brilliant on the frees tonight.")
    session = BrowserSession(browser, server)
    try:
        session.login(COACH_EMAIL, COACH_PASSWORD)
        page: Any = session.page
        assert page.url.endswith("/inbox")
        item = page.locator("[data-resolution-id]")
        assert item.count() == 1
        assert item.locator(".raw-name").inner_text() == "Sean"
        assert item.locator(".claim-text").inner_text() == "Sean was brilliant on the frees tonight"
        assert page.locator("#pending-drafts [data-draft-id]").count() == 0
        page.screenshot(path=str(tmp_path / "inbox.png"))  # docs/screenshots/inbox.png
        item.locator("select[name=entity_id]").select_option(SEAN_KELLY)
        item.locator("button[type=submit]").click()
        page.wait_for_load_state()
        assert page.locator("[data-resolution-id]").count() == 0
        draft = page.locator("#pending-drafts [data-draft-id]")
        assert draft.count() == 1
        assert "Sean Kelly" in draft.locator(".draft-title").inner_text()
        draft.locator("textarea[name=text]").fill("Sean Kelly: frees <script>x</script>")
        draft.get_by_role("button", name="Confirm").click()
        page.wait_for_load_state()
        assert page.locator("#pending-drafts [data-draft-id]").count() == 0
        assert session.console_errors == []
    finally:
        session.close()
    with read_connection(server.engine) as conn:
        insight = conn.execute(select(voice_note_insights)).one()
    assert insight.player_id == SEAN_KELLY
    assert insight.body == "Sean Kelly: frees <script>x</script>"
    server.app.state.pipeline.monitor.flush(timeout=10)
    timeline = event_queries.artifact_timeline(server.engine, first)
    types = [e["event_type"] for e in timeline]
    # the claim's own draft events (ids ``….claim.…``) come after the name waited, in order
    needs = types.index("entity_needs_disambiguation")
    late = [i for i, e in enumerate(timeline) if ".claim." in e["event_id"]]
    assert [types[i] for i in late] == ["draft_generation_started", "drafts_generated"]
    assert needs < late[0] < late[1] < types.index("draft_confirmed")
    assert types.count("draft_confirmed") == 1 and types[-1] == "draft_confirmed"
    assert timeline[-1]["pipeline_stage"] == "confirmation"

    second = _note(story, "Sean was sharp at training.")
    assert repo.resolutions_of(server.engine, second)[0]["resolved_entity_id"] == SEAN_KELLY
    with read_connection(server.engine) as conn:
        uses = conn.execute(
            select(coach_player_aliases.c.use_count).where(
                coach_player_aliases.c.coach_user_id == "coach_1",
                coach_player_aliases.c.raw_text == "sean",
            )
        ).scalar_one()
    assert uses == 2
    other = _note(story, "Sean was sharp at training.", coach="coach_2")
    assert repo.resolutions_of(server.engine, other)[0]["status"] == "needs_disambiguation"


def _coach_client(server: LiveServer) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=server.url, timeout=20)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    form = {"email": COACH_EMAIL, "password": COACH_PASSWORD, "csrf_token": token[1]}
    signed = client.post("/login", data=form)
    assert signed.status_code == 303 and signed.headers["location"] == "/inbox"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/inbox").text)
    assert csrf is not None
    return client, csrf[1]


def test_the_inbox_for_every_role(story: dict[str, Any]) -> None:
    server: LiveServer = story["server"]
    mine = _note(story, "Aoife Kelly was brilliant on the frees.")
    theirs = _note(story, "Jack Walsh was tired.", coach="coach_2")
    my_draft = repo.drafts_of(server.engine, mine)[0]["draft_id"]
    their_draft = repo.drafts_of(server.engine, theirs)[0]["draft_id"]
    with httpx.Client(base_url=server.url, timeout=20) as anonymous:
        assert anonymous.get("/inbox").headers["location"] == "/login?next=/inbox"
    html = {"Accept": "text/html"}
    ingest = httpx.get(
        f"{server.url}/inbox", headers={**html, **server.headers(server.ingest_token)}
    )
    assert ingest.status_code == 403
    staff = httpx.get(f"{server.url}/inbox", headers={**html, **server.headers()})
    assert staff.status_code == 200
    assert my_draft in staff.text and their_draft in staff.text
    client, csrf = _coach_client(server)
    try:
        page = client.get("/inbox")
        assert my_draft in page.text and their_draft not in page.text
        assert client.get("/artifacts", headers=html).status_code == 403
        assert client.get("/api/v1/events").status_code == 403
        no_csrf = client.post(f"/inbox/drafts/{my_draft}/confirm", data={"text": "x"})
        assert no_csrf.status_code == 403
        other = client.post(f"/inbox/drafts/{their_draft}/reject", data={"csrf_token": csrf})
        assert other.status_code == 404 and f"no draft {their_draft}" in other.text
        ok = client.post(f"/inbox/drafts/{my_draft}/reject", data={"csrf_token": csrf})
        assert ok.status_code == 303
        twice = client.post(f"/inbox/drafts/{my_draft}/reject", data={"csrf_token": csrf})
        assert twice.status_code == 409 and "already decided" in twice.text
        api = client.get("/api/v1/coach/drafts").json()["items"]  # the session reaches the API
        assert api == []
    finally:
        client.close()


def test_staff_see_the_queue_and_each_drafts_decision(
    browser: object, story: dict[str, Any], tmp_path: Path
) -> None:
    from voicewatch.pipeline.decisions import Actor, confirm_draft

    server: LiveServer = story["server"]
    _note(story, "Sean was brilliant on the frees tonight.")
    _note(story, "Zebedee Quartermaine hurt his knee.", coach="coach_2")
    decided = _note(story, "Aoife Kelly was brilliant on the frees.")
    draft = repo.drafts_of(server.engine, decided)[0]
    confirm_draft(
        story["ctx"], draft["draft_id"], Actor.staff("ops@club.test"), text="<i>Well</i> done"
    )
    session = BrowserSession(browser, server)
    try:
        session.login()
        page: Any = session.page
        session.goto("/")
        page.click("#disambiguation-link")
        page.wait_for_load_state()
        assert page.url.endswith("/disambiguation")
        rows = page.locator("#disambiguation-queue tr[data-resolution-id]")
        assert rows.count() == 2
        first = rows.nth(0).inner_text()
        assert "Clonmore GAA" in first and "J. Murphy" in first and "Sean Kelly" in first
        assert "not on the roster?" in rows.nth(1).inner_text()
        page.screenshot(path=str(tmp_path / "disambiguation.png"))
        session.goto(f"/artifacts/{decided}")
        decision = page.locator(".draft-decision").first.inner_text()
        assert "confirmed by ops@club.test for Jim Murphy" in decision
        acted_for = page.locator(".draft-decision .decision-coach").first
        assert acted_for.get_attribute("title") == "coach_1"  # the id on hover
        insight = page.locator(".draft-insight").first
        assert insight.inner_text().endswith("<i>Well</i> done")  # shown as text
        assert insight.locator("i").count() == 0
        assert session.console_errors == []
    finally:
        session.close()


def test_undo_an_auto_applied_insight_in_the_inbox(browser: object, story: dict[str, Any]) -> None:
    """Undo within the window puts the draft back among those to confirm; once the window
    has closed the button is gone, and a stale page's undo is a 409 that says when it closed."""
    from sqlalchemy import update

    from voicewatch.clock import now_ms
    from voicewatch.pipeline.autoapply import set_threshold
    from voicewatch.store import write_transaction
    from voicewatch.store.tables import insight_drafts

    server: LiveServer = story["server"]
    with write_transaction(server.engine) as conn:
        set_threshold(conn, "coach_1", "org_clg", 0.05, now_ms())
    note = _note(story, "Aoife Kelly was brilliant on the frees. Jack Walsh was tired.")
    first, second = repo.drafts_of(server.engine, note)
    assert (first["status"], second["status"]) == ("applied", "applied")
    window_ms = server.settings.undo_window_minutes * 60_000
    session = BrowserSession(browser, server)
    try:
        session.login(COACH_EMAIL, COACH_PASSWORD)
        page: Any = session.page
        applied = page.locator("#auto-applied [data-applied-draft-id]")
        assert applied.count() == 2
        assert page.locator("#pending-drafts [data-draft-id]").count() == 0
        mine = page.locator(f'[data-applied-draft-id="{first["draft_id"]}"]')
        assert mine.locator("input[name=csrf_token]").count() == 1
        mine.get_by_role("button", name="Undo").click()
        page.wait_for_load_state()
        assert page.locator("#auto-applied [data-applied-draft-id]").count() == 1
        back = page.locator("#pending-drafts [data-draft-id]")
        assert back.count() == 1 and back.get_attribute("data-draft-id") == first["draft_id"]
        # The window of the other one closes while the page is open: its button is stale.
        with write_transaction(server.engine) as conn:
            conn.execute(
                update(voice_note_insights)
                .where(voice_note_insights.c.draft_id == second["draft_id"])
                .values(applied_at=now_ms() - window_ms - 1000)
            )
        page.locator(f'[data-applied-draft-id="{second["draft_id"]}"]').get_by_role(
            "button", name="Undo"
        ).click()
        page.wait_for_load_state()
        error = page.locator("#inbox-error").inner_text()
        assert f"the undo window of draft {second['draft_id']} closed at" in error
        assert "the insight stays applied" in error
        assert page.locator("#auto-applied [data-applied-draft-id]").count() == 0  # gone now
        session.goto("/inbox")
        assert page.locator("#auto-applied [data-applied-draft-id]").count() == 0
        refusal = "the server responded with a status of 409 (Conflict)"  # the stale undo's
        assert [e for e in session.console_errors if refusal not in e] == []
    finally:
        session.close()
    with read_connection(server.engine) as conn:
        statuses = {
            r.draft_id: r.status
            for r in conn.execute(select(insight_drafts.c.draft_id, insight_drafts.c.status))
        }
        insights = conn.execute(select(voice_note_insights)).all()
    assert statuses == {first["draft_id"]: "pending", second["draft_id"]: "applied"}
    assert [(i.draft_id, i.undone_by) for i in insights if i.undone_at] == [
        (first["draft_id"], "coach_1")
    ]
    client, _csrf = _coach_client(server)
    try:  # the undo carries the session's CSRF token like every other change
        refused = client.post(f"/inbox/drafts/{second['draft_id']}/undo", data={})
        assert refused.status_code == 403
    finally:
        client.close()


def test_the_queue_by_organization_with_thresholds_and_their_history(
    story: dict[str, Any],
) -> None:
    """Staff see the coaches' current thresholds and each calibration change with its
    figures, and may narrow the queue to one organization; the coach sees a name on
    nobody flagged "not on the roster?" in the inbox."""
    from test_autoapply import SETTINGS, _decide
    from voicewatch.coaching.jobs import calibration_job, calibration_key

    server: LiveServer = story["server"]
    clubs.upsert_organization(server.engine, "org_bb", "Bantry Blues")
    add_coach(server.engine, "coach_bb", "org_bb", "Órla Keane")
    _note(story, "Zebedee Quartermaine hurt his knee.")
    _note(story, "Sean was brilliant on the frees tonight.", coach="coach_2")
    artifact = submit_note(
        story["ctx"], organization_id="org_bb", coach_user_id="coach_bb", text="Fiachra was ill."
    )
    story["driver"].drain()
    (fiachra,) = repo.resolutions_of(server.engine, artifact["artifact_id"])
    assert (fiachra["status"], fiachra["resolved_by"]) == ("unresolved", None)  # waits
    day = 1_796_083_200_000
    _decide(server.engine, "coach_1", day - 86_400_000, [(0.92, "confirmed")] * 10)
    (change,) = calibration_job(server.engine, SETTINGS, day + 2 * 3_600_000)
    assert change["threshold"] == 0.9
    html = {"Accept": "text/html", **server.headers()}
    page = httpx.get(f"{server.url}/disambiguation", headers=html).text
    rows = re.findall(r'<tr data-resolution-id="[^"]+">(.*?)</tr>', page, re.S)
    assert [re.search(r"<strong>(.*?)</strong>", r)[1] for r in rows] == [  # type: ignore[index]
        "Fiachra",  # Bantry Blues before Clonmore GAA; then by coach
        "Zebedee Quartermaine",
        "Sean",
    ]
    thresholds = page[page.index('id="thresholds"') : page.index('id="threshold-changes"')]
    assert re.search(r'title="coach_1">J\. Murphy</td><td class="num">0\.90</td>', thresholds)
    changes = page[page.index('id="threshold-changes"') :]
    assert re.search(
        f'<td class="mono">{calibration_key(day + 2 * 3_600_000)}</td>'
        r'<td title="coach_1">J\. Murphy</td>'
        r'<td class="num">—</td><td class="num">0\.90</td><td class="small">0\.90: 10/10</td>',
        changes,
    ), changes
    one = httpx.get(f"{server.url}/disambiguation?organization_id=org_bb", headers=html).text
    assert one.count("<tr data-resolution-id=") == 1 and "Fiachra" in one
    client, _csrf = _coach_client(server)
    try:
        inbox = client.get("/inbox").text
    finally:
        client.close()
    (item,) = re.findall(r'<article class="card inbox-item" data-resolution-id=.*?</article>',
                         inbox, re.S)  # fmt: skip
    assert "Zebedee Quartermaine" in item and "not on the roster?" in item


HOSTILE_EDIT = '<script>window.__pwned = 1</script>Sean & "Kelly" {{7*7}}'
HOSTILE_REASON = '<img src=x onerror="window.__pwned = 2"> it\'s wrong</q><b>'


def test_hostile_edits_and_reasons_typed_in_the_inbox_are_stored_exactly_and_inert(
    browser: object, story: dict[str, Any]
) -> None:
    """What a coach types into the inbox's forms is stored byte for byte and shown as
    text on the artifact detail: no element made, no script run."""
    server: LiveServer = story["server"]
    note = _note(story, "Aoife Kelly was brilliant on the frees. Jack Walsh was tired.")
    first, second = (d["draft_id"] for d in repo.drafts_of(server.engine, note))
    session = BrowserSession(browser, server)
    try:
        session.login(COACH_EMAIL, COACH_PASSWORD)
        page: Any = session.page
        one = page.locator(f'#pending-drafts [data-draft-id="{first}"]')
        one.locator("textarea[name=text]").fill(HOSTILE_EDIT)
        one.get_by_role("button", name="Confirm").click()
        page.wait_for_load_state()
        other = page.locator(f'#pending-drafts [data-draft-id="{second}"]')
        other.locator("input[name=reason]").fill(HOSTILE_REASON)
        other.get_by_role("button", name="Reject").click()
        page.wait_for_load_state()
        assert page.locator("#pending-drafts [data-draft-id]").count() == 0
    finally:
        session.close()
    with read_connection(server.engine) as conn:
        assert conn.execute(select(voice_note_insights.c.body)).scalar_one() == HOSTILE_EDIT
    staff = BrowserSession(browser, server)
    try:
        staff.login()
        staff.goto(f"/artifacts/{note}")
        page = staff.page
        assert page.locator(".draft-insight").first.inner_text().endswith(HOSTILE_EDIT)
        reasons = page.locator(".draft-decision q").all_inner_texts()
        assert HOSTILE_REASON in reasons
        made = ".draft-decision img, .draft-decision b, .draft-insight script"
        assert page.locator(made).count() == 0
        assert page.evaluate("window.__pwned") is None
        assert staff.console_errors == []
    finally:
        staff.close()
