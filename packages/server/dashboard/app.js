// The Intent Bus dashboard: a page that talks to the admin JSON API of the bus serving it.
// Every value reaches the page through textContent or a text node (never innerHTML), so
// whatever an intent holds is shown as text.

const REFRESH_MS = 2000;
const PAGE_SIZE = 50;
const STATUSES = ['open', 'claimed', 'fulfilled', 'dead'];
const SERIES = ['published', 'fulfilled', 'failed', 'dead'];
const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);

// The admin API: /admin/ beside this page, built from location.origin and pathname. Not a
// URL relative to the page: opened as http://admin:pw@host/admin/dashboard, the page's URL
// holds credentials, every URL resolved against it too, and fetch() refuses those. The
// origin never holds them, and the browser still sends the login it cached for the page.
// The pathname keeps a path prefix a proxy in front may add.
const API = location.origin + location.pathname.replace(/[^/]*$/, '');

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

/** A button whose action reports its outcome beside it and cannot be pressed twice at once. */
function button(text, action, className = '') {
  const b = el('button', { type: 'button', className }, text);
  b.addEventListener('click', () => pressed(b, action));
  return b;
}

async function pressed(b, action) {
  b.disabled = true;
  await run(action, b);
  b.disabled = false;
}

/**
 * GET path, POST body as JSON, or another method. Answers the parsed JSON or throws the
 * bus's message; a refused login says what to do (the browser did not send one).
 */
async function api(path, body, method = body === undefined ? 'GET' : 'POST') {
  const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(API + path, init);
  const data = await res.json().catch(() => null);
  if (res.status === 401) {
    throw new Error(
      `the admin login was refused: open ${API}dashboard (no user:password@ in the address) ` +
        'and log in when asked',
    );
  }
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

// ---- notices ----
// The outcome of an action shows just below the control that caused it, where the user is
// looking (at the top of a long page it went unseen). On the page it is placed by the
// coordinates the control had when pressed, not put in the control's row: the action often
// redraws that row away (a retried dead letter leaves its list). When the control, or the
// same button of its redrawn row, is there as the answer comes, the notice goes below it
// where it is then (a section above may have grown meanwhile). In the detail dialog, which
// sits above the page, it has its place below the dialog's buttons.

/** The row attributes that name what a row shows (the same after a redraw). */
const ROW_KEYS = ['data-schedule', 'data-worker', 'data-flow', 'data-id', 'data-key'];

/** Where a notice about `node` goes: the notice, and on the page its position. */
function spotOf(node) {
  if (node.closest('dialog')) return { notice: $('detail-notice') };
  const r = node.getBoundingClientRect();
  const row = node.closest('table[id] tr');
  const key = row && ROW_KEYS.find((k) => row.hasAttribute(k));
  const table = row?.closest('table').id;
  const again = () => {
    if (node.isConnected) return node;
    if (!key) return null;
    const now = [...$(table).querySelectorAll('tr')].find(
      (tr) => tr.getAttribute(key) === row.getAttribute(key),
    );
    const same = [...(now?.querySelectorAll('button') ?? [])].find(
      (b) => b.textContent === node.textContent,
    );
    // A button whose label changed (Pause → Resume): below its row.
    return same ?? now ?? null;
  };
  return { notice: $('notice'), again, top: r.bottom + scrollY, left: r.left + scrollX };
}

/** Puts the page's notice under its control (found again), inside the page's width. */
function place(n, spot) {
  const control = spot.again();
  if (control) {
    const r = control.getBoundingClientRect();
    [spot.top, spot.left] = [r.bottom + scrollY, r.left + scrollX];
  }
  // Set through the CSSOM, which the CSP allows (it refuses style attributes).
  const room = document.documentElement.clientWidth;
  n.style.top = `${spot.top + 6}px`;
  n.style.left = `${Math.max(8, Math.min(spot.left, room - n.offsetWidth - 8))}px`;
}

// While the page's notice shows, it follows its control when the page's layout changes (a
// section above that grows as the live refresh redraws it).
let shown = null;
new ResizeObserver(() => {
  if (shown && !shown.notice.hidden) place(shown.notice, shown);
}).observe(document.body);

const timers = new Map();
function notify(text, spot, isError = false) {
  const n = spot.notice;
  n.textContent = text;
  n.classList.toggle('error', isError);
  n.setAttribute('role', isError ? 'alert' : 'status');
  n.hidden = false;
  if (spot.top !== undefined) {
    shown = spot;
    place(n, spot);
    // Its control moved out of sight meanwhile (a redraw sorted its row elsewhere): the
    // answer to what was pressed is brought into view, with the control just above it.
    const r = n.getBoundingClientRect();
    if (r.top < 0 || r.bottom > innerHeight) n.scrollIntoView({ block: 'nearest' });
  }
  clearTimeout(timers.get(n));
  timers.set(
    n,
    setTimeout(() => (n.hidden = true), isError ? 10_000 : 5000),
  );
}

/** Runs an action for a control: the message it answers, or its error, shows beside it. */
async function run(action, near) {
  const spot = spotOf(near);
  try {
    const message = await action();
    if (message) notify(message, spot);
  } catch (e) {
    notify(e.message, spot, true);
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

/** A count card: pressed, it lists the intents of its status (pressed again, all of them). */
function countButton(status) {
  const b = el(
    'button',
    { type: 'button', className: `count ${status}`, 'data-status': status },
    el('strong', { id: `count-${status}` }, '0'),
    el('span', {}, status),
  );
  b.title = `List the ${status} intents`;
  b.addEventListener('click', () =>
    pressed(b, async () => {
      const select = $('filter').elements.namedItem('status');
      select.value = select.value === status ? '' : status;
      await applyFilter();
      // The list is further down: bring it into view, or the press seems to do nothing.
      $('sec-intents').scrollIntoView({ block: 'start' });
    }),
  );
  return el('li', {}, b);
}

/** Marks the card of the status the list is filtered by. */
function markCounts(status) {
  for (const b of $('counts').querySelectorAll('button')) {
    b.setAttribute('aria-pressed', String(b.dataset.status === status));
  }
}

function renderStats(stats) {
  // The cards are made once and only their numbers change: a redraw every 2 s would take
  // the focus away from a card being pressed.
  if ($('counts').children.length === 0) {
    $('counts').append(...STATUSES.map(countButton));
    markCounts(new URLSearchParams(list.filter).get('status'));
  }
  for (const s of STATUSES) $(`count-${s}`).textContent = stats.by_status[s] ?? 0;
  $('nav-dead').textContent = stats.by_status.dead ?? 0;
  $('nav-dead').classList.toggle('none', !stats.by_status.dead);
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
  markCounts(params.get('status'));
  firstPage();
  return loadIntents();
}

let detail = null;

/** A worker's last progress in words: `40% · encoding · at 12:00:01`. */
function progressText(p) {
  const parts = [];
  if (p.percent !== null) parts.push(`${p.percent}%`);
  if (p.message !== null) parts.push(p.message);
  if (p.data !== null) parts.push(JSON.stringify(p.data));
  parts.push(`at ${fmtTime(p.at)}`);
  return parts.join(' · ');
}

async function showDetail(id) {
  const it = await api(`intents/${encodeURIComponent(id)}`);
  if (detail?.id !== it.id) $('detail-notice').hidden = true;
  detail = it;
  const finished = it.status === 'fulfilled' || it.status === 'dead';
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
    // Only what applies to the intent's status: a finished intent holds no lease.
    it.status === 'claimed' && ['lease ends', fmtTime(it.claim_expires_at)],
    it.progress && ['progress', progressText(it.progress)],
    finished && ['completed', fmtTime(it.completed_at)],
    ['expires', fmtTime(it.expires_at)],
    ['error', it.error ?? '—'],
    it.status === 'dead' && ['dead reason', it.dead_reason ?? '—'],
  ].filter(Boolean);
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
  // Only the buttons that would change something (PROTOCOL.md §2): cancel ends an open or
  // claimed intent; retry runs anything again, but an open one only gains from it after a
  // failed attempt (its attempts start over); only a dead one can be discarded.
  $('detail-retry').hidden = it.status === 'open' && it.claim_attempts === 0;
  $('detail-cancel').hidden = finished;
  $('detail-discard').hidden = it.status !== 'dead';
  if (!$('detail').open) $('detail').showModal();
}

/** POST /admin/intents/<id>/retry or /cancel, redraws what it changed, answers the notice. */
async function mutate(id, action) {
  const r = await api(`intents/${encodeURIComponent(id)}/${action}`, {});
  await redraw(id);
  return `${action === 'retry' ? 'Retried' : 'Cancelled'}: the intent is now ${r.status}`;
}

async function redraw(id) {
  firstPage();
  await refresh();
  if ($('detail').open && detail?.id === id) await showDetail(id);
}

/** A fulfilled intent ran: a retry runs its job again, so it asks first. */
function retry(id, status) {
  if (status === 'fulfilled' && !window.confirm('Run this fulfilled intent again?')) return null;
  return mutate(id, 'retry');
}

/** DELETE /admin/dead/<id>: the dead letter goes for good, so it asks first. */
async function discard(id, goal) {
  if (!window.confirm(`Discard the dead letter of ${goal}? It is deleted for good.`)) return null;
  await api(`dead/${encodeURIComponent(id)}`, undefined, 'DELETE');
  if ($('detail').open && detail?.id === id) {
    // Nothing is left to act on.
    for (const b of ['retry', 'cancel', 'discard']) $(`detail-${b}`).hidden = true;
  }
  firstPage();
  await refresh();
  return 'Discarded: the dead letter is deleted';
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
            button('Discard', () => discard(d.intent_id, d.goal), 'danger'),
          ),
        ),
      ),
    ),
  );
  $('dead-empty').hidden = dead.length > 0;
}

// ---- schedules ----

/** The last runs as a strip of outcomes, oldest first; each square says what it was. */
function runStrip(runs) {
  const strip = el('span', { className: 'strip', role: 'list' });
  for (const r of [...runs].reverse()) {
    const what = `${fmtTime(r.scheduled_for)}: ${r.outcome}${r.alert_id ? ', alerted' : ''}`;
    strip.append(
      el('span', {
        className: `run ${r.outcome}`,
        role: 'listitem',
        title: what,
        'aria-label': what,
      }),
    );
  }
  if (runs.length === 0) strip.append('none yet');
  return strip;
}

const schedulePath = (s, action) =>
  `schedules/${encodeURIComponent(s.owner)}/${encodeURIComponent(s.name)}/${action}`;

function renderSchedules(schedules) {
  $('schedules').tBodies[0].replaceChildren(
    ...schedules.map((s) =>
      el(
        'tr',
        { 'data-schedule': `${s.owner}/${s.name}` },
        cell('name', s.name),
        cell('owner', el('code', {}, s.owner)),
        cell('when', s.description),
        cell('next run', s.paused ? 'paused' : fmtTime(s.next_run_at)),
        cell('last runs', runStrip(s.runs)),
        cell(
          '',
          el(
            'span',
            { className: 'actions' },
            button(s.paused ? 'Resume' : 'Pause', async () => {
              const r = await api(schedulePath(s, s.paused ? 'resume' : 'pause'), {});
              await loadSchedules();
              return `${s.name}: ${r.paused ? 'paused' : 'active'}`;
            }),
            button('Trigger', async () => {
              const r = await api(schedulePath(s, 'trigger'), {});
              await loadSchedules();
              return `${s.name}: run ${r.id} published`;
            }),
          ),
        ),
      ),
    ),
  );
  $('schedules-empty').hidden = schedules.length > 0;
}

async function loadSchedules() {
  const schedules = await api('schedules');
  if (changed('schedules', schedules)) renderSchedules(schedules);
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
              if (!window.confirm(`Revoke the key of ${k.owner} (${k.prefix}…)?`)) return null;
              await api('revoke_key', { key_id: k.key_id });
              await loadKeys();
              return `Revoked the key of ${k.owner}`;
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
    return 'Key copied to the clipboard';
  }
  window.getSelection().selectAllChildren(code);
  return 'Key selected: press Ctrl+C (the clipboard API needs HTTPS)';
}

// ---- workers (the fleet) and why intents wait ----

/** POST /admin/workers/<id>/<command> for one key's worker; the notice. */
async function commandWorker(w, command) {
  const path = `workers/${encodeURIComponent(w.worker_id)}/${command}`;
  await api(`${path}?key_id=${encodeURIComponent(w.key_id)}`, {});
  await loadFleet();
  return command === 'resume' ? `${w.worker_id} resumed` : `${w.worker_id} told to ${command}`;
}

function workerRow(w) {
  const online = w.status !== 'offline';
  const job =
    w.holds.length === 0
      ? '—'
      : el(
          'span',
          {},
          ...w.holds.map((h) => button(`${h.namespace}/${h.goal}`, () => showDetail(h.id), 'link')),
        );
  const actions =
    w.command == null
      ? [
          button('Quiet', () => commandWorker(w, 'quiet')),
          button('Stop', () => commandWorker(w, 'stop'), 'danger'),
        ]
      : [button('Resume', () => commandWorker(w, 'resume'))];
  return el(
    'tr',
    { 'data-worker': w.worker_id, 'data-key': w.key_id },
    cell(
      'worker',
      el(
        'span',
        {},
        el('span', { className: `dot ${online ? 'on' : 'off'}`, title: w.status }),
        w.worker_id,
      ),
    ),
    cell('status', w.command ? `${w.status} · ${w.command}` : w.status),
    cell('capabilities', w.capabilities.join(', ') || '—'),
    cell('current job', job),
    cell('last seen', fmtTime(w.last_seen)),
    cell('done / failed', `${w.fulfilled} / ${w.failed}`, 'num'),
    cell('', el('span', { className: 'actions' }, ...actions)),
  );
}

function renderWorkers(workers) {
  $('workers').tBodies[0].replaceChildren(...workers.map(workerRow));
  $('workers-empty').hidden = workers.length > 0;
  const online = workers.filter((w) => w.status !== 'offline').length;
  $('nav-workers').textContent = String(online);
  $('nav-workers').classList.toggle('none', online === 0);
}

function renderWaiting(goals) {
  const items = goals.flatMap((g) =>
    g.waiting.map((w) =>
      el(
        'li',
        { 'data-goal': `${g.namespace}/${g.goal}`, 'data-reason': w.reason },
        el('strong', {}, `${g.namespace}/${g.goal}`),
        ` ${w.message}`,
      ),
    ),
  );
  $('waiting').replaceChildren(...items);
  $('waiting-empty').hidden = items.length > 0;
}

async function loadFleet() {
  const [workers, goals] = await Promise.all([api('workers'), api('goals')]);
  if (changed('workers', workers)) renderWorkers(workers.workers);
  if (changed('goals', goals)) renderWaiting(goals.goals);
}

// ---- flow control ----

const flowPath = (c) => `flow/${encodeURIComponent(c.namespace)}/${encodeURIComponent(c.goal)}`;

function renderFlow(controls) {
  $('flow').tBodies[0].replaceChildren(
    ...controls.map((c) =>
      el(
        'tr',
        { 'data-flow': `${c.namespace}/${c.goal}` },
        cell('namespace', c.namespace),
        cell('goal', c.goal === '*' ? '* (whole namespace)' : c.goal),
        cell('state', c.paused ? 'paused' : 'flowing'),
        cell('max in flight', c.max_in_flight ?? '–', 'num'),
        cell('rate', c.rate ? `${c.rate.limit} per ${c.rate.per} s` : '–'),
        cell(
          '',
          el(
            'span',
            { className: 'actions' },
            button(c.paused ? 'Resume' : 'Pause', async () => {
              await api(flowPath(c), { paused: !c.paused }, 'PUT');
              await loadFlow();
              return `${c.namespace}/${c.goal} ${c.paused ? 'resumed' : 'paused'}`;
            }),
            button(
              'Remove',
              async () => {
                await api(flowPath(c), undefined, 'DELETE');
                await loadFlow();
                return `${c.namespace}/${c.goal}: no control now`;
              },
              'danger',
            ),
          ),
        ),
      ),
    ),
  );
  $('flow-empty').hidden = controls.length > 0;
}

async function loadFlow() {
  const controls = await api('flow');
  if (changed('flow', controls)) renderFlow(controls);
}

/** The form's limits: empty clears, a number or N/S sets. */
async function setFlow(form) {
  const f = new FormData(form);
  const mif = f.get('max_in_flight').trim();
  const rate = f.get('rate').trim();
  const m = /^(\d+)\s*\/\s*(\d+)$/.exec(rate);
  if (rate !== '' && !m) throw new Error('rate: N/S, N claims per S seconds (e.g. 5/1)');
  const c = await api(
    flowPath({ namespace: f.get('namespace').trim(), goal: f.get('goal').trim() }),
    {
      paused: f.get('paused') === 'on',
      max_in_flight: mif === '' ? null : Number(mif),
      rate: m ? { limit: Number(m[1]), per: Number(m[2]) } : null,
    },
    'PUT',
  );
  await loadFlow();
  return c.updated_at === null
    ? `${c.namespace}/${c.goal}: nothing set, no control`
    : `${c.namespace}/${c.goal} set`;
}

// ---- live refresh ----

async function refresh() {
  const live = $('live');
  try {
    const [stats, dead] = await Promise.all([
      api('stats'),
      api('dead'),
      loadKeys(),
      loadFleet(),
      loadSchedules(),
      loadFlow(),
    ]);
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

// Live through the event stream (GET /admin/events): each change redraws the counts and
// the chart at once (a burst of changes in one or two redraws). The lists keep the polling
// every REFRESH_MS, which is also the fallback for the counts (the browser reconnects a
// dropped stream by itself): redrawing a list as each change comes would move the page
// under a notice placed beside the control that was pressed.
let redrawing = false;
let redrawAgain = false;
function changedNow() {
  if (redrawing) {
    redrawAgain = true;
    return;
  }
  redrawing = true;
  api('stats')
    .then((stats) => changed('stats', stats) && renderStats(stats))
    .catch(() => undefined) // the next poll says what is wrong
    .finally(() => {
      redrawing = false;
      if (redrawAgain) {
        redrawAgain = false;
        changedNow();
      }
    });
}

if (typeof EventSource === 'function') {
  const stream = new EventSource(`${API}events`);
  const types = ['published', 'claimed', 'progress', 'fulfilled', 'failed', 'dead'];
  for (const type of [...types, 'retried', 'cancelled', 'released', 'gap'])
    stream.addEventListener(type, changedNow);
}

function submitted(form, action) {
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    run(() => action(form), e.submitter ?? form);
  });
}

submitted($('filter'), applyFilter);
submitted($('new-key'), createKey);
submitted($('new-flow'), setFlow);
$('filter')
  .elements.namedItem('status')
  .addEventListener('change', () => $('filter').requestSubmit());
$('more').addEventListener('click', () => pressed($('more'), () => loadIntents({ more: true })));
$('copy').addEventListener('click', () => pressed($('copy'), copyKey));
$('dismiss').addEventListener('click', () => {
  $('created-value').textContent = '';
  $('created-key').hidden = true;
});
$('detail-close').addEventListener('click', () => $('detail').close());
$('detail').addEventListener('click', (e) => e.target === $('detail') && $('detail').close());
$('detail').addEventListener('close', () => ($('detail-notice').hidden = true));
$('detail-retry').addEventListener('click', () =>
  pressed($('detail-retry'), () => retry(detail.id, detail.status)),
);
$('detail-cancel').addEventListener('click', () =>
  pressed($('detail-cancel'), () => mutate(detail.id, 'cancel')),
);
$('detail-discard').addEventListener('click', () =>
  pressed($('detail-discard'), () => discard(detail.id, detail.goal)),
);
for (const n of [$('notice'), $('detail-notice')])
  n.addEventListener('click', () => (n.hidden = true));
loop();
