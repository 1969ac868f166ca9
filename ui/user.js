// user.js - a user's page: the history timeline (GET /v1/users/{u}?detail=1, polled), the
// top 10 with base and adapter scores and the rank change (GET .../recommendations?detail=1)
// and the explanation of a recommendation with its evidence highlighted and linked.
import { api, header, esc, enc, param, userHref, itemHref, fmtNum, fmtInt, guarded } from './app.js';

header('user');
const user = param('user') || '';
document.getElementById('uid').textContent = user;
document.title = 'dynrec · user ' + user;
window.__dash = { explained: null, timelineLen: 0 };

let lastLen = -1, explained = null;

async function timeline() {
  const box = document.getElementById('timeline');
  await guarded(box, async () => {
    const u = await api(`/v1/users/${enc(user)}?detail=1`);
    document.getElementById('ucount').textContent = `${fmtInt(u.history)} items, ${fmtInt(u.events)} events while serving`;
    if (u.history === lastLen) return;
    lastLen = u.history;
    window.__dash.timelineLen = u.history;
    box.innerHTML = u.recent.map((h, k) => {
      const pos = u.recent_from + k;
      const live = pos >= u.history - u.events ? ' live' : '';
      return `<a class="tl${live}" data-item="${esc(h.item)}" href="${itemHref(h.item)}" title="${esc(h.title)}">${esc(h.item)}</a>`;
    }).join('') || '<span class="muted">no history</span>';
    await recs();
  });
}

async function recs() {
  const tb = document.querySelector('#recs tbody');
  await guarded(tb, async () => {
    const r = await api(`/v1/users/${enc(user)}/recommendations?k=10&detail=1`);
    tb.innerHTML = r.items.map((it, k) => {
      const ch = it.rank_change;
      const cls = ch > 0 ? 'up' : ch < 0 ? 'down' : 'same';
      const arrow = ch == null ? '' : ch > 0 ? '▲ ' + ch : ch < 0 ? '▼ ' + -ch : '=';
      return `<tr data-item="${esc(it.item)}"><td class="num">${k + 1}</td>
        <td><a href="${itemHref(it.item)}">${esc(it.item)}</a></td><td>${esc(it.title || '')}</td>
        <td class="num">${fmtNum(it.base_score)}</td><td class="num">${fmtNum(it.adapter_score ?? it.score)}</td>
        <td class="num">${it.base_rank ?? '–'}</td><td class="num ${cls}">${arrow}</td></tr>`;
    }).join('');
    tb.querySelectorAll('tr').forEach((tr) => tr.addEventListener('click', (e) => {
      if (e.target.tagName !== 'A') explain(tr.dataset.item);
    }));
    if (!explained && r.items.length) await explain(r.items[0].item);
  });
}

// The explanation's text with [E#] marked and the evidence's entities (items, users) linked.
function highlight(x) {
  const ents = [];
  for (const f of x.evidence) {
    for (const it of f.items || []) if (it.title) ents.push([`"${it.title}"`, itemHref(it.item)]);
    for (const u of f.users || []) ents.push([`user ${u}`, userHref(u)]);
    if (f.kind === 'attribute' && f.attribute && f.attribute.includes('=')) {
      const [k, v] = f.attribute.split(/=(.*)/s);
      ents.push([`${k} "${v}"`, null]);
    }
  }
  ents.sort((a, b) => b[0].length - a[0].length);
  const reEsc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const alts = ents.map(([t]) => reEsc(t));
  const re = new RegExp(`(\\[E\\d+\\])${alts.length ? '|(' + alts.join('|') + ')' : ''}`, 'g');
  let out = '', at = 0;
  for (const m of x.text.matchAll(re)) {
    out += esc(x.text.slice(at, m.index));
    if (m[1]) out += `<mark class="ev" data-ev="${esc(m[1].slice(1, -1))}">${esc(m[1])}</mark>`;
    else {
      const href = ents.find(([t]) => t === m[0])[1];
      out += href ? `<a class="entity" href="${href}">${esc(m[0])}</a>` : `<span class="entity">${esc(m[0])}</span>`;
    }
    at = m.index + m[0].length;
  }
  return out + esc(x.text.slice(at));
}

async function explain(item) {
  explained = item;
  const el = document.getElementById('expl');
  document.getElementById('xitem').innerHTML = `<a href="${itemHref(item)}">${esc(item)}</a>`;
  await guarded(el, async () => {
    const x = await api(`/v1/users/${enc(user)}/items/${enc(item)}/explanation`);
    el.innerHTML = highlight(x) + (x.fallback ? ` <span class="muted">(template: ${esc(x.reason || '')})</span>` : '');
    document.getElementById('evidence').innerHTML = x.evidence.map((f) => {
      const its = (f.items || []).map((it) => `<a href="${itemHref(it.item)}">${esc(it.title || it.item)}</a>`);
      const us = (f.users || []).map((u) => `<a href="${userHref(u)}">${esc(u)}</a>`);
      return `<li><mark class="ev">${esc(f.id)}</mark> ${esc(f.kind)} ${f.attribute ? esc(f.attribute) : ''}
        ${fmtNum(f.value, 3)} / ${fmtNum(f.total, 0)} ${[...its, ...us].join(', ')}</li>`;
    }).join('');
    window.__dash.explained = item;
  });
}

async function loop() {
  await timeline();
  setTimeout(loop, 1000);
}
loop();
