// dashboard.test.mjs - the dashboard in a real browser: a real `dynrec serve` on an ephemeral
// port with a small synthetic model (tests/e2e/dashboard.sh makes it and runs this file with
// node --test), each page opened in headless chromium through playwright-core. Checks: the
// overview's tiles equal GET /v1/stats, the charts' canvases hold their series' colours, an
// event POSTed through the API reaches the events tile and the user's timeline (the pages poll
// once a second; DASH_WAIT_MS, 3000 by default), the user page's explanation has its evidence
// marked and its entities linked, the item page shows the item; no console errors. Screenshots
// go to $SHOTS; page weight and time to first chart are printed as `name value unit` lines.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const env = process.env;
const DYNREC = env.DYNREC, MODEL = env.MODEL, DATA = env.DATA;
const SHOTS = env.SHOTS || 'build/ui-shots';
const WAIT = Number(env.DASH_WAIT_MS || 3000);
const { chromium } = await import(pathToFileURL(join(env.PLAYWRIGHT_CORE, 'index.mjs')).href);

let server, base, browser, tmp;
const consoleErrors = [];
const rows = readFileSync(join(DATA, 'interactions.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));
const USER = rows[0][0];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function json(path, init) {
  const r = await fetch(base + path, init);
  assert.ok(r.ok, `${path}: HTTP ${r.status}`);
  return r.json();
}
async function post(events) {
  return json('/v1/events', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ events }) });
}
async function newPage() {
  const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  p.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${p.url()}: ${m.text()}`); });
  p.on('pageerror', (e) => consoleErrors.push(`${p.url()}: ${e.message}`));
  return p;
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'dynrec-dash-'));
  const portFile = join(tmp, 'port');
  server = spawn(DYNREC, ['serve', '--model', MODEL, '--data-dir', join(tmp, 'state'), '--port', '0',
    '--port-file', portFile, '--threads', '2', '--no-fsync', '--quality-rate', '1', '--quiet'],
  { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let k = 0; !existsSync(portFile); k++) {
    assert.ok(k < 600 && server.exitCode === null, 'the server did not start');
    await sleep(100);
  }
  base = 'http://127.0.0.1:' + readFileSync(portFile, 'utf8').trim();
  // some traffic, so the series and live quality have data: 300 events of the model's users
  const ev = [];
  for (let k = 0; k < 300; k++) {
    const r = rows[(k * 7919) % rows.length], it = rows[(k * 104729 + 13) % rows.length][1];
    ev.push({ user: r[0], item: it });
  }
  await post(ev.slice(0, 150));
  await sleep(1100); // two seconds' rows
  await post(ev.slice(150));
  browser = await chromium.launch({ executablePath: env.CHROMIUM, args: ['--no-sandbox'] });
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server && server.exitCode === null) {
    const done = new Promise((r) => server.once('exit', r));
    process.kill(server.pid, 'SIGTERM');
    await done;
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// pixels of the canvas within `tol` of the colour (r, g, b)
async function colourPixels(page, sel, [r, g, b], tol = 40) {
  return page.$eval(sel, (c, [r, g, b, tol]) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let k = 0; k < d.length; k += 4)
      if (d[k + 3] > 200 && Math.abs(d[k] - r) + Math.abs(d[k + 1] - g) + Math.abs(d[k + 2] - b) < tol) n++;
    return n;
  }, [r, g, b, tol]);
}

test('overview: tiles equal the JSON API, charts are drawn', async () => {
  const page = await newPage();
  const t0 = Date.now();
  await page.goto(base + '/ui/');
  await page.waitForFunction(() => window.__dash && window.__dash.firstChartMs != null, null, { timeout: 30000 });
  const firstChart = await page.evaluate(() => window.__dash.firstChartMs);
  const weight = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    return [nav, ...performance.getEntriesByType('resource')].reduce((a, e) => a + (e.transferSize || e.encodedBodySize || 0), 0);
  });
  console.log(`dashboard_first_chart_ms ${firstChart.toFixed(0)} ms (navigation start to the first uPlot draw; wall ${Date.now() - t0} ms)`);
  console.log(`dashboard_page_weight_kb ${(weight / 1024).toFixed(1)} KB (overview, cold cache, through its first poll)`);
  // tiles against GET /v1/stats (nothing is posted meanwhile: the compared values are stable)
  // a few polls later: the page's own requests give the latency chart consecutive seconds
  const polls = await page.evaluate(() => window.__dash.polls);
  await page.waitForFunction((p) => window.__dash.polls > p + 3, polls, { timeout: 20000 });
  const s = await json('/v1/stats');
  const tiles = await page.$$eval('.tile', (ts) => Object.fromEntries(ts.map((t) => [t.dataset.key, t.dataset.value])));
  for (const k of ['events_total', 'users', 'items', 'new_items', 'generation', 'quality.samples', 'quality.hit10_base', 'quality.hit10_adapter']) {
    const v = k.split('.').reduce((a, x) => a[x], s);
    assert.equal(tiles[k], String(v), `tile ${k}`);
  }
  assert.equal(s.events_total, 300);
  assert.equal(s.quality.samples > 0, true, 'live quality sampled events');
  const text = await page.$eval('[data-key="events_total"] .v', (e) => e.textContent);
  assert.equal(text, '300');
  // each chart's canvas holds its series' stroke colours, not only axes (a later series may
  // cover an earlier one where they are equal: the chart's colours are counted together)
  await page.screenshot({ path: join(SHOTS, 'overview.png'), fullPage: true });
  const charts = {
    '#c-throughput': [[0x1f, 0x9d, 0x73], [0x2f, 0x6f, 0xde]],
    '#c-latency': [[0x2f, 0x6f, 0xde], [0xc2, 0x45, 0x2d]],
    '#c-quality': [[0x8a, 0x63, 0xd2], [0x1f, 0x9d, 0x73]],
    '#c-log': [[0x1f, 0x9d, 0x73], [0x6a, 0x73, 0x80]],
  };
  for (const [sel, colours] of Object.entries(charts)) {
    let n = 0;
    for (const c of colours) n += await colourPixels(page, sel + ' canvas', c);
    assert.ok(n > 50, `${sel}: ${n} pixels of its series' colours`);
  }
  await page.close();
});

test('user page: timeline, rank changes, explanation; a POSTed event shows within the wait', async () => {
  const over = await newPage();
  await over.goto(base + '/ui/');
  await over.waitForFunction(() => window.__dash && window.__dash.polls > 0, null, { timeout: 30000 });
  const page = await newPage();
  await page.goto(base + '/ui/user.html?user=' + encodeURIComponent(USER));
  await page.waitForFunction(() => window.__dash.explained != null, null, { timeout: 30000 });
  // the top 10 with both scores and the rank change
  const cells = await page.$$eval('#recs tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent.trim())));
  assert.equal(cells.length, 10);
  const recs = await json(`/v1/users/${encodeURIComponent(USER)}/recommendations?k=10&detail=1`);
  assert.equal(cells[0][1], recs.items[0].item);
  assert.equal(cells[0][5], String(recs.items[0].base_rank));
  // the explanation: evidence tokens marked, entities linked to item and user pages
  assert.ok(await page.$$eval('#expl mark.ev', (m) => m.length) > 0, 'evidence marks');
  const links = await page.$$eval('#expl a.entity', (as) => as.map((a) => a.getAttribute('href')));
  assert.ok(links.length > 0 && links.every((h) => /^(item|user)\.html\?/.test(h)), 'entity links: ' + links);
  // an event through the API: the events tile and the user's timeline
  const before = Number(await over.$eval('[data-key="events_total"]', (e) => e.dataset.value));
  const item = rows[5][1];
  await post([{ user: USER, item }]);
  await over.waitForFunction((n) => Number(document.querySelector('[data-key="events_total"]').dataset.value) === n,
    before + 1, { timeout: WAIT });
  await page.waitForFunction((it) => {
    const tl = document.querySelectorAll('#timeline a.tl');
    const last = tl[tl.length - 1];
    return last && last.dataset.item === it && last.classList.contains('live');
  }, item, { timeout: WAIT });
  await page.screenshot({ path: join(SHOTS, 'user.png'), fullPage: true });
  await page.close();
  await over.close();
});

test('item page: title, attributes, nearest items', async () => {
  const item = rows[0][1];
  const x = await json(`/v1/items/${encodeURIComponent(item)}?detail=1`);
  const page = await newPage();
  await page.goto(base + '/ui/item.html?item=' + encodeURIComponent(item));
  await page.waitForFunction(() => window.__dash.loaded, null, { timeout: 30000 });
  assert.equal(await page.$eval('#ititle', (e) => e.textContent), x.title);
  assert.equal(await page.$$eval('#attrs span', (s) => s.length), x.attributes.length);
  assert.equal(await page.$$eval('#nearest tbody a', (a) => a.length), x.nearest.length);
  assert.ok(x.nearest.length > 0);
  await page.screenshot({ path: join(SHOTS, 'item.png'), fullPage: true });
  await page.close();
});

test('static files: content types, ETag and 304', async () => {
  const r = await fetch(base + '/ui/vendor/uPlot.iife.min.js');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/javascript/);
  const etag = r.headers.get('etag');
  assert.ok(etag);
  const r2 = await fetch(base + '/ui/vendor/uPlot.iife.min.js', { headers: { 'If-None-Match': etag } });
  assert.equal(r2.status, 304);
  assert.match((await fetch(base + '/ui/style.css')).headers.get('content-type'), /^text\/css/);
});

test('no console errors', () => {
  assert.deepEqual(consoleErrors, []);
});
