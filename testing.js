'use strict'

// bittorrent-udp-tracker/testing: a small BEP 15 tracker for users' test
// suites and for `udp-tracker serve`. The tracker is Rust (src/tracker/, on a
// thread of its own); this file checks the options, naming the wrong one, and
// shapes the results.

const { isIP } = require('node:net')
const { TestTracker } = require('./lib/native.js')

const DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  interval: 1800,
  maxScrape: 74,
  maxPeers: 50,
  loss: 0,
  duplicate: 0,
  delay: 0,
  errorFor: [],
  silentFor: [],
  replyFrom: undefined,
  seed: undefined,
  allowNonLoopback: false
}
const DEFAULT_ERROR = 'unregistered torrent'
// Limits of one datagram (src/tracker/mod.rs): (65,507 − 16) / 20 hashes per
// scrape, (65,507 − 20) / 18 IPv6 peers per announce reply.
const MAX_SCRAPE = 3274
const MAX_PEERS = 3638
const MAX_DELAY_MS = 3600000

function integer (options, name, min, max) {
  const value = options[name]
  if (typeof value !== 'number') {
    throw new TypeError(`options.${name} must be a number, got ${typeof value}`)
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`options.${name} must be an integer from ${min} to ${max}, got ${value}`)
  }
  return value
}

function probability (options, name) {
  const value = options[name]
  if (typeof value !== 'number') {
    throw new TypeError(`options.${name} must be a number, got ${typeof value}`)
  }
  if (!(value >= 0 && value <= 1)) {
    throw new RangeError(`options.${name} must be a probability from 0 to 1, got ${value}`)
  }
  return value
}

function delayRange (value) {
  const ms = (v, what) => {
    if (typeof v !== 'number') {
      throw new TypeError(`options.delay${what} must be a number of milliseconds, got ${typeof v}`)
    }
    if (!(v >= 0 && v <= MAX_DELAY_MS)) {
      throw new RangeError(`options.delay${what} must be from 0 to ${MAX_DELAY_MS} ms, got ${v}`)
    }
    return v
  }
  if (Array.isArray(value)) {
    if (value.length !== 2) {
      throw new RangeError(`options.delay must be a number or [min, max], got an array of ${value.length}`)
    }
    const [min, max] = [ms(value[0], '[0]'), ms(value[1], '[1]')]
    if (min > max) throw new RangeError(`options.delay must be [min, max] with min <= max, got [${min}, ${max}]`)
    return [min, max]
  }
  const n = ms(value, '')
  return [n, n]
}

// A 20-byte info hash from a Buffer/Uint8Array or a 40-character hex string.
function infoHash (value, where) {
  if (typeof value === 'string') {
    if (!/^[0-9a-fA-F]{40}$/.test(value)) {
      throw new RangeError(`${where} must be a 40-character hex string, got '${value}'`)
    }
    return Buffer.from(value, 'hex')
  }
  if (value instanceof Uint8Array) {
    if (value.length !== 20) throw new RangeError(`${where} must be 20 bytes, got ${value.length}`)
    return Buffer.from(value)
  }
  throw new TypeError(`${where} must be a 20-byte Buffer or a 40-character hex string`)
}

function hashList (value, name) {
  if (!Array.isArray(value)) throw new TypeError(`options.${name} must be an array of info hashes`)
  return value.map((h, i) => infoHash(h, `options.${name}[${i}]`))
}

// errorFor: an array of info hashes (answered 'unregistered torrent'), or an
// object mapping hex info hashes to the error text.
function refusals (value) {
  if (Array.isArray(value)) {
    return hashList(value, 'errorFor').map((hash) => ({ infoHash: hash, message: DEFAULT_ERROR }))
  }
  if (value === null || typeof value !== 'object') {
    throw new TypeError('options.errorFor must be an array of info hashes or { [hexInfoHash]: message }')
  }
  return Object.entries(value).map(([hex, message]) => {
    if (typeof message !== 'string') {
      throw new TypeError(`options.errorFor['${hex}'] must be a string (the error text)`)
    }
    return { infoHash: infoHash(hex, `options.errorFor key '${hex}'`), message }
  })
}

function nativeOptions (options) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('options must be an object')
  }
  for (const name of Object.keys(options)) {
    if (!Object.hasOwn(DEFAULTS, name)) throw new TypeError(`unknown option '${name}'`)
  }
  const o = { ...DEFAULTS }
  for (const [name, value] of Object.entries(options)) if (value !== undefined) o[name] = value
  if (typeof o.host !== 'string') throw new TypeError(`options.host must be a string, got ${typeof o.host}`)
  if (typeof o.allowNonLoopback !== 'boolean') {
    throw new TypeError(`options.allowNonLoopback must be a boolean, got ${typeof o.allowNonLoopback}`)
  }
  const host = o.host.replace(/^\[(.*)\]$/, '$1')
  const [delayMinMs, delayMaxMs] = delayRange(o.delay)
  return {
    host,
    port: integer(o, 'port', 0, 65535),
    allowNonLoopback: o.allowNonLoopback,
    replyFrom: o.replyFrom === undefined ? undefined : integer(o, 'replyFrom', 0, 65535),
    interval: integer(o, 'interval', 1, 2 ** 31 - 1),
    maxScrape: integer(o, 'maxScrape', 1, MAX_SCRAPE),
    maxPeers: integer(o, 'maxPeers', 0, MAX_PEERS),
    loss: probability(o, 'loss'),
    duplicate: probability(o, 'duplicate'),
    delayMinMs,
    delayMaxMs,
    errorFor: refusals(o.errorFor),
    silentFor: hashList(o.silentFor, 'silentFor'),
    seed: o.seed === undefined ? undefined : integer(o, 'seed', 0, Number.MAX_SAFE_INTEGER)
  }
}

function checkHost (host, allowNonLoopback) {
  // Only address literals: a test tracker must not depend on DNS.
  const family = isIP(host)
  if (family === 0) throw new RangeError(`options.host must be an IP address, got '${host}'`)
  const loopback = family === 4 ? host.startsWith('127.') : /^(0*:)*:?0*1$/.test(host)
  if (!loopback && !allowNonLoopback) {
    throw new RangeError(`options.host '${host}' is not a loopback address: pass allowNonLoopback: true (serve: --allow-non-loopback) to bind it`)
  }
}

class Tracker {
  constructor (native, host) {
    this._native = native
    this._closed = null
    this.host = host
    this.port = native.port
    // Where replies come from with options.replyFrom (else this.port).
    this.replyPort = native.replyPort ?? native.port
    this.url = `udp://${host.includes(':') ? `[${host}]` : host}:${this.port}`
  }

  // Stops serving; replies still waiting out a delay are not sent. Counters
  // and swarms stay readable.
  close () {
    if (this._closed === null) {
      this._native.close()
      this._closed = Promise.resolve()
    }
    return this._closed
  }

  // Forgets every connection id and every swarm, as a restarted tracker
  // process would; keeps the port and the counters.
  restart () {
    this._native.restart()
  }

  stats () {
    return this._native.stats()
  }

  // { complete, incomplete, downloaded, peers: [...] }, or null for a
  // torrent nobody announced (or everyone stopped before a restart()).
  swarm (hash) {
    const swarm = this._native.swarm(infoHash(hash, 'infoHash'))
    if (swarm === null || swarm === undefined) return null
    for (const peer of swarm.peers) if (peer.ip === undefined) peer.ip = null
    return swarm
  }
}

async function createTracker (options = {}) {
  const native = nativeOptions(options)
  checkHost(native.host, native.allowNonLoopback)
  return new Tracker(new TestTracker(native), native.host)
}

module.exports = { createTracker }
