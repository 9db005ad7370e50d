// The card's first screen in Debian's Chromium, in every state a crew can meet: the pages are
// rendered by the card model itself (build/tests/test_agent_card with CMC_CARD_PAGES_DIR) and
// served here from that directory. Run by tests/e2e/test_web_page.sh.
//   - at 390x844 (a phone) and 1280x800 (a landscape tablet) the CPR box and the line under it
//     (decided by, review) are fully on the first screen, with no scrolling, in every state;
//   - axe (WCAG 2.0/2.1 A and AA) finds nothing critical or serious on any page, day or night;
//   - with DOCS set, the first screens are saved as the screenshots of docs/WEB.md.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { launchChromium } from './browser.mjs';
import { AxeBuilder } from '@axe-core/playwright';

const PAGES = process.env.CARD_PAGES;
if (!PAGES) throw new Error('CARD_PAGES is not set: run tests/e2e/test_web_page.sh');
const SHOTS = process.env.SHOTS || path.join(PAGES, 'shots');
const DOCS = process.env.DOCS;

export const SIZES = [
  { name: 'phone', width: 390, height: 844 },
  { name: 'tablet', width: 1280, height: 800 },
];
// the states whose first screens go into docs/ (DOCS set)
const DOC_SHOTS = { 'card-published-day': 'web-card', 'card-pending-day': 'web-card-pending',
  'card-everything-day': 'web-card-everything', 'card-breakglass-night': 'web-card-breakglass-night' };

let browser, server, base;

before(async () => {
  server = http.createServer((req, res) => {
    const name = path.basename(new URL(req.url, 'http://x').pathname);
    const file = path.join(PAGES, name);
    if (!fs.existsSync(file)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'Content-Type': name.endsWith('.css') ? 'text/css' : 'text/html; charset=utf-8' });
    res.end(fs.readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await launchChromium();
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.close();
});

const cards = JSON.parse(fs.readFileSync(path.join(PAGES, 'cards.json'), 'utf8'));

async function load(name, size) {
  const context = await browser.newContext({ viewport: { width: size.width, height: size.height } });
  const page = await context.newPage();
  const resp = await page.goto(`${base}/${name}`);
  assert.equal(resp.status(), 200);
  return { context, page };
}

test('every state is rendered', () => {
  for (const s of ['published', 'overdue', 'stale', 'pending', 'sent', 'conflict', 'lease', 'breakglass',
    'longnames', 'resident', 'draft', 'undiscussed', 'everything']) {
    assert.ok(cards.includes(`card-${s}-day.html`), `card-${s}-day.html`);
    assert.ok(cards.includes(`card-${s}-night.html`), `card-${s}-night.html`);
  }
});

for (const size of SIZES) {
  test(`the CPR decision is on the first screen at ${size.width}x${size.height} in every state`, async () => {
    const report = [];
    for (const name of cards) {
      const { context, page } = await load(name, size);
      const base = name.replace(/\.html$/, '');
      if (size.name === 'phone' || DOC_SHOTS[base]) {
        await page.screenshot({ path: path.join(SHOTS, `${base}-${size.name}.png`) });
      }
      if (DOCS && DOC_SHOTS[base]) {
        await page.screenshot({ path: path.join(DOCS, `${DOC_SHOTS[base]}-${size.name}.png`) });
      }
      const box = await page.locator('#cpr .cpr').boundingBox();
      const facts = await page.locator('#cpr .cpr-facts').first().boundingBox();
      const scrollY = await page.evaluate(() => window.scrollY);
      assert.equal(scrollY, 0);
      report.push(`${name}: CPR box y=${Math.round(box.y)}..${Math.round(box.y + box.height)}, decided line ends ${Math.round(facts.y + facts.height)}`);
      assert.ok(box.y >= 0 && box.y + box.height <= size.height,
        `${name} at ${size.width}x${size.height}: the CPR box is at ${box.y}..${box.y + box.height}`);
      assert.ok(facts.y + facts.height <= size.height,
        `${name} at ${size.width}x${size.height}: "decided ... by" ends at ${facts.y + facts.height}`);
      // the box says the decision in words
      assert.match(await page.locator('#cpr .cpr-words').innerText(), /CPR/);
      await context.close();
    }
    console.log(report.join('\n'));
  });
}

test('a proposal is inside its section and never the decision', async () => {
  const { context, page } = await load('card-pending-day.html', SIZES[0]);
  assert.match(await page.locator('#cpr .cpr-headline').innerText(), /^DNACPR$/);
  const proposal = page.locator('#cpr .proposal');
  assert.match(await proposal.innerText(), /PROPOSED on this device, not approved/);
  assert.match(await proposal.innerText(), /FOR CPR - attempt CPR/);
  assert.match(await page.locator('#banner').innerText(), /\+ your unapproved changes to: CPR decision/);
  await context.close();
});

const pages = cards.concat(['full-everything-day.html', 'home-day.html', 'home-night.html', 'unlock-day.html',
  'unlock-night.html', 'message-day.html', 'message-night.html']);

test('axe finds nothing critical or serious on any page, day or night', async () => {
  const found = [];
  for (const name of pages) {
    const { context, page } = await load(name, SIZES[1]);
    const result = await new AxeBuilder({ page })
      .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
      .analyze();
    for (const v of result.violations) {
      if (v.impact === 'critical' || v.impact === 'serious') {
        found.push(`${name}: ${v.id} (${v.impact}) ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
      }
    }
    await context.close();
  }
  assert.deepEqual(found, []);
});
