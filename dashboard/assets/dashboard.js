// wisp's dashboard: logs in through a NIP-07 extension (NIP-98), polls
// /dashboard/data every 2 s, draws the charts as SVG, and makes NIP-86
// calls, each signed by the extension. The page allows no other script
// (Content-Security-Policy) and this one builds no markup from data:
// every value goes in as text.
'use strict'
;(() => {
  const POLL_MS = 2000
  const WINDOW_MS = 300 * 1000 // what the charts show: the samples the relay keeps
  const COLORS = ['#2563eb', '#16a34a', '#dc2626', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#475569', '#ea580c']
  const SVG = 'http://www.w3.org/2000/svg'

  const el = (tag, props = {}, ...kids) => {
    const e = document.createElement(tag)
    Object.assign(e, props)
    e.append(...kids)
    return e
  }
  const svgEl = (tag, attrs) => {
    const e = document.createElementNS(SVG, tag)
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
    return e
  }

  // Formats, as the server renders them (page.go).
  const rate = v => (v >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1))
  const bytes = n => {
    if (n < 1024) return n + ' B'
    let v = n / 1024
    let i = 0
    while (v >= 1024 && i < 3) { v /= 1024; i++ }
    return v.toFixed(1) + ' ' + ['KiB', 'MiB', 'GiB', 'TiB'][i]
  }

  // ---- NIP-98 through NIP-07 -------------------------------------------
  let lastCreatedAt = 0 // each header a new event: the relay refuses a replay
  const base64 = s => {
    let bin = ''
    for (const b of new TextEncoder().encode(s)) bin += String.fromCharCode(b)
    return btoa(bin)
  }
  async function sha256hex(s) {
    if (!crypto.subtle) throw new Error('hashing needs a secure page: open the dashboard over https (or on localhost)')
    const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s))
    return Array.from(new Uint8Array(d), b => b.toString(16).padStart(2, '0')).join('')
  }
  async function nip98(url, method, body) {
    if (!window.nostr) throw new Error('no NIP-07 extension (window.nostr) in this browser')
    const createdAt = Math.max(Math.floor(Date.now() / 1000), lastCreatedAt + 1)
    lastCreatedAt = createdAt
    const tags = [['u', url], ['method', method]]
    if (body) tags.push(['payload', await sha256hex(body)])
    const ev = await window.nostr.signEvent({ kind: 27235, created_at: createdAt, tags, content: '' })
    return 'Nostr ' + base64(JSON.stringify(ev))
  }

  // ---- login page ------------------------------------------------------
  function setupLogin() {
    const button = document.getElementById('login-nostr')
    if (!button) return
    const msg = document.getElementById('login-msg')
    button.addEventListener('click', async () => {
      button.disabled = true
      msg.textContent = 'Asking your extension to sign…'
      try {
        const auth = await nip98(location.origin + '/dashboard/login', 'POST', '')
        const r = await fetch('/dashboard/login', { method: 'POST', headers: { Authorization: auth } })
        const j = await r.json().catch(() => ({}))
        if (!r.ok) throw new Error(j.error || 'HTTP ' + r.status)
        location.assign('/dashboard')
      } catch (e) {
        msg.textContent = 'Login refused: ' + e.message
        button.disabled = false
      }
    })
  }

  // ---- charts ----------------------------------------------------------
  const samples = []
  let since = 0

  // niceMax rounds a maximum up to 1, 2 or 5 times a power of ten (of
  // 1024, then of ten within it, for bytes).
  function niceMax(v, binary) {
    if (!(v > 0)) return 1
    const unit = binary ? Math.pow(1024, Math.max(0, Math.floor(Math.log(v) / Math.log(1024)))) : 1
    v /= unit
    const p = Math.pow(10, Math.floor(Math.log10(v)))
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p * unit
    return 10 * p * unit
  }
  // axis labels of figures a second: up to three significant digits.
  const axisRate = (v) => String(Number(v.toPrecision(3)))

  // chart draws series ({name, value: sample => number}) over the samples
  // held, with the current value of each in the legend.
  function chart(name, series, fmt) {
    const svg = document.getElementById('chart-' + name)
    const legend = document.getElementById('legend-' + name)
    if (!svg) return
    const W = 640, H = 180, L = 56, R = 8, T = 8, B = 20
    const end = samples.length ? samples[samples.length - 1].t : Date.now()
    const x = t => L + (W - L - R) * (1 - (end - t) / WINDOW_MS)
    let top = 0
    const lines = series.map(s => samples.map(smp => [smp.t, s.value(smp) || 0]))
    for (const pts of lines) for (const [, v] of pts) top = Math.max(top, v)
    top = niceMax(top, fmt === bytes)
    const y = v => T + (H - T - B) * (1 - v / top)
    const kids = []
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4
      kids.push(svgEl('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }))
      const label = svgEl('text', { class: 'axis', x: L - 4, y: y(v) + 4, 'text-anchor': 'end' })
      label.textContent = fmt === rate ? axisRate(v) : fmt(v)
      kids.push(label)
    }
    for (let m = 0; m <= 5; m++) {
      const label = svgEl('text', { class: 'axis', x: x(end - m * 60000), y: H - 4, 'text-anchor': m === 0 ? 'end' : 'middle' })
      label.textContent = m === 0 ? 'now' : '-' + m + ' min'
      kids.push(label)
    }
    lines.forEach((pts, i) => {
      if (!pts.length) return
      const points = pts.map(([t, v]) => x(t).toFixed(1) + ',' + y(v).toFixed(1)).join(' ')
      kids.push(svgEl('polyline', { points, stroke: COLORS[i % COLORS.length], 'data-s': series[i].name }))
    })
    svg.replaceChildren(...kids)
    const last = samples[samples.length - 1]
    legend.replaceChildren(...series.map((s, i) => {
      const swatch = el('i')
      swatch.style.background = COLORS[i % COLORS.length]
      const li = el('li', {}, swatch, s.name, el('b', { textContent: last ? fmt(s.value(last) || 0) : '–' }))
      li.dataset.s = s.name
      return li
    }))
  }

  // keysOf lists the keys a map field of the samples has had.
  const keysOf = field => [...new Set(samples.flatMap(s => Object.keys(s[field] || {})))].sort()
  const sum = m => Object.values(m || {}).reduce((a, b) => a + b, 0)

  function drawCharts() {
    chart('events', [
      { name: 'accepted', value: s => s.accepted },
      { name: 'duplicate', value: s => s.duplicate },
      ...keysOf('rejected').map(k => ({ name: 'refused ' + k, value: s => (s.rejected || {})[k] })),
    ], rate)
    chart('conns', [
      { name: 'connections', value: s => s.connections },
      { name: 'subscriptions', value: s => s.subscriptions },
    ], rate)
    chart('latency', [
      { name: 'mean', value: s => s.query_avg_ms },
      { name: 'p95', value: s => s.query_p95_ms },
      { name: 'queries / s', value: s => s.queries },
    ], rate)
    chart('refused', [
      ...keysOf('refused').map(k => ({ name: k, value: s => (s.refused || {})[k] })),
      { name: 'slow consumers closed', value: s => s.evictions },
    ], rate)
    chart('disk', [
      { name: 'database', value: s => s.db_bytes },
      { name: 'WAL', value: s => s.wal_bytes },
    ], bytes)
  }

  function drawFigures(d) {
    const last = samples[samples.length - 1]
    if (!last) return
    const figs = {
      connections: String(last.connections),
      subscriptions: String(last.subscriptions),
      accepted: rate(last.accepted),
      rejected: rate(sum(last.rejected)),
      accepted_total: String(last.accepted_total),
      rejected_total: String(last.rejected_total),
      events_stored: d.events_stored >= 0 ? String(d.events_stored) : 'unknown',
      query_p95_ms: rate(last.query_p95_ms),
      db_bytes: bytes(last.db_bytes),
      wal_bytes: bytes(last.wal_bytes),
      evictions_total: String(last.evictions_total),
    }
    for (const [k, v] of Object.entries(figs)) {
      const b = document.querySelector('[data-f="' + k + '"]')
      if (b) b.textContent = v
    }
  }

  // table fills a list's body with rows of [key, count]; empty says why.
  function table(id, rows, empty, action) {
    const body = document.querySelector('#' + id + ' tbody')
    if (!body) return
    if (!rows.length) {
      body.replaceChildren(el('tr', {}, el('td', { colSpan: 2, className: 'dim', textContent: empty })))
      return
    }
    body.replaceChildren(...rows.map(([key, count, code]) => {
      const cell = el('td', {}, code ? el('code', { textContent: key }) : key)
      if (action) cell.append(' ', action(key))
      return el('tr', {}, cell, el('td', { textContent: String(count) }))
    }))
  }

  function drawLists(d) {
    table('t-kinds', d.kinds.map(k => [String(k.kind), k.events]), d.kinds_as_of ? 'none' : 'counting…')
    const asOf = document.getElementById('kinds-as-of')
    if (asOf && d.kinds_as_of) asOf.textContent = '(as of ' + new Date(d.kinds_as_of).toLocaleTimeString() + ')'
    table('t-recent', d.recent_kinds.map(e => [e.key, e.count]), 'none')
    const ban = isAdmin ? key => el('button', { type: 'button', textContent: 'ban…', onclick: () => prefill('banpubkey', key) }) : null
    table('t-authors', d.authors.map(e => [e.key, e.count, true]), 'none', ban)
    table('t-ips', d.ips.map(e => [e.key, e.count, true]), d.ips_shown === 'off' ? 'not counted (WISP_LOG_IPS=off)' : 'none',
      isAdmin && d.ips_shown === 'full' ? key => el('button', { type: 'button', textContent: 'block…', onclick: () => prefill('blockip', key) }) : null)
  }

  const setStatus = s => { const e = document.getElementById('status'); if (e) e.textContent = s }

  async function poll() {
    try {
      const r = await fetch('/dashboard/data?since=' + since, { cache: 'no-store' })
      if (r.status === 401 || r.status === 403) { location.assign('/dashboard'); return }
      if (!r.ok) throw new Error('HTTP ' + r.status)
      const d = await r.json()
      samples.push(...d.samples)
      if (samples.length) since = samples[samples.length - 1].t
      while (samples.length && samples[0].t < since - WINDOW_MS) samples.shift()
      drawCharts()
      drawFigures(d)
      drawLists(d)
      setStatus('live · ' + new Date(d.now).toLocaleTimeString())
    } catch (e) {
      setStatus('not updating: ' + e.message)
    }
    setTimeout(poll, POLL_MS)
  }

  // ---- acting through NIP-86 --------------------------------------------
  let isAdmin = false
  const listOf = { banpubkey: 'listbannedpubkeys', banevent: 'listbannedevents', blockip: 'listblockedips', allowkind: 'listallowedkinds',
    unbanpubkey: 'listbannedpubkeys', unbanevent: 'listbannedevents', unblockip: 'listblockedips' }

  async function rpc(method, params) {
    const body = JSON.stringify({ method, params })
    const auth = await nip98(location.origin + '/', 'POST', body)
    const r = await fetch('/', { method: 'POST', headers: { 'Content-Type': 'application/nostr+json+rpc', Authorization: auth }, body })
    const j = await r.json().catch(() => ({ error: 'HTTP ' + r.status }))
    if (j.error) throw new Error(j.error)
    return j.result
  }

  function result(text, ok) {
    const list = document.getElementById('results')
    list.prepend(el('li', { className: ok ? 'ok' : 'err', textContent: new Date().toLocaleTimeString() + ' ' + text }))
    while (list.children.length > 20) list.lastChild.remove()
  }

  async function act(method, params) {
    const what = method + ' ' + params.map(String).join(' ')
    try {
      const res = await rpc(method, params)
      result(what + ': done (' + JSON.stringify(res) + ')', true)
      if (listOf[method]) await readList(listOf[method])
    } catch (e) {
      result(what + ': refused: ' + e.message, false)
    }
  }

  // readList shows one NIP-86 list, each entry with its undo button.
  async function readList(method) {
    const ul = document.getElementById('l-' + method)
    if (!ul) return
    try {
      const items = (await rpc(method, [])) || []
      const undo = ul.dataset.undo
      ul.replaceChildren(...items.map(it => {
        const key = typeof it === 'object' && it !== null ? (it.pubkey || it.id || it.ip || '') : String(it)
        const li = el('li', {}, el('code', { textContent: key }))
        if (it && it.reason) li.append(' ', el('span', { className: 'dim', textContent: it.reason }))
        if (undo) li.append(' ', el('button', { type: 'button', textContent: 'remove', onclick: () => act(undo, [key]) }))
        return li
      }))
      if (!items.length) ul.replaceChildren(el('li', { className: 'dim', textContent: 'none' }))
    } catch (e) {
      result(method + ': ' + e.message, false)
    }
  }

  function prefill(method, value) {
    const form = document.querySelector('form.act[data-method="' + method + '"]')
    form.elements.p0.value = value
    form.elements.p1.focus()
  }

  function setupAdmin() {
    for (const form of document.querySelectorAll('form.act')) {
      form.addEventListener('submit', ev => {
        ev.preventDefault()
        const p0 = form.elements.p0
        const params = [p0.dataset.number ? Number(p0.value) : p0.value.trim()]
        const reason = form.elements.p1 && form.elements.p1.value.trim()
        if (reason) params.push(reason)
        act(form.dataset.method, params)
      })
    }
    document.getElementById('refresh-lists').addEventListener('click', async () => {
      for (const m of ['listbannedpubkeys', 'listbannedevents', 'listblockedips', 'listallowedkinds']) await readList(m)
    })
  }

  document.addEventListener('DOMContentLoaded', () => {
    if (document.body.id === 'login') {
      setupLogin()
      return
    }
    isAdmin = document.body.dataset.admin === '1'
    if (isAdmin) setupAdmin()
    poll()
  })
})()
