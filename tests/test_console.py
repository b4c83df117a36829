"""The operators' console (/ui) in a real browser: Debian's chromium driven by Playwright,
against a real app on loopback, real Docker and real LanceDB.

One server for the module: tenants root (admin), alice and bob. Alice has one skill,
`cs-words`: v1 registered by the gate, v2 blocked by its mutation check (vacuous tests),
and a creation's worth of LLM tokens in her ledger (so N* = 3). Bob has `cs-tally`,
blocked by a failing test. Every skill is gated for real.
"""

from __future__ import annotations

import datetime
import html
import json
import os
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from runtime.config import Settings
from runtime.http import create_app
from runtime.tenants import Tenants
from runtime.yard import Yard
from tests.conftest import WHEELHOUSE, write_skill
from tests.helpers import ServerThread, free_port, make_factory

CHROMIUM = os.environ.get("SKILLYARD_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 120_000  # a wait, not a speed claim: gates and cold containers are slow on a busy machine
ALICE, BOB = "cs-words", "cs-tally"
expect.set_options(timeout=WAIT_MS)
MARKUP = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'

WORDS = textwrap.dedent(f"""
    MARKUP = {MARKUP!r}


    def run(params):
        text = params["text"]
        if params.get("mode") == "html":
            return {{"html": MARKUP + text}}
        return {{"words": len(text.split()), "shout": text.upper() + "!"}}
""")
WORDS_TESTS = textwrap.dedent(f"""
    from scripts.main import run


    def test_counts_words_and_shouts():
        assert run({{"text": "a b  c"}}) == {{"words": 3, "shout": "A B  C!"}}
        assert run({{"text": ""}}) == {{"words": 0, "shout": "!"}}


    def test_html_mode_returns_markup_then_the_text():
        assert run({{"text": "hi", "mode": "html"}}) == {{"html": {MARKUP!r} + "hi"}}


    def test_plain_is_the_default_mode():
        plain = {{"words": 2, "shout": "X Y!"}}
        assert run({{"text": "x y", "mode": "plain"}}) == run({{"text": "x y"}}) == plain
""")
# v2 counts characters too, and its tests pass whatever the code does: the mutation check blocks it.
WORDS_V2 = WORDS.replace(
    '"shout": text.upper() + "!"}', '"shout": text.upper() + "!", "chars": len(text) * 1}'
)
WORDS_V2_TESTS = textwrap.dedent("""
    from scripts.main import run


    def test_it_answers():
        assert run({"text": "a"}) is not None
        assert run({"text": "a", "mode": "html"}) is not None
""")
WORDS_SIDECAR = textwrap.dedent("""
    entrypoint: scripts/main.py:run
    input_schema:
      type: object
      required: [text]
      properties:
        text: {type: string, description: "Some words."}
        mode: {enum: [plain, html]}
      additionalProperties: false
    output_schema: {type: object}
    baseline_tokens: 2000
    examples:
      - input: {text: "hello world"}
""")
WORDS_MD = textwrap.dedent(f"""
    ---
    name: {ALICE}
    description: Count the words of a text and shout it back.
    ---
    # {ALICE}
    Use <em>plain</em> mode, or html mode for <script>window.__pwned = 9</script> markup.
""").lstrip()
TALLY = "def run(params):\n    return {'n': len(params.get('items', []))}\n"
TALLY_TESTS = textwrap.dedent("""
    from scripts.main import run


    def test_tally_counts_items():
        assert run({"items": [1, 2]}) == {"n": 3}, "two items make three"
""")


@dataclass
class Env:
    url: str
    keys: dict[str, str]
    home: Path
    settings: Settings
    tenants: Tenants
    service: object
    alice: Yard
    bob: Yard


@pytest.fixture(scope="module")
def env(tmp_path_factory, backend, runner_image) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("console")
    home = root / "home"
    settings = Settings(
        home=home, wheelhouse=WHEELHOUSE, mutants=6, openai_base_url=None, openai_api_key=None
    )
    tenants = Tenants(home)
    keys = {name: tenants.add_tenant(name, admin=name == "root") for name in ("root", "alice", "bob")}
    app = create_app(settings, yard_factory=make_factory(backend, runner_image))
    with ServerThread(app) as srv:
        service = app.state.skillyard.service
        alice = service.view(tenants.get("alice")).private
        bob = service.view(tenants.get("bob")).private
        v1 = write_skill(
            root / "v1", ALICE, script=WORDS, tests={"test_main.py": WORDS_TESTS}, sidecar=WORDS_SIDECAR
        )
        (v1 / "SKILL.md").write_text(WORDS_MD)
        added = alice.add(v1)
        assert added.status == "registered", added.reasons
        assert WORDS_V2 != WORDS
        v2 = write_skill(
            root / "v2", ALICE, script=WORDS_V2, tests={"test_main.py": WORDS_V2_TESTS}, sidecar=WORDS_SIDECAR
        )
        (v2 / "SKILL.md").write_text(WORDS_MD)
        blocked = alice.add(v2)
        assert blocked.status == "blocked" and blocked.report.mutation.get("survivors"), blocked.reasons
        tally = write_skill(
            root, BOB, script=TALLY, tests={"test_main.py": TALLY_TESTS}, description="Tally a list of items."
        )
        failing = bob.add(tally)
        assert failing.status == "blocked" and failing.report.failures == 1, failing.reasons
        # what creating cs-words cost: 5,000 tokens; a use saves 2,000 less its context (~60): N* = 3
        alice.ledger.record_llm_call(
            skill=ALICE,
            version=1,
            purpose="create",
            model="test-model",
            prompt_tokens=4000,
            completion_tokens=1000,
            cached_tokens=0,
            tiktoken_prompt_tokens=4000,
            cost_usd=0.01,
            latency_ms=900.0,
            outcome="ok",
        )
        yield Env(srv.url, keys, home, settings, tenants, service, alice, bob)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        f"no chromium at {CHROMIUM}: `make test` installs Debian's chromium (scripts/ensure-browser.sh); "
        "or point SKILLYARD_CHROMIUM at one"
    )
    with sync_playwright() as pw:
        # launch() gives every browser a fresh profile (user-data-dir) of its own
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def contexts(browser) -> Iterator[list[BrowserContext]]:
    """Browser contexts a test opens (each its own cookies and storage), closed after it."""
    made: list[BrowserContext] = []
    yield made
    for context in made:
        context.close()


def new_page(browser: Browser, contexts: list[BrowserContext], **options) -> Page:
    context = browser.new_context(**options)
    context.set_default_timeout(WAIT_MS)
    contexts.append(context)
    return context.new_page()


def sign_in(page: Page, url: str, key: str) -> None:
    """Sign in through the form, as a person does."""
    page.goto(f"{url}/ui/skills")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.fill("#key", key)
    page.click("form[action='/ui/login'] button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ui/skills$"))


def signed_in(browser: Browser, contexts: list[BrowserContext], env: Env, who: str, **options) -> Page:
    page = new_page(browser, contexts, **options)
    sign_in(page, env.url, env.keys[who])
    return page


def calls_of(env: Env, tenant: str) -> int:
    return len(env.service.audit.query(tenant, event="call"))


def run_form_csrf(page: Page) -> str:
    return page.locator("#run-form input[name=csrf]").get_attribute("value")


# -- the operator's path ---------------------------------------------------------------------------------
def test_operator_signs_in_finds_a_skill_runs_it_and_sees_the_cost(browser, contexts, env):
    page = signed_in(browser, contexts, env, "alice")
    expect(page.locator("#who")).to_have_text("alice")
    # find it with the registry's hybrid search, as you type
    page.fill("input[name=q]", "count the words of a text")
    hit = page.locator(f"#skills-table tr[data-skill='{ALICE}']")
    expect(hit).to_be_visible()
    expect(hit.locator(".tier")).to_have_text("verified")
    hit.locator("a").click()
    expect(page).to_have_url(re.compile(rf"/ui/skills/{ALICE}\?scope=private$"))
    expect(page.locator("#skill-tier")).to_have_text("verified")
    uses_before = int(page.locator("#cost-uses").inner_text().split()[0])
    # the form was generated from the input schema: a text box and a select of the enum
    assert page.locator("textarea[name='in.text']").input_value() == "hello world"  # the skill's example
    assert page.locator("select[name='in.mode'] option").all_inner_texts() == ["—", "plain", "html"]
    page.fill("textarea[name='in.text']", "one two  three")
    page.select_option("select[name='in.mode']", '"plain"')
    page.click("#run-form button[type=submit]")
    output = page.locator("#run-output")
    expect(output).to_be_visible()
    assert json.loads(output.inner_text()) == {"words": 3, "shout": "ONE TWO  THREE!"}
    expect(page.locator("#run-outcome")).to_have_attribute("data-ok", "true")
    # the cost chart, refreshed by the run: N* marked, the use counted
    chart = page.locator("#cost svg.cost-chart")
    expect(chart).to_have_attribute("data-break-even", "N* = 3")
    expect(page.locator("#cost-uses")).to_contain_text(f"{uses_before + 1} (")
    assert page.locator("#cost svg circle.nstar").count() == 1
    # and on the costs page: overall and per skill
    page.click("nav a[href='/ui/costs']")
    overall = page.locator("#overall svg.cost-chart")
    expect(overall).to_have_attribute("aria-label", re.compile(rf"all skills: {uses_before + 1} uses?, "))
    row = page.locator(f"table.costs tr[data-skill='{ALICE}']")
    expect(row).to_contain_text("5k")  # invested
    assert row.locator("td").nth(5).inner_text() == "3"  # N*
    expect(page.locator(f".chart-box[data-skill='{ALICE}'] svg")).to_have_attribute(
        "data-break-even", "N* = 3"
    )


def test_another_tenants_skill_is_refused(browser, contexts, env):
    page = signed_in(browser, contexts, env, "alice")
    refused = page.goto(f"{env.url}/ui/skills/{BOB}")
    assert refused.status == 404
    message = page.locator(".error .message").inner_text()
    assert message == f"no skill {BOB}: see the skills page, /ui/skills"
    assert "Tally a list" not in page.content() and "tally_counts" not in page.content()
    # exactly what a name nobody has gets: nothing says bob's skill exists
    nobody = page.goto(f"{env.url}/ui/skills/cs-nobody")
    assert nobody.status == 404
    assert (
        page.locator(".error .message").inner_text() == "no skill cs-nobody: see the skills page, /ui/skills"
    )
    # neither the list nor the search shows it
    page.goto(f"{env.url}/ui/skills")
    expect(page.locator(f"tr[data-skill='{ALICE}']")).to_be_visible()
    assert page.locator(f"tr[data-skill='{BOB}']").count() == 0
    page.goto(f"{env.url}/ui/skills?q=tally+a+list+of+items")
    assert page.locator(f"tr[data-skill='{BOB}']").count() == 0
    # nor any other way in, even with a valid CSRF token
    page.goto(f"{env.url}/ui/skills/{ALICE}")
    token = run_form_csrf(page)
    for path in (
        f"/ui/skills/{BOB}/files/SKILL.md",
        f"/ui/skills/{BOB}/diff",
        f"/ui/skills/{BOB}?scope=private",
    ):
        assert page.request.get(env.url + path).status == 404, path
    for path in (f"/ui/skills/{BOB}/run", f"/ui/skills/{BOB}/test"):
        assert page.request.post(env.url + path, form={"csrf": token, "in.items": "[]"}).status == 404, path
    # positive control: bob sees his own skill
    bob = signed_in(browser, contexts, env, "bob")
    assert bob.goto(f"{env.url}/ui/skills/{BOB}").status == 200
    expect(bob.locator(".desc").first).to_have_text("Tally a list of items.")


# -- security -------------------------------------------------------------------------------------------
def test_the_key_never_reaches_browser_storage_and_the_cookie_is_strict(browser, contexts, env):
    page = signed_in(browser, contexts, env, "alice")
    key = env.keys["alice"]
    # walk the console: pages, an htmx search, a run through htmx
    page.fill("input[name=q]", "words")
    expect(page.locator(f"tr[data-skill='{ALICE}']")).to_be_visible()
    response = page.goto(f"{env.url}/ui/skills/{ALICE}")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.click("#run-form button[type=submit]")
    expect(page.locator("#run-output")).to_be_visible()
    for where in ("/ui/costs", "/ui/audit", "/ui/jobs"):
        page.goto(env.url + where)
        assert key not in page.content() and key.split("_", 2)[2] not in page.content()
    local, session_storage = page.evaluate(
        "() => [Object.entries(localStorage), Object.entries(sessionStorage)]"
    )
    stored = json.dumps([local, session_storage])
    assert key not in stored and key.split("_", 2)[2] not in stored, stored
    assert local == [], local  # no page snapshots either (htmx's history cache is off)
    # the one thing htmx keeps, whatever its settings: the path it is at
    assert session_storage == [["htmx-current-path-for-history", "/ui/jobs"]], session_storage
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly: no script can read the session
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert set(cookies) == {"sy_console"}, cookies  # the sign-in form's cookie is gone
    session = cookies["sy_console"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/ui"
    assert session["secure"] is False  # plain http on loopback: a Secure cookie would never come back
    assert key not in session["value"] and key.split("_", 2)[2] not in session["value"]


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_the_cookies_are_secure_over_tls(browser, contexts, env, backend, runner_image, tmp_path):
    cert, key = _self_signed(tmp_path)
    app = create_app(env.settings, yard_factory=make_factory(backend, runner_image))
    with ServerThread(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as srv:
        assert srv.url.startswith("https://")
        page = new_page(browser, contexts, ignore_https_errors=True)
        page.goto(f"{srv.url}/ui/login")
        login = {c["name"]: c for c in page.context.cookies()}["sy_console_login"]
        assert login["secure"] and login["httpOnly"] and login["sameSite"] == "Strict"
        sign_in(page, srv.url, env.keys["alice"])
        session = {c["name"]: c for c in page.context.cookies()}["sy_console"]
        assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
        expect(page.locator(f"tr[data-skill='{ALICE}']")).to_be_visible()


def test_state_changing_requests_need_the_sessions_csrf_token(browser, contexts, env):
    page = signed_in(browser, contexts, env, "alice")
    page.goto(f"{env.url}/ui/skills/{ALICE}")
    run_url = f"{env.url}/ui/skills/{ALICE}/run"
    token = run_form_csrf(page)
    other = signed_in(browser, contexts, env, "bob")
    bobs_token = other.locator("form.who input[name=csrf]").get_attribute("value")
    before = calls_of(env, "alice")
    refused = [
        {"in.text": "x"},  # no token
        {"in.text": "x", "csrf": ""},
        {"in.text": "x", "csrf": token[:-4] + "AAAA"},  # a wrong one
        {"in.text": "x", "csrf": bobs_token},  # another session's
    ]
    for form in refused:
        answer = page.request.post(run_url, form=form)
        assert answer.status == 403, (form, answer.status)
        assert "did not come from this console" in answer.text()
    # the right token from another origin is refused too
    assert (
        page.request.post(
            run_url, form={"in.text": "x", "csrf": token}, headers={"Origin": "http://evil.test"}
        ).status
        == 403
    )
    # sign-out is state-changing too: without the token the session lives on
    assert page.request.post(f"{env.url}/ui/logout", form={}).status == 403
    assert page.goto(f"{env.url}/ui/skills").url.endswith("/ui/skills")

    def auto_post(body_fields: str) -> str:
        return (
            f'<form id="f" method="post" action="{run_url}">{body_fields}</form>'
            '<script>document.getElementById("f").submit()</script>'
        )

    # a page on another site: the browser does not send the SameSite=Strict cookie, so the
    # console sees no session and asks for a sign-in
    page.route(
        "http://evil.test/**",
        lambda route: route.fulfill(
            content_type="text/html", body=auto_post('<input name="in.text" value="from evil">')
        ),
    )
    with page.expect_response(lambda r: r.url == run_url and r.request.method == "POST") as posted:
        page.goto("http://evil.test/")
    assert posted.value.status == 303 and posted.value.headers["location"] == "/ui/login"
    # a page of another origin on the same site gets the cookie sent, and is refused: no token
    same_site = f"http://127.0.0.1:{free_port()}"
    page.route(
        f"{same_site}/**",
        lambda route: route.fulfill(
            content_type="text/html", body=auto_post('<input name="in.text" value="from next door">')
        ),
    )
    with page.expect_response(lambda r: r.url == run_url and r.request.method == "POST") as posted:
        page.goto(f"{same_site}/")
    assert posted.value.status == 403
    # and the sign-in form is bound to its own cookie: a forged sign-in sets no session
    stranger = new_page(browser, contexts)
    forged = stranger.request.post(f"{env.url}/ui/login", form={"key": env.keys["bob"], "next": "/ui/skills"})
    assert forged.status == 403 and not any(c["name"] == "sy_console" for c in stranger.context.cookies())
    # none of it ran anything; the right token does
    assert calls_of(env, "alice") == before
    answer = page.request.post(
        run_url, form={"in.text": "a b", "csrf": token}, headers={"HX-Request": "true"}
    )
    assert answer.status == 200 and '"words": 2' in html.unescape(answer.text())
    assert calls_of(env, "alice") == before + 1


def test_skill_output_and_text_are_escaped_everywhere(browser, contexts, env):
    page = signed_in(browser, contexts, env, "alice")
    page.goto(f"{env.url}/ui/skills/{ALICE}")
    # the instructions hold markup: shown as text
    instructions = page.locator("#instructions pre")
    expect(instructions).to_contain_text("Use <em>plain</em> mode, or html mode for <script>")
    assert page.locator("#instructions em, #instructions script").count() == 0
    # the output holds markup, and so does the input it echoes
    typed = '<img src=x onerror="window.__pwned = 3"> hi'
    page.fill("textarea[name='in.text']", typed)
    page.select_option("select[name='in.mode']", '"html"')
    page.click("#run-form button[type=submit]")
    output = page.locator("#run-output")
    expect(output).to_be_visible()
    assert json.loads(output.inner_text()) == {"html": MARKUP + typed}
    assert page.locator("#run-result script, #run-result img").count() == 0
    # the same output as a job, on the jobs page
    page.check("input[name=async]")
    page.click("#run-form button[type=submit]")
    job_id = page.locator("#run-job").get_attribute("data-job-id")
    page.goto(f"{env.url}/ui/jobs")
    row = page.locator(f"tr[data-job-id='{job_id}']")
    expect(row.locator(".outcome")).to_contain_text("<script>window.__pwned = 1</script>")
    assert page.locator("table.jobs script, table.jobs img").count() == 0
    page.wait_for_timeout(500)  # give any injected handler (an <img> that fails to load) its chance
    assert page.evaluate("() => window.__pwned") is None


def test_form_input_that_cannot_be_read_is_refused_with_what_to_fix(browser, contexts, env):
    page = signed_in(browser, contexts, env, "alice")
    page.goto(f"{env.url}/ui/skills/{ALICE}")
    token, before = run_form_csrf(page), calls_of(env, "alice")
    answer = page.request.post(
        f"{env.url}/ui/skills/{ALICE}/run",
        form={"csrf": token, "in.text": "x", "in.mode": '"shout"'},
        headers={"HX-Request": "true"},
    )
    assert answer.status == 422 and "mode: not one of the choices" in answer.text()
    assert calls_of(env, "alice") == before


# -- the gate report, versions and diffs ------------------------------------------------------------------
def test_gate_report_shows_surviving_mutants_coverage_and_failing_tests(browser, contexts, env):
    page = signed_in(browser, contexts, env, "alice")
    page.goto(f"{env.url}/ui/skills/{ALICE}?version=2")
    expect(page.locator("#skill-tier")).to_have_text("blocked")
    expect(page.locator("#gate-verdict")).to_contain_text("blocked")
    expect(page.locator("#gate-coverage")).to_contain_text("%")
    expect(page.locator("#gate-mutation")).to_contain_text("killed")
    report = env.alice.registry.get(ALICE, 2).gate_report
    expected = {
        f"{m['file']}:{m['line']} {m['before']} -> {m['after']}"
        for m in report["mutation"]["mutants"]
        if m["killed"] is False
    }
    shown = set(page.locator("#survivors li").all_inner_texts())
    assert shown == expected and shown, shown
    assert all(re.fullmatch(r"scripts/main\.py:\d+ .+ -> .+", s) for s in shown)
    assert page.locator("#run-form").count() == 0  # a blocked version does not run
    page.click("#files a:text-is('scripts/main.py')")
    expect(page.locator("#file-text")).to_contain_text('"chars": len(text) * 1')  # v2's file
    expect(page.locator("#file-text")).to_contain_text("<script>window.__pwned = 1</script>")  # as text
    # the versions table, and the diff between them
    page.goto(f"{env.url}/ui/skills/{ALICE}")
    expect(page.locator("#versions tr[data-version='2']")).to_contain_text("blocked")
    page.click("#versions a.diff-link")
    code = page.locator("section.file-diff[data-path='scripts/main.py']")
    expect(code.locator(".add", has_text='"chars": len(text) * 1')).to_have_count(1)
    tests = page.locator("section.file-diff[data-path='tests/test_main.py']")
    expect(tests.locator(".del").first).to_be_visible()
    expect(tests.locator(".add", has_text="def test_it_answers")).to_have_count(1)
    # bob's skill failed a test: its name and message
    bob = signed_in(browser, contexts, env, "bob")
    bob.goto(f"{env.url}/ui/skills/{BOB}")
    expect(bob.locator("#skill-tier")).to_have_text("blocked")
    expect(bob.locator("#failing-tests")).to_contain_text("test_tally_counts_items")
    expect(bob.locator("#failing-tests")).to_contain_text("two items make three")


# -- jobs, audit, sessions ----------------------------------------------------------------------------------
def test_jobs_are_live_over_server_sent_events(browser, contexts, env):
    page = signed_in(browser, contexts, env, "bob")
    page.goto(f"{env.url}/ui/skills/{BOB}")
    page.click("#gate button[type=submit]")  # re-run the gate: a job, and on to the jobs page
    expect(page).to_have_url(re.compile(r"/ui/jobs$"))
    row = page.locator("table.jobs tr[data-job-id]").first
    # these lines come only from the event stream (the page itself never prints events)
    expect(row.locator(".events")).to_contain_text("building image and running the gate")
    expect(row.locator(".events")).to_contain_text("finished: succeeded")
    expect(row.locator(".state")).to_have_text("succeeded")
    expect(row.locator(".outcome")).to_contain_text("blocked")  # the list refreshed itself


def test_audit_is_filterable_and_scoped_to_the_key(browser, contexts, env):
    # an entry each for alice and bob: alice runs her skill, bob tries his blocked one (not registered)
    for who, skill, text in (("alice", ALICE, "x"), ("bob", BOB, "")):
        page = signed_in(browser, contexts, env, who)
        page.goto(f"{env.url}/ui/skills/{skill}")
        token = page.locator("form.who input[name=csrf]").get_attribute("value")
        page.request.post(f"{env.url}/ui/skills/{skill}/run", form={"csrf": token, "in.text": text})
    assert env.service.audit.query("bob", event="call")[-1]["outcome"] == "not_registered"
    root = signed_in(browser, contexts, env, "root")
    root.goto(f"{env.url}/ui/audit")
    rows = root.locator("table.audit tbody tr")
    expect(rows.first).to_be_visible()
    tenants = set(root.locator("table.audit tbody tr td:nth-child(2)").all_inner_texts())
    assert {"alice", "bob"} <= tenants, tenants  # an admin sees every tenant's
    root.fill("input[name=tenant]", "bob")
    root.click("form.filters button[type=submit]")
    expect(root.locator("table.audit tbody tr[data-tenant='alice']")).to_have_count(0)
    expect(root.locator("table.audit tbody tr[data-tenant='bob']").first).to_be_visible()
    assert set(root.locator("table.audit tbody tr td:nth-child(2)").all_inner_texts()) == {"bob"}
    root.select_option("select[name=event]", "call")
    expect(root.locator("table.audit tbody tr[data-event='gate']")).to_have_count(0)
    expect(root.locator("table.audit tbody tr[data-outcome='not_registered']").first).to_be_visible()
    assert set(
        root.locator("table.audit tbody tr").evaluate_all("rows => rows.map(r => r.dataset.event)")
    ) == {"call"}
    # a tenant key sees its own entries only, whatever it asks for
    alice = signed_in(browser, contexts, env, "alice")
    alice.goto(f"{env.url}/ui/audit?tenant=bob")
    assert alice.locator("input[name=tenant]").count() == 0
    shown = set(alice.locator("table.audit tbody tr td:nth-child(2)").all_inner_texts())
    assert shown == {"alice"}, shown
    expect(alice.locator("table.audit tbody tr[data-event='call']").first).to_contain_text("console")


def test_signing_out_or_losing_the_key_ends_the_session(browser, contexts, env):
    page = signed_in(browser, contexts, env, "alice")
    cookie = next(c for c in page.context.cookies() if c["name"] == "sy_console")
    page.click("form.who button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    # the old cookie, replayed, is no session
    replay = new_page(browser, contexts)
    replay.context.add_cookies([cookie])
    replay.goto(f"{env.url}/ui/skills")
    expect(replay).to_have_url(re.compile(r"/ui/login\?next="))
    # after signing in, a browser goes back where it was asked to sign in, never to another site
    for asked, lands in (
        ("/ui/costs", "/ui/costs"),
        ("https://evil.test/", "/ui/skills"),
        ("//evil.test", "/ui/skills"),
    ):
        page.goto(f"{env.url}/ui/login?next={quote(asked, safe='')}")
        page.fill("#key", env.keys["alice"])
        page.click("form[action='/ui/login'] button[type=submit]")
        expect(page).to_have_url(f"{env.url}{lands}")
        page.click("form.who button[type=submit]")
    # a wrong key is told so
    page.fill("#key", env.keys["alice"][:-3] + "xyz")
    page.click("form[action='/ui/login'] button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("not valid")
    # a tenant removed while signed in is signed out on its next request
    carol_key = env.tenants.add_tenant("carol")
    carol = new_page(browser, contexts)
    sign_in(carol, env.url, carol_key)
    env.tenants.remove("carol")
    carol.goto(f"{env.url}/ui/costs")
    expect(carol).to_have_url(re.compile(r"/ui/login\?next="))


def test_the_demo_prints_the_consoles_address(tmp_path, monkeypatch, docker_client):
    from click.testing import CliRunner

    from runtime.cli.serve import DEFAULT_PORT
    from runtime.cli.skills import demo
    from runtime.config import get_settings

    skills = tmp_path / "skills"
    write_skill(
        skills, BOB, script=TALLY, tests={"test_main.py": TALLY_TESTS}
    )  # blocked fast: a failing test
    monkeypatch.setenv("SKILLYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SKILLYARD_WHEELHOUSE", str(WHEELHOUSE))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(demo, [str(skills)], catch_exceptions=False)
    finally:
        get_settings.cache_clear()
    printed = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert f"console: http://127.0.0.1:{DEFAULT_PORT}/ui while `skillyard serve` runs" in printed, printed
    assert "first make a key: `skillyard tenant add ops --admin`" in printed  # this home has no tenant yet
