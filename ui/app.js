// The berth web UI: plain JavaScript over the HTTP API (/v1), signed in with a session cookie.
//
// Safety rules kept everywhere in this file: nothing from the server is ever parsed as markup (no innerHTML: every
// value goes in a text node or a property), links are built from ids the code encodes itself, the API key is sent
// once to /v1/session and never kept (not in storage, not in a variable), and the CSRF token lives in memory only.
'use strict';

const STATES = ['QUEUED', 'PREPARING', 'INITIALIZING', 'PERFORMING', 'FINISHED', 'FAILED', 'CANCELED', 'STOPPED'];
const TERMINAL = ['FINISHED', 'FAILED', 'CANCELED', 'STOPPED'];
const PAGE = 25;
const PHASES = {
  queued: 'Queued',
  preparing: 'Preparation',
  initializing: 'Initialization',
  performing: 'Performing',
  finishing: 'Finishing (hooks, state)',
};

let me = null; // {name, role, stacks, store, csrf_token}
let leave = []; // cleanups of the current screen (timers, event sources)
let routeGen = 0; // counts navigations: a screen still loading when the user moved on must not draw

function alive(gen) {
  return gen === routeGen;
}

function onLeave(gen, fn) {
  if (alive(gen)) leave.push(fn);
  else fn();
}

// ---- DOM helpers ----

// h('div', {class: 'x', onclick: fn}, 'text', child...): strings become text nodes, never markup.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'checked' || k === 'value' || k === 'disabled') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) add(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Replaces el's children (null/false children are skipped, strings become text nodes).
function fill(el, ...children) {
  el.replaceChildren();
  add(el, children);
  return el;
}

function main() {
  return document.getElementById('main');
}

function say(text, kind) {
  const s = document.getElementById('status');
  s.className = kind === 'error' ? 'status error' : 'status';
  s.textContent = text || '';
}

function role(r) {
  return { reader: 1, writer: 2, admin: 3 }[r] || 0;
}

function can(r) {
  return me !== null && role(me.role) >= role(r);
}

// ---- the API ----

async function api(method, path, body) {
  const opts = { method: method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  if (method !== 'GET' && me && me.csrf_token) opts.headers['X-CSRF-Token'] = me.csrf_token;
  const r = await fetch(path, opts);
  let j = null;
  try {
    j = await r.json();
  } catch (e) {
    j = null;
  }
  if (r.status === 401 && path !== '/v1/session') {
    me = null;
    location.hash = '#/signin';
    throw new Error('signed out: ' + (j && j.message ? j.message : 'sign in again'));
  }
  if (!r.ok) throw new Error(j && j.message ? j.message : 'HTTP ' + r.status);
  return j;
}

function enc(s) {
  return encodeURIComponent(s);
}

// ---- formatting ----

function pad(n) {
  return String(n).padStart(2, '0');
}

function absTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + pad(d.getHours()) + ':' +
    pad(d.getMinutes()) + ':' + pad(d.getSeconds());
}

function relTime(iso) {
  if (!iso) return '';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}

// "3 min ago · 2026-12-02 17:40:01" in a <time>
function when(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: iso }, relTime(iso), h('span', { class: 'abs' }, ' · ' + absTime(iso)));
}

function duration(t) {
  if (!t.started_at) return '—';
  const end = t.finished_at ? new Date(t.finished_at) : new Date();
  let s = Math.max(0, Math.round((end - new Date(t.started_at)) / 1000));
  const hrs = Math.floor(s / 3600);
  s -= hrs * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return (hrs ? hrs + 'h ' : '') + (hrs || m ? m + 'm ' : '') + pad(s) + 's';
}

function badge(state) {
  return h('span', { class: 'badge st-' + String(state).toLowerCase() }, state);
}

function taskLink(id, text) {
  return h('a', { href: '#/tasks/' + enc(id), class: 'mono' }, text || id.slice(0, 12));
}

function stackLink(name) {
  return h('a', { href: '#/stacks/' + enc(name) }, name);
}

function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, String(e.message || e));
}

// A form whose submit runs fn; errors are shown next to it.
function form(label, fn, ...fields) {
  const msg = h('p', { class: 'form-msg', 'aria-live': 'polite' });
  const f = h('form', { 'aria-label': label }, fields, msg);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.textContent = '';
    msg.className = 'form-msg';
    const btn = f.querySelector('button[type=submit]');
    if (btn) btn.disabled = true;
    try {
      const text = await fn(f);
      if (text) msg.textContent = text;
    } catch (e) {
      msg.className = 'form-msg error';
      msg.textContent = String(e.message || e);
    } finally {
      if (btn) btn.disabled = false;
    }
  });
  return f;
}

let fieldSeq = 0;
// A labelled control: field('Command', h('textarea', {...}))
function field(label, control, hint) {
  const id = 'f' + ++fieldSeq;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control,
    hint ? h('small', { class: 'hint' }, hint) : null);
}

// ---- screens ----

function signIn() {
  const key = h('input', { type: 'password', name: 'key', autocomplete: 'off', required: true, spellcheck: 'false' });
  const f = form('Sign in', async () => {
    const value = key.value;
    key.value = ''; // the key is sent once and kept nowhere
    me = await api('POST', '/v1/session', { key: value });
    renderNav();
    location.hash = '#/stacks';
  }, field('API key', key, 'berth_…, from `berth key create`. It is exchanged for a session cookie and not kept.'),
  h('button', { type: 'submit' }, 'Sign in'));
  fill(main(), h('section', { class: 'signin' }, h('h1', {}, 'Sign in to berth'), f));
  key.focus();
}

async function stacksScreen() {
  const gen = routeGen;
  const [stacks, queued] = await Promise.all([api('GET', '/v1/stacks'),
    api('GET', '/v1/tasks?state=QUEUED&limit=1000')]);
  const queue = {};
  for (const t of queued.tasks) queue[t.stack] = (queue[t.stack] || 0) + 1;
  const last = await Promise.all(stacks.stacks.map((s) =>
    api('GET', '/v1/tasks?limit=1&stack=' + enc(s.name)).then((j) => j.tasks[0] || null)));
  if (!alive(gen)) return;
  const rows = stacks.stacks.map((s, i) => h('tr', {},
    h('td', {}, stackLink(s.name)),
    h('td', { class: 'mono' }, s.image),
    h('td', {}, s.lock ? [h('span', { class: 'badge lock' }, 'locked'), ' by ', s.lock.owner,
      s.lock.note ? [' — ', h('q', {}, s.lock.note)] : null, ' ', when(s.lock.locked_at)] : h('span', { class: 'muted' }, 'unlocked')),
    h('td', {}, last[i] ? [taskLink(last[i].id), ' ', badge(last[i].state)] : h('span', { class: 'muted' }, 'none')),
    h('td', { class: 'num' }, String(queue[s.name] || 0))));
  fill(main(), h('h1', {}, 'Stacks'),
    stacks.stacks.length === 0 ? h('p', {}, 'No stacks yet (berth stack create).') :
      h('table', {}, h('caption', { class: 'sr-only' }, 'Stacks'),
        h('thead', {}, h('tr', {}, ['Stack', 'Image', 'Lock', 'Last task', 'Queued'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows)));
}

function parseEnv(text) {
  const env = {};
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (l === '') continue;
    const eq = l.indexOf('=');
    if (eq <= 0) throw new Error('environment: `' + l.slice(0, 40) + '` is not KEY=VALUE');
    env[l.slice(0, eq)] = l.slice(eq + 1);
  }
  return env;
}

function runForm(stack) {
  const cmd = h('textarea', { name: 'command', rows: 3, required: true, spellcheck: 'false', class: 'mono' });
  const env = h('textarea', { name: 'env', rows: 2, spellcheck: 'false', class: 'mono', placeholder: 'KEY=VALUE' });
  const init = h('input', { type: 'checkbox', name: 'init', checked: true });
  const initId = 'f' + ++fieldSeq;
  init.id = initId;
  return h('section', { class: 'card' }, h('h2', {}, 'Run task'), form('Run task', async () => {
    const t = await api('POST', '/v1/stacks/' + enc(stack) + '/tasks',
      { command: cmd.value, env: parseEnv(env.value), skip_init: !init.checked });
    location.hash = '#/tasks/' + enc(t.id);
  }, field('Command', cmd, 'Runs as sh -c in the stack\'s container.'),
  field('Environment (one KEY=VALUE a line)', env),
  h('div', { class: 'field check' }, init, h('label', { for: initId }, 'Run initialization'),
    h('small', { class: 'hint' }, 'Off: skip the stack\'s init commands (skip_init).')),
  h('button', { type: 'submit' }, 'Run task')));
}

function lockBox(stack, refresh) {
  const s = stack;
  if (!can('writer')) {
    return s.lock ? h('p', {}, h('span', { class: 'badge lock' }, 'locked'), ' by ', s.lock.owner,
      s.lock.note ? [' — ', h('q', {}, s.lock.note)] : null) : null;
  }
  if (s.lock) {
    const mine = s.lock.owner === me.name;
    return h('section', { class: 'card' }, h('h2', {}, 'Lock'),
      h('p', {}, h('span', { class: 'badge lock' }, 'locked'), ' by ', s.lock.owner, ' ', when(s.lock.locked_at),
        s.lock.note ? [': ', h('q', {}, s.lock.note)] : null),
      mine || can('admin') ? form('Unlock', async () => {
        await api('DELETE', '/v1/stacks/' + enc(s.name) + '/lock' + (mine ? '' : '?force=1'));
        await refresh();
      }, h('button', { type: 'submit' }, mine ? 'Unlock' : 'Force unlock')) :
        h('p', { class: 'muted' }, 'Only its owner or an admin can unlock it.'));
  }
  const note = h('input', { type: 'text', name: 'note', maxlength: 500 });
  return h('section', { class: 'card' }, h('h2', {}, 'Lock'), form('Lock', async () => {
    await api('POST', '/v1/stacks/' + enc(s.name) + '/lock', note.value ? { note: note.value } : {});
    await refresh();
  }, field('Lock note', note, 'While locked, only your tasks start on this stack.'),
  h('button', { type: 'submit' }, 'Lock')));
}

function hashQuery() {
  const q = location.hash.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : location.hash.slice(q + 1));
}

async function stackScreen(name) {
  const gen = routeGen;
  const q = hashQuery();
  const state = STATES.includes(q.get('state')) ? q.get('state') : '';
  const page = Math.max(0, parseInt(q.get('page') || '0', 10) || 0);
  const go = (st, pg) => {
    const p = new URLSearchParams();
    if (st) p.set('state', st);
    if (pg) p.set('page', String(pg));
    location.hash = '#/stacks/' + enc(name) + (p.toString() ? '?' + p : '');
  };
  const table = h('div', { class: 'tasks' });
  const lockSlot = h('div');
  const head = h('p', { class: 'meta' });
  async function refreshStack() {
    const s = await api('GET', '/v1/stacks/' + enc(name));
    fill(head, 'Image ', h('code', {}, s.image));
    fill(lockSlot, lockBox(s, refreshStack));
  }
  async function refreshTasks() {
    const j = await api('GET', '/v1/tasks?stack=' + enc(name) + '&limit=' + (PAGE + 1) + '&offset=' + page * PAGE +
      (state ? '&state=' + state : ''));
    const more = j.tasks.length > PAGE;
    const rows = j.tasks.slice(0, PAGE).map((t) => h('tr', {},
      h('td', {}, taskLink(t.id)),
      h('td', {}, badge(t.state)),
      h('td', { class: 'cmd mono', title: t.command }, t.command.length > 120 ? t.command.slice(0, 120) + '…' : t.command),
      h('td', {}, t.triggered_by),
      h('td', {}, when(t.created_at)),
      h('td', { class: 'num' }, duration(t)),
      h('td', { class: 'num' }, t.exit_code === null ? '—' : String(t.exit_code))));
    fill(table,
      h('table', {}, h('caption', { class: 'sr-only' }, 'Tasks of ' + name),
        h('thead', {}, h('tr', {}, ['ID', 'State', 'Command', 'Triggered by', 'Triggered at', 'Duration', 'Exit code']
          .map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No tasks.')))),
      h('nav', { class: 'pager', 'aria-label': 'Pages' },
        h('button', { type: 'button', disabled: page === 0, onclick: () => go(state, page - 1) }, '← Newer'),
        h('span', {}, ' Page ' + (page + 1) + ' '),
        h('button', { type: 'button', disabled: !more, onclick: () => go(state, page + 1) }, 'Older →')));
  }
  const filter = h('select', { name: 'state', onchange: (ev) => go(ev.target.value, 0) },
    h('option', { value: '' }, 'All states'), STATES.map((s) => h('option', { value: s }, s)));
  filter.value = state;
  const versions = h('div');
  fill(main(), h('h1', {}, 'Stack ', h('span', { class: 'mono' }, name)), head,
    h('div', { class: 'stack-grid' },
      h('div', {}, h('section', {}, h('h2', {}, 'Tasks'), h('div', { class: 'toolbar' }, field('Filter by state', filter)), table),
        h('section', {}, h('h2', {}, 'Persisted state versions'), versions)),
      h('aside', {}, can('writer') ? runForm(name) : null, lockSlot)));
  await Promise.all([refreshStack(), refreshTasks()]);
  api('GET', '/v1/stacks/' + enc(name) + '/state').then((j) => {
    fill(versions, j.versions.length === 0 ? h('p', { class: 'muted' }, 'None.') :
      h('table', {}, h('thead', {}, h('tr', {}, ['Version', 'Task', 'Created', 'Files', 'Bytes'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, j.versions.map((v) => h('tr', {}, h('td', { class: 'num' }, String(v.version)),
          h('td', {}, v.task_id ? taskLink(v.task_id) : '—'), h('td', {}, when(v.created_at)),
          h('td', { class: 'num' }, String(v.files)), h('td', { class: 'num' }, String(v.bytes)))))));
  }).catch((e) => fill(versions, errorBox(e)));
  // the list refreshes itself, but not under the keyboard: redrawing would take the focus from a row's link
  const timer = setInterval(() => {
    if (!table.contains(document.activeElement)) refreshTasks().catch(() => {});
  }, 3000);
  onLeave(gen, () => clearInterval(timer));
}

// ---- the task page: header, timeline, live log ----

class LogView {
  constructor(box) {
    this.box = box; // the scrolling container
    this.section = null;
    this.phase = null;
    this.parsers = { stdout: new AnsiParser(), stderr: new AnsiParser(), note: new AnsiParser() };
    this.pending = [];
    this.timer = null;
    this.follow = true;
    this.auto = false; // a scroll this code made
    this.lastTop = 0;
    // follow stops when the user scrolls up, and starts again at the end; a resize (which moves scrollTop too)
    // changes nothing
    box.addEventListener('scroll', () => {
      const top = box.scrollTop;
      const up = top < this.lastTop - 2;
      this.lastTop = top;
      if (this.auto) {
        this.auto = false;
        return;
      }
      const atEnd = top + box.clientHeight >= box.scrollHeight - 8;
      if (this.follow && up && !atEnd) this.setFollow(false);
      else if (!this.follow && atEnd) this.setFollow(true);
    });
    window.addEventListener('resize', () => {
      if (this.follow) this.scroll();
    });
    this.onfollow = null;
  }

  setFollow(on) {
    this.follow = on;
    if (this.onfollow) this.onfollow(on);
    if (on) this.scroll();
  }

  scroll() {
    this.auto = true;
    this.box.scrollTop = this.box.scrollHeight;
  }

  push(ev) {
    this.pending.push(ev);
    if (this.timer === null) this.timer = setTimeout(() => this.flush(), 50);
  }

  flush() {
    this.timer = null;
    for (const ev of this.pending) this.append(ev);
    this.pending = [];
    if (this.follow) this.scroll();
  }

  append(ev) {
    if (this.section === null || ev.phase !== this.phase) {
      this.phase = ev.phase;
      this.pre = h('pre', { class: 'log' });
      this.section = h('section', { class: 'phase', 'data-phase': ev.phase },
        h('h3', {}, PHASES[ev.phase] || ev.phase), this.pre);
      this.box.appendChild(this.section);
    }
    const parser = this.parsers[ev.stream] || this.parsers.note;
    for (const seg of parser.feed(ev.text)) {
      const cls = [ev.stream === 'stdout' ? '' : ev.stream, seg.cls].filter(Boolean).join(' ');
      const last = this.pre.lastChild;
      if (last && last.className === cls && last.dataset.stream === ev.stream) {
        last.appendChild(document.createTextNode(seg.text));
      } else {
        const span = h('span', { class: cls || null, 'data-stream': ev.stream }, seg.text);
        this.pre.appendChild(span);
      }
    }
  }
}

function timeline(history) {
  return h('ol', { class: 'timeline' }, (history || []).map((e) => h('li', {},
    badge(e.state), ' ', when(e.at), ' by ', h('span', { class: 'actor' }, e.actor || '?'),
    e.note ? [' — ', h('span', { class: 'note' }, e.note)] : null)));
}

function cancelBox(t, refresh) {
  if (!can('writer') || TERMINAL.includes(t.state)) return null;
  if (!can('admin') && t.actor !== me.name) {
    return h('p', { class: 'muted' }, 'Only the key that started it or an admin can cancel this task.');
  }
  if (t.state === 'PERFORMING') {
    return h('div', { class: 'actions' }, h('button', { type: 'button', disabled: true, 'aria-describedby': 'why-no-stop' }, 'Stop'),
      h('p', { id: 'why-no-stop', class: 'hint' },
        'A PERFORMING task cannot be stopped: berth lets the command finish, so the stack\'s state is never left half-written.'));
  }
  const label = t.state === 'QUEUED' ? 'Cancel' : 'Stop';
  return form(label + ' task', async () => {
    await api('POST', '/v1/tasks/' + enc(t.id) + '/cancel');
    await refresh();
  }, h('button', { type: 'submit', class: 'danger' }, label));
}

// An ended task again, as a new task (retry_of); one that had secret env needs its values again: the CLI gives them
function retryBox(t) {
  if (!can('writer') || !TERMINAL.includes(t.state)) return null;
  const secrets = Object.keys(t.secret_env || {});
  if (secrets.length > 0) {
    return h('p', { class: 'hint' }, 'Retry with its secret env again: berth task retry ' + t.id + ' ' +
      secrets.map((k) => '--secret-env ' + k).join(' '));
  }
  return form('Retry task', async () => {
    const n = await api('POST', '/v1/tasks/' + enc(t.id) + '/retry');
    location.hash = '#/tasks/' + enc(n.id);
  }, h('button', { type: 'submit' }, 'Retry'));
}

async function taskScreen(id) {
  const gen = routeGen;
  const info = h('div');
  const tl = h('div');
  const logBox = h('div', { class: 'logbox', role: 'log', 'aria-label': 'Task log', tabindex: 0 });
  const view = new LogView(logBox);
  const follow = h('input', { type: 'checkbox', checked: true });
  const followId = 'f' + ++fieldSeq;
  follow.id = followId;
  follow.addEventListener('change', () => view.setFollow(follow.checked));
  view.onfollow = (on) => {
    follow.checked = on;
  };
  const live = h('span', { class: 'live muted', 'aria-live': 'polite' });
  let task = null;
  async function refresh() {
    task = await api('GET', '/v1/tasks/' + enc(id));
    const t = task;
    fill(info,
      h('h1', {}, 'Task ', h('span', { class: 'mono' }, t.id), ' ', badge(t.state)),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Stack'), h('dd', {}, stackLink(t.stack)),
        h('dt', {}, 'Command'), h('dd', {}, h('code', { class: 'cmd' }, t.command)),
        h('dt', {}, 'Triggered by'), h('dd', {}, t.triggered_by),
        h('dt', {}, 'Triggered at'), h('dd', {}, when(t.created_at)),
        h('dt', {}, 'Initialization'), h('dd', {}, t.skip_init ? 'skipped' : 'runs'),
        h('dt', {}, 'Duration'), h('dd', {}, duration(t)),
        h('dt', {}, 'Exit code'), h('dd', {}, t.exit_code === null ? '—' : String(t.exit_code)),
        t.reason ? [h('dt', {}, 'Reason'), h('dd', {}, t.reason)] : null,
        t.host ? [h('dt', {}, 'Host'), h('dd', {}, h('span', { class: 'mono' }, t.host), ' (attempt ' + t.attempt + ')')] : null,
        t.retry_of ? [h('dt', {}, 'Retry of'), h('dd', {}, taskLink(t.retry_of))] : null,
        Object.keys(t.secret_env || {}).length ? [h('dt', {}, 'Secret env'),
          h('dd', {}, h('span', { class: 'mono' }, Object.keys(t.secret_env).join(', ')))] : null,
        t.state === 'QUEUED' && t.blocked_by ? [h('dt', {}, 'Waiting for'), h('dd', {}, taskLink(t.blocked_by))] : null),
      h('div', { class: 'actions' }, cancelBox(t, refresh), retryBox(t),
        h('a', { href: '/v1/tasks/' + enc(t.id) + '/logs', download: 'task-' + t.id + '.log', class: 'button' }, 'Download raw log')));
    fill(tl, h('h2', {}, 'State timeline'), timeline(t.history));
  }
  fill(main(), info, tl, h('section', {}, h('h2', {}, 'Log'),
    h('div', { class: 'toolbar' }, h('div', { class: 'field check' }, follow, h('label', { for: followId }, 'Follow')), live),
    logBox));
  await refresh();
  if (!alive(gen)) return;
  // the live log: the browser resumes a cut stream itself (Last-Event-ID), the server sends each byte once
  const es = new EventSource('/v1/tasks/' + enc(id) + '/events');
  let pendingRefresh = null;
  const soon = () => {
    if (pendingRefresh === null) {
      pendingRefresh = setTimeout(() => {
        pendingRefresh = null;
        refresh().catch(() => {});
      }, 200);
    }
  };
  es.addEventListener('log', (m) => view.push(JSON.parse(m.data)));
  es.addEventListener('state', (m) => {
    const s = JSON.parse(m.data);
    if (task && (!task.history || s.index >= task.history.length)) soon();
  });
  es.addEventListener('end', () => {
    es.close();
    live.textContent = 'The task has ended.';
    soon();
  });
  es.addEventListener('open', () => {
    live.textContent = 'Live';
  });
  es.addEventListener('error', () => {
    live.textContent = es.readyState === EventSource.CLOSED ? 'Disconnected.' : 'Reconnecting…';
  });
  const ticker = setInterval(() => {
    if (task && !TERMINAL.includes(task.state)) soon();
  }, 5000);
  onLeave(gen, () => {
    es.close();
    clearInterval(ticker);
    if (pendingRefresh) clearTimeout(pendingRefresh);
  });
}

// ---- audit and admin ----

async function auditScreen() {
  const since = h('input', { type: 'text', name: 'since', value: hashQuery().get('since') || '24h' });
  const actor = h('input', { type: 'text', name: 'actor' });
  const action = h('input', { type: 'text', name: 'action' });
  const out = h('div');
  const verdict = h('p', { 'aria-live': 'polite' });
  async function load() {
    const j = await api('GET', '/v1/audit?since=' + enc(since.value));
    const rows = j.records.filter((r) => (!actor.value || r.actor.includes(actor.value)) &&
      (!action.value || r.action.includes(action.value))).reverse();
    fill(out, h('table', {}, h('caption', { class: 'sr-only' }, 'Audit records'),
      h('thead', {}, h('tr', {}, ['#', 'Time', 'Actor', 'Action', 'Target', 'Outcome'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, h('td', { class: 'num' }, String(r.id)), h('td', {}, when(r.time || r.at)),
        h('td', {}, r.actor), h('td', { class: 'mono' }, r.action), h('td', { class: 'mono' }, r.target || ''),
        h('td', { class: r.outcome === 'ok' ? '' : 'error' }, r.outcome))))));
    return rows.length + ' records';
  }
  fill(main(), h('h1', {}, 'Audit trail'),
    form('Filter the audit trail', load, h('div', { class: 'row' }, field('Since (2026-05-01, 90m, 24h)', since),
      field('Actor contains', actor), field('Action contains', action)), h('button', { type: 'submit' }, 'Show')),
    h('section', { class: 'card' }, h('h2', {}, 'Integrity'), form('Verify the audit trail', async () => {
      const v = await api('GET', '/v1/audit/verify');
      verdict.textContent = v.intact ? 'Intact: ' + v.records + ' records, head ' + v.head :
        'BROKEN at record ' + v.first_bad + ': ' + v.problem;
      verdict.className = v.intact ? 'ok' : 'error';
    }, h('button', { type: 'submit' }, 'Verify the hash chain')), verdict),
    out);
  await load();
}

async function adminScreen() {
  const rules = h('div');
  const pols = h('div');
  const keys = h('div');
  async function loadRules() {
    const j = await api('GET', '/v1/images/rules');
    fill(rules, h('table', {}, h('thead', {}, h('tr', {}, ['Pattern', 'Kind', 'By', 'Added', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, j.rules.map((r) => h('tr', {}, h('td', { class: 'mono' }, r.pattern), h('td', {}, r.kind), h('td', {}, r.actor),
        h('td', {}, when(r.created_at)), h('td', {}, h('button', { type: 'button', 'aria-label': 'Remove rule ' + r.pattern,
          onclick: () => api('DELETE', '/v1/images/rules?pattern=' + enc(r.pattern)).then(loadRules).catch((e) => say(e.message, 'error')) }, 'Remove')))))));
  }
  async function loadPolicies() {
    const j = await api('GET', '/v1/policies');
    fill(pols, h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Rule', 'By', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, j.policies.map((p) => h('tr', {}, h('td', {}, p.name), h('td', {}, h('code', {}, JSON.stringify(p.rule))),
        h('td', {}, p.actor), h('td', {}, h('button', { type: 'button', 'aria-label': 'Remove policy ' + p.name,
          onclick: () => api('DELETE', '/v1/policies/' + enc(p.name)).then(loadPolicies).catch((e) => say(e.message, 'error')) }, 'Remove')))))));
  }
  async function loadKeys() {
    const j = await api('GET', '/v1/keys');
    fill(keys, h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Role', 'Stacks', 'Created', 'Last used', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, j.keys.map((k) => h('tr', {}, h('td', {}, k.name), h('td', {}, k.role), h('td', {}, (k.stacks || []).join(', ') || 'all'),
        h('td', {}, when(k.created_at)), h('td', {}, when(k.last_used_at)),
        h('td', {}, k.name === me.name ? h('span', { class: 'muted' }, 'you') : h('button', { type: 'button', class: 'danger', 'aria-label': 'Revoke key ' + k.name,
          onclick: () => confirm('Revoke the key ' + k.name + '?') && api('DELETE', '/v1/keys/' + enc(k.name)).then(loadKeys).catch((e) => say(e.message, 'error')) }, 'Revoke')))))));
  }
  const pattern = h('input', { type: 'text', name: 'pattern', required: true });
  const kind = h('select', { name: 'kind' }, h('option', { value: 'allow' }, 'allow'), h('option', { value: 'deny' }, 'deny'));
  const ref = h('input', { type: 'text', name: 'ref', required: true });
  const pstack = h('input', { type: 'text', name: 'stack', required: true });
  const pcmd = h('input', { type: 'text', name: 'command', required: true });
  const ptext = h('textarea', { name: 'policy', rows: 4, class: 'mono', required: true });
  const kname = h('input', { type: 'text', name: 'name', required: true });
  const krole = h('select', { name: 'role' }, ['reader', 'writer', 'admin'].map((r) => h('option', { value: r }, r)));
  const kstacks = h('input', { type: 'text', name: 'stacks' });
  const secret = h('div', { 'aria-live': 'polite' });
  fill(main(), h('h1', {}, 'Administration'),
    h('section', { class: 'card' }, h('h2', {}, 'Image allowlist'), rules,
      form('Add an image rule', async () => {
        await api('POST', '/v1/images/rules', { pattern: pattern.value, kind: kind.value });
        pattern.value = '';
        await loadRules();
      }, h('div', { class: 'row' }, field('Pattern', pattern), field('Kind', kind)), h('button', { type: 'submit' }, 'Add rule')),
      form('Check an image', async () => {
        const c = await api('GET', '/v1/images/check?ref=' + enc(ref.value));
        return (c.allowed ? 'Allowed' : 'Not allowed') + ': ' + c.normalized + (c.pattern ? ' (' + c.kind + ' ' + c.pattern + ')' : '') +
          (c.reason ? ' — ' + c.reason : '');
      }, field('Check an image', ref), h('button', { type: 'submit' }, 'Check'))),
    h('section', { class: 'card' }, h('h2', {}, 'Policies'), pols,
      form('Test a command', async () => {
        const d = await api('POST', '/v1/policies/test', { stack: pstack.value, command: pcmd.value });
        return d.decision.toUpperCase() + (d.rule ? ' by ' + d.rule : '') + (d.message ? ': ' + d.message : '');
      }, h('div', { class: 'row' }, field('Stack', pstack), field('Command to test', pcmd)), h('button', { type: 'submit' }, 'Test')),
      form('Add a policy', async () => {
        let body;
        try {
          body = JSON.parse(ptext.value);
        } catch (e) {
          throw new Error('the policy is not JSON: ' + e.message);
        }
        const r = await api('POST', '/v1/policies', body);
        await loadPolicies();
        return 'Added ' + r.added;
      }, field('Policy (JSON: one rule or an array)', ptext), h('button', { type: 'submit' }, 'Add policy'))),
    h('section', { class: 'card' }, h('h2', {}, 'API keys'), keys,
      form('Create a key', async () => {
        const stacks = kstacks.value.split(',').map((s) => s.trim()).filter(Boolean);
        const k = await api('POST', '/v1/keys', { name: kname.value, role: krole.value, stacks: stacks });
        fill(secret, h('p', {}, 'The key, shown this once — store it now:'), h('code', { class: 'secret' }, k.key));
        kname.value = '';
        await loadKeys();
      }, h('div', { class: 'row' }, field('Name', kname), field('Role', krole), field('Stacks (comma-separated; empty: all)', kstacks)),
      h('button', { type: 'submit' }, 'Create key')), secret));
  await Promise.all([loadRules(), loadPolicies(), loadKeys()]);
}

// ---- the fleet's hosts (a PostgreSQL store: every `berth serve` on it) ----

// refresh: redraws the screen; gone: what to do once the host is removed (its own page has nothing left to show)
function hostActions(x, refresh, gone) {
  const act = (method, path, what, then) => () => api(method, path).then(then || refresh).then(() => say(what))
    .catch((e) => say(e.message, 'error'));
  const path = '/v1/hosts/' + enc(x.name);
  if (x.state === 'lost') {
    return h('button', { type: 'button', class: 'danger', 'aria-label': 'Remove host ' + x.name,
      onclick: () => confirm('Forget the lost host ' + x.name + '? (its tasks keep its name)') &&
        act('DELETE', path, 'Host ' + x.name + ' removed', gone)() }, 'Remove');
  }
  if (x.state === 'stopped') { // not running, drained by an admin: only its kept drain can be cleared
    return h('button', { type: 'button', 'aria-label': 'Undrain host ' + x.name,
      onclick: act('POST', path + '/undrain', 'Host ' + x.name + ': drain cleared (it claims tasks when it starts)', gone) },
    'Undrain');
  }
  const drain = x.state !== 'draining' || !x.drained;
  return h('button', { type: 'button', 'aria-label': (drain ? 'Drain host ' : 'Undrain host ') + x.name,
    onclick: act('POST', path + (drain ? '/drain' : '/undrain'), 'Host ' + x.name + (drain ? ' draining' : ' claims again')) },
  drain ? 'Drain' : 'Undrain');
}

function hostState(x) {
  return [h('span', { class: 'badge host-' + x.state }, x.state),
    x.drained && x.state !== 'stopped' ? h('span', { class: 'muted' }, ' by an admin') : null,
    x.state === 'stopped' ? h('span', { class: 'muted' }, ' drained by an admin: claims nothing when it starts') : null];
}

async function hostsScreen() {
  const gen = routeGen;
  const table = h('div');
  const admin = can('admin');
  async function refresh() {
    const j = await api('GET', '/v1/hosts');
    const rows = j.hosts.map((x) => h('tr', {},
      h('td', {}, h('a', { href: '#/hosts/' + enc(x.name) }, x.name)),
      h('td', {}, hostState(x)),
      h('td', {}, x.pools.join(', ')),
      h('td', { class: 'num' }, x.state === 'stopped' ? '—' : x.executes ? x.busy + ' / ' + x.slots : 'API only'),
      h('td', { class: 'mono' }, x.version),
      h('td', {}, when(x.heartbeat_at)),
      admin ? h('td', {}, hostActions(x, refresh, refresh)) : null));
    if (!alive(gen)) return;
    fill(table, h('table', {}, h('caption', { class: 'sr-only' }, 'Hosts'),
      h('thead', {}, h('tr', {}, ['Host', 'State', 'Pools', 'Busy / slots', 'Version', 'Last heartbeat']
        .concat(admin ? [''] : []).map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No hosts.')))));
  }
  fill(main(), h('h1', {}, 'Hosts'),
    h('p', { class: 'meta' }, 'Every berth serve on this store. A host is alive while it heartbeats within its lease; ' +
      'draining claims no new task (its running ones finish); lost missed its lease, and its tasks failed.'), table);
  await refresh();
  const timer = setInterval(() => {
    if (!table.contains(document.activeElement)) refresh().catch(() => {});
  }, 3000);
  onLeave(gen, () => clearInterval(timer));
}

async function hostScreen(name) {
  const gen = routeGen;
  const facts = h('div');
  const tasks = h('div');
  async function refresh() {
    const [x, j] = await Promise.all([api('GET', '/v1/hosts/' + enc(name)),
      api('GET', '/v1/tasks?host=' + enc(name) + '&limit=50')]);
    if (!alive(gen)) return;
    fill(facts, h('dl', { class: 'facts' },
      h('dt', {}, 'State'), h('dd', {}, hostState(x), ' ',
        can('admin') ? hostActions(x, refresh, () => { location.hash = '#/hosts'; }) : null),
      h('dt', {}, 'Pools'), h('dd', {}, x.pools.join(', ')),
      h('dt', {}, 'Busy / slots'), h('dd', {}, x.state === 'stopped' ? '— (not running)' :
        x.executes ? x.busy + ' / ' + x.slots : 'API only (claims no task)'),
      h('dt', {}, 'Version'), h('dd', { class: 'mono' }, x.version),
      h('dt', {}, 'Started'), h('dd', {}, when(x.started_at)),
      h('dt', {}, 'Last heartbeat'), h('dd', {}, when(x.heartbeat_at))));
    fill(tasks, h('table', {}, h('caption', { class: 'sr-only' }, 'Tasks run on ' + name),
      h('thead', {}, h('tr', {}, ['ID', 'Stack', 'State', 'Command', 'Triggered at', 'Duration']
        .map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, j.tasks.length ? j.tasks.map((t) => h('tr', {}, h('td', {}, taskLink(t.id)), h('td', {}, stackLink(t.stack)),
        h('td', {}, badge(t.state)), h('td', { class: 'cmd mono', title: t.command }, t.command.length > 120 ? t.command.slice(0, 120) + '…' : t.command),
        h('td', {}, when(t.created_at)), h('td', { class: 'num' }, duration(t)))) :
        h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No tasks.')))));
  }
  fill(main(), h('h1', {}, 'Host ', h('span', { class: 'mono' }, name)), facts,
    h('section', {}, h('h2', {}, 'Its latest tasks'), tasks));
  await refresh();
  const timer = setInterval(() => {
    if (!facts.contains(document.activeElement) && !tasks.contains(document.activeElement)) refresh().catch(() => {});
  }, 3000);
  onLeave(gen, () => clearInterval(timer));
}

// ---- navigation ----

function renderNav() {
  const nav = document.getElementById('nav');
  if (me === null) {
    nav.replaceChildren();
    return;
  }
  fill(nav, h('a', { href: '#/stacks', class: 'brand' }, 'berth'),
    h('a', { href: '#/stacks' }, 'Stacks'),
    me.store === 'postgresql' ? h('a', { href: '#/hosts' }, 'Hosts') : null,
    can('admin') ? h('a', { href: '#/audit' }, 'Audit') : null,
    can('admin') ? h('a', { href: '#/admin' }, 'Admin') : null,
    h('span', { class: 'who' }, me.name + ' (' + me.role + ')'),
    h('button', { type: 'button', id: 'signout', onclick: signOut }, 'Sign out'));
}

async function signOut() {
  try {
    await api('DELETE', '/v1/session');
  } catch (e) {
    // already ended: signed out anyway
  }
  me = null;
  renderNav();
  location.hash = '#/signin';
}

async function route() {
  for (const f of leave) f();
  leave = [];
  const gen = ++routeGen;
  say('');
  const path = location.hash.replace(/^#/, '').split('?')[0] || '/stacks';
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (me === null && parts[0] !== 'signin') {
    try {
      me = await api('GET', '/v1/session');
    } catch (e) {
      me = null;
    }
    renderNav();
    if (me === null) {
      location.hash = '#/signin';
      return;
    }
  }
  document.title = 'berth — ' + (parts[0] || 'stacks');
  try {
    if (parts[0] === 'signin') signIn();
    else if (parts[0] === 'stacks' && parts[1]) await stackScreen(parts[1]);
    else if (parts[0] === 'tasks' && parts[1]) await taskScreen(parts[1]);
    else if (parts[0] === 'hosts' && parts[1]) await hostScreen(parts[1]);
    else if (parts[0] === 'hosts') await hostsScreen();
    else if (parts[0] === 'audit') await auditScreen();
    else if (parts[0] === 'admin') await adminScreen();
    else await stacksScreen();
  } catch (e) {
    if (alive(gen)) fill(main(), errorBox(e));
  }
  if (!alive(gen)) return;
  const h1 = main().querySelector('h1');
  if (h1) {
    h1.tabIndex = -1;
    h1.focus({ preventScroll: true });
  }
}

function boot() {
  fill(document.body, 
    h('a', { href: '#main', class: 'skip', onclick: (ev) => {
      ev.preventDefault();
      main().focus();
    } }, 'Skip to content'),
    h('header', {}, h('nav', { id: 'nav', 'aria-label': 'Main' })),
    h('p', { id: 'status', class: 'status', role: 'status', 'aria-live': 'polite' }),
    h('main', { id: 'main', tabindex: -1 }));
  window.addEventListener('hashchange', route);
  route();
}

document.addEventListener('DOMContentLoaded', boot);
