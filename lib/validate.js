'use strict'

// Argument checks: each returns the value as the engine takes it, or throws a
// TypeError or RangeError naming the argument. This module owns every limit
// and default of the JS side; the engine's own limits come from the binding.

const net = require('net')
const { createHash, randomFillSync } = require('crypto')
const native = require('./native.js')

const LIMITS = Object.freeze({
  maxAttempts: native.MAX_ATTEMPTS,
  defaultTimeoutMs: native.DEFAULT_TIMEOUT_MS,
  scrapeHashesV4: native.SCRAPE_HASHES_V4,
  scrapeHashesV6: native.SCRAPE_HASHES_V6,
  scrapeHashesPerRequest: native.MAX_SCRAPE_HASHES_PER_REQUEST,
  maxShortString: native.MAX_SHORT_STRING,
  defaultNumWant: 50,
  // setTimeout fires at once for delays above 2^31 - 1 ms (about 24.8 days).
  longestTimerMs: 2 ** 31 - 1,
  // An announce interval of 0 means "none given": bittorrent-tracker's default.
  defaultIntervalS: 1800
})

const EVENTS = Object.freeze({ none: 0, completed: 1, started: 2, stopped: 3 })
const U64_MAX = (1n << 64n) - 1n

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

/**
 * A 20-byte id to read right away: the caller's Buffer itself (no copy),
 * else (a Uint8Array or a string) a Buffer made from it.
 */
function twentyByteBuffer (value, name, allowHex) {
  if (!Buffer.isBuffer(value)) return toTwentyBytes(value, name, allowHex)
  let length
  try {
    length = value.length // a Proxy of a Buffer passes isBuffer, and throws here
  } catch {
    throw new TypeError(`${name} must be a Buffer or Uint8Array with readable bytes`)
  }
  if (length !== 20) throw new TypeError(`${name} must be 20 bytes, got ${length}`)
  return value
}

/**
 * A number option: a number, or (as 1.2.0 accepted, e.g. from an environment
 * variable) a string of decimal digits, with a minus sign where negative
 * values are allowed.
 */
function toNumber (value, negativeAllowed) {
  if (typeof value === 'number') return value
  if (typeof value === 'string' && (negativeAllowed ? /^-?[0-9]+$/ : /^[0-9]+$/).test(value)) return Number(value)
  return undefined
}

/**
 * An integer option from `min` to `max`, `fallback` when absent. Errors name
 * it `${prefix}.${field}`, built only then: this runs per instance.
 */
function checkInteger (value, prefix, field, min, max, fallback) {
  if (value === undefined || value === null) return fallback
  const n = toNumber(value, min < 0)
  if (n === undefined) throw new TypeError(`${prefix}.${field} must be a number`)
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(`${prefix}.${field} must be an integer from ${min} to ${max}, got ${value}`)
  }
  return n
}

function checkTimeout (value, name, fallback = LIMITS.defaultTimeoutMs) {
  if (value === undefined || value === null) return fallback
  const ms = toNumber(value, false)
  if (ms === undefined) throw new TypeError(`${name} must be a number of milliseconds`)
  if (!(ms >= 1) || ms > LIMITS.longestTimerMs) {
    throw new RangeError(`${name} must be from 1 to ${LIMITS.longestTimerMs} milliseconds, got ${value}`)
  }
  return ms
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

/** An IPv4 address string as a u32; 0 for none. */
function checkIp (value, prefix, field) {
  if (value === undefined || value === null || value === 0) return 0
  if (typeof value !== 'string' || !net.isIPv4(value)) {
    throw new TypeError(`${prefix}.${field} must be an IPv4 address string`)
  }
  return value.split('.').reduce((n, octet) => n * 256 + Number(octet), 0)
}

/**
 * A counter as the engine takes it: a safe integer number, or a BigInt.
 * Errors name it `${prefix}.${field}` (built only then: this runs per announce).
 */
function checkCounter (value, prefix, field) {
  if (value === undefined || value === null) return 0
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) return value
    throw new RangeError(`${prefix}.${field} must be a non-negative integer (a BigInt above 2^53), got ${value}`)
  }
  if (typeof value === 'bigint') {
    if (value < 0n || value > U64_MAX) throw new RangeError(`${prefix}.${field} must be from 0 to 2^64-1`)
    return value
  }
  throw new TypeError(`${prefix}.${field} must be a number or a BigInt`)
}

/** The three announce counters, checked; `prefix` names their object. */
function checkCounters (opts, prefix) {
  return {
    downloaded: checkCounter(opts.downloaded, prefix, 'downloaded'),
    left: checkCounter(opts.left, prefix, 'left'),
    uploaded: checkCounter(opts.uploaded, prefix, 'uploaded')
  }
}

/** An event as 0-3, or null when it is none of 0-3, '0'-'3' or the names. */
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
  if (buf.length > LIMITS.maxShortString) {
    throw new RangeError(`${name} must be at most ${LIMITS.maxShortString} bytes, got ${buf.length}`)
  }
  return buf
}

/** libtorrent's authentication and request-string extensions (opt-in). */
function checkExtensions (opts, prefix) {
  const out = { authUser: undefined, authPassword: undefined, requestString: undefined }
  if (opts.auth !== undefined && opts.auth !== null) {
    if (typeof opts.auth !== 'object') throw new TypeError(`${prefix}.auth must be an object { user, password }`)
    out.authUser = checkShortString(opts.auth.user, `${prefix}.auth.user`)
    if (out.authUser === undefined) throw new TypeError(`${prefix}.auth.user must be a string or a Buffer`)
    if (typeof opts.auth.password !== 'string' && !(opts.auth.password instanceof Uint8Array)) {
      throw new TypeError(`${prefix}.auth.password must be a string or a Buffer`)
    }
    out.authPassword = Buffer.from(opts.auth.password)
  }
  out.requestString = checkShortString(opts.requestString, `${prefix}.requestString`)
  return out
}

// `opts.proxy`, parsed once per distinct URL. Keyed by the URL's SHA-256, so
// that no long-lived key holds the password the URL may carry.
const PARSED_PROXIES_KEPT = 1024
const parsedProxies = new Map()

/**
 * `socks5://[user:password@]host[:port]` (tracker names resolved here) or
 * `socks5h://…` (names sent to the proxy). Port 1080 when absent, as curl.
 * Returns undefined for no proxy, else { args, key }: the TrackerTarget's
 * ProxyArgs (src/binding.rs), and the URL's SHA-256 that names the proxy in
 * target keys without holding its password.
 */
function checkProxy (value, name) {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw new TypeError(`${name} must be a socks5:// or socks5h:// URL string`)
  const key = createHash('sha256').update(value).digest('base64')
  let parsed = parsedProxies.get(key)
  if (parsed === undefined) {
    parsed = Object.freeze({ args: parseProxy(value, name), key })
    if (parsedProxies.size >= PARSED_PROXIES_KEPT) parsedProxies.clear()
    parsedProxies.set(key, parsed)
  }
  return parsed
}

function parseProxy (value, name) {
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
  return Object.freeze(args)
}

function checkOptions (opts, name = 'opts') {
  if (opts === undefined || opts === null) return {}
  if (typeof opts !== 'object') throw new TypeError(`${name} must be an object`)
  return opts
}

function checkSignal (signal, name) {
  if (signal === undefined || signal === null) return null
  if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' ||
      typeof signal.addEventListener !== 'function') {
    throw new TypeError(`${name} must be an AbortSignal`)
  }
  return signal
}

// Announce keys come from one pool of random numbers rather than a
// randomBytes() call per instance. As int32 (the same 32 bits): always a
// small integer for V8, never a heap number. A small pool, refilled often
// enough that the refill has run (and V8 has seen the call) before the JIT
// compiles randomKey: a large one made its first refill after that throw the
// compiled code away.
const keyPool = new Int32Array(256)
let keyPoolAt = keyPool.length

/** A random announce key (BEP 15's `key`): its 32 bits as an int32. */
function randomKey () {
  if (keyPoolAt === keyPool.length) {
    randomFillSync(keyPool)
    keyPoolAt = 0
  }
  return keyPool[keyPoolAt++]
}

/**
 * The announce fields an instance or a promise-API call fixes once:
 * `checkSharedFields` and `checkKey` in one object.
 */
function checkAnnounceFields (opts, prefix) {
  const shared = checkSharedFields(opts, prefix)
  return { port: shared.port, numWant: shared.numWant, key: checkKey(opts, prefix), ip: shared.ip }
}

// The last `checkSharedFields` result and the option values it was made from.
let lastShared = null

/**
 * The announce fields but the key, { port, numWant, ip }, checked; the same
 * frozen object for the same option values given in a row (instances are
 * mostly created that way). `ip` is u32 on the wire and kept as int32 (the
 * same 32 bits), so that V8 keeps it as a small integer.
 */
function checkSharedFields (opts, prefix) {
  const port = opts.port
  const numWant = opts.numWant
  const ip = opts.ip
  if (lastShared !== null && port === lastShared.port && numWant === lastShared.numWant && ip === lastShared.ip) {
    return lastShared.fields
  }
  return makeSharedFields(port, numWant, ip, prefix)
}

function makeSharedFields (port, numWant, ip, prefix) {
  const fields = Object.freeze({
    port: checkInteger(port, prefix, 'port', 0, 65535, 0),
    numWant: checkInteger(numWant, prefix, 'numWant', -1, 2 ** 31 - 1, LIMITS.defaultNumWant),
    ip: checkIp(ip, prefix, 'ip') | 0
  })
  lastShared = { port, numWant, ip, fields }
  return fields
}

/** The announce key: a random one unless `opts.key` gives it; as int32 (the same 32 bits). */
function checkKey (opts, prefix) {
  const key = opts.key
  return key === undefined || key === null ? randomKey() : checkInteger(key, prefix, 'key', 0, 0xffffffff, 0) | 0
}

// The request options when none is given (most instances).
const DEFAULT_REQUEST_OPTIONS = Object.freeze({
  family: 0,
  timeoutMs: LIMITS.defaultTimeoutMs,
  maxAttempts: LIMITS.maxAttempts,
  strictSource: true,
  reuseConnectionId: true,
  authUser: undefined,
  authPassword: undefined,
  requestString: undefined,
  proxy: undefined
})

/** The request options that define a target, checked (see lib/target.js). */
function checkRequestOptions (opts, prefix) {
  if (opts.family === undefined && opts._timeout === undefined && opts.maxAttempts === undefined &&
      opts.strictSource === undefined && opts.connectionIdCache === undefined && opts.auth === undefined &&
      opts.requestString === undefined && opts.proxy === undefined) {
    return DEFAULT_REQUEST_OPTIONS
  }
  return checkGivenRequestOptions(opts, prefix)
}

function checkGivenRequestOptions (opts, prefix) {
  return {
    family: checkFamily(opts.family, `${prefix}.family`),
    timeoutMs: checkTimeout(opts._timeout, `${prefix}._timeout`),
    maxAttempts: checkInteger(opts.maxAttempts, prefix, 'maxAttempts', 1, LIMITS.maxAttempts, LIMITS.maxAttempts),
    strictSource: checkBoolean(opts.strictSource, `${prefix}.strictSource`, true),
    reuseConnectionId: checkBoolean(opts.connectionIdCache, `${prefix}.connectionIdCache`, true),
    ...checkExtensions(opts, prefix),
    proxy: checkProxy(opts.proxy, `${prefix}.proxy`)
  }
}

module.exports = {
  LIMITS,
  EVENTS,
  toTwentyBytes,
  twentyByteBuffer,
  checkInteger,
  checkTimeout,
  checkCounter,
  checkCounters,
  checkEvent,
  checkOptions,
  checkSignal,
  checkAnnounceFields,
  checkSharedFields,
  checkKey,
  checkRequestOptions,
  DEFAULT_REQUEST_OPTIONS,
  randomKey
}
