// The trunkline console. Plain JavaScript, no build step: it is served as is from the
// binary. It talks to the public HTTP API only, with the bearer token the user signed in
// with, so it can do exactly what that token may do.
//
// Safety rules kept throughout: data from the API is put into the page as text only
// (createTextNode / textContent, never as markup); the token lives in this tab's
// sessionStorage only; no secret is ever shown back.
'use strict';

(() => {
  const TOKEN_KEY = 'trunkline.token';
  const RECENT_KEY = 'trunkline.recentCustomers';
  const REFRESH_MS = 3000;

  let token = sessionStorage.getItem(TOKEN_KEY);
  let me = null;
  let devMode = false;
  let providers = [];
  const view = {
    provider: null,
    support: null, // the customer support is looking at
    cursors: [null], // cursor of each page seen, for "previous"
    page: 0,
    search: '',
    numbers: [],
    selected: new Map(), // numberId -> number
    statusOf: null, // numberId whose status is open
    refresh: null,
  };

  // --- DOM helpers -------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else if (v === true) e.setAttribute(k, '');
      else e.setAttribute(k, String(v));
    }
    append(e, children);
    return e;
  }

  function append(parent, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return parent;
  }

  function clear(node, ...children) {
    node.replaceChildren();
    return append(node, children);
  }

  const $ = (id) => document.getElementById(id);
  const main = () => $('main');

  function field(id, label, input) {
    input.id = id;
    return el('div', { class: 'field' }, el('label', { for: id }, label), input);
  }

  function button(id, label, onclick, extra) {
    return el('button', Object.assign({ type: 'button', id, onclick }, extra || {}), label);
  }

  function section(id, title, ...children) {
    return el('section', { id, 'aria-labelledby': id + '-title' },
      el('h2', { id: id + '-title' }, title), children);
  }

  // --- API ---------------------------------------------------------------------------

  class ApiFailure extends Error {
    constructor(status, code, message, requestId) {
      super(message);
      this.status = status;
      this.code = code;
      this.requestId = requestId;
    }
  }

  async function api(method, path, body, opts) {
    const headers = { Accept: 'application/json' };
    if (!(opts && opts.anonymous)) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (opts && opts.headers) Object.assign(headers, opts.headers);
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new ApiFailure(0, 'NETWORK', 'trunkline did not answer (' + e.message + ')', null);
    }
    const rid = res.headers.get('x-request-id');
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) {
      const d = data || {};
      throw new ApiFailure(res.status, d.errorCode || 'HTTP_' + res.status,
        d.message || res.statusText, d.requestId || rid);
    }
    return data;
  }

  function customerQuery(sep) {
    return view.support ? sep + 'customerId=' + encodeURIComponent(view.support) : '';
  }

  function providerPath(rest) {
    return '/telephony/providers/' + encodeURIComponent(view.provider) + rest;
  }

  // What to do about each error code (docs/troubleshooting.md has the long version).
  const HINTS = {
    AUTH_INVALID: 'The carrier refused the credentials: check them, or save new ones.',
    INSUFFICIENT_PERMISSIONS: 'The key lacks a permission: use a key that may manage numbers and SIP trunking.',
    TRUNKING_NOT_ENABLED: 'Enable Elastic SIP Trunking on the Twilio account, then retry.',
    NUMBER_IN_USE: 'The number is held elsewhere. If it is on a route you made outside trunkline, confirm taking it off; if another trunkline customer or LiveKit trunk holds it, disconnect it there first.',
    CONFLICT: 'Another operation on this number is running: retry in a few seconds.',
    RATE_LIMITED: 'The carrier asks to slow down: retry shortly; connect resumes where it stopped.',
    PROVIDER_UNAVAILABLE: 'The carrier or LiveKit did not answer: retry; connect resumes where it stopped.',
    INTEGRATION_NOT_FOUND: 'No credentials are saved for this carrier: verify and save them first.',
    NOT_CONFIGURED: 'The server lacks a setting (SIP target or LiveKit): ask the operator.',
    UNAUTHENTICATED: 'Your token expired or is not valid here: sign in again.',
    FORBIDDEN: 'This token may not do that (support reads, it does not change).',
    INVALID_SIP_TARGET: 'The SIP target is not usable by this carrier.',
    NOT_CONNECTED: 'trunkline has not connected this number.',
    NETWORK: 'Check that trunkline is running and reachable.',
  };

  function errorBox(err, extra) {
    const code = err instanceof ApiFailure ? err.code : 'ERROR';
    const hint = HINTS[code];
    return el('div', { class: 'error', role: 'alert' },
      el('p', {}, el('strong', { class: 'code' }, code), ': ', err.message),
      hint ? el('p', { class: 'hint' }, hint) : null,
      el('p', { class: 'rid' }, 'requestId: ',
        el('code', {}, (err instanceof ApiFailure && err.requestId) || 'none (no answer)')),
      extra || null);
  }

  // --- sign in -----------------------------------------------------------------------

  async function start() {
    $('sign-out').addEventListener('click', signOut);
    // A sign-in link opened in a tab already on the console changes only the fragment.
    window.addEventListener('hashchange', () => {
      if (location.hash.startsWith('#signin=')) location.reload();
    });
    const hash = location.hash;
    if (hash.startsWith('#signin=')) {
      // The code is in the fragment, so it never reached a server log; drop it from the
      // address bar and the history before anything else.
      history.replaceState(null, '', location.pathname + location.search);
      const code = decodeURIComponent(hash.slice('#signin='.length));
      try {
        const answer = await api('POST', '/dev/sign-in', { code }, { anonymous: true });
        setToken(answer.token);
      } catch (e) {
        return renderSignIn(e);
      }
    }
    if (!token) return renderSignIn(null);
    return enter();
  }

  function setToken(t) {
    token = t;
    sessionStorage.setItem(TOKEN_KEY, t);
  }

  function signOut() {
    stopRefresh();
    token = null;
    me = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $('sign-out').hidden = true;
    clear($('who'));
    renderSignIn(null);
  }

  function renderSignIn(err) {
    const input = el('textarea', { rows: 4, autocomplete: 'off', spellcheck: 'false', required: true });
    const go = async () => {
      const t = input.value.trim();
      if (!t) return;
      setToken(t);
      await enter();
    };
    clear(main(), section('signin', 'Sign in',
      el('p', {}, 'Paste a bearer token, or open the one-time link `trunkline dev` printed.'),
      field('token', 'Bearer token', input),
      button('sign-in', 'Sign in', go),
      err ? errorBox(err) : null));
    input.focus();
  }

  async function enter() {
    try {
      me = await api('GET', '/telephony/me');
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      token = null;
      return renderSignIn(e);
    }
    try {
      await api('GET', '/dev/info', undefined, { anonymous: true });
      devMode = true;
    } catch (_) {
      devMode = false;
    }
    $('sign-out').hidden = false;
    const support = me.roles.includes('support');
    clear($('who'), 'Signed in: ', el('strong', {}, me.customerId),
      support ? ' (support: reads any customer, changes nothing)' : '');
    try {
      providers = (await api('GET', '/telephony/providers')).providers;
    } catch (e) {
      return clear(main(), errorBox(e));
    }
    if (support) return renderSupport();
    view.support = null;
    return renderCustomer();
  }

  // --- customer view -----------------------------------------------------------------

  function providerSelect(onchange) {
    if (!view.provider && providers.length) view.provider = providers[0].provider;
    const select = el('select', { onchange: () => onchange(select.value) },
      providers.map((p) => el('option', { value: p.provider, selected: p.provider === view.provider }, p.name)));
    return field('provider', 'Carrier', select);
  }

  function renderCustomer() {
    clear(main(),
      section('carrier', 'Carrier credentials',
        providerSelect((p) => { view.provider = p; renderCustomer(); }),
        el('div', { id: 'cred-fields' }),
        el('div', { class: 'actions' },
          button('verify', 'Verify', () => credentials('verify')),
          button('save', 'Save', () => credentials('save')),
          button('delete-creds', 'Delete saved credentials', deleteCredentials, { class: 'danger' })),
        el('p', { id: 'saved-state', 'aria-live': 'polite' }),
        el('div', { id: 'carrier-result', 'aria-live': 'polite' })),
      numbersSection(false),
      section('progress', 'Connect progress', el('div', { id: 'progress-list', 'aria-live': 'polite' })),
      el('div', { id: 'status-panel' }),
      auditSection());
    $('progress').hidden = true;
    renderCredentialForm();
    resetPaging();
    loadNumbers();
  }

  function providerSpec() {
    return providers.find((p) => p.provider === view.provider);
  }

  function renderCredentialForm() {
    const spec = providerSpec();
    const box = $('cred-fields');
    if (!spec) return clear(box);
    const forms = spec.credentials;
    const formSelect = el('select', { onchange: () => draw(formSelect.value) },
      forms.map((f) => el('option', { value: f.name }, f.name === 'apiKey' ? 'API key' : f.name === 'authToken' ? 'Auth token' : f.name)));
    const fieldsBox = el('div', { id: 'cred-inputs' });
    const draw = (name) => {
      const form = forms.find((f) => f.name === name) || forms[0];
      clear(fieldsBox, form.fields.map((f) => field('cred-' + f.name, f.label,
        el('input', {
          type: f.secret ? 'password' : 'text',
          autocomplete: 'off',
          spellcheck: 'false',
          placeholder: f.example || '',
          'data-field': f.name,
        }))));
    };
    clear(box, forms.length > 1 ? field('cred-form', 'Credentials form', formSelect) : null, fieldsBox);
    draw(forms[0].name);
  }

  function credentialBody() {
    const body = {};
    for (const input of $('cred-inputs').querySelectorAll('input[data-field]')) {
      body[input.dataset.field] = input.value.trim();
    }
    return body;
  }

  function capabilityReport(answer) {
    const caps = answer.capabilities || {};
    return el('dl', { class: 'report' },
      answer.accountId ? [el('dt', {}, 'Account'), el('dd', {}, answer.accountId)] : null,
      answer.friendlyName ? [el('dt', {}, 'Name'), el('dd', {}, answer.friendlyName)] : null,
      Object.entries(caps).map(([k, v]) => [el('dt', {}, k),
        el('dd', { class: v === 'available' ? 'good' : 'bad' }, v)]));
  }

  async function credentials(kind) {
    const out = $('carrier-result');
    clear(out, el('p', { class: 'busy' }, kind === 'verify' ? 'Verifying…' : 'Saving…'));
    const path = providerPath(kind === 'verify' ? '/credentials:verify' : '/credentials');
    try {
      const answer = await api('POST', path, credentialBody());
      if (kind === 'verify') {
        clear(out, answer.ok
          ? el('p', { class: 'good', id: 'verify-ok' }, 'The credentials work.')
          : el('div', { class: 'error', role: 'alert' },
            el('p', {}, el('strong', { class: 'code' }, answer.errorCode), ': ', answer.message),
            HINTS[answer.errorCode] ? el('p', { class: 'hint' }, HINTS[answer.errorCode]) : null),
        answer.ok ? capabilityReport(answer) : null);
      } else {
        // Secrets leave the form once stored: they are never shown again.
        for (const input of $('cred-inputs').querySelectorAll('input[type=password]')) input.value = '';
        clear(out, el('p', { class: 'good', id: 'save-ok' },
          answer.replaced ? 'Saved: the earlier credentials were replaced.' : 'Saved.'),
        capabilityReport(answer));
        resetPaging();
        loadNumbers();
      }
    } catch (e) {
      clear(out, errorBox(e));
    }
  }

  async function deleteCredentials() {
    const out = $('carrier-result');
    if (!window.confirm('Delete the stored credentials? Connected numbers keep working, but trunkline can no longer change them.')) return;
    try {
      const answer = await api('DELETE', providerPath('/credentials'));
      clear(out, el('p', {}, answer.message));
      resetPaging();
      loadNumbers();
    } catch (e) {
      clear(out, errorBox(e));
    }
  }

  // --- numbers -----------------------------------------------------------------------

  function resetPaging() {
    view.cursors = [null];
    view.page = 0;
    view.selected.clear();
  }

  function numbersSection(readOnly) {
    const search = el('input', { type: 'search', inputmode: 'tel', autocomplete: 'off', placeholder: '+14155550100', value: view.search });
    const doSearch = () => { view.search = search.value.trim(); resetPaging(); loadNumbers(); };
    search.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') doSearch(); });
    return section('numbers', 'Numbers',
      el('div', { class: 'row' },
        field('number-search', 'Find a number (E.164)', search),
        button('search', 'Search', doSearch),
        button('search-clear', 'Show all', () => { search.value = ''; doSearch(); })),
      el('div', { id: 'numbers-table', 'aria-live': 'polite' }),
      el('div', { class: 'actions' },
        button('prev-page', 'Previous page', () => { view.page -= 1; loadNumbers(); }),
        el('span', { id: 'page-label' }),
        button('next-page', 'Next page', () => { view.page += 1; loadNumbers(); })),
      readOnly ? null : connectControls());
  }

  function connectControls() {
    const agent = el('input', { type: 'text', autocomplete: 'off', value: devMode ? 'demo-agent' : '' });
    const strategy = el('select', {},
      el('option', { value: 'shared' }, 'shared: one trunk for all your numbers'),
      el('option', { value: 'dedicated' }, 'dedicated: one trunk per number'));
    const outbound = el('input', { type: 'checkbox', id: 'outbound', checked: devMode });
    return el('div', { class: 'connect-box' },
      field('agent-name', 'Agent to dispatch (LiveKit agent name)', agent),
      field('trunk-strategy', 'Trunk strategy', strategy),
      el('div', { class: 'field inline' }, outbound,
        el('label', { for: 'outbound' }, 'Outbound calls too: the agent may call out from these numbers')),
      el('div', { id: 'foreign-warning' }),
      button('connect', 'Connect selected numbers', () => connectSelected(false), { disabled: true }));
  }

  // A number is on a route trunkline did not make when the carrier has it on a route and
  // trunkline's connection (if any) is not on that route.
  function foreignRoute(n) {
    if (!n.routeId) return false;
    const c = n.connection;
    return !c || c.status === 'disconnected' || c.routeId !== n.routeId;
  }

  async function loadNumbers() {
    const box = $('numbers-table');
    if (!box) return;
    clear(box, el('p', { class: 'busy' }, 'Loading numbers…'));
    const params = new URLSearchParams({ pageSize: '10' });
    const cursor = view.cursors[view.page];
    if (cursor) params.set('cursor', cursor);
    if (view.search && !cursor) params.set('phoneNumber', view.search);
    if (view.support) params.set('customerId', view.support);
    let answer;
    try {
      answer = await api('GET', providerPath('/numbers?' + params.toString()));
    } catch (e) {
      view.numbers = [];
      if (e.code === 'INTEGRATION_NOT_FOUND') {
        const saved = $('saved-state');
        if (saved) clear(saved, 'No credentials saved for this carrier yet.');
        clear(box, el('p', { id: 'no-integration' }, 'No credentials are saved for this carrier, so there are no numbers to show.'));
      } else {
        clear(box, errorBox(e));
      }
      pagingButtons(false);
      return;
    }
    const saved = $('saved-state');
    if (saved) clear(saved, 'Credentials are saved for this carrier. Saving again replaces them.');
    view.numbers = answer.items;
    view.cursors[view.page + 1] = answer.nextCursor || undefined;
    pagingButtons(Boolean(answer.nextCursor));
    renderNumbers();
  }

  function pagingButtons(hasNext) {
    const prev = $('prev-page');
    const next = $('next-page');
    if (prev) prev.disabled = view.page === 0;
    if (next) next.disabled = !hasNext;
    const label = $('page-label');
    if (label) clear(label, 'Page ' + (view.page + 1));
  }

  function connectionLabel(n) {
    if (!n.connection) return 'not connected';
    return n.connection.status;
  }

  function renderNumbers() {
    const box = $('numbers-table');
    const readOnly = Boolean(view.support);
    if (!view.numbers.length) {
      clear(box, el('p', {}, view.search ? 'No number matches.' : 'This account has no numbers.'));
      return;
    }
    const rows = view.numbers.map((n) => {
      const check = readOnly ? null : el('input', {
        type: 'checkbox',
        id: 'pick-' + n.numberId,
        'aria-label': 'Select ' + n.e164,
        checked: view.selected.has(n.numberId),
        onchange: (ev) => {
          if (ev.target.checked) view.selected.set(n.numberId, n); else view.selected.delete(n.numberId);
          selectionChanged();
        },
      });
      const foreign = foreignRoute(n);
      return el('tr', { 'data-number': n.numberId },
        readOnly ? null : el('td', {}, check),
        el('td', {}, el('span', { class: 'e164' }, n.e164), n.friendlyName ? el('br') : null, n.friendlyName || null),
        el('td', { class: 'mono' }, n.numberId),
        el('td', { class: foreign ? 'warn' : '' }, n.routeId
          ? [el('span', { class: 'mono' }, n.routeId), foreign ? el('br') : null, foreign ? 'not made by trunkline' : null]
          : 'none'),
        el('td', { class: 'conn-' + connectionLabel(n).replace(/ /g, '-') }, connectionLabel(n)),
        el('td', {}, button('status-' + n.numberId, 'Status', () => openStatus(n.numberId),
          { 'aria-label': 'Status of ' + n.e164 })));
    });
    clear(box, el('div', { class: 'scroll' }, el('table', {},
      el('caption', {}, 'Numbers at the carrier, with the route each is on and trunkline\'s connection of it'),
      el('thead', {}, el('tr', {},
        readOnly ? null : el('th', { scope: 'col' }, 'Pick'),
        el('th', { scope: 'col' }, 'Number'), el('th', { scope: 'col' }, 'Id'),
        el('th', { scope: 'col' }, 'Route at the carrier'), el('th', { scope: 'col' }, 'trunkline'),
        el('th', { scope: 'col' }, '')),
      ),
      el('tbody', {}, rows))));
    selectionChanged();
  }

  function selectionChanged() {
    const btn = $('connect');
    if (!btn) return;
    const n = view.selected.size;
    btn.disabled = n === 0;
    btn.textContent = n ? 'Connect ' + n + ' selected number' + (n > 1 ? 's' : '') : 'Connect selected numbers';
    clear($('foreign-warning'));
  }

  function connectBody(force) {
    const agent = $('agent-name') ? $('agent-name').value.trim() : '';
    const body = { trunkStrategy: $('trunk-strategy').value };
    if (agent) body.routing = { agentName: agent };
    if (force) body.force = true;
    if ($('outbound')) body.outbound = $('outbound').checked;
    return body;
  }

  function connectSelected(confirmed) {
    const picked = [...view.selected.values()];
    const foreign = picked.filter(foreignRoute);
    if (foreign.length && !confirmed) {
      const agree = el('input', { type: 'checkbox', id: 'confirm-take' });
      const go = button('connect-anyway', 'Connect anyway', () => {
        if (agree.checked) connectSelected(true);
        else agree.focus();
      });
      clear($('foreign-warning'), el('div', { class: 'warning', role: 'alert' },
        el('p', {}, el('strong', {}, 'Warning: '), foreign.length === 1 ? 'this number is' : 'these numbers are',
          ' on a route trunkline did not make. Connecting takes ', foreign.length === 1 ? 'it' : 'them',
          ' off that route: calls stop going where they go today.'),
        el('ul', {}, foreign.map((n) => el('li', {}, n.e164, ' on ', el('span', { class: 'mono' }, n.routeId)))),
        el('div', { class: 'field inline' }, agree, el('label', { for: 'confirm-take' }, 'Take them off their current route')),
        go));
      $('confirm-take').focus();
      return;
    }
    clear($('foreign-warning'));
    const list = $('progress-list');
    $('progress').hidden = false;
    clear(list);
    for (const n of picked) {
      const card = el('div', { class: 'card', id: 'progress-' + n.numberId });
      list.append(card);
      runConnect(n, connectBody(confirmed && foreignRoute(n)), card);
    }
    $('progress').scrollIntoView();
  }

  const EXPECTED_STEPS = ['voiceConfig', 'trunk', 'originationUrl', 'attachment', 'livekitTrunk', 'livekitRule'];
  const STEP_NAMES = {
    voiceConfig: 'Record the number\'s current routing',
    trunk: 'Carrier route (trunk / connection)',
    originationUrl: 'SIP target on the route',
    attachment: 'Number on the route',
    livekitTrunk: 'LiveKit inbound trunk',
    livekitRule: 'LiveKit dispatch rule',
    termination: 'Carrier termination (outbound credentials)',
    livekitOutboundTrunk: 'LiveKit outbound trunk',
  };

  async function runConnect(n, body, card) {
    clear(card, el('h3', {}, 'Connecting ', n.e164),
      el('ol', { class: 'steps', 'aria-busy': 'true' },
        EXPECTED_STEPS.map((s) => el('li', { class: 'pending' }, STEP_NAMES[s], ': working…'))));
    try {
      const answer = await api('POST', providerPath('/numbers/' + encodeURIComponent(n.numberId) + '/connect'), body);
      clear(card, el('h3', {}, n.e164, ': ', el('span', { class: 'good', 'data-result': 'connected' }, answer.status)),
        el('ol', { class: 'steps' }, answer.steps.map((s) => el('li', { class: 'done' },
          STEP_NAMES[s.step] || s.step, ': ', el('strong', {}, s.action),
          s.id ? [' ', el('span', { class: 'mono' }, s.id)] : null,
          s.detail ? [' (', s.detail, ')'] : null))),
        answer.warnings.map((w) => el('p', { class: 'warn' }, w.message)),
        button('open-status-' + n.numberId, 'Show status and test call', () => openStatus(n.numberId)));
    } catch (e) {
      const retry = button('retry-' + n.numberId, 'Retry', () => runConnect(n, body, card));
      clear(card, el('h3', {}, n.e164, ': ', el('span', { class: 'bad', 'data-result': 'failed' }, 'connect failed')),
        el('p', {}, 'The steps done so far are kept; retrying resumes from there.'),
        errorBox(e, retry));
      retry.focus();
    }
    loadNumbers();
  }

  // --- status ------------------------------------------------------------------------

  function stopRefresh() {
    if (view.refresh) clearInterval(view.refresh);
    view.refresh = null;
  }

  function openStatus(numberId) {
    view.statusOf = numberId;
    stopRefresh();
    const panel = $('status-panel');
    // The results of the buttons live outside the body, which every refresh redraws.
    clear(panel, section('status', 'Number status',
      el('div', { id: 'dev-result', 'aria-live': 'polite' }),
      el('div', { id: 'place-call-result', 'aria-live': 'polite' }),
      el('div', { id: 'disconnect-result', 'aria-live': 'polite' }),
      el('div', { id: 'status-body' }, el('p', { class: 'busy' }, 'Reading…'))));
    loadStatus(true);
    // The calls of a test call arrive while the user waits: keep the status fresh.
    view.refresh = setInterval(() => loadStatus(false), REFRESH_MS);
    $('status').scrollIntoView();
  }

  function sectionState(part) {
    if (!part) return el('span', {}, 'none');
    if (part.skipped) return el('span', { class: 'muted' }, 'skipped: ', part.skipped);
    if (part.ok === false) return el('span', { class: 'bad' }, part.errorCode, ': ', part.message);
    return null;
  }

  function kv(pairs) {
    return el('dl', { class: 'report' }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) =>
      [el('dt', {}, k), el('dd', {}, v === null || v === '' ? '—' : v)]));
  }

  const DRIFT_PARTS = {
    credentials_invalid: 'credentials', credentials_missing: 'credentials',
    number_missing: 'number', number_not_on_trunk: 'number',
    trunk_missing: 'trunk', orphan_trunk: 'trunk',
    livekit_trunk_missing: 'livekitTrunk', livekit_trunk_number_mismatch: 'livekitTrunk',
    livekit_rule_missing: 'livekitRule', livekit_rule_trunk_mismatch: 'livekitRule',
    livekit_rule_agent_mismatch: 'livekitRule',
  };

  function part(title, key, s, drifted, body) {
    const state = sectionState(s[key]);
    return el('div', { class: 'part' + (drifted.has(key) ? ' drifted' : ''), id: 'part-' + key },
      el('h4', {}, title, drifted.has(key) ? ' (drift)' : ''),
      state || body(s[key]));
  }

  async function loadStatus(first) {
    const numberId = view.statusOf;
    if (!numberId || !$('status-body')) return stopRefresh();
    let s;
    try {
      s = await api('GET', providerPath('/numbers/' + encodeURIComponent(numberId) + '/status' + customerQuery('?')));
    } catch (e) {
      if (first) stopRefresh();
      return clear($('status-body'), errorBox(e));
    }
    if (view.statusOf !== numberId || !$('status-body')) return undefined;
    renderStatus(s);
    return s;
  }

  function renderStatus(s) {
    const body = $('status-body');
    // Keep what the user typed or ticked across refreshes.
    const restoreWas = $('restore-routing') ? $('restore-routing').checked : false;
    const callToWas = $('call-to') ? $('call-to').value : null;
    const focused = document.activeElement && document.activeElement.id;
    const drifts = s.drifts || [];
    const drifted = new Set(drifts.map((d) => DRIFT_PARTS[d.kind] || (d.kind.startsWith('origination') ? 'routeTargets' : 'connection')));
    const c = s.connection;
    const e164 = (s.number && s.number.e164) || (c && c.e164) || s.numberId;
    const connected = Boolean(c && c.status === 'connected');
    const calls = s.recentCalls || [];
    const newest = calls[0];
    const readOnly = Boolean(view.support);

    const driftBox = drifts.length
      ? el('div', { class: 'drift', role: 'alert', id: 'drift-state', 'data-drifts': drifts.length },
        el('p', {}, el('strong', {}, 'Drift: '), 'what trunkline stored and what the carrier or LiveKit hold differ.'),
        el('ul', {}, drifts.map((d) => el('li', {}, el('code', {}, d.kind), ': ', d.message))),
        readOnly ? null : button('repair', 'Repair (connect again)', () => repair(s)))
      : el('p', { class: 'good', id: 'drift-state', 'data-drifts': 0 },
        connected ? 'No drift: the carrier, LiveKit and trunkline\'s record agree.' : 'No live connection, so nothing can drift.');

    const check = (ok, text) => el('li', { class: ok ? 'good' : 'pending' }, ok ? '✓ ' : '○ ', text);
    const checklist = el('ul', { class: 'checklist', id: 'checklist' },
      check(connected, 'Number connected'),
      check(connected && !drifts.length, 'No drift'),
      check(connected && !(s.warnings || []).length, 'LiveKit configured'),
      check(Boolean(s.lastWebhook), s.lastWebhook
        ? ['Last webhook: ', el('code', {}, s.lastWebhook.event), ' at ', s.lastWebhook.receivedAt]
        : 'A call arrived (no webhook yet)'),
      check(Boolean(newest && newest.dispatchStatus === 'dispatched'), newest
        ? ['Agent dispatch of the newest call: ', el('strong', { id: 'newest-dispatch' }, newest.dispatchStatus),
          newest.agentName ? [' (', newest.agentName, ')'] : null]
        : 'Agent dispatched'));

    const callsTable = calls.length
      ? el('div', { class: 'scroll' }, el('table', { id: 'calls' },
        el('caption', {}, 'Recent calls (refreshing every few seconds)'),
        el('thead', {}, el('tr', {}, ['Started', 'Direction', 'Caller', 'Status', 'Dispatch', 'Agent', 'Attempts', 'Room']
          .map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, calls.map((k) => el('tr', {},
          el('td', {}, k.startedAt || '—'), el('td', {}, k.direction || 'inbound'), el('td', {}, k.caller || '—'), el('td', {}, k.status),
          el('td', { class: k.dispatchStatus === 'dispatched' ? 'good' : '' }, k.dispatchStatus),
          el('td', {}, k.agentName || '—'), el('td', {}, k.dispatchAttempts),
          el('td', { class: 'mono' }, k.roomName))))))
      : el('p', { id: 'no-calls' }, 'No calls yet.');

    const actions = readOnly ? null : el('div', { class: 'actions' },
      button('refresh-status', 'Refresh', () => loadStatus(false)),
      devMode && connected ? button('simulate-call', 'Simulate a call (dev)', () => devAction('simulate-call', s)) : null,
      devMode && connected ? button('break-livekit', 'Break it: delete the LiveKit rule (dev)', () => devAction('break', s), { class: 'danger' }) : null);

    const out = s.outbound;
    const outboundOn = Boolean(connected && out && out.enabled);
    const outboundDrift = (out && out.drift) || [];
    const outboundPart = out ? el('div', { class: 'part' + (outboundDrift.length ? ' drifted' : ''), id: 'outbound-part' },
      el('h4', {}, 'Outbound'),
      kv([['enabled', String(out.enabled)], ['termination host', out.terminationHost || null],
        ['credentials attached', String(out.credentialsAttached)], ['LiveKit outbound trunk', out.livekitTrunkId || null],
        ['trunk exists', String(out.livekitTrunkExists)], ['number on the trunk', String(out.numberOnLivekitTrunk)]]),
      outboundDrift.length ? el('ul', { class: 'bad', id: 'outbound-drift' }, outboundDrift.map((d) => el('li', {}, d))) : null,
      out.error ? el('p', { class: 'bad' }, out.error) : null) : null;
    const callTo = el('input', { type: 'tel', autocomplete: 'off', value: callToWas !== null ? callToWas : (devMode ? '+14155550199' : ''), placeholder: '+14155550199' });
    const testCall = readOnly || !outboundOn ? null : el('div', { class: 'test-call-box' },
      field('call-to', 'Call this number from ' + e164 + ' (E.164)', callTo),
      button('place-call', 'Place a test call', () => placeTestCall(s, e164)));

    const disconnect = readOnly || !c || c.status === 'disconnected' ? null : el('div', { class: 'disconnect-box' },
      el('h3', {}, 'Disconnect'),
      el('div', { class: 'field inline' },
        el('input', { type: 'checkbox', id: 'restore-routing', checked: restoreWas }),
        el('label', { for: 'restore-routing' }, 'Restore the routing the number had before trunkline connected it')),
      button('disconnect', 'Disconnect ' + e164, () => disconnect_(s), { class: 'danger' }));

    clear(body,
      el('p', {}, el('strong', { class: 'e164' }, e164), ' ', el('span', { class: 'mono' }, s.numberId),
        ' — trunkline: ', el('strong', { id: 'conn-status' }, c ? c.status : 'never connected')),
      c && c.lastError ? el('p', { class: 'bad' }, 'Last error: ', c.lastError.code || '', ' ', c.lastError.message || '') : null,
      driftBox,
      (s.warnings || []).map((w) => el('p', { class: 'warn' }, w.message)),
      actions,
      el('h3', {}, 'Test call'),
      checklist,
      testCall,
      callsTable,
      el('h3', {}, 'Carrier side'),
      el('div', { class: 'parts' },
        part('Credentials', 'credentials', s, drifted, (p) => kv([['account', p.accountId || null],
          ['capabilities', Object.entries(p.capabilities || {}).map(([k, v]) => k + ': ' + v).join(', ')]])),
        part('Number', 'number', s, drifted, (p) => kv([['number', p.e164], ['route', p.routeId || null]])),
        part('Route', 'trunk', s, drifted, (p) => kv([['exists', String(p.exists)], ['id', p.routeId || null], ['name', p.name || null]])),
        part('SIP targets', 'routeTargets', s, drifted, (p) => el('ul', {}, (p.items || []).map((t) =>
          el('li', {}, t.sipUrl, ' (priority ', t.priority, ', weight ', t.weight, t.enabled ? '' : ', disabled', ')'))))),
      el('h3', {}, 'LiveKit side'),
      el('div', { class: 'parts' },
        part('Inbound trunk', 'livekitTrunk', s, drifted, (p) => kv([['exists', String(p.exists)], ['id', p.id || null], ['numbers', (p.numbers || []).join(', ')]])),
        part('Dispatch rule', 'livekitRule', s, drifted, (p) => kv([['exists', String(p.exists)], ['id', p.id || null], ['agents', (p.agentNames || []).join(', ')]])),
        outboundPart),
      el('h3', {}, 'Stored record'),
      el('div', { class: 'parts' },
        el('div', { class: 'part' + (drifted.has('connection') ? ' drifted' : '') }, c ? kv([
          ['status', c.status], ['route', c.routeId || null], ['strategy', c.trunkStrategy],
          ['SIP target', c.sipTarget || null], ['agent', (c.routing && c.routing.agentName) || null],
          ['LiveKit trunk', (c.livekit && c.livekit.trunkId) || null], ['LiveKit rule', (c.livekit && c.livekit.ruleId) || null],
          ['connected at', c.connectedAt || null]]) : el('p', {}, 'trunkline never connected this number.'))),
      disconnect);
    if (focused && $(focused)) $(focused).focus();
  }

  async function repair(s) {
    const out = $('dev-result');
    clear(out, el('p', { class: 'busy' }, 'Repairing…'));
    try {
      const answer = await api('POST', providerPath('/numbers/' + encodeURIComponent(s.numberId) + '/connect'));
      clear(out, el('p', { class: 'good', id: 'repair-ok' }, 'Repaired: ',
        answer.steps.filter((x) => x.action !== 'reused' && x.action !== 'skipped')
          .map((x) => (STEP_NAMES[x.step] || x.step) + ' ' + x.action).join(', ') || 'nothing needed'));
    } catch (e) {
      clear(out, errorBox(e, button('repair-retry', 'Retry', () => repair(s))));
    }
    loadStatus(false);
  }

  // An outbound call through the public API, with an Idempotency-Key so that a retried click
  // never dials twice. In dev mode the emulated callee then answers and hangs up.
  async function placeTestCall(s, e164) {
    const out = $('place-call-result');
    const to = $('call-to').value.trim();
    clear(out, el('p', { class: 'busy' }, 'Calling ', to, '…'));
    try {
      const placed = await api('POST', '/telephony/calls',
        { from: e164, to, waitUntilAnswered: true },
        { headers: { 'Idempotency-Key': crypto.randomUUID() } });
      const shown = [el('p', { class: 'good', id: 'place-call-ok' }, 'Call ', el('code', {}, placed.callId), ' ',
        el('strong', {}, placed.status), ' in room ', el('code', {}, placed.roomName))];
      if (devMode) {
        const played = await api('POST', '/dev/answer-call', { callId: placed.callId });
        shown.push(el('p', { id: 'answer-call-ok' }, 'The emulated callee answered and hung up: ',
          played.deliveries.map((d) => d.event + ' → ' + (d.status || 'failed')).join(', ')));
      }
      clear(out, shown);
    } catch (e) {
      clear(out, errorBox(e));
    }
    loadStatus(false);
  }

  async function devAction(kind, s) {
    const out = $('dev-result');
    clear(out, el('p', { class: 'busy' }, kind === 'break' ? 'Breaking…' : 'Calling…'));
    try {
      const answer = await api('POST', '/dev/' + kind, { provider: view.provider, numberId: s.numberId });
      if (kind === 'break') {
        clear(out, el('p', { class: 'warn', id: 'break-ok' }, 'Deleted the LiveKit dispatch rule ', el('code', {}, answer.id), ' behind trunkline\'s back.'));
      } else {
        clear(out, el('p', { class: 'good', id: 'call-ok' }, 'Simulated a call from ', answer.caller, ' into room ',
          el('code', {}, answer.roomName), ': ', answer.deliveries.map((d) => d.event + ' → ' + (d.status || 'failed')).join(', ')));
      }
    } catch (e) {
      clear(out, errorBox(e));
    }
    loadStatus(false);
  }

  async function disconnect_(s) {
    const out = $('disconnect-result');
    const restore = $('restore-routing').checked;
    clear(out, el('p', { class: 'busy' }, 'Disconnecting…'));
    try {
      const answer = await api('POST', providerPath('/numbers/' + encodeURIComponent(s.numberId) + '/disconnect'),
        { restoreVoiceConfig: restore });
      clear(out, el('p', { class: 'good', id: 'disconnect-ok' }, 'Disconnected.'),
        el('ol', { class: 'steps' }, answer.steps.map((x) => el('li', {}, STEP_NAMES[x.step] || x.step, ': ', x.action))));
    } catch (e) {
      clear(out, errorBox(e));
    }
    await loadStatus(false);
    loadNumbers();
  }

  // --- audit -------------------------------------------------------------------------

  function auditSection() {
    return section('audit', 'Audit trail',
      button('load-audit', 'Show the audit trail', loadAudit),
      el('div', { id: 'audit-body', 'aria-live': 'polite' }));
  }

  async function loadAudit() {
    const out = $('audit-body');
    try {
      const answer = await api('GET', '/telephony/audit?limit=50' + customerQuery('&'));
      clear(out, answer.items.length ? el('div', { class: 'scroll' }, el('table', { id: 'audit-table' },
        el('caption', {}, 'Newest first'),
        el('thead', {}, el('tr', {}, ['When', 'Action', 'Carrier', 'Who', 'requestId'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, answer.items.map((a) => el('tr', {},
          el('td', {}, a.at), el('td', {}, a.action), el('td', {}, a.provider || '—'),
          el('td', {}, a.actor ? a.actor.subject + ' (' + a.actor.role + ')' : '—'),
          el('td', { class: 'mono' }, a.requestId || '—'))))))
        : el('p', { id: 'audit-empty' }, 'Nothing in the audit trail.'));
    } catch (e) {
      clear(out, errorBox(e));
    }
  }

  // --- support -----------------------------------------------------------------------

  function recentCustomers() {
    try { return JSON.parse(sessionStorage.getItem(RECENT_KEY) || '[]'); } catch (_) { return []; }
  }

  function renderSupport() {
    const input = el('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', list: 'recent-customers', value: view.support || '' });
    const open = () => {
      const id = input.value.trim();
      if (!id) return;
      view.support = id;
      const recent = [id, ...recentCustomers().filter((x) => x !== id)].slice(0, 10);
      sessionStorage.setItem(RECENT_KEY, JSON.stringify(recent));
      renderSupportCustomer();
    };
    input.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') open(); });
    clear(main(), section('support', 'Support: pick a customer',
      el('p', {}, 'Read-only: numbers, status, calls and the audit trail of one customer.'),
      field('support-customer', 'Customer id', input),
      el('datalist', { id: 'recent-customers' }, recentCustomers().map((c) => el('option', { value: c }))),
      button('support-open', 'Open', open)),
    el('div', { id: 'support-view' }));
    input.focus();
    if (view.support) renderSupportCustomer();
  }

  function renderSupportCustomer() {
    stopRefresh();
    clear($('support-view'),
      el('h2', { id: 'support-customer-title' }, 'Customer ', el('span', { class: 'mono' }, view.support)),
      providerSelect((p) => { view.provider = p; renderSupportCustomer(); }),
      numbersSection(true),
      el('div', { id: 'status-panel' }),
      auditSection());
    resetPaging();
    loadNumbers();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
