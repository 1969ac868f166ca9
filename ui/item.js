// item.js - an item's page (GET /v1/items/{i}?detail=1): title, attributes, the fused
// modalities with the gates of its features, its window figures and the nearest items.
import { api, header, esc, enc, param, itemHref, fmtNum, guarded } from './app.js';

header('item');
const item = param('item') || '';
document.getElementById('iid').textContent = item;
document.title = 'dynrec · item ' + item;
window.__dash = { loaded: false };

async function load() {
  await guarded(document.getElementById('ititle'), async () => {
    const x = await api(`/v1/items/${enc(item)}?detail=1`);
    document.getElementById('ititle').textContent = x.title || '(no title)';
    document.getElementById('inew').textContent = x.new ? '(arrived while serving)' : '';
    document.getElementById('attrs').innerHTML =
      x.attributes.map((a) => `<span>${esc(a)}</span>`).join('') || '<span class="muted">none</span>';
    const fu = document.getElementById('fusion');
    if (!x.fused) fu.innerHTML = '<span class="muted">the checkpoint does not fuse item features (ids only)</span>';
    else {
      fu.innerHTML = `<p>${x.features_in_training ? 'features seen in training' : 'no features in training'}</p>
        <table><thead><tr><th>modality</th><th>in the last PUT</th><th>gate</th></tr></thead><tbody>` +
        x.modalities.map((m) => `<tr><td>${esc(m.name)}</td><td>${m.present ? 'yes' : 'no'}</td>
          <td>${m.gate == null ? '<span class="muted">–</span>' : `<span class="bar" style="width:${Math.round(100 * m.gate)}px"></span> ${fmtNum(m.gate, 3)}`}</td></tr>`).join('') +
        '</tbody></table>';
    }
    const t = x.window.trend;
    document.getElementById('window').innerHTML =
      `${x.window.events} events; trend ${fmtNum(t, 3)} <span class="${t > 0 ? 'up' : t < 0 ? 'down' : 'same'}">${t > 0 ? '▲ rising' : t < 0 ? '▼ falling' : ''}</span>`;
    document.querySelector('#nearest tbody').innerHTML = x.nearest.map((n) =>
      `<tr><td><a href="${itemHref(n.item)}">${esc(n.item)}</a></td><td>${esc(n.title)}</td><td class="num">${fmtNum(n.similarity, 3)}</td></tr>`).join('') ||
      '<tr><td colspan="3" class="muted">none (a cold item has no base latent)</td></tr>';
    window.__dash.loaded = true;
  });
}
load();
