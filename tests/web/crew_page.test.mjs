// The crew's page in Debian's Chromium, driven by playwright-core with node's test runner.
// Run by tests/e2e/test_web_page.sh, which starts real `cmc-agent serve` processes on
// replicas filled by a real sync and passes their addresses and the test data in the
// environment. Tests run in order; each opens a fresh browser context (a fresh cookie jar).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launchChromium } from './browser.mjs';
import { AxeBuilder } from '@axe-core/playwright';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run tests/e2e/test_web_page.sh`);
  return v;
}
const TABLET = env('TABLET_URL');
const LAPTOP = env('LAPTOP_URL');
const STALE = env('STALE_URL');
const IDLE = env('IDLE_URL');
const TABLET_USER = env('TABLET_USER');
const LAPTOP_USER = env('LAPTOP_USER');
const PIN = env('PIN');
const NHS_A = env('NHS_A'); // Margaret Okafor, DNACPR, published
const NHS_B = env('NHS_B'); // Eleanor Whitfield, a draft (the laptop's caseload)
const NHS_D = env('NHS_D'); // Arthur Pennington, FOR CPR, review overdue
const NHS_E = env('NHS_E'); // Doris Achterberg, CPR not yet discussed
const SHOTS = env('SHOTS');
const DOCS = process.env.DOCS;

const TABLET_VIEWPORT = { width: 800, height: 1280 }; // a portrait 10-inch tablet
const PATIENT_WORDS = [NHS_A, NHS_B, NHS_D, NHS_E, 'Okafor', 'Whitfield', 'Pennington', 'Achterberg',
  'Margaret', 'SE15', 'SE22', '1938-04-17', '1932-11-30'];
const ALLOWED_ORIGINS = [TABLET, LAPTOP, STALE, IDLE].map((u) => new URL(u).origin);

let browser;
const requested = [];      // every URL any page asked for
const consoleErrors = [];  // e.g. a CSP violation

before(async () => {
  browser = await launchChromium();
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
});

async function open(viewport = TABLET_VIEWPORT) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on('request', (r) => requested.push(r.url()));
  // a CSP violation is reported on the console (error statuses of our own pages are expected)
  page.on('console', (m) => { if (/Content Security Policy|Refused to/.test(m.text())) consoleErrors.push(m.text()); });
  return { context, page };
}

// Clicks something that submits a form; resolves with the final main-document response.
async function submit(page, locator) {
  const [resp] = await Promise.all([page.waitForNavigation(), locator.click()]);
  return resp;
}

async function unlock(page, base, user, pin) {
  await page.goto(base + '/');
  await page.getByLabel('User', { exact: true }).fill(user);
  await page.getByLabel('PIN', { exact: true }).fill(pin);
  return submit(page, page.getByRole('button', { name: 'Unlock' }));
}

async function lookup(page, nhs) {
  await page.getByLabel('NHS number (10 digits)').fill(nhs);
  return submit(page, page.getByRole('button', { name: 'Show plan' }));
}

async function h1(page) {
  return (await page.locator('h1').innerText()).trim();
}

async function shot(page, name, docsName) {
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, fullPage: true });
  if (DOCS && docsName) fs.copyFileSync(file, path.join(DOCS, docsName));
}

function assertStrictHeaders(resp) {
  const h = resp.headers();
  assert.equal(h['cache-control'], 'no-store', 'patient pages must be no-store');
  assert.match(h['content-security-policy'], /default-src 'none'/);
  assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
  assert.doesNotMatch(h['content-security-policy'], /script-src|unsafe-inline/);
  assert.equal(h['x-content-type-options'], 'nosniff');
  assert.equal(h['referrer-policy'], 'same-origin');
}

test('the unlock page: labelled fields, strict headers, no script, no cookie but the form token', async () => {
  const { context, page } = await open({ width: 800, height: 720 });
  const resp = await page.goto(TABLET + '/');
  assert.equal(resp.status(), 200);
  assertStrictHeaders(resp);
  assert.equal(await h1(page), 'Unlock');
  assert.equal(await page.getByLabel('User', { exact: true }).getAttribute('type'), 'text');
  assert.equal(await page.getByLabel('PIN', { exact: true }).getAttribute('type'), 'password');
  assert.equal(await page.locator('script').count(), 0, 'the page needs no JavaScript');
  const cookies = await context.cookies();
  assert.deepEqual(cookies.map((c) => c.name), ['cmc_pre']);
  await shot(page, 'unlock.png', 'web-unlock.png');
  await context.close();
});

test('a wrong PIN is refused and unlocks nothing', async () => {
  const { context, page } = await open();
  const resp = await unlock(page, TABLET, TABLET_USER, PIN + '-wrong');
  assert.equal(resp.status(), 401);
  assert.equal(await h1(page), 'Unlock');
  assert.match(await page.getByRole('alert').innerText(), /Wrong user or PIN/);
  assert.equal((await context.cookies()).filter((c) => c.name === 'cmc_session').length, 0);
  assert.equal(await page.getByRole('button', { name: 'Lock', exact: true }).count(), 0);
  await shot(page, 'wrong-pin.png');
  await context.close();
});

test('unlocking from the keyboard alone sets an HttpOnly, SameSite=Strict session cookie', async () => {
  const { context, page } = await open();
  await page.goto(TABLET + '/');
  // Tab order: the skip link, then the user field, then the PIN
  for (let i = 0; i < 5 && await page.evaluate(() => document.activeElement.id) !== 'user'; i++)
    await page.keyboard.press('Tab');
  await page.keyboard.type(TABLET_USER);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'pin');
  await page.keyboard.type(PIN);
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  assert.equal(await h1(page), 'Find a patient');
  assert.match(await page.locator('header').innerText(), new RegExp(`Unlocked for ${TABLET_USER} \\(urgent care\\)`));
  const session = (await context.cookies()).find((c) => c.name === 'cmc_session');
  assert.ok(session, 'a session cookie is set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.match(session.value, /^[0-9a-f]{64}$/);
  assert.equal(session.expires, -1, 'a session cookie, gone with the browser');
  // every field of the search page has a label
  for (const id of ['nhs', 'name', 'dob', 'postcode'])
    assert.equal(await page.locator(`label[for="${id}"]`).count(), 1, `a label for ${id}`);
  await context.close();
});

test('an NHS number with a wrong check digit gets a clear message', async () => {
  const { context, page } = await open();
  await unlock(page, TABLET, TABLET_USER, PIN);
  const resp = await lookup(page, NHS_A.slice(0, 9) + ((Number(NHS_A[9]) + 1) % 10));
  assert.equal(resp.status(), 422);
  assert.match(await page.getByRole('alert').innerText(), /check digit/i);
  assert.equal(await h1(page), 'Find a patient');
  await context.close();
});

const CARD_ORDER = ['1 Patient', '2 CPR decision', '3 Ceiling of treatment',
  '4 Advance decision to refuse treatment (ADRT)', '5 Preferred places', '6 Key contacts',
  '7 Diagnosis and prognosis', '8 Anticipatory medicines', '9 Allergies',
  '10 Anticipated problems and what to do'];

async function sectionHeadings(page) {
  return (await page.locator('section.card-section > h2').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
}

test('lookup by NHS number: the summary card, in clinical order, CPR decision first and large', async () => {
  const { context, page } = await open();
  await unlock(page, TABLET, TABLET_USER, PIN);
  const spaced = `${NHS_A.slice(0, 3)} ${NHS_A.slice(3, 6)} ${NHS_A.slice(6)}`;
  const resp = await lookup(page, spaced);
  assert.equal(resp.status(), 200);
  assertStrictHeaders(resp);
  assert.equal(await h1(page), 'Summary card: Margaret Okafor');
  assert.deepEqual(await sectionHeadings(page), CARD_ORDER);

  // the banner comes before the card and says what the crew must weigh
  const banner = await page.locator('#banner').innerText();
  assert.match(banner, /Published v\d+ - approved by gp1 on \d{4}-\d{2}-\d{2}/);
  assert.match(banner, /Review due 2027-02-11/);
  assert.match(banner, /Copy on this device: synced .* ago \(\d{4}-\d{2}-\d{2} \d\d:\d\d (GMT|BST)\)/);
  assert.doesNotMatch(banner, /STALE|OVERDUE|NOT APPROVED|unapproved/);
  assert.equal(await page.locator('.proposal').count(), 0, 'urgent care never sees a proposal');

  // identity, enough to match the person in front of you
  const identity = await page.locator('#identity').innerText();
  assert.match(identity, /Margaret Okafor \(known as Maggie\)/);
  assert.match(identity, /1938-04-17 \(age \d+\)/);
  assert.match(identity, /943 476 5919/);
  assert.match(identity, /Flat 3, 12 Larkspur Road, London, SE15 4QT/);
  assert.match(identity, /Language: English; no interpreter needed/);

  // the CPR decision: in words, large, right after identity
  const cpr = page.locator('#cpr .cpr');
  assert.equal(await cpr.getAttribute('class'), 'cpr cpr-dnacpr');
  assert.match(await cpr.innerText(), /DNACPR\s+DNACPR - do NOT attempt CPR/);
  const headlineSize = parseFloat(await page.locator('#cpr .cpr-headline').evaluate((e) => getComputedStyle(e).fontSize));
  const bodySize = parseFloat(await page.locator('body').evaluate((e) => getComputedStyle(e).fontSize));
  assert.ok(headlineSize >= 2 * bodySize, `the CPR headline is large (${headlineSize}px vs ${bodySize}px)`);
  const cprBox = await cpr.boundingBox();
  assert.ok(cprBox.y + cprBox.height <= TABLET_VIEWPORT.height, 'the CPR decision is on the first screen');
  assert.match(await page.locator('#cpr').innerText(), /Purple folder on the kitchen table/);

  assert.match(await page.locator('#ceiling').innerText(), /Prioritise comfort[\s\S]*Hospital admission wanted\s+No/);
  assert.match(await page.locator('#adrt').innerText(), /YES - an ADRT exists.*Copy with GP and in the purple folder/);
  assert.match(await page.locator('#places').innerText(), /1st choice: Home; 2nd choice: Hospice/);

  // key contacts, GP and the 24/7 line first, each with a tel: link
  const tels = await page.locator('#contacts a[href^="tel:"]').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  assert.deepEqual(tels, ['tel:02079460100', 'tel:02079460999', 'tel:07700900123']);
  const roles = await page.locator('#contacts .role').allInnerTexts();
  assert.deepEqual(roles.slice(0, 2), ['GP', 'Palliative care 24/7']);

  assert.match(await page.locator('#diagnosis').innerText(), /Metastatic breast cancer \(primary\)[\s\S]*Prognosis\s+weeks to months/);
  const meds = await page.locator('#medicines').innerText();
  assert.match(meds, /Kept: Just-in-case box in the bedroom wardrobe/);
  assert.match(meds, /Midazolam injection/);
  assert.doesNotMatch(meds, /Morphine/, 'the card lists anticipatory medicines only');
  assert.match(await page.locator('#allergies').innerText(), /Penicillin - Anaphylaxis \(SEVERE\)/);
  assert.match(await page.locator('#problems').innerText(), /Breathlessness\s+Sit upright, fan/);
  assert.equal(await page.locator('script').count(), 0);
  await shot(page, 'card-tablet.png', 'web-card.png');

  // the full plan, one tap away; then the print view
  const full = await submit(page, page.getByRole('button', { name: 'Full plan' }));
  assert.equal(full.status(), 200);
  assert.equal(await h1(page), 'Care plan: Margaret Okafor');
  assert.match(await page.locator('#medicines').innerText(), /Morphine sulfate oral solution.*regular/);
  assert.match(await page.locator('#more').innerText(), /Staying at home with my cat, Biscuit/);
  await submit(page, page.getByRole('button', { name: 'Print view' }));
  assert.equal(await page.getByRole('button', { name: 'Lock', exact: true }).count(), 0, 'no controls on paper');
  assert.match(await page.locator('main').innerText(), /Printed \d{4}-\d{2}-\d{2} \d\d:\d\d (GMT|BST) by tablet-user/);
  assert.deepEqual((await sectionHeadings(page)).slice(0, 2), ['1 Patient', '2 CPR decision']);
  await page.emulateMedia({ media: 'print' });
  await shot(page, 'print.png');
  await context.close();
});

test('search by name, date of birth and postcode gives candidates to match; then the card', async () => {
  const { context, page } = await open();
  await unlock(page, TABLET, TABLET_USER, PIN);
  await page.getByLabel('Name', { exact: true }).fill('pennington');
  await page.getByLabel('Date of birth', { exact: true }).fill('1932-11-30');
  await page.getByLabel('Postcode', { exact: true }).fill('se22 8hu');
  const resp = await submit(page, page.getByRole('button', { name: 'Search' }));
  assert.equal(resp.status(), 200);
  assertStrictHeaders(resp);
  assert.ok(resp.request().method() === 'POST' && new URL(resp.url()).search === '', 'the criteria travel in the body');
  const hits = page.locator('li.hit');
  assert.equal(await hits.count(), 1);
  const hit = await hits.first().innerText();
  assert.match(hit, /Pennington, Arthur/);
  assert.match(hit, /Born\s+1932-11-30 \(age \d+\)/);
  assert.match(hit, /NHS number\s+485 777 3007/);
  assert.match(hit, /Address\s+4 Grove Vale, London, SE22 8HU/);
  await shot(page, 'search-results.png');
  await submit(page, page.getByRole('button', { name: /Open plan/ }));
  assert.equal(await h1(page), 'Summary card: Arthur Pennington');
  assert.equal(await page.locator('#cpr .cpr').getAttribute('class'), 'cpr cpr-for');
  assert.match(await page.locator('#cpr .cpr').innerText(), /FOR CPR - attempt CPR/);
  // an overdue review is flagged in words, not only in colour
  assert.match(await page.locator('#banner').innerText(), /REVIEW OVERDUE - was due 2025-01-15/);

  // a name alone finds candidates too
  await page.goto(TABLET + '/');
  await page.getByLabel('Name', { exact: true }).fill('Okafor');
  await submit(page, page.getByRole('button', { name: 'Search' }));
  assert.equal(await page.locator('li.hit').count(), 1);
  assert.match(await page.locator('li.hit').innerText(), /Okafor, Margaret/);
  await context.close();
});

test('DNACPR, FOR CPR and NOT YET DISCUSSED differ in words and in look, not by colour alone', async () => {
  const { context, page } = await open();
  await unlock(page, TABLET, TABLET_USER, PIN);
  const seen = {};
  for (const nhs of [NHS_A, NHS_D, NHS_E]) {
    await page.goto(TABLET + '/');
    await lookup(page, nhs);
    const cpr = page.locator('#cpr .cpr');
    seen[nhs] = {
      headline: (await page.locator('#cpr .cpr-headline').innerText()).trim(),
      words: (await page.locator('#cpr .cpr-words').innerText()).trim(),
      border: await cpr.evaluate((e) => getComputedStyle(e).borderTopStyle),
      textColour: await cpr.evaluate((e) => getComputedStyle(e).color),
    };
    if (nhs === NHS_E) await shot(page, 'card-not-discussed.png');
  }
  assert.deepEqual(seen[NHS_A].headline.replace(/^\W+/, ''), 'DNACPR');
  assert.deepEqual(seen[NHS_D].headline.replace(/^\W+/, ''), 'FOR CPR');
  assert.deepEqual(seen[NHS_E].headline.replace(/^\W+/, ''), 'CPR NOT YET DISCUSSED');
  assert.match(seen[NHS_E].words, /CPR NOT YET DISCUSSED - no decision recorded/);
  const borders = new Set(Object.values(seen).map((s) => s.border));
  assert.equal(borders.size, 3, `three border styles: ${[...borders]}`);
  // DNACPR is light text on a dark fill; the others dark on light: a difference in lightness
  assert.notEqual(seen[NHS_A].textColour, seen[NHS_D].textColour);
  await context.close();
});

test('a draft never reaches urgent care: neither by NHS number nor by name', async () => {
  const { context, page } = await open();
  await unlock(page, TABLET, TABLET_USER, PIN);
  const resp = await lookup(page, NHS_B);
  assert.equal(resp.status(), 404);
  assert.match(await page.getByRole('alert').innerText(), /No plan on this device for NHS number 401 023 2137/);
  await page.getByLabel('Name', { exact: true }).fill('Whitfield');
  await submit(page, page.getByRole('button', { name: 'Search' }));
  assert.equal(await page.locator('li.hit').count(), 0);
  assert.match(await page.locator('#results').innerText(), /No matching plan on this device/);
  await context.close();
});

test('a clinician sees the team\'s draft and their own pending edit, each marked not approved', async () => {
  const { context, page } = await open();
  await unlock(page, LAPTOP, LAPTOP_USER, PIN);
  assert.match(await page.locator('header').innerText(), /\(clinician\)/);
  assert.match(await page.locator('main').innerText(), /1 local change not yet approved; 0 open conflicts/);
  await lookup(page, NHS_B);
  assert.equal(await h1(page), 'Summary card: Eleanor Whitfield');
  assert.match(await page.locator('#banner').innerText(), /DRAFT - not approved \(v\d+\)/);
  assert.match(await page.locator('#notices').innerText(), /NOT APPROVED - this version is DRAFT - not approved/);

  // the pending edit: the plan's value stays the plan's; the change is beside it, as a proposal
  await page.goto(LAPTOP + '/');
  await lookup(page, NHS_A);
  assert.match(await page.locator('#banner').innerText(), /Published v\d+ \+? ?- approved by gp1[\s\S]*\+ your unapproved changes to: Diagnosis and prognosis/);
  const diagnosis = await page.locator('#diagnosis').innerText();
  assert.match(diagnosis, /Prognosis\s+weeks to months/);
  const proposal = await page.locator('#diagnosis .proposal').innerText();
  assert.match(proposal, /PROPOSED on this device, not approved \(laptop-user, \d{4}-\d{2}-\d{2} \d\d:\d\d (GMT|BST)\)/);
  assert.match(proposal, /Prognosis\s+days to weeks \(the plan: weeks to months\)/);
  assert.equal(await page.locator('#cpr .proposal').count(), 0, 'only the changed section is marked');
  await shot(page, 'card-clinician-pending.png');
  await context.close();
});

test('a stale copy is impossible to miss', async () => {
  const { context, page } = await open();
  await unlock(page, STALE, TABLET_USER, PIN);
  assert.match(await page.locator('main').innerText(), /STALE COPY: this device's copy was synced 2 days ago/);
  await lookup(page, NHS_A);
  // a tag in the banner at the top; the full warning right after the CPR decision
  const tag = await page.locator('#banner .stale-tag').boundingBox();
  const flag = page.locator('#notices .flag.stale');
  assert.equal(await flag.getAttribute('role'), 'alert');
  assert.match(await flag.innerText(), /STALE COPY - this device last synced 2 days ago.*A newer version of this plan may exist/);
  const flagBox = await flag.boundingBox();
  const cprBox = await page.locator('#cpr .cpr').boundingBox();
  assert.ok(tag.y < cprBox.y && tag.y < TABLET_VIEWPORT.height / 3, 'STALE COPY is at the top of the first screen');
  assert.ok(flagBox.y > cprBox.y, 'the full warning comes after the CPR decision');
  assert.ok(cprBox.y + cprBox.height <= TABLET_VIEWPORT.height, 'the CPR decision is on the first screen');
  await shot(page, 'card-stale.png');
  await context.close();
});

test('the page locks itself when idle, and at once on Lock', async () => {
  const { context, page } = await open();
  await unlock(page, IDLE, TABLET_USER, PIN);
  await lookup(page, NHS_A);
  assert.equal(await h1(page), 'Summary card: Margaret Okafor');
  const csrf = await page.locator('input[name="csrf"]').first().getAttribute('value');
  // no timed reload (WCAG 2.2.1): the header says when the session locks; the server locks it
  assert.equal(await page.locator('meta[http-equiv]').count(), 0);
  assert.match(await page.locator('header').innerText(), /locks at \d\d:\d\d if unused/);
  await page.waitForTimeout(4500);
  await page.getByRole('link', { name: 'New search' }).first().click();
  await page.waitForFunction(() => document.querySelector('h1')?.textContent === 'Unlock', null, { timeout: 10000 });
  assert.doesNotMatch(await page.content(), /Okafor|DNACPR/);
  const replay = await context.request.post(IDLE + '/lookup', {
    form: { csrf, nhs: NHS_A },
    headers: { Origin: new URL(IDLE).origin },
  });
  assert.equal(replay.status(), 401);
  assert.doesNotMatch(await replay.text(), /Okafor/);

  // Lock: at once, and the old session's cookie and form token open nothing any more
  await unlock(page, TABLET, TABLET_USER, PIN);
  await lookup(page, NHS_A);
  const token = await page.locator('input[name="csrf"]').first().getAttribute('value');
  const lockResp = await submit(page, page.getByRole('button', { name: 'Lock', exact: true }));
  assert.equal(await h1(page), 'Unlock');
  assert.equal(lockResp.status(), 200);
  const again = await context.request.post(TABLET + '/lookup', {
    form: { csrf: token, nhs: NHS_A },
    headers: { Origin: new URL(TABLET).origin },
  });
  assert.equal(again.status(), 401);
  assert.doesNotMatch(await again.text(), /Okafor/);
  await context.close();
});

// The first screen of the real pages, at a phone's and a landscape tablet's size: the CPR box
// and the line under it are fully visible with no scrolling (the states the card model alone
// can produce are measured in first_screen.test.mjs).
const FIRST_SCREENS = [
  { name: 'published', base: TABLET, user: TABLET_USER, nhs: NHS_A },
  { name: 'review overdue', base: TABLET, user: TABLET_USER, nhs: NHS_D },
  { name: 'stale copy', base: STALE, user: TABLET_USER, nhs: NHS_A },
  { name: 'pending edit', base: LAPTOP, user: LAPTOP_USER, nhs: NHS_A },
  { name: 'draft', base: LAPTOP, user: LAPTOP_USER, nhs: NHS_B },
];
for (const size of [{ width: 390, height: 844 }, { width: 1280, height: 800 }]) {
  test(`the CPR decision is on the first screen at ${size.width}x${size.height}, and axe finds nothing serious`, async () => {
    for (const s of FIRST_SCREENS) {
      for (const scheme of ['light', 'dark']) {
        const { context, page } = await open(size);
        await page.emulateMedia({ colorScheme: scheme });
        await unlock(page, s.base, s.user, PIN);
        if (scheme === 'light') {
          const axeHome = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
          assert.deepEqual(axeHome.violations.filter((v) => v.impact === 'critical' || v.impact === 'serious')
            .map((v) => `home: ${v.id}`), []);
        }
        await lookup(page, s.nhs);
        const box = await page.locator('#cpr .cpr').boundingBox();
        const facts = await page.locator('#cpr .cpr-facts').first().boundingBox();
        assert.ok(box.y >= 0 && box.y + box.height <= size.height,
          `${s.name} (${scheme}): the CPR box is at ${box.y}..${box.y + box.height}`);
        assert.ok(facts.y + facts.height <= size.height, `${s.name} (${scheme}): the decided line ends at ${facts.y + facts.height}`);
        const axe = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
        assert.deepEqual(axe.violations.filter((v) => v.impact === 'critical' || v.impact === 'serious')
          .map((v) => `${s.name} (${scheme}): ${v.id} ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`), []);
        if (scheme === 'light' && s.name === 'pending edit') await page.screenshot({ path: path.join(SHOTS, `first-screen-pending-${size.width}.png`) });
        await context.close();
      }
    }
  });
}

test('forms from another site are refused, even with the session cookie', async () => {
  const { context, page } = await open();
  await unlock(page, TABLET, TABLET_USER, PIN);
  const csrf = await page.locator('input[name="csrf"]').first().getAttribute('value');
  const cross = await context.request.post(TABLET + '/lookup', {
    form: { csrf, nhs: NHS_A }, headers: { Origin: 'http://attacker.example' },
  });
  assert.equal(cross.status(), 403);
  const noToken = await context.request.post(TABLET + '/lookup', {
    form: { nhs: NHS_A }, headers: { Origin: new URL(TABLET).origin },
  });
  assert.equal(noToken.status(), 403);
  const rebound = await context.request.get(TABLET.replace('127.0.0.1', 'localhost') + '/', {
    headers: { Host: 'attacker.example' },
  });
  assert.equal(rebound.status(), 421);
  await context.close();
});

test('nothing about a patient in any URL, nothing from outside, no CSP violation', () => {
  assert.ok(requested.length > 20, `the tests made requests (${requested.length})`);
  for (const u of requested) {
    const url = new URL(u);
    assert.ok(ALLOWED_ORIGINS.includes(url.origin), `only the device's own page is contacted: ${url.origin}`);
    assert.equal(url.search, '', `no query strings: ${u}`);
    for (const w of PATIENT_WORDS) assert.ok(!u.includes(w), `no patient data in ${u}`);
  }
  assert.deepEqual(consoleErrors, []);
});
