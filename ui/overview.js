// overview.js - the overview page: tiles from GET /v1/stats, live charts of the last hour at
// one second from GET /v1/stats/series (polled with ?since=), drawn with uPlot.
import { api, header, esc, fmtInt, fmtNum, fmtBytes, guarded } from './app.js';

header('overview');
window.__dash = { firstChartMs: null, polls: 0 };

const TILES = [
  ['events_total', 'events', fmtInt],
  ['events_per_s', 'events/s (10 s)', (v) => fmtNum(v, 1)],
  ['requests_per_s', 'requests/s (10 s)', (v) => fmtNum(v, 1)],
  ['p50_ms', 'p50 latency ms (60 s)', (v) => fmtNum(v, 3)],
  ['p99_ms', 'p99 latency ms (60 s)', (v) => fmtNum(v, 3)],
  ['users', 'users', fmtInt],
  ['items', 'items', fmtInt],
  ['new_items', 'new items', fmtInt],
  ['adapter_updates', 'adapter updates', fmtInt],
  ['log_bytes', 'event log', fmtBytes],
  ['generation', 'base generation', fmtInt],
  ['quality.samples', 'sampled events (window)', fmtInt],
  ['quality.hit10_base', 'Hit@10 base', (v) => fmtNum(v, 3)],
  ['quality.hit10_adapter', 'Hit@10 base + adapter', (v) => fmtNum(v, 3)],
];

const get = (o, path) => path.split('.').reduce((a, k) => (a == null ? a : a[k]), o);

function drawTiles(s) {
  const box = document.getElementById('tiles');
  if (!box.children.length) {
    box.innerHTML = TILES.map(([k, label]) =>
      `<div class="tile" data-key="${k}"><div class="k">${esc(label)}</div><div class="v">–</div></div>`).join('');
  }
  for (const [k, , fmt] of TILES) {
    const el = box.querySelector(`[data-key="${k}"]`);
    const v = get(s, k);
    el.dataset.value = v == null ? '' : String(v);
    el.querySelector('.v').textContent = v == null ? '–' : fmt(v);
  }
  document.getElementById('status').textContent =
    s.stats ? `up ${Math.round(s.uptime_seconds)} s` : '(statistics are off: dynrec serve --stats off)';
}

// ---- series: columns of the last hour, appended each second
const S = { t: [], events: [], requests: [], p50_ms: [], p99_ms: [], adapter_updates: [],
            log_bytes: [], quality_samples: [], hit_base: [], hit_adapter: [] };
const KEEP = 3600;
let since = null;

function append(rows) {
  for (const k of Object.keys(S)) {
    if (!rows[k]) continue;
    S[k].push(...rows[k]);
    if (S[k].length > KEEP) S[k].splice(0, S[k].length - KEEP);
  }
  if (rows.n) since = rows.t[rows.t.length - 1];
}

// Hit@10 over the sampled events of the last 60 s, at each second (null when none).
function rolling(hits) {
  const out = [], n = S.t.length;
  let sn = 0, sh = 0;
  for (let k = 0; k < n; k++) {
    sn += S.quality_samples[k]; sh += hits[k];
    if (k >= 60) { sn -= S.quality_samples[k - 60]; sh -= hits[k - 60]; }
    out.push(sn ? sh / sn : null);
  }
  return out;
}

let uPlot = null;
const charts = {};

function chartOpts(el, series, scales) {
  return {
    width: Math.max(300, el.clientWidth - 16), height: 200,
    scales: scales || { x: { time: true } },
    axes: [{}, { size: 60 }],
    series: [{}, ...series],
    legend: { live: false },
  };
}

const DEFS = {
  'c-throughput': () => [[S.t, S.events, S.requests],
    [{ label: 'events/s', stroke: '#1f9d73', width: 1.5 }, { label: 'requests/s', stroke: '#2f6fde', width: 1.5 }]],
  'c-latency': () => [[S.t, S.p50_ms.map((v, k) => (S.requests[k] ? v : null)), S.p99_ms.map((v, k) => (S.requests[k] ? v : null))],
    [{ label: 'p50 ms', stroke: '#2f6fde', width: 1.5, spanGaps: true }, { label: 'p99 ms', stroke: '#c2452d', width: 1.5, spanGaps: true }]],
  'c-quality': () => [[S.t, rolling(S.hit_base), rolling(S.hit_adapter)],
    [{ label: 'base', stroke: '#8a63d2', width: 2, spanGaps: true }, { label: 'base + adapter', stroke: '#1f9d73', width: 2, spanGaps: true }]],
  'c-log': () => [[S.t, S.adapter_updates, S.log_bytes.map((v) => v / 1048576)],
    [{ label: 'updates/s', stroke: '#1f9d73', width: 1.5 }, { label: 'log MiB', stroke: '#6a7380', width: 1.5, scale: 'mib' }]],
};

function drawCharts() {
  if (!uPlot || !S.t.length) return;
  for (const [id, def] of Object.entries(DEFS)) {
    const [data, series] = def();
    if (!charts[id]) {
      const el = document.getElementById(id);
      const scales = id === 'c-log' ? { x: { time: true }, mib: {} } : undefined;
      const opts = chartOpts(el, series, scales);
      if (id === 'c-log') opts.axes = [{}, { size: 60 }, { side: 1, scale: 'mib', grid: { show: false }, size: 60 }];
      charts[id] = new uPlot(opts, data, el);
    } else {
      charts[id].setData(data);
    }
  }
  if (window.__dash.firstChartMs == null) window.__dash.firstChartMs = performance.now();
}

async function poll() {
  await guarded(document.getElementById('status'), async () => {
    const [s, rows] = await Promise.all([
      api('/v1/stats'),
      api('/v1/stats/series' + (since != null ? '?since=' + since : '')).catch((e) => {
        if (e.status === 503) return { n: 0 };
        throw e;
      }),
    ]);
    drawTiles(s);
    append(rows);
    drawCharts();
    window.__dash.polls++;
  });
  setTimeout(poll, 1000);
}

// uPlot's minified build (a classic script that sets window.uPlot: 50 KB against 145 KB for
// its ES module build)
function loadScript(src) {
  return new Promise((ok, fail) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = ok;
    s.onerror = () => fail(new Error(src));
    document.head.append(s);
  });
}
try {
  await loadScript('vendor/uPlot.iife.min.js');
  uPlot = window.uPlot;
} catch (e) {
  for (const id of Object.keys(DEFS))
    document.getElementById(id).insertAdjacentHTML('beforeend', '<p class="muted">charts are not available: this build has no uPlot (scripts/deps.sh fetches it)</p>');
}
poll();
