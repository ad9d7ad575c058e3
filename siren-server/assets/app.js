// SIREN dashboard: a small single-page app over the REST API (/api/v1).
//
// Safety rule kept everywhere in this file: data from the server reaches the page only through
// text nodes (textContent / createTextNode), never through innerHTML or an HTML string, so
// `<script>` or markup inside an event field, a title or a note is shown as text.
(function () {
  'use strict';

  const API = '/api/v1';
  const SEVERITIES = ['critical', 'high', 'medium', 'low', 'informational'];
  const STATUSES = ['new', 'acknowledged', 'in_progress', 'escalated', 'resolved', 'closed'];
  const RESOLUTIONS = ['true_positive', 'false_positive', 'benign'];
  const SEV_COLOURS = {
    critical: '#b4161b', high: '#e8590c', medium: '#d49b00', low: '#2f6fdb', informational: '#7a8699',
  };
  const PAGE_SIZE = 50;

  const state = {
    user: null,
    csrf: null,
    stream: null,
    streamRetry: null,
    view: 0,          // bumped on every render; stale async results check it
    charts: [],
    list: null,       // the incident list on screen: {filters, incidents, cursor, tbody}
    detail: null,     // the incident on screen: {id}
    countTimer: null,
    clusterTimer: null, // the cluster page's next refresh
  };

  // ---------------------------------------------------------------- DOM helpers

  /** Builds an element. Strings and numbers among the children become text nodes. */
  function h(tag, attrs) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === null || value === undefined || value === false) continue;
        if (key === 'class') el.className = value;
        else if (key === 'text') el.textContent = String(value);
        else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
        else if (key === 'dataset') Object.assign(el.dataset, value);
        else if (key === 'value') el.value = value;
        else el.setAttribute(key, value === true ? '' : String(value));
      }
    }
    for (let i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function append(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach((c) => append(el, c)); return; }
    if (child instanceof Node) { el.appendChild(child); return; }
    el.appendChild(document.createTextNode(String(child)));
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  const $ = (id) => document.getElementById(id);

  function label(text) {
    return String(text).replace(/_/g, ' ');
  }

  function sevTag(severity) {
    return h('span', { class: 'sev sev-' + cssName(severity), text: severity });
  }

  function sevBadge(severity) {
    return h('span', { class: 'sev-badge sev-' + cssName(severity), text: severity });
  }

  function statusTag(status) {
    return h('span', { class: 'status status-' + cssName(status), text: label(status) });
  }

  /** A class-name-safe version of an enum value. */
  function cssName(value) {
    return String(value).toLowerCase().replace(/[^a-z0-9_-]/g, '');
  }

  function pad(n) { return n < 10 ? '0' + n : String(n); }

  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function ago(iso) {
    if (!iso) return '';
    const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
    if (isNaN(seconds)) return '';
    if (seconds < 45) return 'just now';
    if (seconds < 3600) return Math.round(seconds / 60) + ' min ago';
    if (seconds < 86400) return Math.round(seconds / 3600) + ' h ago';
    return Math.round(seconds / 86400) + ' d ago';
  }

  function timeCell(iso) {
    return h('span', { class: 'nowrap', title: fmtTime(iso), text: ago(iso) || fmtTime(iso) });
  }

  function fmtNumber(n) {
    return Number(n || 0).toLocaleString('en-US');
  }

  function toast(title, body, options) {
    const opts = options || {};
    const el = h('div', { class: 'toast' + (opts.error ? ' toast-error' : ''), role: 'status' },
      h('div', { class: 'toast-title', text: title }),
      body ? h('div', { class: 'toast-body', text: body }) : null);
    el.addEventListener('click', () => { el.remove(); if (opts.href) location.hash = opts.href; });
    $('toasts').appendChild(el);
    setTimeout(() => el.remove(), opts.error ? 8000 : 4000);
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (method !== 'GET' && method !== 'HEAD' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (e) {
      throw new ApiError(0, 'The server cannot be reached.');
    }
    const text = await response.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
    if (!response.ok) {
      const message = (data && data.error) || ('HTTP ' + response.status);
      if (response.status === 401 && state.user && !path.startsWith('/auth/')) {
        signedOut('Your session has ended. Sign in again.');
      }
      throw new ApiError(response.status, message);
    }
    return data;
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
    const s = q.toString();
    return s ? '?' + s : '';
  }

  function canWork() {
    return state.user && (state.user.role === 'admin' || state.user.role === 'analyst');
  }

  // ---------------------------------------------------------------- sign in / out

  function showLogin(message) {
    $('app-view').hidden = true;
    $('login-view').hidden = false;
    const error = $('login-error');
    error.hidden = !message;
    error.textContent = message || '';
    $('login-password').value = '';
    $('login-username').focus();
    document.title = 'SIREN · Sign in';
  }

  function signedIn(body) {
    state.user = body.user;
    state.csrf = body.csrf_token;
    $('login-view').hidden = true;
    $('app-view').hidden = false;
    $('whoami-name').textContent = body.user.name;
    $('whoami-meta').textContent = body.user.role + ' · ' + (body.user.tenant || 'all tenants');
    // The cluster's state covers every tenant: the page is a global admin's.
    $('nav-cluster').hidden = !(body.user.role === 'admin' && body.user.global);
    startStream();
    refreshOpenCount();
    route();
  }

  function signedOut(message) {
    stopStream();
    state.user = null;
    state.csrf = null;
    destroyCharts();
    clear($('main'));
    showLogin(message);
  }

  async function onLogin(event) {
    event.preventDefault();
    const button = $('login-submit');
    const username = $('login-username').value.trim();
    const password = $('login-password').value;
    const tenant = $('login-tenant').value.trim();
    if (!username || !password) {
      showLogin('Enter your username and password.');
      $('login-username').value = username;
      return;
    }
    button.disabled = true;
    try {
      const body = { username, password };
      if (tenant) body.tenant = tenant;
      const result = await api('POST', '/auth/login', body);
      $('login-password').value = '';
      signedIn(result);
    } catch (e) {
      let message = e.message;
      if (e.status === 401) message = 'Wrong username, password or tenant.';
      else if (e.status === 429) message = 'Too many attempts. Wait a minute and try again.';
      showLogin(message);
      $('login-username').value = username;
      $('login-password').focus();
    } finally {
      button.disabled = false;
    }
  }

  async function onLogout() {
    try { await api('POST', '/auth/logout'); } catch (e) { /* signed out either way */ }
    location.hash = '';
    signedOut(null);
  }

  // ---------------------------------------------------------------- live updates (SSE)

  function startStream() {
    stopStream();
    const source = new EventSource(API + '/stream');
    state.stream = source;
    source.addEventListener('open', () => setLive(true));
    source.addEventListener('incident', (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch (err) { return; }
      if (data && data.incident) onIncidentEvent(data.kind, data.incident);
    });
    source.addEventListener('error', () => {
      setLive(false);
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. 401): check the session, then reconnect.
        state.streamRetry = setTimeout(async () => {
          try {
            await api('GET', '/auth/me');
            if (state.user) startStream();
          } catch (err) {
            if (err.status === 401) signedOut('Your session has ended. Sign in again.');
            else if (state.user) startStream();
          }
        }, 3000);
      }
    });
  }

  function stopStream() {
    if (state.stream) state.stream.close();
    state.stream = null;
    clearTimeout(state.streamRetry);
    setLive(false);
  }

  function setLive(on) {
    $('live-status').className = 'live ' + (on ? 'live-on' : 'live-off');
    $('live-text').textContent = on ? 'live' : 'offline';
  }

  function onIncidentEvent(kind, incident) {
    if (kind === 'created') {
      toast('New ' + incident.severity + ' incident #' + incident.id, incident.title,
        { href: '#/incidents/' + incident.id });
    }
    if (state.list) liveListUpdate(kind, incident);
    if (state.detail && String(state.detail.id) === String(incident.id)) {
      const view = state.view;
      loadIncident(incident.id, view, true);
    }
    if (state.overview) scheduleOverviewRefresh();
    scheduleOpenCount();
  }

  function scheduleOpenCount() {
    clearTimeout(state.countTimer);
    state.countTimer = setTimeout(refreshOpenCount, 1500);
  }

  async function refreshOpenCount() {
    try {
      const stats = await api('GET', '/stats');
      setOpenCount(stats.incidents_open);
    } catch (e) { /* the count is a hint only */ }
  }

  function setOpenCount(n) {
    const el = $('nav-open-count');
    el.hidden = !n;
    el.textContent = fmtNumber(n);
  }

  // ---------------------------------------------------------------- routing

  function parseHash() {
    const raw = location.hash.replace(/^#/, '') || '/overview';
    const [path, qs] = raw.split('?');
    return { parts: path.split('/').filter(Boolean), params: new URLSearchParams(qs || '') };
  }

  function route() {
    if (!state.user) return;
    const { parts, params } = parseHash();
    state.view += 1;
    state.list = null;
    state.detail = null;
    state.overview = null;
    clearTimeout(state.clusterTimer);
    destroyCharts();
    const main = clear($('main'));
    const section = parts[0] || 'overview';
    document.querySelectorAll('.nav-link').forEach((a) => {
      a.classList.toggle('active', a.dataset.nav === section);
    });
    if (section === 'incidents' && parts[1]) renderIncident(main, parts[1]);
    else if (section === 'incidents') renderIncidents(main, params);
    else if (section === 'cluster') renderCluster(main);
    else renderOverview(main);
    main.focus({ preventScroll: true });
  }

  // ---------------------------------------------------------------- overview

  function destroyCharts() {
    state.charts.forEach((c) => c.destroy());
    state.charts = [];
  }

  function chartCard(title, cls, sub) {
    const box = h('div', { class: 'chart-box' });
    const card = h('section', { class: 'card ' + cls },
      h('div', { class: 'card-head' }, h('h2', { text: title }), sub ? h('span', { class: 'muted', text: sub }) : null),
      h('div', { class: 'card-body' }, box));
    return { card, box };
  }

  function renderOverview(main) {
    const view = state.view;
    state.overview = { view };
    document.title = 'SIREN · Overview';
    main.appendChild(h('div', { class: 'page-head' },
      h('div', null, h('h1', { text: 'Overview' }), h('div', { class: 'sub', id: 'overview-sub', text: 'Loading…' })),
      reportLinks('overview-report', 'Last 30 days as a report', '/api/v1/reports/summary',
        'since=' + encodeURIComponent(new Date(Date.now() - 30 * 86400000).toISOString()))));
    const kpis = h('div', { class: 'kpis', id: 'kpis' });
    main.appendChild(kpis);
    const charts = h('div', { class: 'charts' });
    main.appendChild(charts);
    state.overview.boxes = {
      severity: chartCard('Open incidents by severity', 'chart-card'),
      epm: chartCard('Events per minute', 'chart-wide', 'last 60 minutes, by arrival'),
      overTime: chartCard('Incidents opened per day', 'chart-wide', 'last 30 days'),
      hosts: chartCard('Top hosts', 'chart-card', 'by alerts'),
      rules: chartCard('Top rules', 'chart-half', 'by alerts'),
      latest: chartCard('Latest open incidents', 'chart-half'),
    };
    Object.values(state.overview.boxes).forEach((b) => charts.appendChild(b.card));
    if (state.user.role === 'admin') {
      const retention = h('section', { class: 'card retention-card', id: 'retention-card' },
        h('div', { class: 'card-head' }, h('h2', { text: 'Data kept' }),
          h('span', { class: 'muted', text: 'retention policy, storage and purges' })),
        h('div', { class: 'card-body', id: 'retention-body', text: 'Loading…' }));
      main.insertBefore(retention, charts);
      loadRetention(view);
    }
    loadOverview(view);
  }

  function fmtBytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
  }

  // Where events go before they are deleted, and how much of the tenant's is there.
  function archiveText(archive) {
    if (!archive) return 'none: events past the policy are deleted';
    if (archive.error) return archive.location + ' · cannot list: ' + archive.error;
    return archive.location + ' · ' + fmtNumber(archive.parts) + ' parts, ' + fmtBytes(archive.bytes) +
      (archive.archives_events ? '' : ' · this tenant\'s policy does not archive');
  }

  // The tenant's retention: what each kind keeps, the oldest event, the database's size
  // and the background purge (admins; GET /retention).
  async function loadRetention(view) {
    let r;
    try {
      r = await api('GET', '/retention');
    } catch (e) {
      if (view === state.view) $('retention-body').textContent = 'Could not load the retention: ' + e.message;
      return;
    }
    if (view !== state.view) return;
    const kinds = ['events', 'incidents', 'outbox', 'sessions', 'correlation'];
    const policy = r.policy || {};
    const rows = kinds.map((k) => h('tr', { 'data-kind': k },
      h('th', { text: k }),
      h('td', { class: 'retention-keep', text: policy[k] || 'forever' }),
      h('td', { class: 'muted', text: r.cutoffs[k] ? 'older than ' + fmtTime(r.cutoffs[k]) + ' goes' : 'kept' })));
    const last = r.last_run;
    const facts = [
      ['Oldest event', r.oldest_event ? fmtTime(r.oldest_event) : 'none stored', 'retention-oldest'],
      ['Events stored', fmtNumber(r.events), 'retention-events'],
      ['Database size', fmtBytes(r.database_bytes), 'retention-bytes'],
      ['Next purge', r.interval_seconds == null ? 'none: nothing is purged' : (r.next_run ? fmtTime(r.next_run) : 'running now'), 'retention-next'],
      ['Last purge', last ? fmtTime(last.finished_at) + ' · ' + fmtNumber(Object.values(last.removed).reduce((a, b) => a + b, 0)) + ' rows' + (last.error ? ' · failed: ' + last.error : '') : 'not yet', 'retention-last'],
      ['Archive', archiveText(r.archive), 'retention-archive'],
    ].map(([label, value, id]) => h('div', { class: 'retention-fact' },
      h('div', { class: 'kpi-label', text: label }), h('div', { id, text: value })));
    clear($('retention-body')).append(
      h('div', { class: 'retention-facts' }, ...facts),
      h('table', { class: 'table retention-policy' }, h('tbody', null, ...rows)));
    document.body.dataset.retention = 'rendered';
  }

  let overviewTimer = null;
  function scheduleOverviewRefresh() {
    clearTimeout(overviewTimer);
    overviewTimer = setTimeout(() => {
      if (state.overview) loadOverview(state.overview.view);
    }, 1000);
  }

  async function loadOverview(view) {
    let stats, latest;
    try {
      [stats, latest] = await Promise.all([
        api('GET', '/stats'),
        api('GET', '/incidents' + query({ limit: 8 })),
      ]);
    } catch (e) {
      if (view === state.view) $('overview-sub').textContent = 'Could not load the overview: ' + e.message;
      return;
    }
    if (view !== state.view || !state.overview) return;
    destroyCharts();
    setOpenCount(stats.incidents_open);
    const epm = minuteSeries(stats.events_per_minute || []);
    const lastHour = epm.values.reduce((a, b) => a + b, 0);
    $('overview-sub').textContent = 'Updated ' + fmtTime(new Date().toISOString()) +
      (state.user.tenant ? ' · tenant ' + state.user.tenant : '');
    const open = stats.open_by_severity || {};
    const urgent = (open.critical || 0) + (open.high || 0);
    const byStatus = stats.by_status || {};
    clear($('kpis')).append(
      kpi('Open incidents', fmtNumber(stats.incidents_open), 'not resolved or closed'),
      kpi('Critical and high', fmtNumber(urgent), (open.critical || 0) + ' critical · ' + (open.high || 0) + ' high', urgent ? 'kpi-critical' : ''),
      kpi('Waiting for triage', fmtNumber(byStatus.new || 0), 'status new'),
      kpi('Events stored', fmtNumber(stats.events_total), fmtNumber(lastHour) + ' in the last hour'),
    );
    const boxes = state.overview.boxes;
    // Open incidents by severity: a doughnut; a click lists that severity.
    const sevCounts = SEVERITIES.map((s) => open[s] || 0);
    if (sevCounts.some((n) => n > 0)) {
      chart(boxes.severity.box, {
        type: 'doughnut',
        data: {
          labels: SEVERITIES,
          datasets: [{ data: sevCounts, backgroundColor: SEVERITIES.map((s) => SEV_COLOURS[s]), borderWidth: 1 }],
        },
        options: {
          cutout: '62%',
          plugins: { legend: { position: 'right', labels: { boxWidth: 12 } } },
          onClick: (e, items) => {
            if (items.length) location.hash = '#/incidents?severity=' + SEVERITIES[items[0].index];
          },
        },
      }, 'severity');
    } else {
      empty(boxes.severity.box, 'No open incidents.');
    }
    chart(boxes.epm.box, {
      type: 'bar',
      data: {
        labels: epm.labels,
        datasets: [{ data: epm.values, backgroundColor: '#3563e9', borderRadius: 2, barPercentage: 0.9, categoryPercentage: 1 }],
      },
      options: {
        plugins: { legend: { display: false } },
        scales: { x: { ticks: { maxTicksLimit: 8 }, grid: { display: false } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    }, 'events-per-minute');
    const days = daySeries(stats.incidents_over_time || []);
    chart(boxes.overTime.box, {
      type: 'bar',
      data: { labels: days.labels, datasets: [{ data: days.values, backgroundColor: '#e8590c', borderRadius: 3 }] },
      options: {
        plugins: { legend: { display: false } },
        scales: { x: { ticks: { maxTicksLimit: 10 }, grid: { display: false } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    }, 'incidents-over-time');
    const hosts = stats.top_hosts || [];
    if (hosts.length) {
      chart(boxes.hosts.box, hbar(hosts.map((x) => x.host), hosts.map((x) => x.count), '#2f6fdb', (i) => {
        location.hash = '#/incidents' + query({ q: hosts[i].host });
      }), 'top-hosts');
    } else {
      empty(boxes.hosts.box, 'No alerts yet.');
    }
    const rules = stats.top_rules || [];
    if (rules.length) {
      chart(boxes.rules.box, hbar(rules.map((x) => x.title || x.rule_id), rules.map((x) => x.count), '#6231c7'), 'top-rules');
    } else {
      empty(boxes.rules.box, 'No alerts yet.');
    }
    renderLatest(boxes.latest.box, (latest && latest.incidents) || []);
    if (!state.overview.rendered) {
      state.overview.rendered = true;
      performance.mark('siren-overview-rendered');
      document.body.dataset.overview = 'rendered';
    }
  }

  function kpi(title, value, note, cls) {
    return h('div', { class: 'card kpi ' + (cls || '') },
      h('div', { class: 'kpi-label', text: title }),
      h('div', { class: 'kpi-value', text: value }),
      h('div', { class: 'kpi-note', text: note }));
  }

  function empty(box, text) {
    clear(box).appendChild(h('div', { class: 'empty', text }));
  }

  function chart(box, config, name) {
    const canvas = h('canvas', { 'aria-label': name, role: 'img', dataset: { chart: name } });
    clear(box).appendChild(canvas);
    if (!window.Chart) { empty(box, 'Charts unavailable.'); return; }
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
    state.charts.push(new window.Chart(canvas, config));
  }

  function hbar(labels, values, colour, onClick) {
    const short = labels.map((l) => {
      const s = String(l);
      return s.length > 38 ? s.slice(0, 37) + '…' : s;
    });
    return {
      type: 'bar',
      data: { labels: short, datasets: [{ data: values, backgroundColor: colour, borderRadius: 3, barThickness: 14 }] },
      options: {
        indexAxis: 'y',
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { title: (items) => String(labels[items[0].dataIndex]) } },
        },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } }, y: { grid: { display: false } } },
        onClick: onClick ? (e, items) => { if (items.length) onClick(items[0].index); } : undefined,
      },
    };
  }

  /** The last 60 minutes, one point per minute, zero where the server reported nothing. */
  function minuteSeries(points) {
    const counts = new Map();
    let latest = Math.floor(Date.now() / 60000);
    for (const p of points) {
      const minute = Math.floor(new Date(p.t).getTime() / 60000);
      if (isNaN(minute)) continue;
      counts.set(minute, (counts.get(minute) || 0) + (p.count || 0));
      if (minute > latest) latest = minute;
    }
    const labels = [], values = [];
    for (let m = latest - 59; m <= latest; m++) {
      const d = new Date(m * 60000);
      labels.push(pad(d.getHours()) + ':' + pad(d.getMinutes()));
      values.push(counts.get(m) || 0);
    }
    return { labels, values };
  }

  /** The last 30 days (UTC dates, as the server counts them), zero-filled. */
  function daySeries(points) {
    const counts = new Map(points.map((p) => [String(p.t).slice(0, 10), p.count || 0]));
    const labels = [], values = [];
    const today = new Date();
    for (let i = 29; i >= 0; i--) {
      const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
      const key = d.toISOString().slice(0, 10);
      labels.push(key.slice(5));
      values.push(counts.get(key) || 0);
    }
    return { labels, values };
  }

  function renderLatest(box, incidents) {
    const open = incidents.filter((i) => i.status !== 'resolved' && i.status !== 'closed');
    if (!open.length) { empty(box, 'No open incidents.'); return; }
    const tbody = h('tbody');
    for (const incident of open.slice(0, 6)) {
      tbody.appendChild(h('tr', { class: 'row-link', onclick: () => { location.hash = '#/incidents/' + incident.id; } },
        h('td', null, sevTag(incident.severity)),
        h('td', null, h('a', { href: '#/incidents/' + incident.id, class: 'cell-title', text: incident.title })),
        h('td', { class: 'muted nowrap' }, timeCell(incident.last_seen))));
    }
    clear(box).appendChild(h('table', { class: 'latest' }, tbody));
    box.classList.add('chart-box-list');
  }

  // ---------------------------------------------------------------- cluster

  function renderCluster(main) {
    const view = state.view;
    document.title = 'SIREN · Cluster';
    main.append(
      h('div', { class: 'page-head' }, h('div', null, h('h1', { text: 'Cluster' }),
        h('div', { class: 'sub', id: 'cluster-sub', text: 'Loading…' }))),
      h('div', { class: 'kpis', id: 'cluster-kpis' }),
      h('div', { id: 'cluster-tables' }));
    loadCluster(view);
  }

  async function loadCluster(view) {
    let cluster;
    try {
      cluster = await api('GET', '/cluster');
    } catch (e) {
      if (view === state.view) $('cluster-sub').textContent = 'Could not read the cluster: ' + e.message;
      if (view === state.view) state.clusterTimer = setTimeout(() => loadCluster(view), 5000);
      return;
    }
    if (view !== state.view) return;
    const tables = clear($('cluster-tables'));
    const kpis = clear($('cluster-kpis'));
    if (cluster.mode !== 'distributed') {
      $('cluster-sub').textContent = 'Single node: this server correlates every event itself.';
      tables.appendChild(h('section', { class: 'card card-pad', id: 'cluster-single' },
        h('p', { text: 'To spread the work over several servers, start each one with --bus nats://HOST:4222 ' +
          '(front-ends accept events, workers correlate); see "Distributed mode" in the README.' })));
      document.body.dataset.cluster = 'single';
      return;
    }
    const partitions = cluster.partitions || [];
    const members = cluster.members || [];
    const unowned = partitions.filter((p) => !p.owner).length;
    const lag = partitions.reduce((sum, p) => sum + (p.lag || 0), 0);
    const workers = members.filter((m) => m.role !== 'front-end').length;
    $('cluster-sub').textContent = 'Cluster ' + cluster.cluster + ' · seen from ' + cluster.node +
      ' · updated ' + fmtTime(new Date().toISOString());
    kpis.append(
      kpi('Partitions', fmtNumber(partitions.length), unowned ? unowned + ' without an owner' : 'all owned', unowned ? 'kpi-critical' : ''),
      kpi('Workers', fmtNumber(workers), fmtNumber(members.length - workers) + ' front-end only'),
      kpi('Waiting messages', fmtNumber(lag), 'summed over the partitions'),
    );
    const memberRows = h('tbody', { id: 'cluster-members' });
    for (const m of members) {
      memberRows.appendChild(h('tr', { dataset: { member: m.id } },
        h('td', { text: m.id }), h('td', { text: m.role }), h('td', { class: 'muted', text: m.listen }),
        h('td', { class: 'num', text: fmtNumber((m.partitions || []).length) }),
        h('td', { class: 'muted nowrap' }, timeCell(m.at))));
    }
    const partitionRows = h('tbody', { id: 'cluster-partitions' });
    for (const p of partitions) {
      partitionRows.appendChild(h('tr', { dataset: { partition: p.partition, owner: p.owner || '' } },
        h('td', { class: 'num', text: p.partition }),
        h('td', { class: p.owner ? '' : 'muted', text: p.owner || 'no owner' }),
        h('td', { class: 'num', text: p.applied === null || p.applied === undefined ? '—' : fmtNumber(p.applied) }),
        h('td', { class: 'num', text: p.lag === null || p.lag === undefined ? '—' : fmtNumber(p.lag) })));
    }
    const head = (...names) => h('thead', null, h('tr', null, names.map((n) => h('th', { text: n }))));
    tables.append(
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', { text: 'Members' }), h('span', { class: 'muted', text: 'heard from in the last 10 s' })),
        h('table', { class: 'incidents' }, head('Member', 'Role', 'Address', 'Partitions', 'Last seen'), memberRows)),
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', { text: 'Partitions' }), h('span', { class: 'muted', text: 'owner, last stream sequence applied, messages waiting' })),
        h('table', { class: 'incidents' }, head('Partition', 'Owner', 'Applied', 'Waiting'), partitionRows)));
    document.body.dataset.cluster = 'rendered';
    state.clusterTimer = setTimeout(() => { if (view === state.view) loadCluster(view); }, 5000);
  }

  // ---------------------------------------------------------------- incident list

  function filtersFrom(params) {
    return {
      status: params.get('status') || '',
      severity: params.get('severity') || '',
      assignee: params.get('assignee') || '',
      q: params.get('q') || '',
    };
  }

  function renderIncidents(main, params) {
    const view = state.view;
    const filters = filtersFrom(params);
    document.title = 'SIREN · Incidents';
    const select = (name, values, anyText) => h('select', { id: 'filter-' + name, 'aria-label': name, onchange: applyFilters },
      h('option', { value: '', text: anyText }),
      values.map((v) => {
        const opt = h('option', { value: v, text: label(v) });
        if (v === filters[name]) opt.selected = true;
        return opt;
      }));
    const search = h('input', {
      id: 'filter-q', class: 'search', type: 'search', placeholder: 'Search title, host, user, IP…',
      value: filters.q, 'aria-label': 'search', oninput: debounce(applyFilters, 300),
    });
    const assignee = h('input', {
      id: 'filter-assignee', placeholder: 'Assignee', value: filters.assignee, 'aria-label': 'assignee',
      oninput: debounce(applyFilters, 300),
    });
    const mine = h('button', {
      type: 'button', class: 'btn', text: 'Assigned to me',
      onclick: () => { assignee.value = state.user.name; applyFilters(); },
    });
    const tbody = h('tbody', { id: 'incident-rows' });
    const foot = h('div', { class: 'list-foot' }, h('span', { id: 'list-count', text: 'Loading…' }), h('span', { id: 'list-more' }));
    main.append(
      h('div', { class: 'page-head' }, h('div', null, h('h1', { text: 'Incidents' }),
        h('div', { class: 'sub', text: 'New incidents appear here as they are opened.' }))),
      h('section', { class: 'card' },
        h('div', { class: 'filters' }, search, select('status', STATUSES, 'Any status'),
          select('severity', SEVERITIES, 'Any severity'), assignee, mine),
        h('table', { class: 'incidents' },
          h('thead', null, h('tr', null,
            h('th', { text: 'Severity' }), h('th', { text: 'Incident' }), h('th', { text: 'Status' }),
            h('th', { text: 'Assignee' }), h('th', { text: 'Hosts' }), h('th', { class: 'num', text: 'Alerts' }),
            h('th', { text: 'Last seen' }))),
          tbody),
        foot));
    state.list = { view, filters, incidents: [], cursor: null, tbody };
    loadIncidents(view, null);
  }

  function applyFilters() {
    const filters = {
      status: $('filter-status').value,
      severity: $('filter-severity').value,
      assignee: $('filter-assignee').value.trim(),
      q: $('filter-q').value.trim(),
    };
    const hash = '#/incidents' + query(filters);
    // Replace rather than push, so typing in the search box does not fill the history.
    history.replaceState(null, '', hash);
    if (!state.list) return;
    state.view += 1;
    state.list.view = state.view;
    state.list.filters = filters;
    state.list.incidents = [];
    loadIncidents(state.view, null);
  }

  async function loadIncidents(view, cursor) {
    const list = state.list;
    const params = Object.assign({}, list.filters, { limit: PAGE_SIZE, cursor });
    let page;
    try {
      page = await api('GET', '/incidents' + query(params));
    } catch (e) {
      if (view === state.view) $('list-count').textContent = 'Could not load incidents: ' + e.message;
      return;
    }
    if (view !== state.view || state.list !== list) return;
    if (!cursor) clear(list.tbody);
    for (const incident of page.incidents) {
      list.incidents.push(incident);
      list.tbody.appendChild(incidentRow(incident));
    }
    list.cursor = page.next_cursor || null;
    updateListFoot();
  }

  function updateListFoot() {
    const list = state.list;
    const n = list.incidents.length;
    if (!n) {
      clear(list.tbody).appendChild(h('tr', null, h('td', { colspan: 7, class: 'empty', text: 'No incidents match.' })));
    }
    $('list-count').textContent = n + (n === 1 ? ' incident' : ' incidents') + (list.cursor ? ' shown' : '');
    const more = clear($('list-more'));
    if (list.cursor) {
      more.appendChild(h('button', { type: 'button', class: 'btn btn-small', text: 'Load more',
        onclick: () => loadIncidents(list.view, list.cursor) }));
    }
  }

  function incidentRow(incident, fresh) {
    const href = '#/incidents/' + incident.id;
    const hosts = incident.hosts || [];
    return h('tr', {
      class: 'row-link' + (fresh ? ' row-new' : ''), dataset: { id: incident.id },
      onclick: (e) => { if (!e.target.closest('a')) location.hash = href; },
    },
    h('td', null, sevTag(incident.severity)),
    h('td', null,
      h('a', { class: 'cell-title incident-link', href, text: incident.title }),
      h('div', { class: 'cell-sub', text: '#' + incident.id + ' · ' + (incident.rule_ids || []).length + ' rule' +
        ((incident.rule_ids || []).length === 1 ? '' : 's') + ' · opened ' + fmtTime(incident.created_at) })),
    h('td', null, statusTag(incident.status)),
    h('td', { class: incident.assignee ? '' : 'muted', text: incident.assignee || 'unassigned' }),
    h('td', { class: 'mono', text: hosts.slice(0, 2).join(', ') + (hosts.length > 2 ? ' +' + (hosts.length - 2) : '') }),
    h('td', { class: 'num', text: fmtNumber(incident.alert_count) }),
    h('td', { class: 'muted' }, timeCell(incident.last_seen)));
  }

  function matchesFilters(incident, f) {
    if (f.status && incident.status !== f.status) return false;
    if (f.severity && incident.severity !== f.severity) return false;
    if (f.assignee && incident.assignee !== f.assignee) return false;
    if (f.q) {
      const needle = f.q.toLowerCase();
      const hay = [incident.title, String(incident.id)].concat(incident.hosts || [], incident.users || [],
        incident.ips || [], incident.rule_ids || [], incident.techniques || []).join('\n').toLowerCase();
      if (!hay.includes(needle)) return false;
    }
    return true;
  }

  function liveListUpdate(kind, incident) {
    const list = state.list;
    const index = list.incidents.findIndex((i) => String(i.id) === String(incident.id));
    const row = list.tbody.querySelector('tr[data-id="' + Number(incident.id) + '"]');
    const matches = matchesFilters(incident, list.filters);
    if (index >= 0 && row) {
      if (matches) {
        list.incidents[index] = incident;
        row.replaceWith(incidentRow(incident, true));
      } else {
        list.incidents.splice(index, 1);
        row.remove();
      }
    } else if (matches) {
      if (!list.incidents.length) clear(list.tbody);
      list.incidents.unshift(incident);
      list.tbody.insertBefore(incidentRow(incident, true), list.tbody.firstChild);
    }
    updateListFoot();
  }

  function debounce(fn, ms) {
    let timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  // ---------------------------------------------------------------- incident page

  function renderIncident(main, idText) {
    const view = state.view;
    const id = Number(idText);
    if (!Number.isInteger(id) || id <= 0) {
      main.appendChild(h('p', { class: 'empty', text: 'No such incident.' }));
      return;
    }
    state.detail = { id, drafts: {} };
    document.title = 'SIREN · Incident #' + id;
    main.appendChild(h('a', { class: 'back', href: '#/incidents', text: '← Incidents' }));
    main.appendChild(h('div', { id: 'incident', 'aria-busy': 'true' }, h('p', { class: 'muted', text: 'Loading…' })));
    loadIncident(id, view, false);
  }

  async function loadIncident(id, view, live) {
    let detail;
    try {
      detail = await api('GET', '/incidents/' + id);
    } catch (e) {
      if (view !== state.view) return;
      const box = $('incident');
      if (box && !live) {
        clear(box).appendChild(h('p', { class: 'empty', text: e.status === 404 ? 'No such incident.' : 'Could not load the incident: ' + e.message }));
      }
      return;
    }
    if (view !== state.view || !state.detail || state.detail.id !== id) return;
    drawIncident(detail);
  }

  /** Keeps what the analyst is typing when the page is redrawn by a live update. */
  function saveDrafts() {
    const drafts = {};
    ['note-text', 'assign-input', 'status-note'].forEach((key) => {
      const el = $(key);
      if (el) drafts[key] = el.value;
    });
    const panel = $('status-panel');
    drafts.statusOpen = panel ? !panel.hidden : false;
    const select = $('status-select');
    if (select) drafts.status = select.value;
    return drafts;
  }

  /** What a drawn incident page shows, to skip redrawing the same state twice. */
  function versionOf(detail) {
    const entries = detail.timeline_total !== undefined ? detail.timeline_total : (detail.timeline || []).length;
    return detail.incident.updated_at + '|' + entries + '|' + detail.incident.alert_count;
  }

  function drawIncident(detail) {
    const incident = detail.incident;
    const box = $('incident');
    if (!box) return;
    // A live update and an action's own reload often bring the same state: keep the page
    // (and whatever the analyst is typing) as it is.
    if (box.dataset.drawn && box.dataset.version === versionOf(detail)) return;
    box.dataset.version = versionOf(detail);
    const drafts = box.dataset.drawn ? saveDrafts() : {};
    clear(box);
    box.dataset.drawn = '1';
    box.dataset.status = incident.status;
    box.dataset.assignee = incident.assignee || '';
    box.removeAttribute('aria-busy');
    document.title = 'SIREN · #' + incident.id + ' ' + incident.title;

    const head = h('div', { class: 'inc-head' },
      h('div', null,
        h('div', { class: 'inc-title' }, sevBadge(incident.severity), h('h1', { id: 'incident-title', text: incident.title }),
          h('span', { id: 'incident-status' }, statusTag(incident.status))),
        h('div', { class: 'inc-meta' },
          h('span', { text: '#' + incident.id }),
          h('span', { text: 'opened ' + fmtTime(incident.created_at) }),
          h('span', { text: fmtNumber(incident.alert_count) + ' alerts · ' + fmtNumber(incident.event_count) + ' events' }),
          h('span', { id: 'incident-assignee', text: incident.assignee ? 'assigned to ' + incident.assignee : 'unassigned' }),
          reportLinks('incident-report', 'Report', '/api/v1/reports/incidents/' + encodeURIComponent(incident.id), ''))),
      canWork() ? actionBar(incident, drafts) : null);
    box.appendChild(head);
    if (canWork()) box.appendChild(statusPanel(incident, drafts));

    const notes = detail.notes || (detail.timeline || []).filter((t) => t.kind === 'note');
    const shownEntries = (detail.timeline || []).length;
    const totalEntries = detail.timeline_total !== undefined ? detail.timeline_total : shownEntries;
    const left = h('div', { class: 'inc-col' },
      summaryCard(incident, detail.alerts || []),
      card('Suggested investigation steps', steps(incident.investigation || [])),
      card('Triggering events', eventsBlock(incident.id, detail), (detail.events || []).length + (detail.events_after ? '+' : '') + ' shown'),
      card('Timeline', timelineBlock(incident.id, detail),
        totalEntries > shownEntries ? 'newest ' + fmtNumber(shownEntries) + ' of ' + fmtNumber(totalEntries) : null));
    const right = h('div', { class: 'inc-col' },
      card('Affected assets', assets(incident)),
      card('ATT&CK techniques', techniques(incident.techniques || [])),
      card('Notes', notesBlock(notes, drafts), notes.length ? String(notes.length) : null));
    box.appendChild(h('div', { class: 'inc-grid' }, left, right));
  }

  // Download links for a report in each format (the session cookie authorises the GET).
  function reportLinks(id, label, path, query) {
    const formats = [['pdf', 'PDF'], ['html', 'HTML'], ['md', 'Markdown'], ['csv', 'CSV'], ['json', 'JSON']];
    const links = formats.map(([format, name]) => h('a', {
      href: path + '?format=' + format + (query ? '&' + query : ''),
      download: '', 'data-format': format, text: name,
    }));
    const parts = [];
    links.forEach((link, i) => { if (i) parts.push(' · '); parts.push(link); });
    return h('span', { class: 'report-links', id }, label + ': ', parts);
  }

  function card(title, body, sub) {
    return h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', { text: title }), sub ? h('span', { class: 'muted', text: sub }) : null),
      h('div', { class: 'card-body' }, body));
  }

  function actionBar(incident, drafts) {
    const open = incident.status !== 'resolved' && incident.status !== 'closed';
    const assignInput = h('input', {
      id: 'assign-input', placeholder: 'user name', 'aria-label': 'assignee',
      value: drafts['assign-input'] !== undefined ? drafts['assign-input'] : (incident.assignee || ''),
      onkeydown: (e) => { if (e.key === 'Enter') assign(incident.id, assignInput.value.trim()); },
    });
    return h('div', { class: 'actions' },
      incident.status === 'new' ? h('button', {
        id: 'action-ack', type: 'button', class: 'btn btn-primary', text: 'Acknowledge',
        onclick: () => changeStatus(incident.id, 'acknowledged', null, null),
      }) : null,
      h('div', { class: 'actions-row' }, assignInput,
        h('button', { id: 'action-assign', type: 'button', class: 'btn', text: 'Assign',
          onclick: () => assign(incident.id, assignInput.value.trim()) }),
        incident.assignee !== state.user.name ? h('button', { id: 'action-assign-me', type: 'button', class: 'btn', text: 'Take it',
          onclick: () => assign(incident.id, state.user.name) }) : null),
      h('button', { id: 'action-status', type: 'button', class: 'btn', text: open ? 'Change status' : 'Reopen or close',
        onclick: () => { const p = $('status-panel'); p.hidden = !p.hidden; if (!p.hidden) $('status-select').focus(); } }));
  }

  function statusPanel(incident, drafts) {
    const choices = STATUSES.filter((s) => s !== incident.status);
    const select = h('select', { id: 'status-select', 'aria-label': 'new status' },
      choices.map((s) => h('option', { value: s, text: label(s) })));
    if (drafts.status && choices.includes(drafts.status)) select.value = drafts.status;
    const resolution = h('select', { id: 'status-resolution', 'aria-label': 'resolution' },
      RESOLUTIONS.map((r) => h('option', { value: r, text: label(r) })));
    const resolutionWrap = h('span', { class: 'actions-row' }, h('label', { for: 'status-resolution', text: 'Resolution' }), resolution);
    const syncResolution = () => { resolutionWrap.hidden = select.value !== 'resolved'; };
    select.addEventListener('change', syncResolution);
    syncResolution();
    const note = h('input', { id: 'status-note', type: 'text', placeholder: 'Note (optional)', 'aria-label': 'note',
      value: drafts['status-note'] || '' });
    const panel = h('div', { id: 'status-panel', class: 'panel-form' },
      h('label', { for: 'status-select', text: 'New status' }), select, resolutionWrap, note,
      h('button', { id: 'status-save', type: 'button', class: 'btn btn-primary', text: 'Save',
        onclick: () => changeStatus(incident.id, select.value,
          select.value === 'resolved' ? resolution.value : null, note.value.trim() || null) }),
      h('button', { type: 'button', class: 'btn', text: 'Cancel', onclick: () => { panel.hidden = true; } }));
    panel.hidden = !drafts.statusOpen;
    return panel;
  }

  async function act(path, body, done) {
    const buttons = document.querySelectorAll('#incident button');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api('POST', path, body);
      if (done) done();
      return true;
    } catch (e) {
      toast('Not done', e.message, { error: true });
      return false;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  async function assign(id, assignee) {
    if (!assignee) { toast('Not done', 'Enter the user name to assign the incident to.', { error: true }); return; }
    const ok = await act('/incidents/' + id + '/assign', { assignee });
    if (ok) { toast('Assigned', '#' + id + ' is now assigned to ' + assignee + '.'); reloadDetail(id, { 'assign-input': undefined }); }
  }

  async function changeStatus(id, status, resolution, note) {
    const ok = await act('/incidents/' + id + '/status', { status, resolution, note });
    if (ok) { toast('Status changed', '#' + id + ' is now ' + label(status) + '.'); reloadDetail(id, { statusOpen: false, 'status-note': '' }); }
  }

  async function addNote(id, text) {
    if (!text) return;
    const ok = await act('/incidents/' + id + '/notes', { text });
    if (ok) { toast('Note added', text.length > 80 ? text.slice(0, 79) + '…' : text); reloadDetail(id, { 'note-text': '' }); }
  }

  /** Redraws the incident after an action, with some drafts reset. */
  async function reloadDetail(id, reset) {
    const view = state.view;
    const box = $('incident');
    if (!box) return;
    const drafts = Object.assign(saveDrafts(), reset);
    let detail;
    try { detail = await api('GET', '/incidents/' + id); } catch (e) { return; }
    if (view !== state.view || !state.detail || state.detail.id !== id) return;
    // Drawn already (by the live update of the same change)? Then only reset the drafts.
    if (box.dataset.version !== versionOf(detail)) {
      delete box.dataset.drawn;
      drawIncident(detail);
    }
    for (const key of ['note-text', 'assign-input', 'status-note']) {
      const el = $(key);
      if (el && drafts[key] !== undefined) el.value = drafts[key];
    }
    const panel = $('status-panel');
    if (panel) panel.hidden = !drafts.statusOpen;
  }

  function summaryCard(incident, alerts) {
    const ruleTitles = new Map();
    for (const alert of alerts) {
      const key = alert.rule_title || alert.title || alert.rule_id;
      if (key) ruleTitles.set(key, (ruleTitles.get(key) || 0) + 1);
    }
    const rules = ruleTitles.size
      ? h('div', null, Array.from(ruleTitles, ([title, n]) => h('div', { text: title + (n > 1 ? ' ×' + n : '') })))
      : h('div', { class: 'mono' }, (incident.rule_ids || []).map((r) => h('div', { text: r })));
    const fact = (term, value) => [h('dt', { text: term }), h('dd', null, value)];
    return card('Summary', h('dl', { class: 'facts' },
      fact('Severity', sevTag(incident.severity)),
      fact('Status', statusTag(incident.status)),
      incident.resolution ? fact('Resolution', label(incident.resolution)) : null,
      fact('Assignee', incident.assignee || 'unassigned'),
      fact('First seen', fmtTime(incident.first_seen)),
      fact('Last seen', fmtTime(incident.last_seen) + ' (' + ago(incident.last_seen) + ')'),
      fact('Alerts', fmtNumber(incident.alert_count)),
      fact('Events', fmtNumber(incident.event_count)),
      fact('Rules', rules),
      fact('Grouped by', h('span', { class: 'mono', text: incident.group_key || '—' })),
      fact('Updated', fmtTime(incident.updated_at))));
  }

  function steps(list) {
    if (!list.length) return h('p', { class: 'muted', text: 'No suggested steps.' });
    return h('ol', { class: 'steps' }, list.map((s) => h('li', { text: s })));
  }

  function chips(values, cls) {
    if (!values.length) return h('span', { class: 'muted', text: 'none' });
    return h('div', { class: 'chips' }, values.map((v) => h('span', { class: 'chip ' + (cls || ''), text: v })));
  }

  function assets(incident) {
    const group = (title, values) => h('div', { class: 'asset-group' },
      h('div', { class: 'asset-label', text: title + ' (' + values.length + ')' }), chips(values));
    return h('div', null, group('Hosts', incident.hosts || []), group('Users', incident.users || []),
      group('IP addresses', incident.ips || []));
  }

  function techniques(list) {
    if (!list.length) return h('span', { class: 'muted', text: 'none' });
    return h('div', { class: 'chips' }, list.map((t) => {
      const id = String(t).toUpperCase();
      const m = /^T(\d{4})(?:\.(\d{3}))?$/.exec(id);
      if (!m) return h('span', { class: 'chip chip-technique', text: t });
      const href = 'https://attack.mitre.org/techniques/T' + m[1] + (m[2] ? '/' + m[2] : '') + '/';
      return h('a', { class: 'chip chip-technique', href, target: '_blank', rel: 'noopener noreferrer', text: id });
    }));
  }

  function timelineItem(t) {
    return h('li', { class: 'tl-' + cssName(t.kind) },
      h('div', { class: 'tl-head' }, h('span', { class: 'tl-kind', text: label(t.kind) }), ' · ' + t.actor + ' · ' + fmtTime(t.at)),
      t.detail ? h('div', { class: 'tl-detail', text: t.detail }) : null);
  }

  /**
   * A button that fetches the next page of a list (`path` + the cursor) and hands it to
   * `add`, which returns the cursor after it; it goes away on the last page.
   */
  function moreButton(id, text, path, cursor, add) {
    let next = cursor;
    const button = h('button', { id, type: 'button', class: 'btn more-button', text });
    button.addEventListener('click', async () => {
      button.disabled = true;
      let page;
      try {
        page = await api('GET', path + encodeURIComponent(next));
      } catch (e) {
        button.disabled = false;
        toast('Not loaded', e.message, { error: true });
        return;
      }
      next = add(page);
      if (next) button.disabled = false;
      else button.remove();
    });
    return button;
  }

  /** The timeline, newest first; older entries are fetched page by page. */
  function timelineBlock(id, detail) {
    const entries = detail.timeline || [];
    if (!entries.length) return h('p', { class: 'muted', text: 'Nothing yet.' });
    const list = h('ul', { class: 'timeline' }, entries.slice().reverse().map(timelineItem));
    if (!detail.timeline_before) return list;
    return h('div', null, list, moreButton('timeline-older', 'Show older entries',
      '/incidents/' + encodeURIComponent(id) + '/timeline?before=', detail.timeline_before, (page) => {
        page.timeline.slice().reverse().forEach((t) => list.appendChild(timelineItem(t)));
        return page.before;
      }));
  }

  /** The triggering events; more are fetched page by page. */
  function eventsBlock(id, detail) {
    const table = eventsTable(detail.events || []);
    if (!detail.events_after) return table;
    return h('div', null, table, moreButton('events-more', 'Show more events',
      '/incidents/' + encodeURIComponent(id) + '/events?after=', detail.events_after, (page) => {
        const tbody = table.querySelector('tbody');
        if (tbody) page.events.forEach((event) => eventRows(event).forEach((row) => tbody.appendChild(row)));
        return page.after;
      }));
  }

  function notesBlock(notes, drafts) {
    const list = notes.length
      ? h('div', { id: 'notes' }, notes.slice().reverse().map((n) => h('div', { class: 'note' },
        h('div', { class: 'note-text', text: n.detail }),
        h('div', { class: 'note-meta', text: n.actor + ' · ' + fmtTime(n.at) }))))
      : h('p', { id: 'notes', class: 'muted', text: 'No notes yet.' });
    if (!canWork()) return list;
    const text = h('textarea', { id: 'note-text', placeholder: 'Add a note for the team…', 'aria-label': 'note' });
    text.value = drafts['note-text'] || '';
    const id = state.detail.id;
    return h('div', null, list, h('div', { class: 'note-form' }, text,
      h('button', { id: 'note-add', type: 'button', class: 'btn btn-primary', text: 'Add note',
        onclick: () => addNote(id, text.value.trim()) })));
  }

  /** An event's row and its hidden row of every field. */
  function eventRows(event) {
    const fieldsRow = h('tr', { class: 'event-fields', hidden: true },
      h('td', { colspan: 6 }, kvList(event)));
    const what = event.command_line || event.process || '';
    return [
      h('tr', { class: 'row-link event-row', title: 'Show every field', onclick: () => { fieldsRow.hidden = !fieldsRow.hidden; } },
        h('td', { class: 'nowrap', text: fmtTime(event.timestamp) }),
        h('td', { class: 'mono', text: event.host || '' }),
        h('td', { text: event.source || '' }),
        h('td', { class: 'num', text: event.event_id === null || event.event_id === undefined ? '' : event.event_id }),
        h('td', { text: event.user || '' }),
        h('td', { class: 'cmd', text: what || summaryOf(event) })),
      fieldsRow,
    ];
  }

  function eventsTable(events) {
    if (!events.length) return h('p', { class: 'muted', text: 'No stored events.' });
    const tbody = h('tbody');
    for (const event of events) tbody.append(...eventRows(event));
    return h('div', { class: 'table-scroll' }, h('table', { class: 'events-table' },
      h('thead', null, h('tr', null, h('th', { text: 'Time' }), h('th', { text: 'Host' }), h('th', { text: 'Channel' }),
        h('th', { class: 'num', text: 'ID' }), h('th', { text: 'User' }), h('th', { text: 'Process / details' }))),
      tbody));
  }

  /** A one-line hint of what an event says when it has no process: its telling fields first. */
  const TELLING = ['TargetUserName', 'SubjectUserName', 'IpAddress', 'WorkstationName', 'LogonType', 'SubStatus',
    'ServiceName', 'ImagePath', 'ServiceFileName', 'AccountName', 'TaskName', 'MemberSid', 'ShareName',
    'RelativeTargetName', 'TicketEncryptionType', 'PipeName', 'TargetObject', 'Details', 'ScriptBlockText'];
  const BORING = new Set(['EventID', 'Channel', 'Computer', 'Provider_Name', 'TimeCreated', 'EventRecordID',
    'Level', 'Keywords', 'Task', 'Opcode', 'Version', 'Guid', 'ProcessID', 'ThreadID', 'Execution_ProcessID',
    'Execution_ThreadID', 'Provider_Guid', 'Security_UserID', 'Correlation', 'Qualifiers', 'EventID_Qualifiers']);
  function summaryOf(event) {
    const fields = event.fields || {};
    const useful = (k) => {
      const v = fields[k];
      return v !== null && v !== undefined && typeof v !== 'object' && !['', '-', '0x0', '%%1793'].includes(String(v));
    };
    const keys = TELLING.filter((k) => k in fields && useful(k));
    for (const k of Object.keys(fields)) {
      if (keys.length >= 4) break;
      if (!BORING.has(k) && !keys.includes(k) && !/Sid$|Guid$|LogonId$/.test(k) && useful(k)) keys.push(k);
    }
    return keys.slice(0, 4).map((k) => k + '=' + fields[k]).join('  ');
  }

  function kvList(event) {
    const fields = Object.assign({}, event.fields || {});
    const rows = [];
    for (const [k, v] of Object.entries(fields)) {
      rows.push(h('div', { class: 'k', text: k }),
        h('div', { class: 'v', text: typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v) }));
    }
    return h('div', { class: 'kv' }, rows);
  }

  // ---------------------------------------------------------------- start

  async function start() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    window.addEventListener('hashchange', route);
    if (window.Chart) {
      window.Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
      window.Chart.defaults.font.size = 12;
      window.Chart.defaults.color = '#5f6b80';
      window.Chart.defaults.borderColor = '#e8ecf2';
    }
    try {
      signedIn(await api('GET', '/auth/me'));
    } catch (e) {
      showLogin(e.status === 401 ? null : e.message);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
