// The Intent Bus dashboard: a page that talks to the admin JSON API of the bus serving it.
// Every value reaches the page through textContent or a text node (never innerHTML), so
// whatever an intent holds is shown as text. URLs are relative to /admin/dashboard.

const REFRESH_MS = 2000;
const PAGE_SIZE = 50;
const STATUSES = ['open', 'claimed', 'fulfilled', 'dead'];
const SERIES = ['published', 'fulfilled', 'failed', 'dead'];
const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);

/** el('td', { className: 'num' }, 'text', node): attributes and children, text stays text. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'className') node.className = v;
    else node.setAttribute(k, v);
  }
  node.append(...children.map((c) => (c instanceof Node ? c : String(c ?? ''))));
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

const cell = (label, content, className = '') =>
  el('td', { 'data-label': label, className }, content);

/** A button whose action reports its error and cannot be pressed twice at once. */
function button(text, action, className = '') {
  const b = el('button', { type: 'button', className }, text);
  b.addEventListener('click', async () => {
    b.disabled = true;
    await run(action);
    b.disabled = false;
  });
  return b;
}

/** GET path, or POST body as JSON. Answers the parsed JSON or throws the bus's message. */
async function api(path, body) {
  const init = { credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.method = 'POST';
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(data?.error?.message ?? `HTTP ${res.status}`);
  return data;
}

const pad = (n) => String(n).padStart(2, '0');
const clock = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
const day = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;

/** Unix seconds → local time, with the date only when it is not today. */
function fmtTime(s) {
  if (s == null) return '—';
  const d = new Date(s * 1000);
  return day(d) === day(new Date()) ? clock(d) : `${day(d)} ${clock(d)}`;
}

let noticeTimer;
function notify(text, isError = false) {
  const n = $('notice');
  n.textContent = text;
  n.classList.toggle('error', isError);
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (n.hidden = true), isError ? 10_000 : 5000);
}

async function run(action) {
  try {
    await action();
  } catch (e) {
    notify(e.message, true);
  }
}

/** Whether data differs from what was last drawn under this name (skips needless redraws). */
const drawn = new Map();
function changed(name, data) {
  const text = JSON.stringify(data);
  if (drawn.get(name) === text) return false;
  drawn.set(name, text);
  return true;
}

// ---- counts and chart ----

function renderStats(stats) {
  $('counts').replaceChildren(
    ...STATUSES.map((s) =>
      el(
        'li',
        { className: `count ${s}` },
        el('strong', { id: `count-${s}` }, stats.by_status[s] ?? 0),
        el('span', {}, s),
      ),
    ),
  );
  const namespaces = Object.keys(stats.by_namespace).sort();
  $('namespaces').tBodies[0].replaceChildren(
    ...namespaces.map((ns) =>
      el(
        'tr',
        {},
        el('td', {}, ns),
        ...STATUSES.map((s) => el('td', { className: 'num' }, stats.by_namespace[ns][s] ?? 0)),
      ),
    ),
  );
  renderChart(stats.per_minute);
}

function renderChart(perMinute) {
  const [w, h] = [600, 160];
  const max = Math.max(1, ...perMinute.flatMap((m) => SERIES.map((k) => m[k])));
  const x = (i) => (perMinute.length > 1 ? (i * w) / (perMinute.length - 1) : 0);
  const y = (v) => h - 3 - (v / max) * (h - 6);
  const grid = [1, 2, 3].map((g) =>
    svgEl('line', { x1: 0, x2: w, y1: (h * g) / 4, y2: (h * g) / 4, class: 'grid-line' }),
  );
  const lines = SERIES.map((k) =>
    svgEl('polyline', {
      class: `line ${k}`,
      points: perMinute.map((m, i) => `${x(i).toFixed(1)},${y(m[k]).toFixed(1)}`).join(' '),
    }),
  );
  $('chart').replaceChildren(...grid, ...lines);
  $('chart-max').textContent = `${max} / min`;
  $('legend').replaceChildren(
    ...SERIES.map((k) =>
      el(
        'li',
        {},
        el('span', { className: `swatch ${k}` }),
        `${k} `,
        el(
          'strong',
          {},
          perMinute.reduce((sum, m) => sum + m[k], 0),
        ),
      ),
    ),
  );
}

// ---- intents ----

const list = { filter: '', next: null, paged: false, generation: 0 };

function intentRow(it) {
  const open = button(it.goal, () => showDetail(it.id), 'link');
  open.setAttribute('aria-label', `Details of ${it.goal}`);
  return el(
    'tr',
    { 'data-id': it.id },
    cell('created', fmtTime(it.created_at)),
    cell('namespace', it.namespace),
    cell('goal', open),
    cell('status', el('span', { className: `badge ${it.status}` }, it.status)),
    cell('worker', it.worker_id ?? '—'),
    cell('attempts', `${it.claim_attempts}/${it.max_attempts}`, 'num'),
  );
}

/** The first page (redrawn only when it changed), or with more the next one appended. */
async function loadIntents({ more = false } = {}) {
  const generation = ++list.generation;
  const params = new URLSearchParams(list.filter);
  params.set('limit', String(PAGE_SIZE));
  if (more) {
    params.set('cursor', list.next);
    list.paged = true;
  }
  const page = await api(`intents?${params}`);
  if (generation !== list.generation) return; // a newer load (filter, refresh) won
  const body = $('intents').tBodies[0];
  if (more) body.append(...page.items.map(intentRow));
  else if (changed('intents', [list.filter, page])) {
    body.replaceChildren(...page.items.map(intentRow));
  }
  list.next = page.next_cursor;
  $('more').hidden = list.next == null;
  $('intents-empty').hidden = body.rows.length > 0;
}

/** Back to the first page, drawn afresh (rows loaded with "load more" go). */
function firstPage() {
  list.paged = false;
  drawn.delete('intents');
}

function applyFilter() {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData($('filter'))) if (v.trim() !== '') params.set(k, v.trim());
  list.filter = params.toString();
  firstPage();
  return loadIntents();
}

let detailId = null;

async function showDetail(id) {
  const it = await api(`intents/${encodeURIComponent(id)}`);
  detailId = it.id;
  $('detail-title').textContent = it.goal;
  const fields = [
    ['id', it.id],
    ['status', it.status],
    ['namespace', it.namespace],
    ['publisher', it.publisher],
    ['worker', it.worker_id ?? '—'],
    ['attempts', `${it.claim_attempts} of ${it.max_attempts}`],
    ['priority', it.priority],
    ['visibility', it.visibility],
    ['target worker', it.target_worker ?? '—'],
    ['capability', it.required_capability ?? '—'],
    ['created', fmtTime(it.created_at)],
    ['run at', fmtTime(it.run_at)],
    ['lease ends', fmtTime(it.claim_expires_at)],
    ['completed', fmtTime(it.completed_at)],
    ['expires', fmtTime(it.expires_at)],
    ['error', it.error ?? '—'],
    ['dead reason', it.dead_reason ?? '—'],
  ];
  $('detail-fields').replaceChildren(
    ...fields.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]),
  );
  $('detail-payload').textContent = JSON.stringify(it.payload, null, 2);
  $('detail-result').textContent =
    it.result_type == null
      ? '—'
      : it.result_type === 'text'
        ? it.result
        : JSON.stringify(it.result, null, 2);
  $('detail-cancel').disabled = it.status === 'fulfilled' || it.status === 'dead';
  if (!$('detail').open) $('detail').showModal();
}

/** POST /admin/intents/<id>/retry or /cancel, then redraw what it changed. */
async function mutate(id, action) {
  const r = await api(`intents/${encodeURIComponent(id)}/${action}`, {});
  notify(`${action === 'retry' ? 'Retried' : 'Cancelled'}: the intent is now ${r.status}`);
  firstPage();
  await refresh();
  if ($('detail').open && detailId === id) await showDetail(id);
}

// ---- dead letters ----

function renderDead(dead) {
  $('dead').tBodies[0].replaceChildren(
    ...dead.map((d) =>
      el(
        'tr',
        { 'data-id': d.intent_id },
        cell('died', fmtTime(d.created_at)),
        cell('namespace', d.namespace),
        cell(
          'goal',
          button(d.goal, () => showDetail(d.intent_id), 'link'),
        ),
        cell('attempts', d.attempts, 'num'),
        cell('reason', d.reason),
        cell(
          '',
          el(
            'span',
            { className: 'actions' },
            button('Retry', () => mutate(d.intent_id, 'retry')),
            button('Cancel', () => mutate(d.intent_id, 'cancel'), 'danger'),
          ),
        ),
      ),
    ),
  );
  $('dead-empty').hidden = dead.length > 0;
}

// ---- API keys ----

function renderKeys(keys) {
  $('keys').tBodies[0].replaceChildren(
    ...keys.map((k) =>
      el(
        'tr',
        { 'data-key': k.key_id },
        cell('owner', k.owner),
        cell('prefix', el('code', {}, `${k.prefix}…`)),
        cell('key id', el('code', {}, k.key_id)),
        cell('created', fmtTime(k.created_at)),
        cell('last used', fmtTime(k.last_used_at)),
        cell('requests', k.requests, 'num'),
        cell(
          '',
          button(
            'Revoke',
            async () => {
              if (!window.confirm(`Revoke the key of ${k.owner} (${k.prefix}…)?`)) return;
              await api('revoke_key', { key_id: k.key_id });
              notify(`Revoked the key of ${k.owner}`);
              await loadKeys();
            },
            'danger',
          ),
        ),
      ),
    ),
  );
  $('keys-empty').hidden = keys.length > 0;
}

async function loadKeys() {
  const keys = await api('keys');
  if (changed('keys', keys)) renderKeys(keys);
}

async function createKey(form) {
  const owner = new FormData(form).get('owner').trim();
  const k = await api('generate_key', { owner });
  $('created-owner').textContent = k.owner;
  $('created-value').textContent = k.api_key;
  $('created-key').hidden = false;
  form.reset();
  await loadKeys();
}

async function copyKey() {
  const code = $('created-value');
  // The clipboard API needs a secure context (HTTPS or localhost); else select for Ctrl+C.
  if (navigator.clipboard) {
    await navigator.clipboard.writeText(code.textContent);
    notify('Key copied to the clipboard');
  } else {
    window.getSelection().selectAllChildren(code);
    notify('Key selected: press Ctrl+C (the clipboard API needs HTTPS)');
  }
}

// ---- live refresh ----

async function refresh() {
  const live = $('live');
  try {
    const [stats, dead] = await Promise.all([api('stats'), api('dead'), loadKeys()]);
    if (changed('stats', stats)) renderStats(stats);
    if (changed('dead', dead)) renderDead(dead);
    if (!list.paged) await loadIntents();
    live.textContent = `live · ${clock(new Date())}`;
    live.classList.remove('down');
  } catch (e) {
    live.textContent = `not updating: ${e.message}`;
    live.classList.add('down');
  }
}

function loop() {
  refresh().finally(() => setTimeout(loop, REFRESH_MS));
}

function submitted(form, action) {
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    run(() => action(form));
  });
}

submitted($('filter'), applyFilter);
submitted($('new-key'), createKey);
$('filter')
  .elements.namedItem('status')
  .addEventListener('change', () => $('filter').requestSubmit());
$('more').addEventListener('click', () => run(() => loadIntents({ more: true })));
$('copy').addEventListener('click', () => run(copyKey));
$('dismiss').addEventListener('click', () => {
  $('created-value').textContent = '';
  $('created-key').hidden = true;
});
$('detail-close').addEventListener('click', () => $('detail').close());
$('detail').addEventListener('click', (e) => e.target === $('detail') && $('detail').close());
$('detail-retry').addEventListener('click', () => run(() => mutate(detailId, 'retry')));
$('detail-cancel').addEventListener('click', () => run(() => mutate(detailId, 'cancel')));
loop();
