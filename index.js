'use strict'

// The 1.2.0 EventEmitter API on top of the Rust engine (binding.js, generated
// by `napi build`). This file only checks arguments, keeps 1.2.0's fields and
// timers, and turns the engine's completions into events.

const { EventEmitter } = require('events')
const { createHash, randomBytes } = require('crypto')
const net = require('net')
const { Engine } = require('./binding.js')

const DEFAULT_TIMEOUT_MS = 15000
const DEFAULT_NUM_WANT = 50
const MAX_ATTEMPTS = 8
// BEP 15 bounds a scrape to 74 hashes; over IPv6 we keep the request within
// the 1280-byte minimum MTU: 16 + 60 * 20 = 1216 bytes.
const SCRAPE_HASHES_V4 = 74
const SCRAPE_HASHES_V6 = 60
// setTimeout fires at once for delays above 2^31 - 1 ms (about 24.8 days).
const LONGEST_TIMER_MS = 2 ** 31 - 1
const EVENTS = { none: 0, completed: 1, started: 2, stopped: 3 }
const U64_MAX = (1n << 64n) - 1n

// ---------------------------------------------------------------------------
// The engine: one per JS realm, created on first use, one UDP socket per
// address family for every instance.

let engine = null
let nextRequestId = 1
const pending = new Map() // request id -> its requester: { _complete (completion) }
let keepAlive = null

function getEngine () {
  if (engine === null) engine = new Engine(onCompletions)
  return engine
}

function onCompletions (batch) {
  let thrown = null
  for (const completion of batch) {
    const requester = pending.get(completion.id)
    if (requester === undefined) continue // cancelled after it finished
    pending.delete(completion.id)
    try {
      requester._complete(completion)
    } catch (err) {
      // A throwing listener must not cost the rest of the batch its events;
      // it still surfaces as an uncaught exception, as it did in 1.2.0.
      if (thrown === null) thrown = { err }
    }
  }
  updateKeepAlive()
  if (thrown !== null) process.nextTick(() => { throw thrown.err })
}

// A request in flight keeps Node alive (the engine's callback does not);
// nothing else does, so a script whose requests are done exits on its own.
function updateKeepAlive () {
  if (pending.size > 0 && keepAlive === null) {
    keepAlive = setInterval(() => {}, LONGEST_TIMER_MS)
  } else if (pending.size === 0 && keepAlive !== null) {
    clearInterval(keepAlive)
    keepAlive = null
  }
}

/**
 * Starts a request: `start(engine, id)` (called with `this` = requester) hands it to the engine, and
 * `requester._complete(completion)` gets its completion. Returns the id.
 */
function startRequest (requester, start) {
  const id = nextRequestId
  nextRequestId = nextRequestId >= 0xffffffff ? 1 : nextRequestId + 1
  start.call(requester, getEngine(), id)
  pending.set(id, requester)
  updateKeepAlive()
  return id
}

function cancelRequest (id) {
  if (id !== 0 && pending.delete(id)) {
    engine.cancel(id)
    updateKeepAlive()
  }
}

// ---------------------------------------------------------------------------
// Argument checks: a TypeError or RangeError naming the argument.

function toTwentyBytes (value, name, allowHex) {
  let buf
  if (value instanceof Uint8Array) {
    // Buffers and Uint8Arrays; a Proxy or a view of a detached buffer fails
    // here, and is reported as this argument's fault.
    try {
      buf = Buffer.from(value) // a copy: later changes to the caller's bytes do not reach the wire
    } catch {
      throw new TypeError(`${name} must be a Buffer or Uint8Array with readable bytes`)
    }
  } else if (typeof value === 'string') {
    if (allowHex) {
      if (!/^[0-9a-fA-F]{40}$/.test(value)) {
        throw new TypeError(`${name} must be 20 bytes: a Buffer or a 40-character hex string`)
      }
      buf = Buffer.from(value, 'hex')
    } else {
      buf = Buffer.from(value)
    }
  } else {
    throw new TypeError(`${name} must be a Buffer or a string`)
  }
  if (buf.length !== 20) throw new TypeError(`${name} must be 20 bytes, got ${buf.length}`)
  return buf
}

// Crawlers create many instances for few tracker URLs: parse each URL once.
const parsedUrls = new Map()
const PARSED_URLS_KEPT = 1024

// Error messages quote at most this much of a bad URL.
const QUOTED_URL_CHARS = 200
// The longest host name DNS allows.
const LONGEST_HOST = 253
// BEP 41 URL data must fit one datagram with the 98-byte announce: 65,507
// bytes of UDP payload, less 2 bytes of option header per 255 bytes and one
// EndOfOptions byte.
const LONGEST_URL_DATA = 65000

function quote (text) {
  return text.length > QUOTED_URL_CHARS ? `${text.slice(0, QUOTED_URL_CHARS)}… (${text.length} characters)` : text
}

function parseAnnounceUrl (announceUrl) {
  if (typeof announceUrl !== 'string') throw new TypeError('announceUrl must be a string')
  let parsed = parsedUrls.get(announceUrl)
  if (parsed === undefined) {
    parsed = parseAnnounceUrlUncached(announceUrl)
    if (parsedUrls.size >= PARSED_URLS_KEPT) parsedUrls.clear()
    parsedUrls.set(announceUrl, parsed)
  }
  return parsed
}

function parseAnnounceUrlUncached (announceUrl) {
  let url
  try {
    url = new URL(announceUrl)
  } catch {
    throw new TypeError(`announceUrl is not a valid URL: ${quote(announceUrl)}`)
  }
  if (url.protocol !== 'udp:') throw new TypeError(`announceUrl must be a udp:// URL: ${quote(announceUrl)}`)
  if (url.hostname === '') throw new TypeError(`announceUrl has no host: ${quote(announceUrl)}`)
  const bareHost = url.hostname.replace(/^\[|\]$/g, '')
  if (bareHost.length > LONGEST_HOST) {
    throw new RangeError(`announceUrl host must be at most ${LONGEST_HOST} characters, got ${bareHost.length}`)
  }
  // 1.2.0 sent to port 80 when the URL had none.
  const port = url.port === '' ? 80 : Number(url.port)
  if (port === 0) throw new RangeError(`announceUrl port must be from 1 to 65535: ${quote(announceUrl)}`)
  let path = url.pathname + url.search
  if (path === '/') path = ''
  if (Buffer.byteLength(path) > LONGEST_URL_DATA) {
    throw new RangeError(`announceUrl path and query must be at most ${LONGEST_URL_DATA} bytes to fit a datagram`)
  }
  return Object.freeze({ host: url.hostname, port, path })
}

function checkInteger (value, name, min, max, fallback) {
  if (value === undefined || value === null) return fallback
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number`)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`)
  }
  return value
}

function checkBoolean (value, name, fallback) {
  if (value === undefined || value === null) return fallback
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean`)
  return value
}

function checkFamily (value, name) {
  if (value === undefined || value === null || value === 'auto' || value === 0) return 0
  if (value === 4 || value === 'ipv4' || value === 'IPv4') return 4
  if (value === 6 || value === 'ipv6' || value === 'IPv6') return 6
  throw new RangeError(`${name} must be 4, 6 or 'auto', got ${String(value)}`)
}

function checkIp (value, name) {
  if (value === undefined || value === null || value === 0) return 0
  if (typeof value !== 'string' || !net.isIPv4(value)) {
    throw new TypeError(`${name} must be an IPv4 address string`)
  }
  return value.split('.').reduce((n, octet) => n * 256 + Number(octet), 0)
}

function checkTimeout (value, name) {
  if (value === undefined || value === null) return DEFAULT_TIMEOUT_MS
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number of milliseconds`)
  if (!(value >= 1) || value > LONGEST_TIMER_MS) {
    throw new RangeError(`${name} must be from 1 to ${LONGEST_TIMER_MS} milliseconds, got ${value}`)
  }
  return value
}

/** A counter as the engine takes it: a safe integer number, or a BigInt. */
function checkCounter (value, name) {
  if (value === undefined || value === null) return 0
  if (typeof value === 'bigint') {
    if (value < 0n || value > U64_MAX) throw new RangeError(`${name} must be from 0 to 2^64-1`)
    return value
  }
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number or a BigInt`)
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer (a BigInt above 2^53), got ${value}`)
  }
  return value
}

function checkCounters (opts, prefix) {
  return {
    downloaded: checkCounter(opts.downloaded, `${prefix}.downloaded`),
    left: checkCounter(opts.left, `${prefix}.left`),
    uploaded: checkCounter(opts.uploaded, `${prefix}.uploaded`)
  }
}

function checkEvent (event) {
  if (typeof event === 'string' && Object.hasOwn(EVENTS, event)) return EVENTS[event]
  if (typeof event === 'string' && /^[0-3]$/.test(event)) return Number(event)
  if (event === 0 || event === 1 || event === 2 || event === 3) return event
  return null
}

function checkShortString (value, name) {
  if (value === undefined || value === null) return undefined
  let buf
  if (typeof value === 'string') buf = Buffer.from(value)
  else if (value instanceof Uint8Array) buf = Buffer.from(value)
  else throw new TypeError(`${name} must be a string or a Buffer`)
  if (buf.length > 255) throw new RangeError(`${name} must be at most 255 bytes, got ${buf.length}`)
  return buf
}

/** libtorrent's authentication and request-string extensions (opt-in). */
function checkExtensions (opts, prefix) {
  const out = {}
  if (opts.auth !== undefined && opts.auth !== null) {
    if (typeof opts.auth !== 'object') throw new TypeError(`${prefix}.auth must be an object { user, password }`)
    out.authUser = checkShortString(opts.auth.user, `${prefix}.auth.user`)
    if (out.authUser === undefined) throw new TypeError(`${prefix}.auth.user must be a string or a Buffer`)
    if (typeof opts.auth.password !== 'string' && !(opts.auth.password instanceof Uint8Array)) {
      throw new TypeError(`${prefix}.auth.password must be a string or a Buffer`)
    }
    out.authPassword = Buffer.from(opts.auth.password)
  }
  const requestString = checkShortString(opts.requestString, `${prefix}.requestString`)
  if (requestString !== undefined) out.requestString = requestString
  return out
}

// `opts.proxy`: parsed once per distinct URL, like announce URLs.
const parsedProxies = new Map()

/**
 * `socks5://[user:password@]host[:port]` (tracker names resolved here) or
 * `socks5h://…` (names sent to the proxy). Port 1080 when absent, as curl.
 * Returns undefined for no proxy, else the engine's ProxyArgs and a `key`
 * that identifies the proxy without holding its password.
 */
function checkProxy (value, name) {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw new TypeError(`${name} must be a socks5:// or socks5h:// URL string`)
  let parsed = parsedProxies.get(value)
  if (parsed === undefined) {
    parsed = parseProxyUncached(value, name)
    if (parsedProxies.size >= PARSED_URLS_KEPT) parsedProxies.clear()
    parsedProxies.set(value, parsed)
  }
  return parsed
}

function parseProxyUncached (value, name) {
  // Never quote the URL: it may hold a password.
  const bad = (why) => new TypeError(`${name} must be a socks5://[user:password@]host:port or socks5h:// URL: ${why}`)
  let url
  try {
    url = new URL(value)
  } catch {
    throw bad('not a valid URL')
  }
  if (url.protocol !== 'socks5:' && url.protocol !== 'socks5h:') throw bad(`unsupported scheme ${url.protocol}`)
  if (url.hostname === '') throw bad('no host')
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') throw bad('no path, query or fragment allowed')
  const port = url.port === '' ? 1080 : Number(url.port)
  if (port === 0) throw bad('port 0')
  const args = { host: url.hostname, port, remoteDns: url.protocol === 'socks5h:' }
  if (url.username !== '' || url.password !== '' || value.includes('@')) {
    let username, password
    try {
      username = Buffer.from(decodeURIComponent(url.username))
      password = Buffer.from(decodeURIComponent(url.password))
    } catch {
      throw bad('bad percent-encoding in the user name or password')
    }
    if (username.length < 1 || username.length > 255) throw bad('the user name must be 1 to 255 bytes')
    if (password.length > 255) throw bad('the password must be at most 255 bytes')
    args.username = username
    args.password = password
  }
  const key = createHash('sha256').update(value).digest('base64')
  return Object.freeze({ args: Object.freeze(args), key })
}

function checkOptions (opts, name = 'opts') {
  if (opts === undefined || opts === null) return {}
  if (typeof opts !== 'object') throw new TypeError(`${name} must be an object`)
  return opts
}

// Tracker targets registered with the engine, by everything that defines
// them: { key, handle, refs }. Each user (an instance, a promise call) holds a
// reference; the last one out releases the engine's registration, so
// distinct URLs and options do not pile up in a long-running process.
const targets = new Map()

function releaseTarget (target) {
  if (--target.refs === 0) {
    targets.delete(target.key)
    if (engine !== null) engine.releaseTarget(target.handle)
  }
}

// Instances that are never destroyed still give their target back when
// they are garbage collected.
const unreleased = new FinalizationRegistry(releaseTarget)

/**
 * Registers (or shares) the engine's target for a tracker URL and the
 * request options in `opts`; the caller owns one reference, given back with
 * releaseTarget(). Returns { handle, host, family, timeoutMs, ... }.
 */
function acquireTarget (announceUrl, opts, prefix) {
  const { host, port, path } = parseAnnounceUrl(announceUrl)
  const args = {
    host,
    port,
    family: checkFamily(opts.family, `${prefix}.family`),
    timeoutMs: checkTimeout(opts._timeout, `${prefix}._timeout`),
    maxAttempts: checkInteger(opts.maxAttempts, `${prefix}.maxAttempts`, 1, MAX_ATTEMPTS, MAX_ATTEMPTS),
    strictSource: checkBoolean(opts.strictSource, `${prefix}.strictSource`, true),
    reuseConnectionId: checkBoolean(opts.connectionIdCache, `${prefix}.connectionIdCache`, true),
    urlData: path,
    ...checkExtensions(opts, prefix)
  }
  const proxy = checkProxy(opts.proxy, `${prefix}.proxy`)
  // Every field but the last has no spaces; the URL data, last, may.
  const extensions = args.authUser === undefined && args.requestString === undefined
    ? '-'
    : [args.authUser, args.authPassword, args.requestString].map((b) => b === undefined ? '' : b.toString('hex')).join(',')
  const key = `${args.host} ${args.port} ${args.family} ${args.timeoutMs} ${args.maxAttempts} ` +
    `${args.strictSource} ${args.reuseConnectionId} ${extensions} ${proxy === undefined ? '-' : proxy.key} ${args.urlData}`
  let target = targets.get(key)
  if (target === undefined) {
    const handle = getEngine().target({ ...args, urlData: Buffer.from(args.urlData), proxy: proxy && proxy.args })
    target = { key, handle, refs: 0, host: args.host, family: args.family, timeoutMs: args.timeoutMs }
    targets.set(key, target)
  }
  target.refs++
  return target
}

// Announce keys come from one pool of random bytes rather than a
// randomBytes() call per instance.
let keyPool = Buffer.alloc(0)
let keyPoolAt = 0

function randomKey () {
  if (keyPoolAt + 4 > keyPool.length) {
    keyPool = randomBytes(4096)
    keyPoolAt = 0
  }
  const key = keyPool.readUInt32BE(keyPoolAt)
  keyPoolAt += 4
  return key
}

/** The announce fields an instance or a promise-API call fixes once. */
function announceFields (opts, prefix) {
  return {
    port: checkInteger(opts.port, `${prefix}.port`, 0, 65535, 0),
    numWant: checkInteger(opts.numWant, `${prefix}.numWant`, -1, 2 ** 31 - 1, DEFAULT_NUM_WANT),
    key: opts.key === undefined || opts.key === null
      ? randomKey()
      : checkInteger(opts.key, `${prefix}.key`, 0, 0xffffffff, 0),
    ip: checkIp(opts.ip, `${prefix}.ip`)
  }
}

function startAnnounce (engine, id, target, infoHash, peerId, fields, counters, event) {
  engine.announce(id, target, infoHash, peerId, counters.downloaded, counters.left, counters.uploaded,
    event, fields.key, fields.numWant, fields.ip, fields.port)
}

function scrapeBatchSize (target) {
  return target.family === 4 || net.isIPv4(target.host) ? SCRAPE_HASHES_V4 : SCRAPE_HASHES_V6
}

// How an instance's announce starts; `this` is the instance (no closure per announce).
function announceStart (engine, id) {
  startAnnounce(engine, id, this._targetRef.handle, this.infoHash, this.peerId, this._fields, this._sentCounters, this._sentEvent)
}

// A marker for `_socket`: 1.2.0 kept its own dgram socket there while a
// request was out; every instance now shares the engine's sockets.
const SHARED_SOCKET = Object.freeze({ shared: true })

// ---------------------------------------------------------------------------

class UdpTracker extends EventEmitter {
  constructor (peerId, infoHash, announceUrl, opts) {
    super()
    const options = checkOptions(opts)
    this.peerId = toTwentyBytes(peerId, 'peerId', false)
    this.infoHash = toTwentyBytes(infoHash, 'infoHash', true)
    this.announceUrl = announceUrl
    this.opts = options
    this._fields = announceFields(options, 'opts')
    const target = acquireTarget(announceUrl, options, 'opts')
    this._targetRef = target
    unreleased.register(this, target, this)
    this.port = this._fields.port
    this._timeout = target.timeoutMs

    // 1.2.0's fields, with their meaning.
    this._in_interval = false
    this._last_opts = null
    this._announce_intervals_timeout = []
    this._udpTimmers = []
    this._socket = null
    this.destoryed = false
    this.destroyed = false

    this._announceId = 0
    this._scrapeId = 0
    this._queuedEvent = null
  }

  /**
   * Announces `event` (0 none, 1 completed, 2 started, 3 stopped) with the
   * counters in `opts`. During the announce interval the call is stored and
   * answered with the error 'not calling announce'; the interval's end sends it.
   */
  announce (event, opts) {
    if (this.destroyed) return
    const options = checkOptions(opts)
    const counters = checkCounters(options, 'opts')
    const code = checkEvent(event)
    if (code === null) {
      this._emitLater('error', 'unknown event')
      return
    }
    this._last_opts = Object.assign({}, options, { event: code })
    this._lastCounters = counters
    if (this._in_interval) {
      this._queuedEvent = code
      this._emitLater('error', 'not calling announce')
      return
    }
    this._queuedEvent = null
    this._send(code, counters)
  }

  /** Asks the tracker for this torrent's swarm counts: a `scrape` event. */
  scrape () {
    if (this.destroyed) return
    cancelRequest(this._scrapeId)
    this._scrapeId = startRequest(this, (engine, id) => engine.scrape(id, this._targetRef.handle, this.infoHash))
  }

  /** Stops every request and timer; no event follows. Safe to call twice. */
  destroy () {
    if (!this.destroyed && this._targetRef) {
      unreleased.unregister(this)
      releaseTarget(this._targetRef)
    }
    this.destroyed = true
    this.destoryed = true
    cancelRequest(this._announceId)
    cancelRequest(this._scrapeId)
    this._announceId = 0
    this._scrapeId = 0
    for (const timer of this._announce_intervals_timeout) clearTimeout(timer)
    this._announce_intervals_timeout = []
    this._udpTimmers = []
    this._socket = null
    this._in_interval = false
  }

  /** 1.2.0's spelling of `destroy`. */
  destory () {
    this.destroy()
  }

  _send (event, counters) {
    cancelRequest(this._announceId)
    this._sentEvent = event
    this._sentCounters = counters
    this._announceId = startRequest(this, announceStart)
    this._socket = SHARED_SOCKET
  }

  // The engine's answer to this instance's announce or scrape.
  _complete (completion) {
    if (completion.id === this._announceId) this._onAnnounced(completion)
    else if (completion.id === this._scrapeId) this._onScraped(completion)
  }

  _onScraped (completion) {
    this._scrapeId = 0
    if (this.destroyed) return
    if (completion.error != null) return this.emit('error', completion.error)
    this.emit('scrape', completion.scrape[0])
  }

  _onAnnounced (completion) {
    const event = this._sentEvent
    this._announceId = 0
    this._socket = null
    if (this.destroyed) return
    if (completion.error != null) {
      this.emit('error', completion.error)
      return
    }
    const interval = completion.interval
    // A successful 'stopped' ends the announcing: 1.2.0 repeated it forever.
    if (event !== EVENTS.stopped) {
      this._in_interval = true
      const delay = Math.min(Math.max(interval, 1) * 1000, LONGEST_TIMER_MS)
      const timer = setTimeout(() => this._onIntervalEnd(timer), delay)
      timer.unref()
      this._announce_intervals_timeout.push(timer)
    }
    this.emit('update', {
      leechers: completion.leechers,
      seeds: completion.seeders,
      peers: completion.peers,
      interval
    })
  }

  _onIntervalEnd (timer) {
    const timers = this._announce_intervals_timeout
    const at = timers.indexOf(timer)
    if (at !== -1) timers.splice(at, 1)
    if (this.destroyed) return
    this._in_interval = false
    // Periodic announces are event 0 (none) unless the user queued one.
    const event = this._queuedEvent === null ? EVENTS.none : this._queuedEvent
    this._queuedEvent = null
    if (this._last_opts !== null) this._last_opts.event = event
    this._send(event, this._lastCounters || { downloaded: 0, left: 0, uploaded: 0 })
  }

  _emitLater (name, payload) {
    process.nextTick(() => {
      if (!this.destroyed) this.emit(name, payload)
    })
  }
}

// ---------------------------------------------------------------------------
// Module-level functions.

function trackerError (message, code) {
  const err = new Error(message)
  err.code = code
  return err
}

function checkSignal (signal) {
  if (signal === undefined || signal === null) return null
  if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' ||
      typeof signal.addEventListener !== 'function') {
    throw new TypeError('options.signal must be an AbortSignal')
  }
  return signal
}

function abortError (signal) {
  const err = trackerError('The operation was aborted', 'ERR_ABORTED')
  err.name = 'AbortError'
  if (signal.reason !== undefined) err.cause = signal.reason
  return err
}

/**
 * Runs requests together: resolves with their completions in order, or
 * rejects on the first failure, an abort or the overall timeout, cancelling
 * the rest. `starts` are `(engine, id) => void`.
 */
function runRequests (starts, options, target) {
  let opts, signal, timeout
  try {
    opts = checkOptions(options, 'options')
    signal = checkSignal(opts.signal)
    timeout = opts.timeout === undefined || opts.timeout === null
      ? null
      : checkTimeout(opts.timeout, 'options.timeout')
  } catch (err) {
    releaseTarget(target)
    return Promise.reject(err)
  }
  return new Promise((resolve, reject) => {
    if (signal !== null && signal.aborted) {
      releaseTarget(target)
      return reject(abortError(signal))
    }
    const ids = []
    const results = new Array(starts.length)
    let left = starts.length
    let timer = null
    let settled = false
    const settle = (err) => {
      settled = true
      for (const id of ids) cancelRequest(id)
      releaseTarget(target)
      if (timer !== null) clearTimeout(timer)
      if (signal !== null) signal.removeEventListener('abort', onAbort)
      if (err) reject(err)
      else resolve(results)
    }
    const onAbort = () => { if (!settled) settle(abortError(signal)) }
    try {
      starts.forEach((start, i) => {
        ids.push(startRequest({
          _complete (completion) {
            if (settled) return
            if (completion.error != null) return settle(trackerError(completion.error, completion.code))
            results[i] = completion
            if (--left === 0) settle(null)
          }
        }, start))
      })
    } catch (err) {
      return settle(err)
    }
    if (signal !== null) signal.addEventListener('abort', onAbort, { once: true })
    if (timeout !== null) {
      timer = setTimeout(() => {
        if (!settled) settle(trackerError(`tracker is not responding after:${timeout}`, 'ERR_TRACKER_TIMEOUT'))
      }, timeout)
    }
  })
}

/**
 * Announces once: resolves to `{ interval, leechers, seeds, peers }`.
 * `params` holds `infoHash`, `peerId`, the event and counters and every
 * option of the class; `options` is `{ signal, timeout }`.
 */
function announce (announceUrl, params, options) {
  try {
    const p = checkOptions(params, 'params')
    const event = p.event === undefined || p.event === null ? EVENTS.none : checkEvent(p.event)
    if (event === null) throw new RangeError(`params.event must be 0-3 or none/completed/started/stopped, got ${String(p.event)}`)
    const fields = announceFields(p, 'params')
    const infoHash = toTwentyBytes(p.infoHash, 'params.infoHash', true)
    const peerId = toTwentyBytes(p.peerId, 'params.peerId', false)
    const counters = checkCounters(p, 'params')
    const target = acquireTarget(announceUrl, p, 'params')
    const start = (engine, id) => startAnnounce(engine, id, target.handle, infoHash, peerId, fields, counters, event)
    return runRequests([start], options, target)
      .then(([c]) => ({ interval: c.interval, leechers: c.leechers, seeds: c.seeders, peers: c.peers }))
  } catch (err) {
    return Promise.reject(err)
  }
}

/**
 * Scrapes any number of info hashes of one tracker. Resolves to an object
 * keyed by lower-case hex info hash: `{ complete, downloaded, incomplete }`.
 */
function scrape (announceUrl, infoHashes, opts) {
  try {
    const options = checkOptions(opts)
    if (!Array.isArray(infoHashes) || infoHashes.length === 0) {
      throw new TypeError('infoHashes must be a non-empty array')
    }
    // A loop, not map(): map() skips the holes of a sparse array.
    const hashes = []
    for (let i = 0; i < infoHashes.length; i++) hashes.push(toTwentyBytes(infoHashes[i], `infoHashes[${i}]`, true))
    const target = acquireTarget(announceUrl, options, 'opts')
    const size = scrapeBatchSize(target)
    const batches = []
    for (let at = 0; at < hashes.length; at += size) batches.push(hashes.slice(at, at + size))
    const starts = batches.map((batch) => (engine, id) => engine.scrape(id, target.handle, Buffer.concat(batch)))
    return runRequests(starts, options, target).then((completions) => {
      const result = {}
      batches.forEach((batch, b) => {
        batch.forEach((hash, i) => { result[hash.toString('hex')] = completions[b].scrape[i] })
      })
      return result
    })
  } catch (err) {
    return Promise.reject(err)
  }
}

/** Forgets every cached connection id: the next request to each tracker connects first. */
function forgetConnectionIds () {
  if (engine !== null) engine.forgetConnectionIds()
}

/** Counters of the shared engine: datagrams sent, received and dropped, sockets. */
function stats () {
  return getEngine().stats()
}

module.exports = UdpTracker
module.exports.UdpTracker = UdpTracker
module.exports.default = UdpTracker
module.exports.announce = announce
module.exports.scrape = scrape
module.exports.forgetConnectionIds = forgetConnectionIds
module.exports.stats = stats
