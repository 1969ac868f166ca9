// app.js - what every dashboard page shares: the API client (with the API key when the
// server asks for one), the header, formatting and small DOM helpers. Plain ES module.

const KEY = 'dynrec.apiKey';

export class ApiError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

// GET a data route as JSON; a 401 asks for the API key once and tries again.
export async function api(path) {
  const headers = {};
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = 'Bearer ' + key;
  const r = await fetch(path, { headers, cache: 'no-store' });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) {
    showKeyBox();
    throw new ApiError(401, body.error || 'unauthorized');
  }
  if (!r.ok) throw new ApiError(r.status, body.error || ('HTTP ' + r.status));
  return body;
}

function showKeyBox() {
  const box = document.getElementById('keybox');
  if (!box || box.style.display === 'flex') return;
  box.style.display = 'flex';
  box.addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, box.querySelector('input').value);
    location.reload();
  });
}

export function header(here) {
  const h = document.createElement('header');
  h.innerHTML = `<span class="brand">dynrec</span>
    <a href="./" data-nav="overview">overview</a>
    <form id="go"><input name="user" placeholder="user id" aria-label="user id">
      <input name="item" placeholder="item id" aria-label="item id"><button>open</button></form>
    <form id="keybox"><input type="password" placeholder="API key" aria-label="API key"><button>use</button></form>`;
  const a = h.querySelector(`[data-nav="${here}"]`);
  if (a) a.classList.add('here');
  h.querySelector('#go').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = e.target;
    if (f.user.value) location.href = userHref(f.user.value);
    else if (f.item.value) location.href = itemHref(f.item.value);
  });
  document.body.prepend(h);
}

export const userHref = (u) => 'user.html?user=' + encodeURIComponent(u);
export const itemHref = (i) => 'item.html?item=' + encodeURIComponent(i);
export const enc = encodeURIComponent;
export const param = (name) => new URLSearchParams(location.search).get(name);

export function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

export function fmtInt(v) { return Number(v).toLocaleString('en-US'); }
export function fmtNum(v, digits = 3) { return v == null ? '–' : Number(v).toFixed(digits); }
export function fmtBytes(v) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let x = Number(v), k = 0;
  while (x >= 1024 && k < u.length - 1) { x /= 1024; k++; }
  return (k ? x.toFixed(1) : String(x)) + ' ' + u[k];
}

// Sets el's text; shows the error instead when f throws.
export async function guarded(el, f) {
  try { await f(); } catch (e) {
    if (el) el.innerHTML = `<span class="err">${esc(e.message)}</span>`;
  }
}
