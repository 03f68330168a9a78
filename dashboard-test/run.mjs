// The operator's dashboard in a real browser: Debian's Chromium, headless,
// driven by puppeteer-core. It builds wisp from this tree, starts it on a
// free loopback port with a fresh data directory and an admin key, and
//
//   1. logs in as that admin through a NIP-07 window.nostr (a shim put in
//      the page before its scripts run, signing in Node with the test key:
//      the interface a browser extension gives a page);
//   2. publishes events over a websocket and checks that the page's
//      figures, charts (SVG drawn by its script) and busiest authors move;
//   3. bans the publishing pubkey with the page's NIP-86 form and checks
//      that the relay then refuses that pubkey's event, and that the page
//      shows the ban and the refusal;
//
// and that the page ran with no script error and no CSP violation.
//
//   node run.mjs                       build ../cmd/wisp and test it
//   WISP_BIN=/path/to/wisp node run.mjs   test that binary instead
//   CHROMIUM=/path/to/chromium            another browser than /usr/bin/chromium
//
// One line per step (PASS/FAIL); the exit status is non-zero on a failure,
// and then the relay's log, the browser's console and a screenshot are kept.

import { spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import puppeteer from 'puppeteer-core'
import WebSocket from 'ws'
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure'

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, '..')
const STEP_MS = 20000 // the page polls every 2 s; a step waits for a few polls at most

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// waitFor polls cond (async) until it returns a truthy value, or fails
// with what() at the deadline.
async function waitFor(cond, what, ms = STEP_MS) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await cond()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`${typeof what === 'function' ? await what() : what} (after ${ms / 1000} s)`)
    await sleep(100)
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

// ---------------------------------------------------------------------------
// The relay.

const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wisp-dashboard-'))
let child = null

async function startRelay(adminPk) {
  let bin = process.env.WISP_BIN
  if (!bin) {
    bin = path.join(tmpDir, 'wisp')
    execFileSync('go', ['build', '-o', bin, './cmd/wisp'], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] })
  }
  const port = await freePort()
  const env = {
    PATH: process.env.PATH,
    WISP_LISTEN: `127.0.0.1:${port}`,
    WISP_DATA_DIR: path.join(tmpDir, 'data'),
    WISP_ADMIN_PUBKEYS: adminPk,
    WISP_RELAY_NAME: 'dashboard test <relay>',
  }
  const log = fs.openSync(path.join(tmpDir, 'wisp.log'), 'w')
  child = spawn(bin, [], { env, stdio: ['ignore', log, log] })
  child.on('exit', () => { child.exited = true })
  const base = `http://127.0.0.1:${port}`
  await waitFor(async () => {
    if (child.exited) throw new Error('wisp exited at start; see its log')
    try {
      return (await fetch(base + '/dashboard')).ok
    } catch {
      return false
    }
  }, 'wisp did not answer /dashboard')
  return { http: base, ws: `ws://127.0.0.1:${port}` }
}

function stopRelay() {
  if (child && !child.exited) child.kill('SIGTERM')
}

// A websocket client that publishes and waits for each OK.
async function connect(url) {
  const ws = new WebSocket(url)
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  const waiting = new Map()
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString())
    if (msg[0] === 'OK' && waiting.has(msg[1])) {
      waiting.get(msg[1])({ ok: msg[2], msg: msg[3] })
      waiting.delete(msg[1])
    }
  })
  return {
    publish(ev) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no OK for ${ev.id}`)), 10000)
        waiting.set(ev.id, (res) => { clearTimeout(timer); resolve(res) })
        ws.send(JSON.stringify(['EVENT', ev]))
      })
    },
    close() { ws.close() },
  }
}

let serial = 0
const note = (sk, text) =>
  finalizeEvent({ kind: 1, created_at: Math.floor(Date.now() / 1000), tags: [], content: `${text} ${++serial}` }, sk)

// ---------------------------------------------------------------------------
// The browser.

const consoleLines = []
const problems = [] // script errors and CSP violations

async function openBrowser() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium'
  return puppeteer.launch({
    executablePath,
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'],
  })
}

// nip07 gives the page a window.nostr that signs with sk, as an extension
// would; signed records what it was asked to sign.
async function nip07(page, sk, signed) {
  await page.exposeFunction('__wispTestPubkey', () => getPublicKey(sk))
  await page.exposeFunction('__wispTestSign', (template) => {
    signed.push(template)
    return finalizeEvent(template, sk)
  })
  await page.evaluateOnNewDocument(() => {
    window.nostr = {
      getPublicKey: () => window.__wispTestPubkey(),
      signEvent: (ev) => window.__wispTestSign(ev),
    }
  })
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent).catch(() => null)
const figure = async (page, key) => Number(await text(page, `[data-f="${key}"]`))
// legendValue is the current value a chart's legend shows for a series.
const legendValue = async (page, chart, series) => {
  const t = await text(page, `#legend-${chart} li[data-s="${series}"] b`)
  return t === null ? null : Number(t)
}

// ---------------------------------------------------------------------------

const steps = []
const step = (name, fn) => steps.push({ name, fn })

const adminSk = generateSecretKey()
const adminPk = getPublicKey(adminSk)
const spammerSk = generateSecretKey()
const spammerPk = getPublicKey(spammerSk)
const state = {}

step('the login page offers the NIP-07 login and shows no figures', async () => {
  const { page, relay } = state
  const resp = await page.goto(relay.http + '/dashboard', { waitUntil: 'domcontentloaded' })
  const csp = resp.headers()['content-security-policy'] || ''
  if (!csp.includes("script-src 'self'")) throw new Error(`CSP ${csp}`)
  if (!(await page.$('#login-nostr'))) throw new Error('no NIP-07 login button')
  if (await page.$('[data-f]')) throw new Error('figures shown before a login')
  const title = await page.title()
  if (title !== 'dashboard test <relay> · dashboard') throw new Error(`title ${JSON.stringify(title)}: the name must be shown as text`)
})

step('logging in signs a NIP-98 event for the login URL and opens the dashboard', async () => {
  const { page, relay, signed } = state
  await Promise.all([page.waitForNavigation({ waitUntil: 'domcontentloaded' }), page.click('#login-nostr')])
  const login = signed.find((ev) => ev.kind === 27235)
  const u = login?.tags.find((t) => t[0] === 'u')?.[1]
  if (u !== relay.http + '/dashboard/login') throw new Error(`signed ${JSON.stringify(login)}; want kind 27235 for ${relay.http}/dashboard/login`)
  await waitFor(() => page.$('body#dashboard'), async () => `no dashboard after the login: ${await text(page, 'body')}`)
  const who = await text(page, '.who code')
  if (who !== adminPk) throw new Error(`logged in as ${who}, want ${adminPk}`)
  await waitFor(() => page.$('#chart-events polyline'), 'the events chart is not drawn')
})

step('the figures, the charts and the busiest authors move with published events', async () => {
  const { page, relay } = state
  const before = await figure(page, 'accepted_total')
  const c = await connect(relay.ws)
  state.client = c
  const n = 25
  for (let i = 0; i < n; i++) {
    const res = await c.publish(note(spammerSk, 'buy now'))
    if (!res.ok) throw new Error(`event refused: ${res.msg}`)
  }
  await waitFor(async () => (await figure(page, 'accepted_total')) >= before + n,
    async () => `accepted since start shows ${await figure(page, 'accepted_total')}, want ${before + n}`)
  await waitFor(async () => (await figure(page, 'events_stored')) === n,
    async () => `events in the database shows ${await text(page, '[data-f="events_stored"]')}, want ${n}`)
  await waitFor(async () => (await figure(page, 'connections')) === 1, 'connections does not show the client')
  // The accepted line left the baseline: some point above the chart's bottom.
  await waitFor(async () => {
    const ys = await page.$eval('#chart-events polyline[data-s="accepted"]', (p) =>
      p.getAttribute('points').split(' ').map((xy) => Number(xy.split(',')[1])))
    return Math.min(...ys) < Math.max(...ys)
  }, 'the accepted line of the events chart stays flat')
  await waitFor(async () => (await text(page, '#t-authors tbody'))?.includes(spammerPk),
    async () => `busiest authors: ${await text(page, '#t-authors tbody')}`)
  await waitFor(async () => (await text(page, '#t-kinds tbody')) === '1' + n,
    async () => `kinds in the database: ${await text(page, '#t-kinds tbody')}`)
  await waitFor(async () => (await text(page, '#t-recent tbody'))?.includes('1' + n),
    async () => `kinds stored lately: ${await text(page, '#t-recent tbody')}`)
  const axis = await page.$$eval('#chart-events text', (ts) => ts.map((t) => t.textContent))
  if (!axis.includes('now')) throw new Error(`events chart axis ${axis}`)
})

step('banning the pubkey through the NIP-86 form takes effect', async () => {
  const { page, client, signed } = state
  // The author's ban button fills the form, as an operator would use it.
  await page.$$eval('#t-authors button', (bs) => bs[0].click())
  const filled = await page.$eval('form[data-method="banpubkey"] input[name="p0"]', (i) => i.value)
  if (filled !== spammerPk) throw new Error(`ban… filled ${filled}`)
  await page.type('form[data-method="banpubkey"] input[name="p1"]', 'spam')
  await page.click('form[data-method="banpubkey"] button[type="submit"]')
  await waitFor(async () => (await text(page, '#results'))?.includes('banpubkey'),
    async () => `no result shown: ${await text(page, '#results')}`)
  const result = await text(page, '#results li')
  if (!(await page.$('#results li.ok'))) throw new Error(`the ban failed: ${result}`)
  const call = signed.filter((ev) => ev.kind === 27235).pop()
  if (!call.tags.some((t) => t[0] === 'payload') || call.tags.find((t) => t[0] === 'method')[1] !== 'POST') {
    throw new Error(`NIP-86 call signed without payload or method: ${JSON.stringify(call)}`)
  }
  await waitFor(async () => (await text(page, '#l-listbannedpubkeys'))?.includes(spammerPk),
    async () => `banned pubkeys shown: ${await text(page, '#l-listbannedpubkeys')}`)
  const res = await client.publish(note(spammerSk, 'after the ban'))
  if (res.ok || !res.msg.startsWith('blocked:')) throw new Error(`after the ban: OK ${res.ok} ${res.msg}, want false blocked:`)
  // The refusal shows in the events chart, by its reason.
  await waitFor(async () => (await figure(page, 'rejected_total')) >= 1,
    async () => `refused since start shows ${await figure(page, 'rejected_total')}`)
  await waitFor(() => page.$('#legend-events li[data-s="refused blocked"]'), 'no "refused blocked" series in the events chart')
  // The ban also deleted what was stored.
  await waitFor(async () => (await figure(page, 'events_stored')) === 0,
    async () => `events in the database shows ${await figure(page, 'events_stored')} after the ban, want 0`)
})

step('the page ran without script errors or CSP violations', async () => {
  if (problems.length) throw new Error(problems.join('\n'))
})

async function main() {
  const started = Date.now()
  state.relay = await startRelay(adminPk)
  state.browser = await openBrowser()
  const page = await state.browser.newPage()
  state.page = page
  state.signed = []
  page.on('console', (m) => {
    consoleLines.push(`${m.type()}: ${m.text()}`)
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`)
  })
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`)
  })
  await nip07(page, adminSk, state.signed)

  let failed = 0
  for (const s of steps) {
    try {
      await s.fn()
      console.log(`PASS ${s.name}`)
    } catch (err) {
      failed++
      console.log(`FAIL ${s.name}: ${err.message}`)
      break // later steps build on this one
    }
  }
  if (failed) {
    await page.screenshot({ path: path.join(tmpDir, 'dashboard.png'), fullPage: true }).catch(() => {})
    fs.writeFileSync(path.join(tmpDir, 'console.log'), consoleLines.join('\n'))
  }
  console.log(`# ${steps.length} steps in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  console.log(failed ? 'FAIL' : `${steps.length} passed`)
  return failed ? 1 : 0
}

let code = 1
try {
  code = await main()
} catch (err) {
  console.log(`FAIL harness: ${err.stack ?? err}`)
}
state.client?.close()
await state.browser?.close().catch(() => {})
stopRelay()
if (code === 0) fs.rmSync(tmpDir, { recursive: true, force: true })
else console.log(`# kept ${tmpDir} (wisp.log, console.log, dashboard.png)`)
process.exit(code)
