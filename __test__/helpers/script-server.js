'use strict'
// A scripted BitTorrent UDP tracker (BEP 15) for tests: it binds an ephemeral
// port on loopback (127.0.0.1 or ::1), records every datagram it receives
// with its arrival time, parses connect / announce / scrape requests, and asks
// the test how to answer each one.
//
// It is for what a correct tracker never does: exact bytes (malformed, short,
// wrong-id or foreign-port replies), exact timing, and reading the client's
// datagrams with a decoder written here from BEP 15 rather than with the Rust
// codec under test. A test that only needs a tracker that answers, stays
// silent (loss: 1), refuses (errorFor) or loses datagrams uses the package's
// test tracker instead (helpers/test-tracker.js).
//
//   const server = await ScriptServer.create()          // or { host: '::1' }
//   server.onConnect = (req, rinfo) => connectReply(req.transactionId, 7n)
//   server.onAnnounce = (req) => announceReply(req.transactionId, { interval: 1 })
//   ... new UdpTracker(peerId, infoHash, server.url, opts) ...
//   const second = await server.waitForType('announce', 2, 1000)
//   await server.close()
//
// A handler returns what to send back to the sender: a Buffer, an array of
// Buffers (sent in order), null/undefined (silence) or a Promise of those. It
// may also send by itself with `server.send(bytes, rinfo)` or, to answer from
// a different source port, `server.sendFromOtherSocket(bytes, rinfo)`.

const dgram = require('node:dgram')
const { performance } = require('node:perf_hooks')

const PROTOCOL_ID = 0x41727101980n
const ACTION = { connect: 0, announce: 1, scrape: 2, error: 3 }
const ANNOUNCE_FIXED_LEN = 98

// ---------------------------------------------------------------------------
// Parsing what the client sends.

/** BEP 41 options after the fixed 98 bytes: [{ type, data }], plus urlData. */
function parseOptions (bytes) {
  const options = []
  const urlParts = []
  let i = 0
  let ended = false
  let malformed = false
  while (i < bytes.length) {
    const type = bytes[i]
    if (type === 0) {
      options.push({ type, data: Buffer.alloc(0) })
      ended = true
      i += 1
      break
    }
    if (type === 1) {
      options.push({ type, data: Buffer.alloc(0) })
      i += 1
      continue
    }
    if (i + 1 >= bytes.length) { malformed = true; break }
    const len = bytes[i + 1]
    if (i + 2 + len > bytes.length) { malformed = true; break }
    const data = bytes.subarray(i + 2, i + 2 + len)
    options.push({ type, data: Buffer.from(data) })
    if (type === 2) urlParts.push(data)
    i += 2 + len
  }
  return {
    options,
    urlData: Buffer.concat(urlParts).toString('latin1'),
    ended,
    malformed
  }
}

/** Reads one client datagram; `type` is 'connect', 'announce', 'scrape' or 'unknown'. */
function parseRequest (bytes) {
  const req = { type: 'unknown', length: bytes.length, bytes }
  if (bytes.length < 16) return req
  req.connectionId = bytes.readBigUInt64BE(0)
  req.action = bytes.readUInt32BE(8)
  req.transactionId = bytes.readUInt32BE(12)
  if (req.action === ACTION.connect && bytes.length === 16 && req.connectionId === PROTOCOL_ID) {
    req.type = 'connect'
  } else if (req.action === ACTION.announce && bytes.length >= ANNOUNCE_FIXED_LEN) {
    req.type = 'announce'
    req.infoHash = Buffer.from(bytes.subarray(16, 36))
    req.peerId = Buffer.from(bytes.subarray(36, 56))
    req.downloaded = bytes.readBigUInt64BE(56)
    req.left = bytes.readBigUInt64BE(64)
    req.uploaded = bytes.readBigUInt64BE(72)
    req.event = bytes.readUInt32BE(80)
    req.ip = bytes.readUInt32BE(84)
    req.key = bytes.readUInt32BE(88)
    req.numWant = bytes.readInt32BE(92)
    req.port = bytes.readUInt16BE(96)
    req.extra = Buffer.from(bytes.subarray(ANNOUNCE_FIXED_LEN))
    Object.assign(req, parseOptions(req.extra))
  } else if (req.action === ACTION.scrape && bytes.length > 16 && (bytes.length - 16) % 20 === 0) {
    req.type = 'scrape'
    req.infoHashes = []
    for (let at = 16; at < bytes.length; at += 20) req.infoHashes.push(Buffer.from(bytes.subarray(at, at + 20)))
  }
  return req
}

// ---------------------------------------------------------------------------
// Building what a tracker sends back.

function header (action, transactionId, bodyLength) {
  const buf = Buffer.alloc(8 + bodyLength)
  buf.writeUInt32BE(action >>> 0, 0)
  buf.writeUInt32BE(transactionId >>> 0, 4)
  return buf
}

/** action 0, tid, connection id (a BigInt or a number). */
function connectReply (transactionId, connectionId) {
  const buf = header(ACTION.connect, transactionId, 8)
  buf.writeBigUInt64BE(BigInt(connectionId), 8)
  return buf
}

/** 'a.b.c.d:port' -> 6 bytes; '[v6]:port' -> 18 bytes. */
function compactPeer (peer) {
  const v6 = /^\[(.+)\]:(\d+)$/.exec(peer)
  if (v6) {
    const buf = Buffer.alloc(18)
    ipv6Bytes(v6[1]).copy(buf, 0)
    buf.writeUInt16BE(Number(v6[2]), 16)
    return buf
  }
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+):(\d+)$/.exec(peer)
  if (!m) throw new Error(`not an 'a.b.c.d:port' or '[v6]:port' peer: ${peer}`)
  const buf = Buffer.alloc(6)
  for (let i = 0; i < 4; i++) buf[i] = Number(m[i + 1])
  buf.writeUInt16BE(Number(m[5]), 4)
  return buf
}

function ipv6Bytes (text) {
  const [head, tail] = text.includes('::') ? text.split('::') : [text, null]
  const parse = (s) => (s ? s.split(':').map((h) => parseInt(h, 16)) : [])
  const h = parse(head)
  const t = tail === null ? [] : parse(tail)
  const groups = tail === null ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t]
  const buf = Buffer.alloc(16)
  groups.forEach((g, i) => buf.writeUInt16BE(g, i * 2))
  return buf
}

/** action 1, tid, interval, leechers, seeders, compact peers. */
function announceReply (transactionId, { interval = 1800, leechers = 0, seeders = 0, peers = [] } = {}) {
  const peerBytes = Buffer.concat(peers.map((p) => (Buffer.isBuffer(p) ? p : compactPeer(p))))
  const buf = header(ACTION.announce, transactionId, 12)
  buf.writeUInt32BE(interval >>> 0, 8)
  buf.writeUInt32BE(leechers >>> 0, 12)
  buf.writeUInt32BE(seeders >>> 0, 16)
  return Buffer.concat([buf, peerBytes])
}

/** action 2, tid, then { seeders, completed, leechers } per hash. */
function scrapeReply (transactionId, entries) {
  const buf = header(ACTION.scrape, transactionId, 12 * entries.length)
  entries.forEach((e, i) => {
    buf.writeUInt32BE(e.seeders >>> 0, 8 + 12 * i)
    buf.writeUInt32BE(e.completed >>> 0, 12 + 12 * i)
    buf.writeUInt32BE(e.leechers >>> 0, 16 + 12 * i)
  })
  return buf
}

/** action 3, tid, message (a string or a Buffer; may be empty). */
function errorReply (transactionId, message = '') {
  const text = Buffer.isBuffer(message) ? message : Buffer.from(message)
  return Buffer.concat([header(ACTION.error, transactionId, 0), text])
}

/** Any action, tid and body: for malformed replies. */
function rawReply (action, transactionId, body = Buffer.alloc(0)) {
  return Buffer.concat([header(action, transactionId, 0), Buffer.from(body)])
}

// ---------------------------------------------------------------------------

function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls until `check()` is truthy or `ms` pass; returns the last value of check(). */
async function until (check, ms = 5000, step = 10) {
  const end = Date.now() + ms
  let ok = check()
  while (!ok && Date.now() < end) {
    await sleep(step)
    ok = check()
  }
  return ok
}

/** after − before for every key of `after` (counters such as UdpTracker.stats()). */
function delta (before, after) {
  const out = {}
  for (const k of Object.keys(after)) out[k] = after[k] - before[k]
  return out
}

const usedAddresses = new Set()

/**
 * True the first time this process claims `host` port `port` for a tracker.
 * The library caches connection ids per tracker address for up to 60 s,
 * process-wide; a port an earlier tracker had (a scripted one or a test
 * tracker) could carry such an id, so every tracker a test starts gets a port
 * no earlier one had.
 */
function claimAddress (host, port) {
  const key = `${host}:${port}`
  if (usedAddresses.has(key)) return false
  usedAddresses.add(key)
  return true
}

function bindSocket (host) {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4')
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, host, () => {
      socket.off('error', reject)
      resolve(socket)
    })
  })
}

/**
 * Opens trackers with `open()` until one has a port that `claimAddress`
 * accepts (see there); the rejected ones stay open meanwhile, so that the
 * next cannot pick their port again, and are closed at the end.
 */
async function freshPort (host, open, portOf, close) {
  const rejected = []
  try {
    for (let attempt = 0; attempt < 50; attempt++) {
      const opened = await open()
      if (claimAddress(host, portOf(opened))) return opened
      rejected.push(opened)
    }
    throw new Error(`could not bind a port on ${host} that this process has not used before`)
  } finally {
    for (const opened of rejected) close(opened)
  }
}

class ScriptServer {
  /** Binds a new server on `host` (127.0.0.1 or ::1), port 0 = ephemeral. */
  static async create ({ host = '127.0.0.1', connectionId = 0x0123456789abcdefn } = {}) {
    const socket = await freshPort(host, () => bindSocket(host), (s) => s.address().port, (s) => s.close())
    return new ScriptServer(socket, host, connectionId)
  }

  constructor (socket, host, connectionId) {
    this.socket = socket
    this.host = host
    this.port = socket.address().port
    this.connectionId = BigInt(connectionId)
    /** Every datagram received: { index, at (ms, performance.now()), bytes, rinfo, ...parsed }. */
    this.received = []
    /** Exceptions thrown by handlers; waitFor* rethrows the first. */
    this.errors = []
    this.closed = false
    this._other = null
    this._waiters = new Set()

    // Defaults: a well-behaved tracker with a long interval.
    this.onConnect = (req) => connectReply(req.transactionId, this.connectionId)
    this.onAnnounce = (req) => announceReply(req.transactionId, { interval: 1800 })
    this.onScrape = (req) => scrapeReply(req.transactionId, req.infoHashes.map(() => ({ seeders: 0, completed: 0, leechers: 0 })))

    socket.on('message', (bytes, rinfo) => this._onMessage(bytes, rinfo))
    socket.on('error', (err) => this.errors.push(err))
  }

  get url () {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host
    return `udp://${host}:${this.port}`
  }

  get connects () { return this.received.filter((r) => r.type === 'connect') }
  get announces () { return this.received.filter((r) => r.type === 'announce') }
  get scrapes () { return this.received.filter((r) => r.type === 'scrape') }

  _onMessage (bytes, rinfo) {
    const at = performance.now()
    const record = { index: this.received.length, at, rinfo, ...parseRequest(Buffer.from(bytes)) }
    this.received.push(record)
    const handler = {
      connect: this.onConnect,
      announce: this.onAnnounce,
      scrape: this.onScrape
    }[record.type]
    let answer
    try {
      answer = handler ? handler(record, rinfo, this) : null
    } catch (err) {
      this.errors.push(err)
      answer = null
    }
    Promise.resolve(answer)
      .then(async (reply) => {
        if (reply === null || reply === undefined) return
        for (const buf of Array.isArray(reply) ? reply : [reply]) await this.send(buf, rinfo)
      })
      .catch((err) => this.errors.push(err))
      .finally(() => this._wake())
  }

  _wake () {
    for (const check of this._waiters) check()
  }

  /** Sends `bytes` to `rinfo` from the server's own socket. */
  send (bytes, rinfo) {
    if (this.closed) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.socket.send(bytes, rinfo.port, rinfo.address, (err) => (err ? reject(err) : resolve()))
    })
  }

  /** Sends `bytes` to `rinfo` from a second socket: same address, another port. */
  async sendFromOtherSocket (bytes, rinfo) {
    if (this.closed) return
    if (this._other === null) {
      const other = dgram.createSocket(this.host.includes(':') ? 'udp6' : 'udp4')
      this._other = new Promise((resolve, reject) => {
        other.once('error', reject)
        other.bind(0, this.host, () => resolve(other))
      })
    }
    const other = await this._other
    await new Promise((resolve, reject) => {
      other.send(bytes, rinfo.port, rinfo.address, (err) => (err ? reject(err) : resolve()))
    })
  }

  /**
   * Resolves with the first record for which `predicate(records)` returns a
   * record; rejects after `timeoutMs` so a test never hangs.
   */
  waitFor (predicate, timeoutMs = 2000, what = 'the expected datagram') {
    return new Promise((resolve, reject) => {
      let timer = null
      const check = () => {
        if (this.errors.length > 0) {
          done()
          reject(this.errors[0])
          return
        }
        const found = predicate(this.received)
        if (found) {
          done()
          resolve(found)
        }
      }
      const done = () => {
        this._waiters.delete(check)
        clearTimeout(timer)
      }
      timer = setTimeout(() => {
        done()
        const seen = this.received.map((r) => r.type).join(', ') || 'nothing'
        reject(new Error(`the scripted tracker did not receive ${what} within ${timeoutMs} ms (received: ${seen})`))
      }, timeoutMs)
      this._waiters.add(check)
      check()
    })
  }

  /** The n-th datagram of one type ('connect', 'announce', 'scrape'), 1-based. */
  waitForType (type, n = 1, timeoutMs = 2000) {
    return this.waitFor((all) => all.filter((r) => r.type === type)[n - 1], timeoutMs, `${n} ${type} request(s)`)
  }

  async close () {
    if (this.closed) return
    this.closed = true
    for (const check of this._waiters) check()
    await new Promise((resolve) => this.socket.close(resolve))
    if (this._other !== null) {
      const other = await this._other.catch(() => null)
      if (other) await new Promise((resolve) => other.close(resolve))
    }
  }
}

// ---------------------------------------------------------------------------
// Small helpers for tests that drive UdpTracker instances.

/** Records every 'update', 'error' and 'scrape' an emitter emits, with times. */
function recordEvents (emitter, names = ['update', 'error', 'scrape']) {
  const log = []
  for (const name of names) {
    emitter.on(name, (value) => log.push({ name, value, at: performance.now() }))
  }
  return log
}

/**
 * Resolves with the next of `names` emitted: { name, value }. Rejects after
 * `timeoutMs` with a message that says what was awaited.
 */
function nextEvent (emitter, names = ['update', 'error'], timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const listeners = new Map()
    const done = () => {
      clearTimeout(timer)
      for (const [name, fn] of listeners) emitter.off(name, fn)
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`no ${names.join(' or ')} event within ${timeoutMs} ms`))
    }, timeoutMs)
    for (const name of names) {
      const fn = (value) => {
        done()
        resolve({ name, value })
      }
      listeners.set(name, fn)
      emitter.on(name, fn)
    }
  })
}

/** A 20-byte Buffer whose last 4 bytes encode `n`, after a 16-byte prefix. */
function twentyBytes (prefix, n = 0) {
  const buf = Buffer.alloc(20)
  Buffer.from(prefix).copy(buf, 0, 0, 16)
  buf.writeUInt32BE(n >>> 0, 16)
  return buf
}

/** A small seeded PRNG (mulberry32), so a failing run can be replayed. */
function prng (seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  next.int = (n) => Math.floor(next() * n) // 0 .. n-1
  next.u32 = () => Math.floor(next() * 4294967296) >>> 0
  next.bytes = (n) => {
    const buf = Buffer.alloc(n)
    for (let i = 0; i < n; i++) buf[i] = next.int(256)
    return buf
  }
  return next
}

/** A scripted tracker for one node:test test, closed when the test ends. */
async function serverFor (t, options) {
  const server = await ScriptServer.create(options)
  t.after(() => server.close())
  return server
}

module.exports = {
  ScriptServer,
  serverFor,
  prng,
  PROTOCOL_ID,
  ACTION,
  parseRequest,
  connectReply,
  announceReply,
  scrapeReply,
  errorReply,
  rawReply,
  recordEvents,
  nextEvent,
  twentyBytes,
  sleep,
  until,
  delta,
  freshPort
}
