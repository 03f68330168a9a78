// NIP-01/09/11/40 conformance run for wisp, from a client's side.
//
// It builds wisp, starts it on a free loopback port with a fresh data
// directory, and checks it through nostr-tools (the JavaScript client library
// most Nostr clients use) plus raw websocket frames where the library cannot
// express a case. The expectations come from the NIP texts, not from wisp's
// code: each check's name states the NIP rule it tests.
//
//   node run.mjs                       build ../cmd/wisp and test it
//   WISP_BIN=/path/to/wisp node run.mjs   test that binary instead
//
// One line per check (PASS/FAIL), then "N passed, N failed"; the exit status
// is non-zero when any check failed. On a failure the frames exchanged on the
// check's connections are printed under it.

import { spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { isDeepStrictEqual } from 'node:util'

import WebSocket from 'ws'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { fetchRelayInformation } from 'nostr-tools/nip11'

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, '..')

// Small limits, so that the checks that go past them stay quick. The NIP-11
// document must report exactly these (issue 2: "limitation with the limits
// really in force"), and the limit checks read the limits from the document.
const LIMITS_ENV = {
  WISP_MAX_MESSAGE_BYTES: '65536',
  WISP_MAX_EVENT_BYTES: '32768',
  WISP_MAX_EVENT_TAGS: '40',
  WISP_MAX_CONTENT_LENGTH: '1000',
  WISP_MAX_SUBSCRIPTIONS: '8',
  WISP_MAX_FILTERS: '4',
  WISP_MAX_LIMIT: '30',
  WISP_DEFAULT_LIMIT: '30',
  WISP_CREATED_AT_FUTURE: '10m',
}
const EXPECTED_LIMITATION = {
  max_message_length: 65536,
  max_subscriptions: 8,
  max_filters: 4,
  max_limit: 30,
  max_subid_length: 64,
  max_event_tags: 40,
  max_content_length: 1000,
  created_at_upper_limit: 600,
}

// Prefixes NIP-01 standardizes for OK and CLOSED reasons (its current text
// adds restricted and mute; its CLOSED examples use unsupported).
const STD_PREFIXES = ['duplicate', 'pow', 'blocked', 'rate-limited', 'invalid', 'restricted', 'mute', 'error', 'unsupported']
const PREFIXED = /^[a-z-]+: ?/

// ---------------------------------------------------------------------------
// Tracing websockets: every frame of every connection is recorded, so that a
// failing check can show exactly what went over the wire.

let current = null // the running check's context: { conns, relays }
const allConns = []
let connSeq = 0

class TracedWebSocket extends WebSocket {
  constructor(address, protocols, options) {
    super(address, protocols, options)
    this.label = `conn${++connSeq}`
    this.frames = []
    this.sentSubs = new Set() // sub ids this client opened with REQ
    allConns.push(this)
    if (current) current.conns.push(this)
    this.on('message', (data, isBinary) => {
      this.frames.push({ dir: '<', text: isBinary ? `<binary frame, ${data.length} bytes>` : data.toString() })
    })
    this.on('close', (code, reason) => this.frames.push({ dir: 'x', text: `closed by relay or locally: code ${code} ${JSON.stringify(reason.toString())}` }))
    this.on('error', (err) => this.frames.push({ dir: '!', text: `error: ${err.message}` }))
  }

  send(data, options, cb) {
    const text = typeof data === 'string' ? data : `<binary, ${data.length} bytes>`
    this.frames.push({ dir: '>', text })
    if (typeof data === 'string' && data.startsWith('["REQ"')) {
      try {
        const m = JSON.parse(data)
        if (typeof m[1] === 'string') this.sentSubs.add(m[1])
      } catch {}
    }
    return super.send(data, options, cb)
  }
}
useWebSocketImplementation(TracedWebSocket)

function received(ws) {
  const out = []
  for (const f of ws.frames) {
    if (f.dir !== '<') continue
    try {
      out.push(JSON.parse(f.text))
    } catch {
      out.push({ unparsable: f.text })
    }
  }
  return out
}

// ---------------------------------------------------------------------------
// A raw client: JSON frames in and out, with waits on what comes back.

class Raw {
  static open(timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const ws = new TracedWebSocket(relayURL)
      const t = setTimeout(() => reject(new Error('websocket did not open within ' + timeoutMs + ' ms')), timeoutMs)
      ws.once('open', () => {
        clearTimeout(t)
        resolve(new Raw(ws))
      })
      ws.once('error', (err) => {
        clearTimeout(t)
        reject(err)
      })
    })
  }

  constructor(ws) {
    this.ws = ws
    this.inbox = []
    this.waiters = new Set()
    this.closeInfo = null
    ws.on('message', (data) => {
      let m
      try {
        m = JSON.parse(data.toString())
      } catch {
        m = { unparsable: data.toString() }
      }
      this.inbox.push(m)
      this.wake()
    })
    ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString() }
      this.wake()
    })
    if (current) current.raws.push(this)
  }

  wake() {
    for (const w of [...this.waiters]) w()
  }

  get open() {
    return this.ws.readyState === WebSocket.OPEN
  }

  send(msg) {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg))
  }

  // take waits for the first received message matching pred, removes it from
  // the inbox and returns it.
  take(pred, what, ms = 4000) {
    return new Promise((resolve, reject) => {
      let timer
      const done = () => {
        clearTimeout(timer)
        this.waiters.delete(check)
      }
      const check = () => {
        const i = this.inbox.findIndex(pred)
        if (i >= 0) {
          const [m] = this.inbox.splice(i, 1)
          done()
          resolve(m)
        } else if (this.closeInfo) {
          done()
          reject(new Error(`connection closed (code ${this.closeInfo.code}) while waiting for ${what}`))
        }
      }
      timer = setTimeout(() => {
        done()
        reject(new Error(`no ${what} within ${ms} ms`))
      }, ms)
      this.waiters.add(check)
      check()
    })
  }

  // answer waits for the relay's reply to a message that is not tied to a
  // known event or subscription: a NOTICE, a CLOSED or an OK.
  answer(what, ms = 3000) {
    return this.take((m) => Array.isArray(m) && ['NOTICE', 'CLOSED', 'OK'].includes(m[0]), what, ms)
  }

  async publish(ev) {
    this.send(['EVENT', ev])
    const m = await this.take((m) => Array.isArray(m) && m[0] === 'OK' && m[1] === ev.id, `OK for event ${short(ev.id)}`, 6000)
    return { ok: m[2], reason: m[3], frame: m }
  }

  // publishAll sends every event at once, then waits for every OK.
  async publishAll(evs) {
    for (const ev of evs) this.send(['EVENT', ev])
    const out = []
    for (const ev of evs) {
      const m = await this.take((m) => Array.isArray(m) && m[0] === 'OK' && m[1] === ev.id, `OK for event ${short(ev.id)}`, 8000)
      out.push({ ok: m[2], reason: m[3], frame: m })
    }
    return out
  }

  // req sends a REQ and collects the stored events up to EOSE or CLOSED.
  async req(subId, ...filters) {
    this.send(['REQ', subId, ...filters])
    return this.collect(subId)
  }

  async collect(subId) {
    const events = []
    for (;;) {
      const m = await this.take(
        (m) => Array.isArray(m) && ['EVENT', 'EOSE', 'CLOSED'].includes(m[0]) && m[1] === subId,
        `EOSE or CLOSED for subscription ${JSON.stringify(subId)}`,
      )
      if (m[0] === 'EVENT') events.push(m[2])
      else return { events, end: m[0], reason: m[2] }
    }
  }

  // drain removes and returns the EVENTs received so far for subId.
  drain(subId) {
    const out = []
    this.inbox = this.inbox.filter((m) => {
      if (Array.isArray(m) && m[0] === 'EVENT' && m[1] === subId) {
        out.push(m[2])
        return false
      }
      return true
    })
    return out
  }

  waitClosed(ms) {
    return new Promise((resolve) => {
      if (this.closeInfo) return resolve(this.closeInfo)
      let timer
      const check = () => {
        if (this.closeInfo) {
          clearTimeout(timer)
          this.waiters.delete(check)
          resolve(this.closeInfo)
        }
      }
      timer = setTimeout(() => {
        this.waiters.delete(check)
        resolve(null)
      }, ms)
      this.waiters.add(check)
    })
  }

  close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close()
  }
}

// ---------------------------------------------------------------------------
// nostr-tools helpers.

async function ntConnect() {
  const relay = await Relay.connect(relayURL)
  relay.onnotice = () => {}
  current?.relays.push(relay)
  return relay
}

// ntQuery subscribes with nostr-tools, collects the stored events in arrival
// order up to EOSE and closes the subscription. Events the library rejects
// (not matching the filters, or a bad signature) fail the query: nostr-tools
// drops them silently, so a client would never see them.
function ntQuery(relay, filters, id) {
  return new Promise((resolve, reject) => {
    const events = []
    const invalid = []
    let settled = false
    const finish = (err) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err) reject(err)
      else if (invalid.length) reject(new Error(`relay sent ${invalid.length} event(s) that do not match the filters or fail verification, e.g. ${JSON.stringify(invalid[0])}`))
      else resolve(events)
    }
    const timer = setTimeout(() => finish(new Error(`no EOSE within 5 s for ${JSON.stringify(filters)}`)), 5000)
    const sub = relay.subscribe(filters, {
      id,
      eoseTimeout: 60000, // a missing EOSE must fail, not be papered over
      onevent: (e) => events.push(e),
      oninvalidevent: (e) => invalid.push(e),
      oneose: () => {
        finish()
        sub.close()
      },
      onclose: (reason) => finish(new Error(`subscription closed by relay: ${reason}`)),
    })
  })
}

// ntPublish publishes with nostr-tools: {ok, reason}. The library resolves
// with the reason on OK true and rejects with it on OK false.
async function ntPublish(relay, ev) {
  try {
    const reason = await relay.publish(ev)
    return { ok: true, reason }
  } catch (err) {
    if (/timed out/.test(err.message)) throw new Error(`no OK for event ${short(ev.id)}: ${err.message}`)
    return { ok: false, reason: err.message }
  }
}

// ---------------------------------------------------------------------------
// Events.

const NOW = () => Math.floor(Date.now() / 1000)
const T = NOW() - 3600 // base time of stored test events: an hour ago

function newKey() {
  const sk = generateSecretKey()
  return { sk, pk: getPublicKey(sk) }
}

function sign(key, { kind = 1, created_at = T, tags = [], content = '' } = {}) {
  return finalizeEvent({ kind, created_at, tags, content }, key.sk)
}

// plain drops nostr-tools' "verified" marker, for events we tamper with.
const plain = (ev) => JSON.parse(JSON.stringify(ev))
const short = (id) => (typeof id === 'string' ? id.slice(0, 12) : String(id))
const randHex = (n = 32) => Buffer.from(generateSecretKey().slice(0, n)).toString('hex').padEnd(n * 2, '0').slice(0, n * 2)
const word = (p) => `${p}-${randHex(6)}`
let kindSeq = 0
const uniqueKind = () => 4000 + ++kindSeq // regular kinds, unique to one check
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const ids = (evs) => evs.map((e) => short(e.id))
const sameSet = (a, b) => a.length === b.length && [...a].sort().join() === [...b].sort().join()

// newestFirst is NIP-01's order for a REQ with a limit: created_at
// descending, ties by the lowest id first.
const newestFirst = (a, b) => b.created_at - a.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

function assert(cond, msg) {
  if (!cond) throw new Error(msg)
}

function expectIds(got, want, what) {
  const g = got.map((e) => e.id)
  const w = want.map((e) => e.id)
  assert(sameSet(g, w), `${what}: want [${w.map(short)}], got [${g.map(short)}]`)
  assert(new Set(g).size === g.length, `${what}: an event was sent twice: [${g.map(short)}]`)
}

function expectOrder(got, want, what) {
  assert(
    isDeepStrictEqual(got.map((e) => e.id), want.map((e) => e.id)),
    `${what}: want [${want.map((e) => `${short(e.id)}@${e.created_at}`)}], got [${got.map((e) => `${short(e.id)}@${e.created_at}`)}]`,
  )
}

// expectLimited checks a REQ's answer against the first n of want (all
// matches, newest first, ties by lowest id). NIP-01 lets a relay send a
// little more than the limit, and NIP-67 asks that a created_at tie at the
// boundary be sent whole: extra events must continue want in order and
// share the created_at of the last event within the limit.
function expectLimited(got, want, n, what) {
  const head = got.slice(0, n)
  expectOrder(head, want.slice(0, n), what)
  const extra = got.slice(n)
  if (extra.length === 0) return
  expectOrder(extra, want.slice(n, n + extra.length), `${what} (past the limit)`)
  const at = want[n - 1].created_at
  assert(extra.every((e) => e.created_at === at), `${what}: ${extra.length} events past the limit are not the boundary's created_at tie ${at}`)
}

function expectOK(res, what) {
  assert(res.ok === true, `${what}: want OK true, got OK ${res.ok} ${JSON.stringify(res.reason)}`)
}

function expectRefused(res, what, prefix) {
  assert(res.ok === false, `${what}: want OK false, got OK ${res.ok} ${JSON.stringify(res.reason)}`)
  assert(typeof res.reason === 'string' && PREFIXED.test(res.reason), `${what}: OK false reason must be "prefix: message", got ${JSON.stringify(res.reason)}`)
  if (prefix) assert(res.reason.startsWith(prefix + ':'), `${what}: want reason "${prefix}: …", got ${JSON.stringify(res.reason)}`)
  else {
    const p = res.reason.split(':')[0]
    assert(STD_PREFIXES.includes(p), `${what}: reason prefix ${JSON.stringify(p)} is not one NIP-01 standardizes`)
  }
}

// barrier makes sure the relay has fanned out everything published before
// it to raw: it subscribes raw to the id of a sentinel event, publishes the
// sentinel through pub and waits until raw receives it. Frames on one
// connection arrive in order, so anything an earlier event would have
// produced on raw has arrived by then.
async function barrier(raw, pub) {
  const s = sign(newKey(), { content: 'sentinel ' + randHex(4) })
  const sub = 'barrier-' + randHex(3)
  const r = await raw.req(sub, { ids: [s.id] })
  assert(r.end === 'EOSE', `barrier subscription answered ${r.end} ${r.reason}`)
  expectOK(await pub.publish(s), 'sentinel event')
  await raw.take((m) => Array.isArray(m) && m[0] === 'EVENT' && m[1] === sub, 'the sentinel event, live')
  raw.send(['CLOSE', sub])
  await sleep(30)
}

// ---------------------------------------------------------------------------
// The relay process.

let relayURL = ''
let httpURL = ''
let child = null
let childExited = null
let tmpDir = ''
let info = null // the NIP-11 document, fetched once at start

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

async function startRelay() {
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wisp-conformance-'))
  let bin = process.env.WISP_BIN
  if (!bin) {
    bin = path.join(tmpDir, 'wisp')
    console.log(`# building wisp: go build -o ${bin} ./cmd/wisp`)
    execFileSync('go', ['build', '-o', bin, './cmd/wisp'], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] })
  }
  const port = await freePort()
  const dataDir = path.join(tmpDir, 'data')
  fs.mkdirSync(dataDir)
  const env = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WISP_')) env[k] = v
  Object.assign(env, LIMITS_ENV, { WISP_DATA_DIR: dataDir, WISP_LISTEN: `127.0.0.1:${port}` })
  const logPath = path.join(tmpDir, 'wisp.log')
  const log = fs.openSync(logPath, 'w')
  child = spawn(bin, [], { env, stdio: ['ignore', log, log] })
  fs.closeSync(log)
  childExited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  child.once('exit', () => (child.exitedAlready = true))
  relayURL = `ws://127.0.0.1:${port}`
  httpURL = `http://127.0.0.1:${port}/`
  console.log(`# wisp ${bin} on ${relayURL}, data in ${dataDir}, log in ${logPath}`)

  const deadline = Date.now() + 20000
  for (;;) {
    if (child.exitedAlready) throw new Error(`wisp exited at start:\n${fs.readFileSync(logPath, 'utf8')}`)
    try {
      const res = await fetch(httpURL, { headers: { Accept: 'application/nostr+json' }, signal: AbortSignal.timeout(1000) })
      await res.arrayBuffer()
      break
    } catch {}
    if (Date.now() > deadline) throw new Error(`wisp did not accept connections within 20 s:\n${fs.readFileSync(logPath, 'utf8')}`)
    await sleep(100)
  }
  try {
    const res = await fetch(httpURL, { headers: { Accept: 'application/nostr+json' } })
    info = await res.json()
  } catch (err) {
    info = null
    console.log(`# could not read the NIP-11 document: ${err.message}`)
  }
}

async function stopRelay() {
  if (!child || child.exitedAlready) return
  child.kill('SIGTERM')
  const res = await Promise.race([childExited, sleep(10000).then(() => null)])
  if (!res) {
    console.log('# wisp did not stop within 10 s of SIGTERM; killing it')
    child.kill('SIGKILL')
    await childExited
  }
}

function killRelaySync() {
  if (child && !child.exitedAlready) {
    try {
      child.kill('SIGKILL')
    } catch {}
  }
}

// ---------------------------------------------------------------------------
// Checks. Each runs with its own keys, so that checks do not see each other's
// events; knownBug marks a check that fails because of a wisp bug (it still
// runs and still fails until wisp is fixed).

const checks = []
function check(name, fn, opts = {}) {
  checks.push({ name, fn, ...opts })
}

// ----- NIP-01: EVENT and OK

check('nip01 EVENT: a new event is answered OK true, with a 4-element OK', async () => {
  const relay = await ntConnect()
  const ev = sign(newKey(), { content: 'hello from the conformance run' })
  const res = await ntPublish(relay, ev)
  expectOK(res, 'new event')
  const ok = received(relay.ws).find((m) => m[0] === 'OK' && m[1] === ev.id)
  assert(ok && ok.length === 4 && typeof ok[3] === 'string', `OK frame must be ["OK", id, true, <string>], got ${JSON.stringify(ok)}`)
})

check('nip01 EVENT: a duplicate is answered OK true "duplicate: …"', async () => {
  const relay = await ntConnect()
  const ev = sign(newKey(), { content: 'twice' })
  expectOK(await ntPublish(relay, ev), 'first publish')
  const res = await ntPublish(relay, ev)
  expectOK(res, 'second publish')
  assert(res.reason.startsWith('duplicate:'), `want reason "duplicate: …", got ${JSON.stringify(res.reason)}`)
})

check('nip01 EVENT: a wrong id is answered OK false "invalid: …" and not stored', async () => {
  const relay = await ntConnect()
  const ev = plain(sign(newKey(), { content: 'wrong id' }))
  ev.id = (ev.id[0] === '0' ? '1' : '0') + ev.id.slice(1)
  expectRefused(await ntPublish(relay, ev), 'wrong id', 'invalid')
  const raw = await Raw.open()
  const r = await raw.req('q', { ids: [ev.id] })
  assert(r.end === 'EOSE' && r.events.length === 0, `event with a wrong id was served: ${JSON.stringify(r)}`)
})

check('nip01 EVENT: a bad signature is answered OK false "invalid: …" and not stored', async () => {
  const relay = await ntConnect()
  const k = newKey()
  const ev = plain(sign(k, { content: 'bad sig' }))
  ev.sig = sign(k, { content: 'another event' }).sig // a real signature, of another id
  expectRefused(await ntPublish(relay, ev), 'bad signature', 'invalid')
  const raw = await Raw.open()
  const r = await raw.req('q', { ids: [ev.id] })
  assert(r.end === 'EOSE' && r.events.length === 0, `event with a bad signature was served: ${JSON.stringify(r)}`)
})

check('nip01 EVENT: malformed events (wrong field types, missing sig) get OK false "invalid: …"', async () => {
  const raw = await Raw.open()
  const k = newKey()
  const base = () => plain(sign(k, { content: 'malformed ' + randHex(4) }))
  const cases = [
    ['kind as a string', (e) => (e.kind = String(e.kind))],
    ['created_at as a string', (e) => (e.created_at = String(e.created_at))],
    ['a tag element that is a number', (e) => (e.tags = [['t', 5]])],
    ['tags not an array', (e) => (e.tags = 'x')],
    ['content not a string', (e) => (e.content = 7)],
    ['sig missing', (e) => delete e.sig],
    ['pubkey in uppercase hex', (e) => (e.pubkey = e.pubkey.toUpperCase())],
  ]
  for (const [what, mutate] of cases) {
    const ev = base()
    mutate(ev)
    expectRefused(await raw.publish(ev), what, 'invalid')
  }
})

check('nip01 EVENT: content with escapes and non-ASCII comes back unchanged and verifiable', async () => {
  const relay = await ntConnect()
  const content = 'line\nquote" back\\slash\rcr\ttab\bbs\fff é 日本語 🎉 </script> \u2028'
  const ev = sign(newKey(), { content, tags: [['t', 'ünïcødé'], ['alt', 'a "quoted" \\ tag']] })
  expectOK(await ntPublish(relay, ev), 'publish')
  const got = await ntQuery(relay, [{ ids: [ev.id] }])
  assert(got.length === 1, `want the event back, got ${got.length} events`)
  const g = plain(got[0])
  for (const f of ['id', 'pubkey', 'created_at', 'kind', 'tags', 'content', 'sig']) {
    assert(isDeepStrictEqual(g[f], plain(ev)[f]), `field ${f} differs: sent ${JSON.stringify(plain(ev)[f])}, got ${JSON.stringify(g[f])}`)
  }
  assert(verifyEvent(plain(g)), 'the served event does not verify')
})

// ----- NIP-01: REQ filters

check('nip01 REQ: ids', async () => {
  const raw = await Raw.open()
  const k = newKey()
  const evs = [1, 2, 3].map((i) => sign(k, { content: `ids ${i}`, created_at: T + i }))
  for (const r of await raw.publishAll(evs)) expectOK(r, 'publish')
  const relay = await ntConnect()
  expectIds(await ntQuery(relay, [{ ids: [evs[0].id, evs[2].id] }]), [evs[0], evs[2]], 'ids [1st, 3rd]')
  expectIds(await ntQuery(relay, [{ ids: [randHex()] }]), [], 'ids [unknown]')
})

check('nip01 REQ: authors (one list value matching is enough)', async () => {
  const raw = await Raw.open()
  const [a, b, c] = [newKey(), newKey(), newKey()]
  const evs = [sign(a, { content: 'a1' }), sign(a, { content: 'a2', created_at: T + 1 }), sign(b, { content: 'b1' }), sign(c, { content: 'c1' })]
  for (const r of await raw.publishAll(evs)) expectOK(r, 'publish')
  const relay = await ntConnect()
  expectIds(await ntQuery(relay, [{ authors: [a.pk, b.pk] }]), evs.slice(0, 3), 'authors [a, b]')
  expectIds(await ntQuery(relay, [{ authors: [c.pk] }]), [evs[3]], 'authors [c]')
})

check('nip01 REQ: kinds', async () => {
  const raw = await Raw.open()
  const k = newKey()
  const [k1, k2, k3] = [uniqueKind(), uniqueKind(), uniqueKind()]
  const evs = [sign(k, { kind: k1 }), sign(k, { kind: k2 }), sign(newKey(), { kind: k2 }), sign(k, { kind: k3 })]
  for (const r of await raw.publishAll(evs)) expectOK(r, 'publish')
  const relay = await ntConnect()
  expectIds(await ntQuery(relay, [{ kinds: [k1, k2] }]), evs.slice(0, 3), `kinds [${k1}, ${k2}]`)
  expectIds(await ntQuery(relay, [{ kinds: [k3] }]), [evs[3]], `kinds [${k3}]`)
})

check('nip01 REQ: #e, #p and #t tag filters', async () => {
  const raw = await Raw.open()
  const k = newKey()
  const [eRef, pRef, t1, t2] = [randHex(), randHex(), word('t'), word('t')]
  const evE = sign(k, { tags: [['e', eRef, 'wss://relay.example.com']], content: 'refers to an event' })
  const evP = sign(k, { tags: [['p', pRef]], content: 'refers to a pubkey' })
  const evT1 = sign(k, { tags: [['t', t1]], content: 'hashtag 1' })
  const evT2 = sign(k, { tags: [['t', 'unrelated'], ['t', t2]], content: 'hashtag 2, second tag' })
  for (const r of await raw.publishAll([evE, evP, evT1, evT2])) expectOK(r, 'publish')
  const relay = await ntConnect()
  expectIds(await ntQuery(relay, [{ '#e': [eRef] }]), [evE], '#e')
  expectIds(await ntQuery(relay, [{ '#p': [pRef] }]), [evP], '#p')
  expectIds(await ntQuery(relay, [{ '#t': [t1] }]), [evT1], '#t [t1]')
  expectIds(await ntQuery(relay, [{ '#t': [t1, t2] }]), [evT1, evT2], '#t [t1, t2] (any tag of the event may match)')
  expectIds(await ntQuery(relay, [{ '#e': [pRef] }]), [], '#e [a value only in a p tag]')
})

check('nip01 REQ: only the first value of a tag is indexed', async () => {
  const raw = await Raw.open()
  const [first, second] = [word('first'), word('second')]
  const ev = sign(newKey(), { tags: [['t', first, second]] })
  expectOK(await raw.publish(ev), 'publish')
  const relay = await ntConnect()
  expectIds(await ntQuery(relay, [{ '#t': [first] }]), [ev], '#t [first value]')
  expectIds(await ntQuery(relay, [{ '#t': [second] }]), [], '#t [second value]')
})

check('nip01 REQ: since and until are inclusive (since <= created_at <= until)', async () => {
  const raw = await Raw.open()
  const k = newKey()
  const evs = [50, 40, 30, 20, 10].map((d) => sign(k, { created_at: T - d, content: `at T-${d}` }))
  for (const r of await raw.publishAll(evs)) expectOK(r, 'publish')
  const relay = await ntConnect()
  expectIds(await ntQuery(relay, [{ authors: [k.pk], since: T - 40, until: T - 20 }]), evs.slice(1, 4), 'since T-40 until T-20')
  expectIds(await ntQuery(relay, [{ authors: [k.pk], since: T - 10 }]), [evs[4]], 'since T-10')
  expectIds(await ntQuery(relay, [{ authors: [k.pk], until: T - 50 }]), [evs[0]], 'until T-50')
  expectIds(await ntQuery(relay, [{ authors: [k.pk], since: T - 9 }]), [], 'since T-9')
})

check('nip01 REQ: conditions of one filter are ANDed', async () => {
  const raw = await Raw.open()
  const [a, b] = [newKey(), newKey()]
  const t = word('and')
  const kind = uniqueKind()
  const match = sign(a, { kind, tags: [['t', t]] })
  const others = [sign(a, { kind: kind + 1000, tags: [['t', t]] }), sign(b, { kind, tags: [['t', t]] }), sign(a, { kind, tags: [['t', 'nope']] }), sign(a, { kind, tags: [['t', t]], created_at: T - 500 })]
  for (const r of await raw.publishAll([match, ...others])) expectOK(r, 'publish')
  const relay = await ntConnect()
  expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [kind], '#t': [t], since: T - 100 }]), [match], 'authors+kinds+#t+since')
})

check('nip01 REQ: limit returns the newest events, newest first, ties by lowest id (a boundary tie may be sent whole, NIP-67)', async () => {
  const raw = await Raw.open()
  const k = newKey()
  const evs = [
    sign(k, { created_at: T - 10, content: 'newest' }),
    ...[1, 2, 3, 4].map((i) => sign(k, { created_at: T - 20, content: `tie ${i}` })),
    sign(k, { created_at: T - 30, content: 'older' }),
    sign(k, { created_at: T - 40, content: 'oldest' }),
  ]
  for (const r of await raw.publishAll([...evs].reverse())) expectOK(r, 'publish')
  const sorted = [...evs].sort(newestFirst)
  const relay = await ntConnect()
  expectLimited(await ntQuery(relay, [{ authors: [k.pk], limit: 3 }]), sorted, 3, 'limit 3')
  expectLimited(await ntQuery(relay, [{ authors: [k.pk], limit: 6 }]), sorted, 6, 'limit 6')
  expectOrder(await ntQuery(relay, [{ authors: [k.pk], limit: 100 }]), sorted, 'limit 100')
})

check('nip01 REQ: limit 0 returns no stored events, then EOSE, then live events', async () => {
  const raw = await Raw.open()
  const k = newKey()
  for (const r of await raw.publishAll([sign(k, { content: 'stored 1' }), sign(k, { content: 'stored 2', created_at: T + 1 })])) expectOK(r, 'publish')
  const r = await raw.req('zero', { authors: [k.pk], limit: 0 })
  assert(r.end === 'EOSE', `want EOSE, got ${r.end} ${JSON.stringify(r.reason)}`)
  assert(r.events.length === 0, `limit 0 returned ${r.events.length} stored events`)
  const pub = await Raw.open()
  const live = sign(k, { content: 'live', created_at: NOW() })
  expectOK(await pub.publish(live), 'publish live')
  const m = await raw.take((m) => m[0] === 'EVENT' && m[1] === 'zero', 'the live event')
  assert(m[2].id === live.id, `want the live event, got ${short(m[2].id)}`)
})

check('nip01 REQ: several filters are ORed, no event sent twice (stored or live)', async () => {
  const raw = await Raw.open()
  const k = newKey()
  const t = word('or')
  const e1 = sign(k, { tags: [['t', t]], content: 'in both filters' })
  const e2 = sign(k, { content: 'author only', created_at: T + 1 })
  const e3 = sign(newKey(), { tags: [['t', t]], content: 'tag only' })
  for (const r of await raw.publishAll([e1, e2, e3])) expectOK(r, 'publish')
  const r = await raw.req('or', { authors: [k.pk] }, { '#t': [t] }, { ids: [e1.id] })
  assert(r.end === 'EOSE', `want EOSE, got ${r.end} ${JSON.stringify(r.reason)}`)
  expectIds(r.events, [e1, e2, e3], 'stored events of 3 ORed filters')
  const pub = await Raw.open()
  const live = sign(k, { tags: [['t', t]], content: 'live, in both filters', created_at: NOW() })
  expectOK(await pub.publish(live), 'publish live')
  await barrier(raw, pub)
  expectIds(raw.drain('or'), [live], 'live events of 3 ORed filters')
})

// ----- NIP-01: subscriptions

check('nip01 REQ: stored events, then EOSE, then matching live events (limit ignored live)', async () => {
  const pubRelay = await ntConnect()
  const a = newKey()
  const stored = sign(a, { content: 'stored' })
  expectOK(await ntPublish(pubRelay, stored), 'publish stored')
  const relay = await ntConnect()
  const seen = []
  let eose = false
  const eosed = new Promise((resolve) => {
    relay.subscribe([{ authors: [a.pk], limit: 1 }], {
      id: 'live',
      eoseTimeout: 60000,
      onevent: (e) => seen.push({ id: e.id, afterEose: eose }),
      oneose: () => {
        eose = true
        resolve()
      },
    })
  })
  await Promise.race([eosed, sleep(5000).then(() => Promise.reject(new Error('no EOSE within 5 s')))])
  assert(seen.length === 1 && seen[0].id === stored.id && !seen[0].afterEose, `want the stored event before EOSE, got ${JSON.stringify(seen)}`)
  const live1 = sign(a, { content: 'live 1', created_at: NOW() })
  const live2 = sign(a, { content: 'live 2', created_at: NOW() })
  const other = sign(newKey(), { content: 'someone else', created_at: NOW() })
  for (const ev of [live1, other, live2]) expectOK(await ntPublish(pubRelay, ev), 'publish live')
  const deadline = Date.now() + 4000
  while (seen.length < 3 && Date.now() < deadline) await sleep(20)
  await sleep(100)
  assert(isDeepStrictEqual(seen.slice(1), [{ id: live1.id, afterEose: true }, { id: live2.id, afterEose: true }]), `want live1 and live2 after EOSE (limit 1 does not apply to live events), got ${JSON.stringify(seen)}`)
  const wire = received(relay.ws).filter((m) => m[0] === 'EVENT' && m[2]?.id === other.id)
  assert(wire.length === 0, 'the relay sent a live event that does not match the filter')
})

check('nip01 CLOSE: stops delivery on that subscription only', async () => {
  const pub = await Raw.open()
  const [a, b] = [newKey(), newKey()]
  const relay = await ntConnect()
  const gotB = []
  const subs = []
  for (const [id, key, sink] of [['closeme', a, []], ['keep', b, gotB]]) {
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no EOSE for ${id}`)), 5000)
      subs.push(relay.subscribe([{ authors: [key.pk] }], { id, eoseTimeout: 60000, onevent: (e) => sink.push(e), oneose: () => (clearTimeout(t), resolve()) }))
    })
  }
  subs[0].close() // sends ["CLOSE","closeme"]
  const closeAt = relay.ws.frames.length
  await sleep(50)
  const evA = sign(a, { content: 'after CLOSE', created_at: NOW() })
  const evB = sign(b, { content: 'still subscribed', created_at: NOW() })
  expectOK(await pub.publish(evA), 'publish A')
  expectOK(await pub.publish(evB), 'publish B')
  const deadline = Date.now() + 4000
  while (gotB.length === 0 && Date.now() < deadline) await sleep(20)
  assert(gotB.length === 1 && gotB[0].id === evB.id, 'the subscription that stayed open did not get its live event')
  await sleep(100)
  const after = relay.ws.frames.slice(closeAt).filter((f) => f.dir === '<').map((f) => JSON.parse(f.text))
  const leaked = after.filter((m) => m[0] === 'EVENT' && m[1] === 'closeme')
  assert(leaked.length === 0, `the relay sent ${leaked.length} EVENT(s) on a subscription after CLOSE`)
})

check('nip01 REQ: a REQ reusing a subscription id replaces the subscription', async () => {
  const raw = await Raw.open()
  const pub = await Raw.open()
  const [a, b] = [newKey(), newKey()]
  const sa = sign(a, { content: 'a stored' })
  const sb = sign(b, { content: 'b stored' })
  for (const r of await pub.publishAll([sa, sb])) expectOK(r, 'publish')
  let r = await raw.req('same', { authors: [a.pk] })
  expectIds(r.events, [sa], 'first REQ')
  r = await raw.req('same', { authors: [b.pk] })
  assert(r.end === 'EOSE', `second REQ: want EOSE, got ${r.end} ${JSON.stringify(r.reason)}`)
  expectIds(r.events, [sb], 'second REQ (stored events of the new filter only)')
  const la = sign(a, { content: 'a live', created_at: NOW() })
  const lb = sign(b, { content: 'b live', created_at: NOW() })
  expectOK(await pub.publish(la), 'publish a live')
  expectOK(await pub.publish(lb), 'publish b live')
  await barrier(raw, pub)
  expectIds(raw.drain('same'), [lb], 'live events after the replacement')
})

check('nip01 REQ: subscription ids are per connection', async () => {
  const c1 = await Raw.open()
  const c2 = await Raw.open()
  const pub = await Raw.open()
  const a = newKey()
  for (const c of [c1, c2]) assert((await c.req('shared', { authors: [a.pk] })).end === 'EOSE', 'REQ not answered with EOSE')
  c1.send(['CLOSE', 'shared'])
  await sleep(50)
  const ev = sign(a, { content: 'live', created_at: NOW() })
  expectOK(await pub.publish(ev), 'publish')
  await barrier(c1, pub)
  await barrier(c2, pub)
  expectIds(c2.drain('shared'), [ev], 'connection that kept "shared"')
  expectIds(c1.drain('shared'), [], 'connection that closed "shared"')
})

check('nip01 REQ: subscription ids of 1 to 64 characters are served; empty or 65 are refused', async () => {
  const raw = await Raw.open()
  for (const id of ['x', 'y'.repeat(64)]) {
    const r = await raw.req(id, { limit: 1 })
    assert(r.end === 'EOSE', `sub id of ${id.length} chars: want EOSE, got ${r.end} ${JSON.stringify(r.reason)}`)
    raw.send(['CLOSE', id])
  }
  for (const id of ['', 'z'.repeat(65)]) {
    raw.send(['REQ', id, { limit: 1 }])
    const m = await raw.answer(`an answer to a REQ with a ${id.length}-character sub id`)
    assert(m[0] === 'NOTICE' || (m[0] === 'CLOSED' && PREFIXED.test(m[2])), `sub id of ${id.length} chars: want CLOSED "prefix: …" or NOTICE, got ${JSON.stringify(m)}`)
    await sleep(50)
    assert(!raw.inbox.some((x) => x[0] === 'EOSE' || x[0] === 'EVENT'), `sub id of ${id.length} chars was served`)
  }
})

check('nip01 CLOSED: a REQ over max_subscriptions is refused with CLOSED "prefix: …"', async () => {
  const max = info?.limitation?.max_subscriptions
  assert(Number.isInteger(max) && max > 0 && max <= 200, `NIP-11 max_subscriptions is ${max}; need a small positive integer to test`)
  const raw = await Raw.open()
  const a = newKey()
  for (let i = 0; i < max; i++) {
    const r = await raw.req(`s${i}`, { authors: [a.pk] })
    assert(r.end === 'EOSE', `subscription ${i + 1} of ${max}: want EOSE, got ${r.end} ${JSON.stringify(r.reason)}`)
  }
  const over = await raw.req('one-too-many', { limit: 1 })
  assert(over.end === 'CLOSED' && PREFIXED.test(over.reason ?? ''), `subscription ${max + 1}: want CLOSED "prefix: …", got ${over.end} ${JSON.stringify(over.reason)}`)
  const again = await raw.req('s0', { authors: [a.pk] })
  assert(again.end === 'EOSE', `replacing an open subscription at the limit: want EOSE, got ${again.end} ${JSON.stringify(again.reason)}`)
  raw.send(['CLOSE', 's1'])
  const after = await raw.req('after-close', { limit: 1 })
  assert(after.end === 'EOSE', `a new subscription after a CLOSE: want EOSE, got ${after.end} ${JSON.stringify(after.reason)}`)
  // The open subscriptions still work.
  const pub = await Raw.open()
  const ev = sign(a, { content: 'live', created_at: NOW() })
  expectOK(await pub.publish(ev), 'publish')
  await raw.take((m) => m[0] === 'EVENT' && m[1] === 's0' && m[2].id === ev.id, 'the live event on an open subscription')
})

check('nip01 CLOSED: a REQ with more than max_filters filters is refused', async () => {
  const max = info?.limitation?.max_filters
  assert(Number.isInteger(max) && max > 0 && max <= 100, `NIP-11 max_filters is ${max}; need a small positive integer to test`)
  const raw = await Raw.open()
  const f = () => ({ authors: [randHex()] })
  const ok = await raw.req('at-max', ...Array.from({ length: max }, f))
  assert(ok.end === 'EOSE', `${max} filters: want EOSE, got ${ok.end} ${JSON.stringify(ok.reason)}`)
  const over = await raw.req('over-max', ...Array.from({ length: max + 1 }, f))
  assert(over.end === 'CLOSED' && PREFIXED.test(over.reason ?? ''), `${max + 1} filters: want CLOSED "prefix: …", got ${over.end} ${JSON.stringify(over.reason)}`)
})

check('nip01 CLOSED: a REQ with a malformed filter is refused with CLOSED "prefix: …"', async () => {
  const raw = await Raw.open()
  const bad = [
    ['kinds not a list', { kinds: 1 }],
    ['kinds of strings', { kinds: ['1'] }],
    ['since as a string', { since: 'yesterday' }],
    ['authors not a list', { authors: randHex() }],
    ['filter not an object', 5],
  ]
  for (const [what, filter] of bad) {
    const sub = 'bad-' + what.replace(/\W+/g, '-')
    const r = await raw.req(sub, filter)
    assert(r.end === 'CLOSED' && PREFIXED.test(r.reason ?? ''), `${what}: want CLOSED "prefix: …", got ${r.end} ${JSON.stringify(r.reason)}`)
  }
  const r = await raw.req('good', { limit: 1 })
  assert(r.end === 'EOSE', `a good REQ afterwards: want EOSE, got ${r.end}`)
})

// ----- NIP-01: replaceable, addressable and ephemeral kinds

for (const kind of [0, 3, 10002]) {
  check(`nip01 replaceable kind ${kind}: only the newest version is served`, async () => {
    const raw = await Raw.open()
    const a = newKey()
    const content = kind === 0 ? (n) => JSON.stringify({ name: n }) : (n) => n
    const tags = kind === 10002 ? [['r', 'wss://relay.example.com']] : kind === 3 ? [['p', randHex()]] : []
    const v1 = sign(a, { kind, created_at: T - 20, content: content('v1'), tags })
    const v2 = sign(a, { kind, created_at: T - 10, content: content('v2'), tags })
    expectOK(await raw.publish(v1), 'publish v1')
    expectOK(await raw.publish(v2), 'publish v2 (newer)')
    const relay = await ntConnect()
    expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [kind] }]), [v2], 'after v1 then v2')
    const v0 = sign(a, { kind, created_at: T - 30, content: content('v0'), tags })
    const res = await raw.publish(v0) // accepted or refused: either way it must not be served
    assert(res.ok === true || PREFIXED.test(res.reason), `older version: OK false needs "prefix: …", got ${JSON.stringify(res.reason)}`)
    expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [kind] }]), [v2], 'after an older v0 arrives last')
  })
}

check('nip01 replaceable: on equal created_at the lowest id is kept, whatever the arrival order', async () => {
  const raw = await Raw.open()
  const relay = await ntConnect()
  for (const [kind, order] of [[0, 'higher id first'], [10002, 'lower id first'], [30023, 'higher id first']]) {
    const a = newKey()
    const tags = kind === 30023 ? [['d', 'same']] : []
    const x = sign(a, { kind, created_at: T, content: kind === 0 ? '{"name":"x"}' : 'x', tags })
    const y = sign(a, { kind, created_at: T, content: kind === 0 ? '{"name":"y"}' : 'y', tags })
    const [lo, hi] = x.id < y.id ? [x, y] : [y, x]
    const seq = order === 'lower id first' ? [lo, hi] : [hi, lo]
    for (const ev of seq) {
      const r = await raw.publish(ev)
      assert(r.ok === true || PREFIXED.test(r.reason), `kind ${kind}: OK false needs "prefix: …", got ${JSON.stringify(r.reason)}`)
    }
    expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [kind] }]), [lo], `kind ${kind}, ${order}`)
  }
})

check('nip01 addressable kind 30023: newest per (pubkey, kind, d tag) is served', async () => {
  const raw = await Raw.open()
  const [a, b] = [newKey(), newKey()]
  const x1 = sign(a, { kind: 30023, created_at: T - 20, tags: [['d', 'x']], content: 'x v1' })
  const y1 = sign(a, { kind: 30023, created_at: T - 20, tags: [['d', 'y']], content: 'y v1' })
  const x2 = sign(a, { kind: 30023, created_at: T - 10, tags: [['d', 'x']], content: 'x v2' })
  const bx = sign(b, { kind: 30023, created_at: T - 5, tags: [['d', 'x']], content: 'b x' })
  for (const ev of [x1, y1, x2, bx]) expectOK(await raw.publish(ev), `publish ${ev.content}`)
  const relay = await ntConnect()
  expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [30023] }]), [x2, y1], "a's articles")
  expectIds(await ntQuery(relay, [{ kinds: [30023], '#d': ['x'], authors: [a.pk, b.pk] }]), [x2, bx], '#d [x] of a and b')
  const x0 = sign(a, { kind: 30023, created_at: T - 30, tags: [['d', 'x']], content: 'x v0' })
  const res = await raw.publish(x0)
  assert(res.ok === true || PREFIXED.test(res.reason), `older version: OK false needs "prefix: …", got ${JSON.stringify(res.reason)}`)
  expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [30023], '#d': ['x'] }]), [x2], 'after an older x v0 arrives last')
})

check('nip01 ephemeral kind 2xxxx: delivered live, not stored', async () => {
  const sub = await Raw.open()
  const pub = await Raw.open()
  const a = newKey()
  const kind = 20000 + Math.floor(Math.random() * 9000)
  assert((await sub.req('eph', { authors: [a.pk], kinds: [kind] })).end === 'EOSE', 'no EOSE')
  const ev = sign(a, { kind, created_at: NOW(), content: 'ephemeral' })
  const res = await pub.publish(ev)
  assert(res.ok === true || PREFIXED.test(res.reason), `OK false needs "prefix: …", got ${JSON.stringify(res.reason)}`)
  const m = await sub.take((m) => m[0] === 'EVENT' && m[1] === 'eph', 'the ephemeral event, live')
  assert(m[2].id === ev.id, 'got another event')
  await sleep(100)
  const r = await pub.req('eph-stored', { authors: [a.pk] }, { ids: [ev.id] })
  assert(r.end === 'EOSE' && r.events.length === 0, `ephemeral event was served from storage: ${JSON.stringify(r.events.map((e) => e.id))}`)
})

// ----- NIP-09: deletion requests

check('nip09 e tag: the author deletes an event; the kind 5 itself is stored and served', async () => {
  const relay = await ntConnect()
  const a = newKey()
  const e1 = sign(a, { content: 'to be deleted' })
  const e2 = sign(a, { content: 'to be kept', created_at: T + 1 })
  for (const ev of [e1, e2]) expectOK(await ntPublish(relay, ev), 'publish')
  const del = sign(a, { kind: 5, created_at: T + 10, tags: [['e', e1.id], ['k', '1']], content: 'oops' })
  expectOK(await ntPublish(relay, del), 'publish deletion')
  expectIds(await ntQuery(relay, [{ ids: [e1.id, e2.id] }]), [e2], 'ids [deleted, kept]')
  expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [1] }]), [e2], "author's notes")
  expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [5] }]), [del], "author's deletion requests")
})

check('nip09 e tag: a deleted event sent again is not served', async () => {
  const relay = await ntConnect()
  const a = newKey()
  const e1 = sign(a, { content: 'deleted, then re-sent' })
  expectOK(await ntPublish(relay, e1), 'publish')
  expectOK(await ntPublish(relay, sign(a, { kind: 5, created_at: T + 10, tags: [['e', e1.id]] })), 'publish deletion')
  const res = await ntPublish(relay, plain(e1))
  assert(res.ok === true || PREFIXED.test(res.reason), `re-send: OK false needs "prefix: …", got ${JSON.stringify(res.reason)}`)
  expectIds(await ntQuery(relay, [{ ids: [e1.id] }]), [], 'ids [re-sent deleted event]')
  expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [1] }]), [], "author's notes")
})

check("nip09 e tag: a deletion request by another pubkey leaves the event alone", async () => {
  const relay = await ntConnect()
  const [a, b] = [newKey(), newKey()]
  const e1 = sign(a, { content: "a's note" })
  expectOK(await ntPublish(relay, e1), 'publish')
  const del = sign(b, { kind: 5, created_at: T + 10, tags: [['e', e1.id]] })
  const res = await ntPublish(relay, del)
  assert(res.ok === true || PREFIXED.test(res.reason), `foreign deletion: OK false needs "prefix: …", got ${JSON.stringify(res.reason)}`)
  expectIds(await ntQuery(relay, [{ ids: [e1.id] }]), [e1], "a's note after b's deletion request")
})

check('nip09 a tag: versions up to the deletion are deleted, newer ones are served', async () => {
  const relay = await ntConnect()
  const a = newKey()
  const z1 = sign(a, { kind: 30023, created_at: T - 30, tags: [['d', 'z']], content: 'z v1' })
  const other = sign(a, { kind: 30023, created_at: T - 30, tags: [['d', 'other']], content: 'other d' })
  for (const ev of [z1, other]) expectOK(await ntPublish(relay, ev), 'publish')
  const del = sign(a, { kind: 5, created_at: T - 20, tags: [['a', `30023:${a.pk}:z`], ['k', '30023']] })
  expectOK(await ntPublish(relay, del), 'publish deletion')
  expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [30023] }]), [other], 'after the deletion')
  const zOld = sign(a, { kind: 30023, created_at: T - 25, tags: [['d', 'z']], content: 'z, older than the deletion, sent after it' })
  const res = await ntPublish(relay, zOld)
  assert(res.ok === true || PREFIXED.test(res.reason), `OK false needs "prefix: …", got ${JSON.stringify(res.reason)}`)
  expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [30023], '#d': ['z'] }]), [], 'a version older than the deletion, sent after it')
  const z2 = sign(a, { kind: 30023, created_at: T - 10, tags: [['d', 'z']], content: 'z v2, newer than the deletion' })
  expectOK(await ntPublish(relay, z2), 'publish a version newer than the deletion')
  expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [30023] }]), [z2, other], 'after a newer version')
  expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [5] }]), [del], 'the deletion request')
})

check('nip09 a tag: a replaceable event (kind:pubkey:) is deleted by its author', async () => {
  const relay = await ntConnect()
  const a = newKey()
  const list = sign(a, { kind: 10002, created_at: T - 30, tags: [['r', 'wss://relay.example.com']] })
  expectOK(await ntPublish(relay, list), 'publish')
  expectOK(await ntPublish(relay, sign(a, { kind: 5, created_at: T - 20, tags: [['a', `10002:${a.pk}:`]] })), 'publish deletion')
  expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [10002] }]), [], 'after the deletion')
})

check('nip09 a tag: a deletion request by another pubkey leaves the address alone', async () => {
  const relay = await ntConnect()
  const [a, b] = [newKey(), newKey()]
  const q = sign(a, { kind: 30023, created_at: T - 30, tags: [['d', 'q']], content: "a's article" })
  expectOK(await ntPublish(relay, q), 'publish')
  const res = await ntPublish(relay, sign(b, { kind: 5, created_at: T - 20, tags: [['a', `30023:${a.pk}:q`]] }))
  assert(res.ok === true || PREFIXED.test(res.reason), `OK false needs "prefix: …", got ${JSON.stringify(res.reason)}`)
  expectIds(await ntQuery(relay, [{ authors: [a.pk], kinds: [30023] }]), [q], "a's article after b's deletion request")
})

check('nip09: a deletion request against a deletion request has no effect', async () => {
  const relay = await ntConnect()
  const a = newKey()
  const e1 = sign(a, { content: 'deleted' })
  expectOK(await ntPublish(relay, e1), 'publish')
  const del1 = sign(a, { kind: 5, created_at: T + 10, tags: [['e', e1.id]] })
  expectOK(await ntPublish(relay, del1), 'publish deletion')
  const del2 = sign(a, { kind: 5, created_at: T + 20, tags: [['e', del1.id], ['k', '5']] })
  const res = await ntPublish(relay, del2)
  assert(res.ok === true || PREFIXED.test(res.reason), `OK false needs "prefix: …", got ${JSON.stringify(res.reason)}`)
  expectIds(await ntQuery(relay, [{ ids: [del1.id] }]), [del1], 'the first deletion request')
  expectIds(await ntQuery(relay, [{ ids: [e1.id] }]), [], 'the event it deleted')
})

// ----- NIP-40: expiration

check('nip40: an already expired event is refused and not served', async () => {
  const relay = await ntConnect()
  const ev = sign(newKey(), { created_at: NOW() - 120, tags: [['expiration', String(NOW() - 60)]], content: 'expired a minute ago' })
  expectRefused(await ntPublish(relay, ev), 'expired event')
  expectIds(await ntQuery(relay, [{ ids: [ev.id] }]), [], 'ids [expired event]')
})

check('nip40: an event is served until its expiration, and not after', async () => {
  const relay = await ntConnect()
  const a = newKey()
  const exp = NOW() + 2
  const ev = sign(a, { created_at: NOW(), tags: [['expiration', String(exp)]], content: 'expires in 2 s' })
  const keep = sign(a, { created_at: NOW() - 1, tags: [['expiration', String(NOW() + 3600)]], content: 'expires in an hour' })
  expectOK(await ntPublish(relay, ev), 'publish soon-expiring')
  expectOK(await ntPublish(relay, keep), 'publish later-expiring')
  expectIds(await ntQuery(relay, [{ authors: [a.pk] }]), [ev, keep], 'before expiration')
  while (NOW() <= exp) await sleep(100)
  expectIds(await ntQuery(relay, [{ authors: [a.pk] }]), [keep], 'after expiration')
  expectIds(await ntQuery(relay, [{ ids: [ev.id] }]), [], 'ids [expired event]')
})

// ----- NIP-11: relay information document

async function getInfo(extraHeaders = {}) {
  const res = await fetch(httpURL, { headers: { Accept: 'application/nostr+json', ...extraHeaders } })
  const text = await res.text()
  let doc
  try {
    doc = JSON.parse(text)
  } catch {
    throw new Error(`status ${res.status}, body is not JSON: ${text.slice(0, 200)}`)
  }
  return { res, doc }
}

check('nip11: GET / with Accept: application/nostr+json returns the document', async () => {
  const { res, doc } = await getInfo()
  assert(res.status === 200, `status ${res.status}`)
  assert(doc && typeof doc === 'object' && !Array.isArray(doc), 'document is not a JSON object')
  for (const f of ['name', 'description', 'contact', 'software', 'version']) {
    if (f in doc) assert(typeof doc[f] === 'string', `${f} must be a string, got ${JSON.stringify(doc[f])}`)
  }
  if ('pubkey' in doc) assert(/^[0-9a-f]{64}$/.test(doc.pubkey), `pubkey must be 64 lowercase hex, got ${JSON.stringify(doc.pubkey)}`)
  if ('software' in doc) assert(/^https?:\/\//.test(doc.software), `software must be a URL to the project's homepage, got ${JSON.stringify(doc.software)}`)
  const viaLib = await fetchRelayInformation(relayURL)
  assert(isDeepStrictEqual(viaLib, doc), 'nostr-tools nip11.fetchRelayInformation read a different document')
})

check('nip11: CORS headers on the document and on a preflight', async () => {
  const want = ['access-control-allow-origin', 'access-control-allow-headers', 'access-control-allow-methods']
  const { res } = await getInfo({ Origin: 'https://client.example' })
  for (const h of want) assert(res.headers.get(h), `GET: header ${h} missing`)
  const pre = await fetch(httpURL, {
    method: 'OPTIONS',
    headers: { Origin: 'https://client.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'accept' },
  })
  assert(pre.status >= 200 && pre.status < 300, `OPTIONS preflight: status ${pre.status}`)
  for (const h of want) assert(pre.headers.get(h), `OPTIONS preflight: header ${h} missing`)
  const origin = pre.headers.get('access-control-allow-origin')
  assert(origin === '*' || origin === 'https://client.example', `Access-Control-Allow-Origin ${origin} does not admit the origin`)
})

check('nip11: supported_nips is a list of integers including 1, 9, 11 and 40', async () => {
  const { doc } = await getInfo()
  const nips = doc.supported_nips
  assert(Array.isArray(nips) && nips.every(Number.isInteger), `supported_nips must be integers, got ${JSON.stringify(nips)}`)
  for (const n of [1, 9, 11, 40]) assert(nips.includes(n), `supported_nips ${JSON.stringify(nips)} lacks ${n}`)
})

check('nip11: limitation fields have NIP-11 types and report the limits configured', async () => {
  const { doc } = await getInfo()
  const lim = doc.limitation
  assert(lim && typeof lim === 'object', 'no limitation object')
  for (const f of ['max_message_length', 'max_subscriptions', 'max_filters', 'max_limit', 'max_subid_length', 'max_event_tags', 'max_content_length', 'min_pow_difficulty', 'created_at_lower_limit', 'created_at_upper_limit']) {
    if (f in lim) assert(Number.isInteger(lim[f]) && lim[f] >= 0, `${f} must be a non-negative integer, got ${JSON.stringify(lim[f])}`)
  }
  for (const f of ['auth_required', 'payment_required', 'restricted_writes']) {
    if (f in lim) assert(typeof lim[f] === 'boolean', `${f} must be a boolean, got ${JSON.stringify(lim[f])}`)
  }
  for (const [f, v] of Object.entries(EXPECTED_LIMITATION)) assert(lim[f] === v, `limitation.${f}: started with ${v}, document says ${JSON.stringify(lim[f])}`)
  for (const f of ['auth_required', 'payment_required']) assert(lim[f] !== true, `${f} is true, but the relay served this whole run without it`)
})

check('nip11: max_event_tags is enforced (that many tags accepted, one more refused)', async () => {
  const max = info?.limitation?.max_event_tags
  assert(Number.isInteger(max) && max > 0 && max <= 5000, `NIP-11 max_event_tags is ${max}`)
  const raw = await Raw.open()
  const k = newKey()
  const tags = (n) => Array.from({ length: n }, (_, i) => ['t', `tag${i}`])
  expectOK(await raw.publish(sign(k, { tags: tags(max) })), `${max} tags`)
  expectRefused(await raw.publish(sign(k, { tags: tags(max + 1), created_at: T + 1 })), `${max + 1} tags`)
})

check('nip11: max_content_length counts unicode characters (that many accepted, one more refused)', async () => {
  const max = info?.limitation?.max_content_length
  assert(Number.isInteger(max) && max > 0 && max <= 20000, `NIP-11 max_content_length is ${max}`)
  const raw = await Raw.open()
  const k = newKey()
  // NIP-11: "maximum number of characters in the content field of any event.
  // This is a count of unicode characters."
  expectOK(await raw.publish(sign(k, { content: 'a'.repeat(max) })), `${max} ASCII characters`)
  expectOK(await raw.publish(sign(k, { content: 'é'.repeat(max), created_at: T + 1 })), `${max} characters "é" (${2 * max} bytes)`)
  expectRefused(await raw.publish(sign(k, { content: 'a'.repeat(max + 1), created_at: T + 2 })), `${max + 1} characters`)
})

check('nip11: max_limit clamps a larger limit to max_limit newest events', async () => {
  const max = info?.limitation?.max_limit
  assert(Number.isInteger(max) && max > 0 && max <= 200, `NIP-11 max_limit is ${max}; need a small positive integer to test`)
  const raw = await Raw.open()
  const k = newKey()
  const evs = Array.from({ length: max + 5 }, (_, i) => sign(k, { created_at: T - i, content: `n${i}` }))
  for (const r of await raw.publishAll(evs)) expectOK(r, 'publish')
  const r = await raw.req('big', { authors: [k.pk], limit: max + 100 })
  assert(r.end === 'EOSE', `want EOSE, got ${r.end} ${JSON.stringify(r.reason)}`)
  expectOrder(r.events, [...evs].sort(newestFirst).slice(0, max), `limit ${max + 100} with max_limit ${max}`)
})

check('nip11: created_at_upper_limit is enforced', async () => {
  const up = info?.limitation?.created_at_upper_limit
  assert(Number.isInteger(up) && up >= 0, `NIP-11 created_at_upper_limit is ${up}`)
  const raw = await Raw.open()
  const k = newKey()
  expectRefused(await raw.publish(sign(k, { created_at: NOW() + up + 120, content: 'too far ahead' })), `created_at now+${up + 120}`)
  if (up > 120) expectOK(await raw.publish(sign(k, { created_at: NOW() + up - 60, content: 'within the window' })), `created_at now+${up - 60}`)
})

check('nip11: a message of exactly max_message_length bytes is processed', async () => {
  const max = info?.limitation?.max_message_length
  assert(Number.isInteger(max) && max > 64, `NIP-11 max_message_length is ${max}`)
  const raw = await Raw.open()
  const head = '["REQ","at-limit",{"limit":1}'
  const msg = head + ' '.repeat(max - head.length - 1) + ']'
  assert(Buffer.byteLength(msg) === max, 'test bug: message length')
  raw.send(msg)
  const r = await raw.collect('at-limit')
  assert(r.end === 'EOSE', `want EOSE, got ${r.end} ${JSON.stringify(r.reason)}`)
  assert(raw.open, 'connection closed')
})

// ----- Bad input

check('bad input: a frame that is not JSON gets a NOTICE (or CLOSED); the connection stays usable', async () => {
  const raw = await Raw.open()
  for (const text of ['hello', '', '["REQ","x",{}', '["EVENT", {}] trailing']) {
    raw.send(text)
    const m = await raw.answer(`an answer to ${JSON.stringify(text)}`)
    // A relay may still read the sub id of a truncated REQ and answer CLOSED.
    const good = (m[0] === 'NOTICE' && typeof m[1] === 'string') || (m[0] === 'CLOSED' && PREFIXED.test(m[2]))
    assert(good, `${JSON.stringify(text)}: want NOTICE (or CLOSED "prefix: …"), got ${JSON.stringify(m)}`)
    assert(raw.open, `${JSON.stringify(text)}: connection closed`)
  }
  assert((await raw.req('still', { limit: 1 })).end === 'EOSE', 'REQ afterwards not answered with EOSE')
})

check('bad input: JSON that is not an array, an empty array, a non-string verb, an unknown verb', async () => {
  const raw = await Raw.open()
  for (const text of ['{"EVENT":1}', '"REQ"', '42', 'null', '[]', '[5,"x"]', '["FOO","x",{}]', '["event",{}]']) {
    raw.send(text)
    const m = await raw.answer(`an answer to ${text}`)
    assert(m[0] === 'NOTICE' || (m[0] === 'CLOSED' && PREFIXED.test(m[2])), `${text}: want NOTICE (or CLOSED "prefix: …"), got ${JSON.stringify(m)}`)
  }
  assert((await raw.req('still', { limit: 1 })).end === 'EOSE', 'REQ afterwards not answered with EOSE')
})

check('bad input: wrong types in EVENT, REQ and CLOSE get NOTICE/CLOSED/OK false', async () => {
  const raw = await Raw.open()
  const frames = [
    '["EVENT"]',
    '["EVENT","not an event"]',
    '["EVENT",[1,2,3]]',
    '["EVENT",{"id":5}]',
    '["REQ"]',
    '["REQ",5,{}]',
    '["REQ",null,{}]',
    '["CLOSE"]',
    '["CLOSE",5]',
  ]
  for (const text of frames) {
    raw.send(text)
    const m = await raw.answer(`an answer to ${text}`)
    const good = m[0] === 'NOTICE' || ((m[0] === 'CLOSED' || (m[0] === 'OK' && m[2] === false)) && PREFIXED.test(m[m.length - 1]))
    assert(good, `${text}: want NOTICE, CLOSED or OK false with "prefix: …", got ${JSON.stringify(m)}`)
    assert(raw.open, `${text}: connection closed`)
  }
  expectOK(await raw.publish(sign(newKey(), { content: 'after bad input' })), 'publish afterwards')
  assert((await raw.req('still', { limit: 1 })).end === 'EOSE', 'REQ afterwards not answered with EOSE')
})

check('bad input: deeply nested JSON gets a NOTICE and does not hurt the relay', async () => {
  const raw = await Raw.open()
  const depth = 20000
  raw.send('["REQ","deep",' + '['.repeat(depth) + ']'.repeat(depth) + ']')
  const m = await raw.answer('an answer to a deeply nested REQ')
  assert(m[0] === 'NOTICE' || (m[0] === 'CLOSED' && PREFIXED.test(m[2])), `want NOTICE or CLOSED, got ${JSON.stringify(m).slice(0, 200)}`)
  assert((await raw.req('still', { limit: 1 })).end === 'EOSE', 'REQ afterwards not answered with EOSE')
})

check('bad input: a message over max_message_length is refused and only that connection suffers', async () => {
  const max = info?.limitation?.max_message_length
  assert(Number.isInteger(max) && max > 0, `NIP-11 max_message_length is ${max}`)
  const victim = await Raw.open()
  const bystander = await Raw.open()
  assert((await bystander.req('watch', { limit: 1 })).end === 'EOSE', 'bystander REQ not answered')
  const head = '["REQ","too-big",{"limit":1}'
  victim.send(head + ' '.repeat(max + 1 - head.length - 1) + ']') // max+1 bytes
  const closed = await victim.waitClosed(3000)
  if (closed) {
    current.note = `oversized message closed the connection with code ${closed.code} ${JSON.stringify(closed.reason)}`
  } else {
    const m = await victim.answer('a NOTICE or CLOSED for the oversized message', 1000)
    assert(m[0] === 'NOTICE' || m[0] === 'CLOSED', `want the connection closed or a NOTICE/CLOSED, got ${JSON.stringify(m)}`)
    assert(!victim.inbox.some((x) => x[1] === 'too-big' && x[0] !== 'CLOSED'), 'the oversized REQ was served')
  }
  assert(bystander.open, 'the other connection was closed too')
  assert((await bystander.req('still', { limit: 1 })).end === 'EOSE', 'the other connection: REQ not answered with EOSE')
  expectOK(await bystander.publish(sign(newKey(), { content: 'bystander' })), 'the other connection: publish')
})

// ----- The wire as a whole (runs last, over every frame of the run)

check('nip01 wire: every OK is ["OK", id, bool, string]; OK false and CLOSED reasons are "prefix: message"', async () => {
  const bad = []
  for (const ws of allConns) {
    for (const m of received(ws)) {
      if (!Array.isArray(m)) continue
      if (m[0] === 'OK') {
        if (m.length !== 4 || typeof m[1] !== 'string' || typeof m[2] !== 'boolean' || typeof m[3] !== 'string') bad.push(m)
        else if (m[2] === false && !PREFIXED.test(m[3])) bad.push(m)
      }
      if (m[0] === 'CLOSED' && (m.length !== 3 || typeof m[2] !== 'string' || !PREFIXED.test(m[2]))) bad.push(m)
    }
  }
  assert(bad.length === 0, `${bad.length} bad frame(s), e.g. ${bad.slice(0, 3).map((m) => JSON.stringify(m)).join(' ')}`)
})

check('nip01 wire: EVENT frames name only subscriptions the client opened', async () => {
  const bad = []
  for (const ws of allConns) {
    for (const m of received(ws)) {
      if (Array.isArray(m) && m[0] === 'EVENT' && !ws.sentSubs.has(m[1])) bad.push(`${ws.label}: ${JSON.stringify(m).slice(0, 120)}`)
    }
  }
  assert(bad.length === 0, `${bad.length} EVENT frame(s) for unknown subscriptions, e.g. ${bad.slice(0, 3).join(' ')}`)
})

// ---------------------------------------------------------------------------
// Running.

function printFrames(ctx) {
  for (const ws of ctx.conns) {
    console.log(`    frames on ${ws.label} (> sent, < received):`)
    const frames = ws.frames.slice(-60)
    if (ws.frames.length > 60) console.log(`      … ${ws.frames.length - 60} earlier frames left out`)
    for (const f of frames) {
      const t = f.text.length > 400 ? `${f.text.slice(0, 240)} …(${f.text.length} chars)… ${f.text.slice(-140)}` : f.text
      console.log(`      ${f.dir} ${t}`)
    }
  }
}

async function main() {
  const started = Date.now()
  let passed = 0
  let failed = 0
  try {
    await startRelay()
  } catch (err) {
    console.log(`FAIL setup: could not start wisp: ${err.message}`)
    console.log('0 passed, 1 failed')
    return 1
  }
  for (const c of checks) {
    const ctx = { name: c.name, conns: [], raws: [], relays: [], note: '' }
    current = ctx
    let error = null
    try {
      await Promise.race([c.fn(), sleep(15000).then(() => Promise.reject(new Error('check timed out after 15 s')))])
    } catch (err) {
      error = err
    }
    for (const r of ctx.relays) {
      try {
        r.close()
      } catch {}
    }
    for (const r of ctx.raws) r.close()
    current = null
    if (child.exitedAlready) error = error ?? new Error('wisp exited during this check')
    if (!error) {
      passed++
      const extra = [ctx.note, c.knownBug ? 'marked as a known wisp bug but passed: drop the mark' : ''].filter(Boolean).join('; ')
      console.log(`PASS ${c.name}${extra ? ` (${extra})` : ''}`)
    } else {
      failed++
      console.log(`FAIL ${c.name}: ${error.message}`)
      if (c.knownBug) console.log(`    known wisp bug: ${c.knownBug}`)
      printFrames(ctx)
    }
    if (child.exitedAlready) break
  }
  await sleep(50)
  const skipped = checks.length - passed - failed
  if (skipped) {
    console.log(`FAIL the relay exited: ${skipped} checks did not run`)
    failed += skipped
  }
  console.log(`# ${checks.length} checks in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  console.log(`${passed} passed, ${failed} failed`)
  return failed ? 1 : 0
}

process.on('exit', killRelaySync)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killRelaySync()
    process.exit(130)
  })
}
process.on('unhandledRejection', (err) => {
  // nostr-tools rejects promises nobody awaits when a connection closes.
  if (process.env.CONFORMANCE_DEBUG) console.log(`# unhandled rejection: ${err?.message ?? err}`)
})

let code = 1
try {
  code = await main()
} catch (err) {
  console.log(`FAIL harness: ${err.stack ?? err}`)
  console.log('0 passed, 1 failed')
  code = 1
}
await stopRelay()
if (code === 0 && tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true })
else if (tmpDir) console.log(`# kept ${tmpDir} (relay log: ${path.join(tmpDir, 'wisp.log')})`)
process.exit(code)
