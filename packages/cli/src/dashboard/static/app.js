// The keyrot operator dashboard: one module, no dependencies, no build step.
// Everything it shows comes from the admin API of the server that serves it;
// the admin key lives in this tab only (a variable and sessionStorage).

const STORAGE_KEY = 'keyrot.dashboard.adminKey'
/** `/dashboard/` → the server root, so the page works behind a path prefix. */
const API_BASE = new URL('../', location.href)
const LIST_LIMIT = 10000
const LIST_REFRESH_MS = 30_000
const ROTATION_REFRESH_MS = 10_000
const MINUTE = 60_000
const GRACE_PRESETS = [
  ['1h', '1 hour'],
  ['24h', '24 hours'],
  ['7d', '7 days'],
  ['30d', '30 days'],
]
const STATE_LABELS = { active: 'active', grace: 'in grace', expired: 'expired', revoked: 'revoked' }

const state = {
  adminKey: null,
  whoami: null,
  view: 'keys',
  /** Keys of the current view, as the API returned them. */
  keys: [],
  /** Every key seen, by id (lineage links, the selected key). */
  known: new Map(),
  /** Credits of keys by id, as last read (GET /v1/keys/:id/credits). */
  credits: new Map(),
  tenants: [],
  filters: { tenant: '', state: '', search: '' },
  selectedId: null,
  /** Server clock minus this browser's clock, in ms. */
  clockOffset: 0,
  countdowns: [],
  rotation: null,
  notice: null,
  detailShape: null,
  lastEndedReload: 0,
  firstPaintDone: false,
  listTimer: 0,
  rotationTimer: 0,
  loadSeq: 0,
}

const $ = (selector) => document.querySelector(selector)

// ------------------------------------------------------------------ formatting

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c])
}

function serverNow() {
  return Date.now() + state.clockOffset
}

/** 59m 58s, 23h 59m, 6d 23h: the two largest units. */
function span(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000))
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m ${seconds % 60}s`
  const hours = Math.floor(minutes / 60)
  if (hours < 24) return `${hours}h ${minutes % 60}m`
  const days = Math.floor(hours / 24)
  return `${days}d ${hours % 24}h`
}

/** Grace countdowns show seconds up to a day: 23h 59m 58s. */
function countdown(ms) {
  if (ms <= 0) return 'ended'
  const seconds = Math.floor(ms / 1000)
  const hours = Math.floor(seconds / 3600)
  if (hours >= 24) return `${Math.floor(hours / 24)}d ${hours % 24}h ${Math.floor(seconds / 60) % 60}m`
  if (hours > 0) return `${hours}h ${Math.floor(seconds / 60) % 60}m ${seconds % 60}s`
  return `${Math.floor(seconds / 60)}m ${seconds % 60}s`
}

function relative(at, now) {
  if (at === null || at === undefined) return 'never'
  const diff = at - now
  if (Math.abs(diff) < 1000) return 'just now'
  return diff > 0 ? `in ${span(diff)}` : `${span(-diff)} ago`
}

function iso(at) {
  return at === null || at === undefined ? '' : new Date(at).toISOString()
}

function clock(at) {
  const date = new Date(at)
  return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`
}

const numberFormat = new Intl.NumberFormat('en')

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, code, message, field, retryAfter) {
    super(message)
    this.status = status
    this.code = code
    this.field = field
    this.retryAfter = retryAfter
  }
}

async function api(method, path, body, key = state.adminKey) {
  const headers = { accept: 'application/json', authorization: `Bearer ${key}` }
  const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' }
  if (body !== undefined) {
    headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  const sentAt = Date.now()
  let response
  try {
    response = await fetch(new URL(path, API_BASE), init)
  } catch {
    throw new ApiError(0, 'NETWORK', 'Cannot reach the keyrot server: is it still running?')
  }
  let data = null
  try {
    data = await response.json()
  } catch {
    // reported below
  }
  noteServerClock(response, sentAt, data)
  if (!response.ok) {
    const error = data && typeof data === 'object' ? data.error : undefined
    const retryAfter = Number(response.headers.get('retry-after')) || undefined
    let message = error && typeof error.message === 'string' ? error.message : `The server answered ${response.status} ${response.statusText}.`
    if (response.status === 429 && retryAfter) message += ` Try again in ${retryAfter} s.`
    throw new ApiError(response.status, error?.code ?? `HTTP_${response.status}`, message, error?.field, retryAfter)
  }
  if (data === null || typeof data !== 'object') throw new ApiError(response.status, 'BAD_ANSWER', 'The server sent an answer the dashboard cannot read.')
  return data
}

function noteServerClock(response, sentAt, data) {
  if (data && typeof data.now === 'number') {
    state.clockOffset = data.now - (sentAt + Date.now()) / 2
    return
  }
  // The Date header has one-second resolution: only trust it for a large skew.
  const date = Date.parse(response.headers.get('date') ?? '')
  if (Number.isFinite(date)) {
    const offset = date + 500 - (sentAt + Date.now()) / 2
    if (Math.abs(offset) > 2000) state.clockOffset = offset
  }
}

/** A failure while signed in: an admin key that stopped working signs out. */
function handleSessionError(error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    signOut(`Signed out: the admin key no longer works (${error.message})`)
    return true
  }
  return false
}

// ------------------------------------------------------------------ sign in

function storedKey() {
  try {
    return sessionStorage.getItem(STORAGE_KEY)
  } catch {
    return null
  }
}

function showLogin(message) {
  $('#app-view').hidden = true
  $('#views').hidden = true
  $('#sign-out').hidden = true
  $('#whoami').textContent = ''
  $('#login-view').hidden = false
  const error = $('#login-error')
  error.hidden = !message
  error.textContent = message ?? ''
  $('#login-key').focus()
}

async function signIn(event) {
  event.preventDefault()
  const input = $('#login-key')
  const error = $('#login-error')
  const key = input.value.trim()
  error.hidden = true
  if (key === '') {
    error.textContent = 'Paste an admin key to sign in.'
    error.hidden = false
    return
  }
  const button = $('#login-submit')
  button.disabled = true
  try {
    const who = await api('GET', 'v1/whoami', undefined, key)
    // The admin API decides: a key without the admin scope gets 403 here.
    await api('GET', 'v1/keys?limit=1', undefined, key)
    input.value = ''
    state.adminKey = key
    state.whoami = who
    try {
      sessionStorage.setItem(STORAGE_KEY, key)
    } catch {
      // Session storage off: the key lives in this page only.
    }
    await enterApp()
  } catch (failure) {
    error.textContent = loginMessage(failure)
    error.hidden = false
  } finally {
    button.disabled = false
  }
}

function loginMessage(error) {
  if (!(error instanceof ApiError)) return `Signing in failed: ${error?.message ?? error}`
  if (error.status === 403) return `This key cannot open the dashboard: it has no admin scope. (${error.message})`
  if (error.status === 401) return `This key does not work: ${error.message}`
  return error.message
}

function signOut(message) {
  state.adminKey = null
  state.whoami = null
  state.keys = []
  state.known.clear()
  state.selectedId = null
  state.rotation = null
  state.detailShape = null
  state.notice = null
  try {
    sessionStorage.removeItem(STORAGE_KEY)
  } catch {
    // nothing stored
  }
  clearInterval(state.listTimer)
  clearInterval(state.rotationTimer)
  $('#keys-body').innerHTML = ''
  $('#detail').hidden = true
  $('#detail').innerHTML = ''
  showLogin(message)
}

async function enterApp() {
  $('#login-view').hidden = true
  $('#app-view').hidden = false
  $('#views').hidden = false
  $('#sign-out').hidden = false
  renderWhoami()
  clearInterval(state.listTimer)
  state.listTimer = setInterval(() => {
    if (document.visibilityState === 'visible') void loadView({ quiet: true })
  }, LIST_REFRESH_MS)
  await loadView()
}

function renderWhoami() {
  const who = state.whoami
  $('#whoami').textContent = who ? `${who.name} · ${who.keyId} · ${who.tenantId}` : ''
}

// ------------------------------------------------------------------ loading

function viewPath() {
  switch (state.view) {
    case 'expiring':
      return `v1/keys/expiring?within=${encodeURIComponent($('#filter-within').value)}`
    case 'unused':
      return `v1/keys/unused?since=${encodeURIComponent($('#filter-since').value)}`
    case 'due':
      return 'v1/keys/due'
    default:
      return `v1/keys?limit=${LIST_LIMIT}`
  }
}

async function loadView(options = {}) {
  const seq = ++state.loadSeq
  const table = $('#keys-table')
  table.setAttribute('aria-busy', 'true')
  try {
    const { keys } = await api('GET', viewPath())
    if (seq !== state.loadSeq) return
    if (!Array.isArray(keys)) throw new ApiError(200, 'BAD_ANSWER', 'The server sent a key list the dashboard cannot read.')
    state.keys = keys
    for (const key of keys) state.known.set(key.id, key)
    if (state.view === 'keys') state.tenants = [...new Set(keys.map((key) => key.tenantId))].sort()
    else for (const key of keys) if (!state.tenants.includes(key.tenantId)) state.tenants = [...state.tenants, key.tenantId].sort()
    renderTenants()
    renderNote()
    renderTable()
    if (state.selectedId) await refreshSelected()
    if (state.rotation) void loadRotation()
    hideBanner()
  } catch (error) {
    if (handleSessionError(error)) return
    if (!options.quiet || state.keys.length === 0) showBanner(`Could not load keys: ${error.message}`)
  } finally {
    if (seq === state.loadSeq) table.removeAttribute('aria-busy')
  }
}

/** Re-reads the selected key (it may not be in the current view) and redraws its panel. */
async function refreshSelected() {
  const id = state.selectedId
  if (!id) return
  try {
    const { key } = await api('GET', `v1/keys/${encodeURIComponent(id)}`)
    state.known.set(key.id, key)
    if (state.selectedId === id) renderDetail()
  } catch (error) {
    if (handleSessionError(error)) return
    if (error.status === 404) {
      state.selectedId = null
      renderDetail()
    }
  }
}

// ------------------------------------------------------------------ table

function renderTenants() {
  const select = $('#filter-tenant')
  const current = select.value
  select.innerHTML = `<option value="">All tenants (${state.tenants.length})</option>${state.tenants
    .map((tenant) => `<option value="${esc(tenant)}">${esc(tenant)}</option>`)
    .join('')}`
  select.value = state.tenants.includes(current) ? current : ''
  state.filters.tenant = select.value
}

function renderNote() {
  const note = $('#view-note')
  if (state.view === 'expiring') note.textContent = 'Keys still working that stop within the window (grace periods ending, planned expiries), soonest first.'
  else if (state.view === 'due') note.textContent = 'Active keys past the warning of their rotation policy (maxAge − rotationWarning), soonest due first: rotate them. Overdue keys fail as expired where the policy is enforced.'
  else if (state.view === 'unused') note.textContent = 'Working keys not used within the window (keys never used count from their creation). Candidates for revocation.'
  else note.textContent = state.keys.length >= LIST_LIMIT ? `Showing the newest ${numberFormat.format(LIST_LIMIT)} keys.` : ''
}

function filteredKeys() {
  const { tenant, state: keyState, search } = state.filters
  const needle = search.trim().toLowerCase()
  const keys = state.keys.filter(
    (key) =>
      (tenant === '' || key.tenantId === tenant) &&
      (keyState === '' || key.state === keyState) &&
      (needle === '' || key.id.toLowerCase().includes(needle) || key.name.toLowerCase().includes(needle)),
  )
  // Per tenant; within a tenant the API's order (newest first, or soonest first) is kept.
  if (state.view === 'keys' && tenant === '') keys.sort((a, b) => (a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : 0))
  return keys
}

/** A button that selects key `id`; the table shows its last six characters, the panel all of it. */
function lineageLink(id, arrow, title, full = false) {
  return `<button type="button" class="link mono" data-select="${esc(id)}" title="${esc(title)} ${esc(id)}">${arrow} ${esc(full ? id : id.slice(-6))}</button>`
}

/** In the "Due for rotation" view: when the key is (or was) due under its rotation policy. */
function dueCell(key, now) {
  const overdue = key.compliance === 'overdue'
  return `<td class="${overdue ? 'overdue' : 'due'}" title="Due ${iso(key.dueAt)}"><span class="badge badge-${overdue ? 'overdue' : 'due'}">${overdue ? 'overdue' : 'due'}</span> ${relative(key.dueAt, now)}</td>`
}

function expiresCell(key, now) {
  if (state.view === 'due' && typeof key.dueAt === 'number') return dueCell(key, now)
  if (key.expiresAt === null) return '<td class="muted">never</td>'
  if (key.state === 'grace') {
    return `<td class="countdown" title="Grace ends ${iso(key.expiresAt)}" data-deadline="${key.expiresAt}">${countdown(key.expiresAt - now)} left</td>`
  }
  return `<td title="${iso(key.expiresAt)}">${relative(key.expiresAt, now)}</td>`
}

/** Keys revoked by a leak report or `keyrot scan` carry the incident id `leak:<source>`; the reason says where the key was found. */
function leakBadge(key) {
  if (typeof key.incidentId !== 'string' || !key.incidentId.startsWith('leak:')) return ''
  return `<span class="badge badge-leaked" title="Revoked: ${esc(key.revokedReason ?? key.incidentId)}">leaked</span>`
}

function rowHtml(key, now) {
  const selected = key.id === state.selectedId ? ' selected' : ''
  const lineage = `${key.rotatedFrom ? lineageLink(key.rotatedFrom, '←', 'Rotated from') : ''}${key.rotatedTo ? lineageLink(key.rotatedTo, '→', 'Rotated to') : ''}`
  return (
    `<tr data-id="${esc(key.id)}" class="state-${esc(key.state)}${selected}">` +
    `<td><button type="button" class="link mono" data-select="${esc(key.id)}">${esc(key.id)}</button></td>` +
    `<td class="ellipsis" title="${esc(key.tenantId)}">${esc(key.tenantId)}</td>` +
    `<td class="ellipsis" title="${esc(key.name)}">${esc(key.name)}</td>` +
    `<td>${leakBadge(key) || `<span class="badge badge-${esc(key.state)}">${STATE_LABELS[key.state] ?? esc(key.state)}</span>`}</td>` +
    `<td title="${iso(key.createdAt)}">${relative(key.createdAt, now)}</td>` +
    expiresCell(key, now) +
    `<td title="${iso(key.lastUsedAt)}">${relative(key.lastUsedAt, now)}</td>` +
    `<td class="num">${numberFormat.format(key.usageCount)}</td>` +
    `<td class="lineage">${lineage}</td>` +
    '</tr>'
  )
}

function renderTable() {
  const keys = filteredKeys()
  const now = serverNow()
  const groups = state.view === 'keys' && state.filters.tenant === ''
  const parts = []
  let tenant = null
  for (const key of keys) {
    if (groups && key.tenantId !== tenant) {
      tenant = key.tenantId
      parts.push(`<tr class="group"><th colspan="9" scope="rowgroup">${esc(tenant)}</th></tr>`)
    }
    parts.push(rowHtml(key, now))
  }
  if (keys.length === 0) {
    const why = state.keys.length === 0 ? (state.view === 'keys' ? 'No keys yet.' : 'No key matches this view.') : 'No key matches these filters.'
    parts.push(`<tr class="empty"><td colspan="9">${why}</td></tr>`)
  }
  const body = $('#keys-body')
  body.innerHTML = parts.join('')
  state.countdowns = [...body.querySelectorAll('[data-deadline]')]
  $('#key-count').textContent =
    keys.length === state.keys.length ? `${numberFormat.format(keys.length)} keys` : `${numberFormat.format(keys.length)} of ${numberFormat.format(state.keys.length)} keys`
  if (!state.firstPaintDone && state.keys.length > 0) {
    state.firstPaintDone = true
    performance.mark('keyrot:keys-rendered')
    // The frame after this one has painted the table.
    requestAnimationFrame(() => setTimeout(() => performance.mark('keyrot:keys-painted'), 0))
  }
}

let filterFrame = 0
function scheduleTable() {
  cancelAnimationFrame(filterFrame)
  filterFrame = requestAnimationFrame(renderTable)
}

// ------------------------------------------------------------------ detail panel

function selectKey(id) {
  if (state.selectedId !== id) state.notice = null
  state.selectedId = id
  for (const row of document.querySelectorAll('#keys-body tr.selected')) row.classList.remove('selected')
  document.querySelector(`#keys-body tr[data-id="${CSS.escape(id)}"]`)?.classList.add('selected')
  if (state.known.has(id)) renderDetail()
  void refreshSelected()
}

function field(label, value, attributes = '') {
  return `<dt>${label}</dt><dd ${attributes}>${value}</dd>`
}

function headHtml(key) {
  return (
    `<h2>Key <code>${esc(key.id)}</code></h2><span class="badge badge-${esc(key.state)}">${STATE_LABELS[key.state]}</span>` +
    '<button type="button" class="quiet close" data-close aria-label="Close">×</button>'
  )
}

function fieldsHtml(key, now) {
  const rows = [
    field('Tenant', esc(key.tenantId)),
    field('Name', esc(key.name)),
    field('Scopes', key.scopes.length ? key.scopes.map((scope) => `<code>${esc(scope)}</code>`).join(' ') : '<span class="muted">none</span>'),
    field('Created', `${relative(key.createdAt, now)} <span class="muted">${iso(key.createdAt)}</span>`),
    key.state === 'grace'
      ? field('Grace ends', `in <span data-deadline="${key.expiresAt}">${countdown(key.expiresAt - now)}</span> <span class="muted">${iso(key.expiresAt)}</span>`)
      : field('Expires', key.expiresAt === null ? 'never' : `${relative(key.expiresAt, now)} <span class="muted">${iso(key.expiresAt)}</span>`),
    field('Last used', `${relative(key.lastUsedAt, now)}${key.lastUsedAt ? ` <span class="muted">${iso(key.lastUsedAt)}</span>` : ''}`),
    field('Usage', `${numberFormat.format(key.usageCount)} requests`),
    field('Allowed IPs', key.allowedIps ? key.allowedIps.map((range) => `<code>${esc(range)}</code>`).join(' ') : '<span class="muted">any IP</span>'),
  ]
  if (key.credits) rows.push(field('Credits', creditsText(key), 'data-credits'))
  if (key.rotatedFrom) rows.push(field('Rotated from', lineageLink(key.rotatedFrom, '←', 'Rotated from', true)))
  if (key.rotatedTo) rows.push(field('Rotated to', lineageLink(key.rotatedTo, '→', 'Rotated to', true)))
  if (key.revokedAt !== null) {
    rows.push(field('Revoked', `${relative(key.revokedAt, now)}${key.revokedReason ? `: ${esc(key.revokedReason)}` : ''}`))
    if (key.incidentId) rows.push(field('Incident', esc(key.incidentId)))
    if (leakBadge(key)) rows.push(field('Leaked', `yes: reported by ${esc(key.incidentId.slice(5))}, revoked by the leak response (where: see Revoked)`))
  }
  return rows.join('')
}

/**
 * Draws the selected key's panel. The forms are rebuilt only when the key's
 * state changes (so a refresh never wipes what the operator is typing); the
 * fields are redrawn every time.
 */
function renderDetail() {
  const panel = $('#detail')
  const key = state.known.get(state.selectedId)
  if (!key) {
    stopRotation()
    state.detailShape = null
    panel.hidden = true
    panel.innerHTML = ''
    collectCountdowns()
    return
  }
  const shape = `${key.id}|${key.state}|${key.expiresAt !== null}`
  if (shape !== state.detailShape) {
    state.detailShape = shape
    stopRotation()
    panel.innerHTML =
      '<div class="detail-head"></div><p class="notice" role="status" hidden></p><dl class="fields"></dl>' +
      `<section id="rotation" class="rotation" hidden></section><section class="actions">${actionsHtml(key)}</section>`
    if (state.notice && state.notice.keyId === key.id) showNotice(state.notice.text)
  }
  panel.querySelector('.detail-head').innerHTML = headHtml(key)
  panel.querySelector('dl.fields').innerHTML = fieldsHtml(key, serverNow())
  panel.hidden = false
  if (key.credits) void loadCredits(key.id)
  collectCountdowns()
  const pair = rotationPair(key)
  if ((pair && `${pair.oldId}>${pair.newId}`) !== (state.rotation && `${state.rotation.oldId}>${state.rotation.newId}`)) {
    stopRotation()
    if (pair) {
      state.rotation = pair
      void loadRotation()
      state.rotationTimer = setInterval(() => {
        if (document.visibilityState === 'visible') void loadRotation()
      }, ROTATION_REFRESH_MS)
    }
  }
}

function stopRotation() {
  clearInterval(state.rotationTimer)
  state.rotation = null
  const section = $('#rotation')
  if (section) {
    section.hidden = true
    section.innerHTML = ''
  }
}

function collectCountdowns() {
  state.countdowns = [...document.querySelectorAll('[data-deadline]')]
}

/** A line about the last action, kept while its key stays selected. */
function showNotice(text) {
  state.notice = { keyId: state.selectedId, text }
  const notice = $('#detail .notice')
  if (!notice) return
  notice.textContent = text
  notice.hidden = false
}

function errorSlot() {
  return '<p class="form-error" role="alert" hidden></p>'
}

function actionsHtml(key) {
  const forms = []
  if (key.state === 'active') {
    const presets = GRACE_PRESETS.map(
      ([value, label]) => `<label class="preset"><input type="radio" name="grace" value="${value}"${value === '24h' ? ' checked' : ''}> ${label}</label>`,
    ).join('')
    forms.push(
      '<form data-action="rotate" novalidate><fieldset><legend>Rotate</legend>' +
        '<p class="hint">Issues a successor with the same tenant, name and scopes; this key keeps working for the grace period.</p>' +
        `<div class="presets" role="radiogroup" aria-label="Grace period">${presets}` +
        '<label class="preset"><input type="radio" name="grace" value="custom"> Custom</label>' +
        '<input name="custom" class="short" placeholder="e.g. 36h" aria-label="Custom grace period" autocomplete="off"></div>' +
        `${errorSlot()}<button type="submit">Rotate…</button></fieldset></form>`,
    )
  }
  if (key.state === 'grace') {
    forms.push(
      '<form data-action="end-grace" novalidate><fieldset><legend>End grace now</legend>' +
        '<p class="hint">The old key stops working at once, on every replica. Clients not yet on the new key start failing.</p>' +
        `${errorSlot()}<button type="submit" class="danger">End grace now…</button></fieldset></form>`,
    )
  }
  if (key.state === 'grace' || (key.state === 'active' && key.expiresAt !== null)) {
    const what = key.state === 'grace' ? 'grace' : 'expiry'
    forms.push(
      `<form data-action="extend" novalidate><fieldset><legend>Extend ${what}</legend>` +
        `<p class="hint">Moves the deadline later by a duration such as 1h, 24h or 7d.</p>` +
        `<div class="inline"><input name="extendBy" class="short" placeholder="e.g. 24h" aria-label="Extend by" autocomplete="off">` +
        `<button type="submit">Extend</button></div>${errorSlot()}</fieldset></form>`,
    )
  }
  if (key.credits && key.state !== 'revoked') {
    forms.push(
      '<form data-action="credits" novalidate><fieldset><legend>Credits</legend>' +
        '<p class="hint">Shared by this key and every key rotated from it. Add (negative takes away) or set the balance.</p>' +
        '<div class="inline"><select name="mode" aria-label="Change"><option value="add">Add</option><option value="set">Set to</option></select>' +
        '<input name="credits" class="short" inputmode="numeric" placeholder="e.g. 500" aria-label="Credits" autocomplete="off">' +
        `<button type="submit">Apply</button></div>${errorSlot()}</fieldset></form>`,
    )
  }
  if (key.state !== 'revoked') {
    forms.push(
      '<form data-action="revoke" novalidate><fieldset><legend>Revoke</legend>' +
        '<p class="hint">Stops this key at once, on every replica. It cannot be undone.</p>' +
        '<div class="inline"><input name="reason" placeholder="Reason, for the audit trail" aria-label="Reason" autocomplete="off" maxlength="200">' +
        `<button type="submit" class="danger">Revoke…</button></div>${errorSlot()}</fieldset></form>`,
    )
  }
  if (key.state !== 'revoked') {
    const current = key.allowedIps ? key.allowedIps.join(', ') : ''
    forms.push(
      '<form data-action="allowed-ips" novalidate><fieldset><legend>Allowed IPs</legend>' +
        '<p class="hint">Client IPs or CIDR ranges this key may be used from, comma-separated (e.g. 203.0.113.0/24, 2001:db8::/32). Empty: any IP. Requests from elsewhere get 403.</p>' +
        `<div class="inline"><input name="allowedIps" value="${esc(current)}" placeholder="any IP" aria-label="Allowed IPs" autocomplete="off" maxlength="4000">` +
        `<button type="submit">Save</button></div>${errorSlot()}</fieldset></form>`,
    )
  }
  if (key.state === 'active') {
    forms.push(
      '<form data-action="emergency" novalidate><fieldset><legend>Emergency rotation</legend>' +
        '<p class="hint">For a leaked key: revokes it now and issues its successor, with no grace period.</p>' +
        '<div class="inline"><input name="incidentId" class="short" placeholder="Incident id, e.g. INC-42" aria-label="Incident id" autocomplete="off" maxlength="200">' +
        '<input name="reason" placeholder="Reason (optional)" aria-label="Emergency reason" autocomplete="off" maxlength="200"></div>' +
        `${errorSlot()}<button type="submit" class="danger">Emergency rotate…</button></fieldset></form>`,
    )
  }
  if (forms.length === 0) return '<p class="muted">A revoked key cannot change any more.</p>'
  return forms.join('')
}

// ------------------------------------------------------------------ actions

class FormInputError extends Error {}

function formError(form, error) {
  const slot = form.querySelector('.form-error')
  slot.textContent = error instanceof Error ? error.message : String(error)
  slot.hidden = false
  const field = error instanceof ApiError || error instanceof FormInputError ? error.field : undefined
  // The API names its fields; the rotate form types a custom grace period into `custom`.
  const name = field === 'gracePeriod' ? 'custom' : field
  const input = name ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null
  input?.setAttribute('aria-invalid', 'true')
  input?.focus()
}

function clearFormError(form) {
  const slot = form.querySelector('.form-error')
  slot.hidden = true
  slot.textContent = ''
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid')
}

function required(form, name, message) {
  const value = form.elements[name].value.trim()
  if (value === '') {
    const error = new FormInputError(message)
    error.field = name
    throw error
  }
  return value
}

async function onAction(event) {
  const form = event.target.closest('form[data-action]')
  if (!form) return
  event.preventDefault()
  const key = state.known.get(state.selectedId)
  if (!key) return
  clearFormError(form)
  const button = form.querySelector('button[type="submit"]')
  button.disabled = true
  try {
    await runAction(form.dataset.action, form, key)
  } catch (error) {
    if (handleSessionError(error)) return
    formError(form, error)
  } finally {
    button.disabled = false
  }
}

function ownKeyWarning(key) {
  return state.whoami && state.whoami.keyId === key.id ? 'This is the admin key you are signed in with.' : undefined
}

/** Shows what an action answered at once (the list reloads after). */
function applyChange(keys, selectId, notice) {
  for (const changed of keys) {
    state.known.set(changed.id, changed)
    const index = state.keys.findIndex((key) => key.id === changed.id)
    if (index >= 0) state.keys[index] = changed
  }
  state.selectedId = selectId
  state.notice = { keyId: selectId, text: notice }
  renderDetail()
  showNotice(notice)
  renderTable()
}

async function runAction(action, form, key) {
  const path = `v1/keys/${encodeURIComponent(key.id)}`
  switch (action) {
    case 'rotate': {
      const choice = form.elements.grace.value
      const gracePeriod = choice === 'custom' ? required(form, 'custom', 'Enter a custom grace period, such as 36h or 90m.') : choice
      const ok = await confirmAction({
        title: `Rotate key ${key.id}?`,
        text: `A new key is issued for ${key.tenantId} (${key.name}). This key keeps working for ${gracePeriod}, then stops.`,
        confirm: 'Rotate',
        warning: ownKeyWarning(key),
      })
      if (!ok) return
      const result = await api('POST', `${path}/rotate`, { gracePeriod })
      showToken(result.token, `Successor of ${key.id}: key ${result.key.id} (${result.key.tenantId}, ${result.key.name}).`)
      applyChange([result.previous, result.key], result.previous.id, `Rotated: ${result.key.id} is the new key; ${key.id} keeps working for ${gracePeriod}.`)
      await loadView()
      return
    }
    case 'end-grace': {
      // Read just before asking: did any replica serve the old key recently?
      const usage = await api('GET', `${path}/rotation-usage?minutes=15`)
      const ok = await confirmAction({
        title: `End the grace period of ${key.id} now?`,
        text: 'The old key stops working at once, on every replica.',
        confirm: 'End grace now',
        warning: [usage.endGraceWarning, ownKeyWarning(key)].filter(Boolean).join(' ') || undefined,
      })
      if (!ok) return
      const { key: ended } = await api('POST', `${path}/expiry`, { endNow: true })
      applyChange([ended], ended.id, `Grace ended: ${key.id} no longer works.`)
      await loadView()
      return
    }
    case 'extend': {
      const extendBy = required(form, 'extendBy', 'Enter how much longer, such as 1h, 24h or 7d.')
      const { key: updated } = await api('POST', `${path}/expiry`, { extendBy })
      form.reset()
      applyChange([updated], updated.id, `Extended by ${extendBy}: ${key.id} now works until ${iso(updated.expiresAt)}.`)
      await loadView()
      return
    }
    case 'allowed-ips': {
      const ranges = form.elements.allowedIps.value.split(',').map((item) => item.trim()).filter(Boolean)
      const { key: updated } = await api('POST', `${path}/allowed-ips`, { allowedIps: ranges.length ? ranges : null })
      applyChange([updated], updated.id, updated.allowedIps ? `${key.id} now works only from ${updated.allowedIps.join(', ')}.` : `${key.id} now works from any IP.`)
      await loadView()
      return
    }
    case 'revoke': {
      const reason = required(form, 'reason', 'Give a reason for the audit trail.')
      const ok = await confirmAction({
        title: `Revoke key ${key.id}?`,
        text: `Requests with this key (${key.tenantId}, ${key.name}) are refused at once, on every replica. This cannot be undone.`,
        confirm: 'Revoke',
        warning: ownKeyWarning(key),
      })
      if (!ok) return
      const { key: revoked } = await api('POST', `${path}/revoke`, { reason })
      applyChange([revoked], revoked.id, `Revoked: ${key.id} no longer works.`)
      await loadView()
      return
    }
    case 'emergency': {
      const incidentId = required(form, 'incidentId', 'Enter the incident id, such as INC-42.')
      const reason = form.elements.reason.value.trim()
      const ok = await confirmAction({
        title: `Emergency rotation of ${key.id}?`,
        text: `The key is revoked now, with no grace period, and a successor is issued (incident ${incidentId}). Clients fail until they get the new token.`,
        confirm: 'Revoke and rotate',
        warning: ownKeyWarning(key),
      })
      if (!ok) return
      const result = await api('POST', `${path}/emergency-rotate`, reason === '' ? { incidentId } : { incidentId, reason })
      showToken(result.token, `Replaces revoked key ${key.id} (incident ${incidentId}): key ${result.key.id}.`)
      applyChange([result.revoked, result.key], result.key.id, `Emergency rotation done: ${key.id} is revoked, ${result.key.id} replaces it.`)
      await loadView()
      return
    }
    case 'credits': {
      const raw = required(form, 'credits', 'Enter a whole number of credits, such as 500.')
      if (!/^-?\d{1,16}$/.test(raw)) throw new FormInputError('Enter a whole number of credits, such as 500.')
      const mode = form.elements.mode.value === 'set' ? 'set' : 'add'
      const { credits } = await api('POST', `${path}/credits`, { [mode]: Number(raw) })
      form.reset()
      state.credits.set(key.id, credits)
      applyChange([key], key.id, `Credits of ${key.id}: ${numberFormat.format(credits.remaining)} left.`)
      return
    }
    default:
      throw new Error(`Unknown action ${action}.`)
  }
}

// ------------------------------------------------------------------ dialogs

function confirmAction({ title, text, confirm, warning }) {
  const dialog = $('#confirm-dialog')
  $('#confirm-title').textContent = title
  $('#confirm-text').textContent = text
  $('#confirm-warning').textContent = warning ?? ''
  $('#confirm-warning').hidden = !warning
  $('#confirm-ok').textContent = confirm
  return new Promise((resolve) => {
    const done = (answer) => {
      $('#confirm-ok').removeEventListener('click', ok)
      $('#confirm-cancel').removeEventListener('click', cancel)
      dialog.removeEventListener('close', cancel)
      if (dialog.open) dialog.close()
      resolve(answer)
    }
    const ok = () => done(true)
    const cancel = () => done(false)
    $('#confirm-ok').addEventListener('click', ok)
    $('#confirm-cancel').addEventListener('click', cancel)
    dialog.addEventListener('close', cancel)
    dialog.showModal()
    $('#confirm-cancel').focus()
  })
}

function showToken(token, about) {
  const dialog = $('#token-dialog')
  $('#token-value').textContent = token
  $('#token-about').textContent = about
  $('#token-copied').textContent = ''
  dialog.showModal()
  $('#token-copy').focus()
}

async function copyToken() {
  const value = $('#token-value').textContent
  const status = $('#token-copied')
  try {
    await navigator.clipboard.writeText(value)
    status.textContent = 'Copied to the clipboard.'
  } catch {
    // No clipboard API (a page not served over HTTPS or loopback): select it for Ctrl+C.
    const range = document.createRange()
    range.selectNodeContents($('#token-value'))
    const selection = getSelection()
    selection.removeAllRanges()
    selection.addRange(range)
    status.textContent = document.execCommand('copy') ? 'Copied to the clipboard.' : 'Selected: press Ctrl+C (⌘C) to copy.'
  }
}

/** Closing the dialog forgets the token: it is never shown again. */
function forgetToken() {
  $('#token-value').textContent = ''
  $('#token-about').textContent = ''
  $('#token-copied').textContent = ''
  getSelection()?.removeAllRanges()
}

// ------------------------------------------------------------------ rotation at a glance

/** The (old, new) pair to draw for a key: itself in grace, or the key it replaced while that one is in grace. */
function rotationPair(key) {
  if (key.state === 'grace' && key.rotatedTo) return { oldId: key.id, newId: key.rotatedTo }
  if (key.rotatedFrom) {
    const previous = state.known.get(key.rotatedFrom)
    if (previous && previous.state === 'grace' && previous.rotatedTo === key.id) return { oldId: previous.id, newId: key.id }
  }
  return null
}

/** The family's balance as last read (credits change with every request, so it is read each time the panel is drawn). */
function creditsText(key) {
  const credits = state.credits.get(key.id)
  if (!credits) return '<span class="muted">loading…</span>'
  const refill = credits.refill
    ? ` <span class="muted">refilled to ${numberFormat.format(credits.refill.amount)} every ${span(credits.refill.intervalMs)}, next ${relative(credits.nextRefillAt, serverNow())}</span>`
    : ' <span class="muted">no refill</span>'
  return `${numberFormat.format(credits.remaining)} left${refill}`
}

async function loadCredits(id) {
  try {
    const { credits } = await api('GET', `v1/keys/${encodeURIComponent(id)}/credits`)
    if (credits) state.credits.set(id, credits)
    const key = state.known.get(id)
    const cell = $('#detail [data-credits]')
    if (key && cell && state.selectedId === id) cell.innerHTML = creditsText(key)
  } catch (error) {
    handleSessionError(error)
  }
}

async function loadRotation() {
  const pair = state.rotation
  if (!pair) return
  const old = state.known.get(pair.oldId)
  const rotatedAt = old?.rotatedAt ?? serverNow()
  // From ten minutes before the rotation to now: the traffic moving over. At most the server's 24 hours.
  const minutes = Math.min(1440, Math.max(15, Math.ceil((serverNow() - rotatedAt) / MINUTE) + 10))
  try {
    // Counted by every replica through the shared store, not only by this server.
    const usage = await api('GET', `v1/keys/${encodeURIComponent(pair.oldId)}/rotation-usage?minutes=${minutes}`)
    if (state.rotation !== pair) return
    const oldUsage = { from: usage.from, counts: usage.oldKey.counts }
    const newUsage = { from: usage.from, counts: usage.newKey?.counts ?? [] }
    const clients = { clients: usage.oldKey.clients, omittedClients: usage.oldKey.omittedClients }
    renderRotation(pair, old, oldUsage, newUsage, clients, usage)
  } catch (error) {
    if (handleSessionError(error)) return
    if (state.rotation !== pair) return
    const section = $('#rotation')
    if (!section) return
    section.hidden = false
    section.innerHTML = `<h3>Rotation</h3><p class="form-error">Could not load the rotation's traffic: ${esc(error.message)}</p>`
  }
}

/** Counts of `usage` on the minute grid starting at `from`. */
function aligned(usage, from, length) {
  const counts = new Array(length).fill(0)
  const shift = Math.round((usage.from - from) / MINUTE)
  usage.counts.forEach((count, index) => {
    const at = index + shift
    if (at >= 0 && at < length) counts[at] = count
  })
  return counts
}

function chartSvg(oldCounts, newCounts, from, rotatedAt) {
  const width = 560
  const height = 170
  const left = 40
  const right = 8
  const top = 10
  const bottom = 24
  const n = oldCounts.length
  const max = Math.max(1, ...oldCounts, ...newCounts)
  const x = (index) => left + (n === 1 ? 0 : (index / (n - 1)) * (width - left - right))
  const y = (count) => top + (1 - count / max) * (height - top - bottom)
  const line = (counts) => counts.map((count, index) => `${x(index).toFixed(1)},${y(count).toFixed(1)}`).join(' ')
  const area = (counts) => `${x(0).toFixed(1)},${y(0)} ${line(counts)} ${x(n - 1).toFixed(1)},${y(0)}`
  const grid = [0, 0.5, 1]
    .map((share) => {
      const value = Math.round(max * share)
      return `<line class="grid" x1="${left}" x2="${width - right}" y1="${y(value)}" y2="${y(value)}"></line><text class="axis" x="${left - 6}" y="${y(value) + 4}" text-anchor="end">${value}</text>`
    })
    .join('')
  let marker = ''
  const rotationIndex = (rotatedAt - from) / MINUTE
  if (rotationIndex >= 0 && rotationIndex <= n - 1) {
    const at = x(rotationIndex).toFixed(1)
    marker = `<line class="marker" x1="${at}" x2="${at}" y1="${top}" y2="${height - bottom}"></line><text class="axis" x="${at}" y="${top + 8}" dx="4">rotated</text>`
  }
  const labels =
    `<text class="axis" x="${left}" y="${height - 6}">${clock(from)}</text>` +
    `<text class="axis" x="${width - right}" y="${height - 6}" text-anchor="end">${clock(from + (n - 1) * MINUTE)}</text>`
  return (
    `<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="Requests per minute on the old and the new key">` +
    `${grid}<polygon class="area-old" points="${area(oldCounts)}"></polygon><polygon class="area-new" points="${area(newCounts)}"></polygon>` +
    `<polyline class="line-old" points="${line(oldCounts)}"></polyline><polyline class="line-new" points="${line(newCounts)}"></polyline>` +
    `${marker}${labels}</svg>`
  )
}

function renderRotation(pair, old, oldUsage, newUsage, graceClients, usage) {
  const section = $('#rotation')
  if (!section) return
  const now = serverNow()
  const from = Math.min(oldUsage.from, newUsage.from)
  const length = Math.max(oldUsage.counts.length, newUsage.counts.length)
  const oldCounts = aligned(oldUsage, from, length)
  const newCounts = aligned(newUsage, from, length)
  const sum = (counts) => counts.reduce((total, count) => total + count, 0)
  const rotatedAt = old?.rotatedAt ?? from
  const deadline = old?.expiresAt ?? null
  const total = deadline !== null ? deadline - rotatedAt : 0
  const elapsed = Math.min(total, Math.max(0, now - rotatedAt))
  // The current minute is still filling: the chart and "last minute" use finished minutes only.
  const finished = Math.max(1, length - 1)
  const lastMinuteOld = oldCounts[finished - 1] ?? 0
  const lastMinuteNew = newCounts[finished - 1] ?? 0
  const clients = graceClients.clients
  const clientRows = clients
    .map(
      (client) =>
        `<tr><td class="mono">${client.clientIp === null ? '<span class="muted">unknown</span>' : esc(client.clientIp)}</td>` +
        `<td class="ellipsis" title="${esc(client.userAgent ?? '')}">${client.userAgent === null ? '<span class="muted">none</span>' : esc(client.userAgent)}</td>` +
        `<td class="num">${numberFormat.format(client.requests)}</td><td>${relative(client.lastSeenAt, now)}</td></tr>`,
    )
    .join('')
  const clientsBlock =
    clients.length === 0
      ? '<p class="ok">No client has used the old key during its grace period, as counted by every replica.</p>'
      : `<table class="clients"><thead><tr><th scope="col">Client IP</th><th scope="col">User agent</th><th scope="col" class="num">Requests</th><th scope="col">Last seen</th></tr></thead><tbody>${clientRows}</tbody></table>` +
        (graceClients.omittedClients > 0 ? `<p class="hint">${graceClients.omittedClients} more clients not listed.</p>` : '')
  section.innerHTML =
    `<h3>Rotation <code>${esc(pair.oldId)}</code> → <code>${esc(pair.newId)}</code></h3>` +
    (deadline !== null
      ? `<p class="grace-line">Grace ends in <strong data-deadline="${deadline}">${countdown(deadline - now)}</strong>` +
        ` <span class="muted">(${span(total)} grace, ${iso(deadline)})</span></p>` +
        `<svg class="grace-bar" viewBox="0 0 100 4" preserveAspectRatio="none" role="img" aria-label="${Math.round((elapsed / Math.max(1, total)) * 100)}% of the grace period elapsed">` +
        `<rect class="bar-bg" width="100" height="4"></rect><rect class="bar-fill" width="${((elapsed / Math.max(1, total)) * 100).toFixed(2)}" height="4"></rect></svg>`
      : '') +
    '<h4>Requests per minute</h4>' +
    chartSvg(oldCounts.slice(0, finished), newCounts.slice(0, finished), from, rotatedAt) +
    '<p class="legend">' +
    `<span><i class="swatch swatch-old"></i>old key: ${numberFormat.format(sum(oldCounts))} requests, ${lastMinuteOld} in the last minute</span>` +
    `<span><i class="swatch swatch-new"></i>new key: ${numberFormat.format(sum(newCounts))} requests, ${lastMinuteNew} in the last minute</span></p>` +
    `<h4>Clients still on the old key (${clients.length + graceClients.omittedClients})</h4>${clientsBlock}` +
    (usage.endGraceWarning ? `<p class="form-error end-grace-warning">${esc(usage.endGraceWarning)}</p>` : '') +
    (usage.scope === 'unavailable'
      ? '<p class="hint">This store keeps no rotation telemetry: no figures from any replica.</p>'
      : `<p class="hint">${esc(usage.caveat)}</p>`)
  section.hidden = false
  collectCountdowns()
}

// ------------------------------------------------------------------ clock

function tick() {
  const now = serverNow()
  let ended = false
  for (const element of state.countdowns) {
    const deadline = Number(element.dataset.deadline)
    const left = deadline - now
    if (left <= 0) ended = true
    const text = element.tagName === 'TD' ? (left > 0 ? `${countdown(left)} left` : 'grace ended') : countdown(left)
    if (element.textContent !== text) element.textContent = text
  }
  // A grace period just ended: the key is expired now; read the new states once.
  if (ended && state.adminKey && Date.now() - state.lastEndedReload > 5000) {
    state.lastEndedReload = Date.now()
    void loadView({ quiet: true })
  }
}

// ------------------------------------------------------------------ banner

function showBanner(message) {
  const banner = $('#banner')
  banner.textContent = message
  banner.hidden = false
}

function hideBanner() {
  $('#banner').hidden = true
}

// ------------------------------------------------------------------ wiring

function setView(view) {
  state.view = view
  for (const button of document.querySelectorAll('#views [data-view]')) button.setAttribute('aria-pressed', String(button.dataset.view === view))
  $('#within-control').hidden = view !== 'expiring'
  $('#since-control').hidden = view !== 'unused'
  $('#expires-heading').textContent = view === 'due' ? 'Rotation due' : 'Expires'
  state.keys = []
  $('#keys-body').innerHTML = ''
  void loadView()
}

function wire() {
  $('#login-form').addEventListener('submit', (event) => void signIn(event))
  $('#sign-out').addEventListener('click', () => signOut())
  $('#refresh').addEventListener('click', () => void loadView())
  $('#views').addEventListener('click', (event) => {
    const button = event.target.closest('[data-view]')
    if (button && button.dataset.view !== state.view) setView(button.dataset.view)
  })
  $('#filter-tenant').addEventListener('change', (event) => {
    state.filters.tenant = event.target.value
    scheduleTable()
  })
  $('#filter-state').addEventListener('change', (event) => {
    state.filters.state = event.target.value
    scheduleTable()
  })
  $('#filter-search').addEventListener('input', (event) => {
    state.filters.search = event.target.value
    scheduleTable()
  })
  $('#filter-within').addEventListener('change', () => void loadView())
  $('#filter-since').addEventListener('change', () => void loadView())
  $('#keys-body').addEventListener('click', (event) => {
    const target = event.target.closest('[data-select]') ?? event.target.closest('tr[data-id]')
    if (target) selectKey(target.dataset.select ?? target.dataset.id)
  })
  const detail = $('#detail')
  detail.addEventListener('click', (event) => {
    const link = event.target.closest('[data-select]')
    if (link) selectKey(link.dataset.select)
    if (event.target.closest('[data-close]')) {
      state.selectedId = null
      document.querySelector('#keys-body tr.selected')?.classList.remove('selected')
      renderDetail()
    }
  })
  detail.addEventListener('submit', (event) => void onAction(event))
  detail.addEventListener('input', (event) => {
    const form = event.target.closest('form[data-action]')
    if (form && event.target.name === 'custom') form.elements.grace.value = 'custom'
  })
  $('#token-copy').addEventListener('click', () => void copyToken())
  $('#token-done').addEventListener('click', () => {
    forgetToken()
    $('#token-dialog').close()
  })
  $('#token-dialog').addEventListener('close', forgetToken)
  setInterval(tick, 1000)
}

// Never a blank page: anything unexpected is said in the banner.
addEventListener('error', (event) => showBanner(`Something went wrong in the dashboard: ${event.message}. Reload the page to continue.`))
addEventListener('unhandledrejection', (event) => showBanner(`Something went wrong in the dashboard: ${event.reason?.message ?? event.reason}.`))

async function start() {
  wire()
  const key = storedKey()
  if (!key) {
    showLogin()
    return
  }
  // Signed in earlier in this tab: load the keys and who we are at once (a key that stopped working signs out).
  state.adminKey = key
  api('GET', 'v1/whoami').then(
    (who) => {
      state.whoami = who
      renderWhoami()
    },
    (error) => handleSessionError(error),
  )
  await enterApp()
}

void start()
