'use strict'

// A torrent's whole announce list, with bittorrent-tracker 11's Client API
// (udp:// trackers only), on the engine's request path (lib/transport.js):
// BEP 12 tiers, a per-tracker failure backoff, interval floors and jitter.
// Every Client of a process shares the engine, its sockets, connection ids and
// DNS look-ups.

const { EventEmitter } = require('events')
const backoff = require('./backoff.js')
const { announceList, shuffle } = require('./tiers.js')
const transport = require('./transport.js')
const { keepShapes } = require('./shapes.js')

const DEFAULT_NUMWANT = 50 // bittorrent-tracker's DEFAULT_ANNOUNCE_PEERS
// A Client gives up on one request after two sends per phase (waits of 2 and
// 4 × _timeout: 90 s with the default 15 s); the tier has moved on long before.
const DEFAULT_MAX_ATTEMPTS = 2
// destroy() lets a `stopped` announce already sent finish for this long
// (bittorrent-tracker's DESTROY_TIMEOUT).
const DESTROY_TIMEOUT_MS = 1000
const U64_MAX = (1n << 64n) - 1n
const NONE = Object.freeze([])
// Options of UdpTracker a Client passes on to every request, by the same name.
const TRACKER_OPTIONS = ['_timeout', 'maxAttempts', 'numWant', 'family', 'strictSource', 'key', 'ip',
  'connectionIdCache', 'auth', 'requestString', 'proxy']
// A tracker error that means "this tracker will never take this torrent": stop
// announcing it there (libtorrent and Transmission do the same).
const NOT_REGISTERED = /not registered|unregistered|not authori[sz]ed|unauthori[sz]ed|not allowed|disallowed|forbidden|torrent not found|unknown torrent|info_?hash not found|not on (this|the) tracker|blacklisted|banned/i

/** 20 bytes from a hex string (40 characters), a 20-byte string, or bytes. */
function idBytes (value, name) {
  if (typeof value === 'string') {
    if (/^[0-9a-fA-F]{40}$/.test(value)) return Buffer.from(value, 'hex')
    const bytes = Buffer.from(value)
    if (bytes.length === 20) return bytes
    throw new TypeError(`${name} must be 20 bytes: a 40-character hex string, a 20-byte string or a Buffer`)
  }
  if (value instanceof Uint8Array && value.length === 20) return Buffer.from(value)
  throw new TypeError(`${name} must be 20 bytes: a 40-character hex string, a 20-byte string or a Buffer`)
}

/** `idBytes` for ids read right away (hex, storeIds): a Buffer of 20 bytes itself, not a copy. */
function idView (value, name) {
  if (Buffer.isBuffer(value) && value.length === 20) return value
  return idBytes(value, name)
}

/** An announce counter: a safe integer, a BigInt or a decimal string (as bittorrent-tracker takes). */
function counter (value, name, fallback) {
  if (value === undefined || value === null) return fallback
  let n = value
  if (typeof value === 'string' && /^\d+$/.test(value)) n = BigInt(value)
  if (typeof n === 'bigint' && n >= 0n && n <= U64_MAX) return n
  if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) return n
  if (typeof n === 'number' || typeof n === 'bigint') throw new RangeError(`${name} must be an integer from 0 to 2^64-1, got ${value}`)
  throw new TypeError(`${name} must be a number, a BigInt or a decimal string`)
}

function numwant (value, name) {
  if (!Number.isInteger(value) || value < -1 || value > 2 ** 31 - 1) {
    throw new RangeError(`${name} must be an integer from -1 to 2^31-1, got ${String(value)}`)
  }
  return value
}

function msOption (value, name, fallback) {
  if (value === undefined || value === null) return fallback
  if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(`${name} must be a non-negative number of milliseconds, got ${String(value)}`)
  }
  return value
}

/** An Error for `warning`: the message names the tracker; `code` as the engine gave it. */
function trackerWarning (message, code, url) {
  const warning = new Error(`${message} (${url})`)
  if (code !== null && code !== undefined) warning.code = code
  warning.announce = url
  return warning
}

// One tracker of a tier of several: its failure count, when it may be tried
// again, whether it refused this torrent for good, and its request in flight
// (the engine's id, 0 for none; the tier is the engine's owner of it: a
// tracker is in one tier and has at most one request out). Its timer (the
// Client's timers, lib/backoff.js) is its first wait: when it passes
// unanswered, the tier asks its next tracker.
class TrackerState {
  constructor (tier, url, target) {
    this.tier = tier
    this.url = url
    this.target = target
    this.failures = 0
    this.retryAt = 0
    this.disabled = false
    this.id = 0
    this._intervalQueue = null // not null while the first wait runs
    this._intervalIndex = 0
  }

  _onIntervalEnd () {
    this.tier.tryNext()
  }

  clearFirstWait () {
    if (this._intervalQueue !== null) this.tier.client._policy.timers.stop(this)
  }

  cancel () {
    if (this.id !== 0) transport.cancel(this.id)
    this.id = 0
    this.clearFirstWait()
  }
}

// What every tier does. A tier has a timer (the Client's timers) for its
// next announce, of `timerEvent`, and at most one announce in flight, its
// job (`event` not null, with `params`); it is the engine's owner of the
// job's requests (`_done`). A tier of one tracker (each entry of a flat
// list) is a SoloTier, which is its tracker too; a tier of several is a Tier
// of TrackerStates.
class TierBase {
  constructor (client) {
    this.client = client
    this._intervalQueue = null // not null while the timer runs
    this._intervalIndex = 0
    this.timerEvent = null // what the timer announces when it fires
    this.active = false // re-announcing periodically (after a success that was not `stopped`)
    // The job.
    this.event = null
    this.params = null
  }

  _onIntervalEnd () {
    const event = this.timerEvent
    this.timerEvent = null
    this.client._announceFromTimer(this, event)
  }

  clearTimer () {
    if (this._intervalQueue !== null) this.client._policy.timers.stop(this)
    this.timerEvent = null
  }

  schedule (event, delayMs) {
    this.clearTimer()
    this.timerEvent = event
    this.client._policy.timers.start(this, Math.max(0, delayMs))
  }

  /** Sends the job (its `event` and `params`) to `target`; returns the engine's request id. */
  send (target) {
    const { fields, counters } = this.params
    return transport.announce(this, target, transport.SHARED_SCOPE, this.client, fields, fields.key,
      counters.downloaded, counters.left, counters.uploaded, transport.EVENTS[this.event])
  }

  /** Aborts the job in flight for a new one of `event`; returns the event the new one sends. */
  replaceJob (event) {
    // A periodic or `update` announce does not replace a `started` or
    // `completed` the tracker has not confirmed yet: it is sent again.
    const replaced = this.event
    this.abortJob()
    return event === 'none' && (replaced === 'started' || replaced === 'completed') ? replaced : event
  }

  /** Every tracker of the tier is backing off or disabled: announce `event` when the first may. */
  waitForRetry (event) {
    const at = this.nextRetryAt()
    if (at !== Infinity && event !== 'stopped') this.schedule(event, at - this.client._policy.timers.now())
  }

  /**
   * The job's `event` was answered by `tracker` (the job is over): its
   * failures are forgotten, the tier re-announces after the tracker's
   * interval, and `update` and `peer` are emitted.
   */
  answered (tracker, event, result) {
    const client = this.client
    // (Written only when they change: V8 then keeps them constant for the
    // code that reads them, until a tracker fails.)
    if (tracker.failures !== 0) tracker.failures = 0
    if (tracker.retryAt !== 0) tracker.retryAt = 0
    if (event === 'stopped') {
      this.active = false
    } else {
      // The tracker's interval is applied before `update` is emitted, so a
      // setInterval() called from an `update` listener wins.
      this.active = true
      const policy = client._policy
      if (this._intervalQueue !== null) policy.timers.stop(this)
      this.timerEvent = 'none'
      policy.timers.start(this, backoff.reannounceDelay(result.interval, policy.minIntervalMs, policy.random))
    }
    if (!client.destroyed) {
      client.emit('update', { announce: tracker.url, complete: result.seeds, incomplete: result.leechers })
      const peers = result.peers
      for (let p = 0; p < peers.length && !client.destroyed; p++) client.emit('peer', peers[p])
    }
    client._settled()
  }

  /** `tracker`'s request of the job failed: it backs off, or is given up for good; a warning says why. */
  trackerFailed (tracker, message, code) {
    const client = this.client
    if (code === 'ERR_TRACKER_ERROR' && NOT_REGISTERED.test(message)) {
      // Only the tracker's own error text is read, never the engine's.
      tracker.disabled = true
      client._warn(trackerWarning(message, code, tracker.url))
    } else {
      tracker.failures++
      tracker.retryAt = client._policy.timers.now() + backoff.retryDelay(tracker.failures, client._policy.random)
      // As bittorrent-tracker: a `stopped` that times out is not worth a warning.
      if (!(this.event === 'stopped' && code === 'ERR_TRACKER_TIMEOUT')) client._warn(trackerWarning(message, code, tracker.url))
    }
  }

  /** Every tracker tried failed: announce again when the first one may. */
  failed () {
    const event = this.event
    this.abortJob()
    const at = this.nextRetryAt()
    if (at !== Infinity && event !== 'stopped' && !this.client.destroyed) {
      this.schedule(event, at - this.client._policy.timers.now())
    }
    this.client._settled()
  }

  setPeriod (ms) {
    // Only a tier waiting for its periodic announce moves: one backing off
    // keeps its retry time, one in flight gets the tracker's interval.
    if (!this.active || this.event !== null || (this._intervalQueue !== null && this.timerEvent !== 'none')) return
    if (ms > 0) this.schedule('none', ms)
    else this.clearTimer()
  }

  /**
   * destroy(): cancels the timer and the job, except a `stopped` with
   * requests out, which may finish (true; no other tracker is tried).
   */
  destroying () {
    this.clearTimer()
    if (this.event === 'stopped' && this.stopOut()) return true
    this.abortJob()
    return false
  }
}

// A tier of one tracker, and that tracker (TrackerState's fields, but for its
// first wait: a tier of one has no next tracker to ask): one object per
// entry of a flat list, the common case.
class SoloTier extends TierBase {
  /** `site`: the tracker's { url, target }. */
  constructor (client, site) {
    super(client)
    this.url = site.url
    this.target = site.target
    this.failures = 0
    this.retryAt = 0
    this.disabled = false
    this.id = 0 // the job's request (the engine's id), 0 for none
  }

  /** The tier's trackers: itself (as a Tier's list, for scrape()). */
  get trackers () {
    return [this]
  }

  /** The tracker's tier: itself. */
  get tier () {
    return this
  }

  /** Announces `event` with `params`: a new job replacing the one in flight. */
  announce (event, params) {
    if (this.event !== null) event = this.replaceJob(event)
    if (this._intervalQueue !== null) this.clearTimer()
    const client = this.client
    if (this.disabled || (this.retryAt !== 0 && this.retryAt > client._policy.timers.now())) {
      this.waitForRetry(event)
      return
    }
    this.event = event
    this.params = params
    this.id = this.send(this.target)
  }

  nextRetryAt () {
    return this.disabled ? Infinity : this.retryAt
  }

  /** The engine's owner: request `id` is over, answered (`message` null) or failed. */
  _done (id, message, code, result) {
    if (id !== this.id) return
    this.id = 0
    const event = this.event
    if (event === null) return
    if (message !== null) {
      this.trackerFailed(this, message, code)
      this.failed()
      return
    }
    this.endJob()
    this.answered(this, event, result)
  }

  /** For destroying(): whether the job's request is out. */
  stopOut () {
    return this.id !== 0
  }

  abortJob () {
    if (this.event === null) return
    if (this.id !== 0) transport.cancel(this.id)
    this.id = 0
    this.endJob()
  }

  endJob () {
    this.event = null
    this.params = null
  }
}

// A tier of several trackers: they are tried in order (the job's `order`, a
// snapshot), the next one started when the current one's first wait passes
// unanswered (the earlier requests go on); the first answer wins and the
// others are cancelled.
class Tier extends TierBase {
  /** `sites`: the tier's { url, target }, shuffled here once (BEP 12). */
  constructor (client, sites) {
    super(client)
    const trackers = new Array(sites.length)
    for (let i = 0; i < sites.length; i++) trackers[i] = new TrackerState(this, sites[i].url, sites[i].target)
    shuffle(trackers, client._policy.random)
    this.trackers = trackers
    // The job's trackers and how far it got.
    this.order = NONE
    this.next = 0
    this.inFlight = 0
  }

  /** Announces `event` with `params`: a new job replacing the one in flight. */
  announce (event, params) {
    if (this.event !== null) event = this.replaceJob(event)
    if (this._intervalQueue !== null) this.clearTimer()
    const order = this.readyTrackers()
    if (order.length === 0) {
      this.waitForRetry(event)
      return
    }
    this.event = event
    this.params = params
    this.order = order
    this.next = 0
    this.inFlight = 0
    this.tryNext()
  }

  /** The trackers that may be asked now, in tier order (a snapshot). */
  readyTrackers () {
    const now = this.client._policy.timers.now()
    return this.trackers.filter((t) => !t.disabled && t.retryAt <= now)
  }

  /** When the first tracker still in use may be asked again (Infinity: none is). */
  nextRetryAt () {
    let at = Infinity
    for (const t of this.trackers) if (!t.disabled && t.retryAt < at) at = t.retryAt
    return at
  }

  /** Asks the job's next tracker, if any; when none is left and none is out, the job failed. */
  tryNext () {
    if (this.event === null) return
    if (this.client.destroyed || this.next >= this.order.length) {
      if (this.inFlight === 0) this.failed()
      return
    }
    this.inFlight++
    const tracker = this.order[this.next++]
    const client = this.client
    // The next tracker of the tier is asked when this one's first wait passes
    // unanswered. The engine does not report a request's first resend, so
    // this is a timer, on the Clients' shared wheel.
    if (this.next < this.order.length) client._policy.timers.start(tracker, 2 * tracker.target.timeoutMs)
    tracker.id = this.send(tracker.target)
  }

  /** The engine's owner of the job's requests: request `id` is over, answered (`message` null) or failed. */
  _done (id, message, code, result) {
    const order = this.order
    let i = 0
    while (i < this.next && order[i].id !== id) i++
    if (i === this.next) return
    const tracker = order[i]
    tracker.id = 0
    tracker.clearFirstWait()
    const event = this.event
    if (message !== null) {
      this.inFlight--
      this.trackerFailed(tracker, message, code)
      this.tryNext()
      return
    }
    // The other requests of the job are cancelled (the one answered is done).
    this.abortJob()
    // BEP 12: a tracker that answered moves to the front of its tier.
    const trackers = this.trackers
    if (trackers[0] !== tracker) trackers.unshift(...trackers.splice(trackers.indexOf(tracker), 1))
    this.answered(tracker, event, result)
  }

  /** For destroying(): whether requests of the job are out; their first waits end (no other tracker is asked). */
  stopOut () {
    if (this.inFlight === 0) return false
    for (let i = 0; i < this.next; i++) this.order[i].clearFirstWait()
    return true
  }

  abortJob () {
    if (this.event === null) return
    for (let i = 0; i < this.next; i++) this.order[i].cancel()
    this.endJob()
  }

  endJob () {
    this.event = null
    this.params = null
    this.order = NONE
    this.next = 0
    this.inFlight = 0
  }
}

// One scrape of one tracker (the engine sends its hashes in packets the
// tracker answers): the engine's owner, told of its outcome.
class ScrapeRequest {
  constructor (client, tracker, hashes) {
    this.client = client
    this.tracker = tracker
    this.hashes = hashes
    this.id = 0
  }

  _done (id, message, code, result) {
    const client = this.client
    if (client._scrapes !== null) client._scrapes.delete(this)
    if (!client.destroyed) {
      const url = this.tracker.url
      if (message !== null) {
        client._warn(trackerWarning(message, code, url))
      } else {
        for (let i = 0; i < this.hashes.length; i++) {
          if (client.destroyed) break
          const counts = result[i]
          client.emit('scrape', {
            announce: url,
            infoHash: this.hashes[i].toString('hex'),
            complete: counts.complete,
            downloaded: counts.downloaded,
            incomplete: counts.incomplete
          })
        }
      }
    }
    client._settled()
  }
}

/**
 * The Client's tiers of `tiers` (lists of { url, target }); with
 * `allTrackers`, each tier is shuffled once, then every tracker is a tier of its own.
 */
function tiersOf (client, tiers, allTrackers) {
  if (allTrackers) {
    const result = []
    for (const sites of tiers) {
      const order = sites.length > 1 ? shuffle(sites.slice(), client._policy.random) : sites
      for (const site of order) result.push(new SoloTier(client, site))
    }
    return result
  }
  const result = new Array(tiers.length)
  for (let i = 0, n = tiers.length; i < n; i++) {
    const sites = tiers[i]
    result[i] = sites.length === 1 ? new SoloTier(client, sites[0]) : new Tier(client, sites)
  }
  return result
}

// Test hooks (a clock { now, setTimeout, clearTimeout } and random()) and the
// re-announce floor, with the Client's timers on that clock (lib/backoff.js):
// one object shared by every Client with the defaults.
const DEFAULT_POLICY = Object.freeze({
  clock: null,
  timers: backoff.realTimers,
  random: Math.random,
  minIntervalMs: backoff.MIN_INTERVAL_MS
})

function policyOf (opts) {
  const clock = opts._clock || null
  const random = opts._random || Math.random
  const minIntervalMs = msOption(opts.minInterval, 'opts.minInterval', backoff.MIN_INTERVAL_MS)
  if (clock === null && random === Math.random && minIntervalMs === backoff.MIN_INTERVAL_MS) return DEFAULT_POLICY
  return Object.freeze({ clock, timers: clock === null ? backoff.realTimers : backoff.timersOn(clock), random, minIntervalMs })
}

/** bittorrent-tracker's checks and messages, then the port's range. */
function checkRequired (opts) {
  if (opts === undefined || opts === null || typeof opts !== 'object') throw new TypeError('opts must be an object')
  if (!opts.peerId) throw new Error('Option `peerId` is required')
  if (!opts.infoHash) throw new Error('Option `infoHash` is required')
  if (!opts.announce) throw new Error('Option `announce` is required')
  if (!opts.port) throw new Error('Option `port` is required')
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
    throw new RangeError(`opts.port must be an integer from 1 to 65535, got ${String(opts.port)}`)
  }
  if (opts.getAnnounceOpts !== undefined && opts.getAnnounceOpts !== null && typeof opts.getAnnounceOpts !== 'function') {
    throw new TypeError('opts.getAnnounceOpts must be a function')
  }
}

// The checked request options of Clients given no UdpTracker option (most
// of them), by port; each such Client takes a copy of `fields` with a key of
// its own.
const plainSetups = new Map()
const SETUPS_KEPT = 64

/**
 * UdpTracker's options for every request of a Client, checked: { fields,
 * targets, trackerOpts, plain, lists } (see `resolveList` for `lists`).
 */
function requestSetup (opts) {
  let plain = true
  for (let i = 0; i < TRACKER_OPTIONS.length && plain; i++) plain = opts[TRACKER_OPTIONS[i]] === undefined
  let setup = plain ? plainSetups.get(opts.port) : undefined
  if (setup === undefined) {
    // numWant as bittorrent-tracker's default.
    const trackerOpts = { port: opts.port, maxAttempts: DEFAULT_MAX_ATTEMPTS, numWant: DEFAULT_NUMWANT }
    for (const name of TRACKER_OPTIONS) {
      if (opts[name] !== undefined && opts[name] !== null) trackerOpts[name] = opts[name]
    }
    // The engine's checks: a bad option is a TypeError or RangeError naming it.
    const { fields, targets } = transport.checkOptions(trackerOpts)
    setup = { fields, targets, trackerOpts, plain, lists: new Map() }
    if (plain) {
      if (plainSetups.size >= SETUPS_KEPT) plainSetups.clear()
      plainSetups.set(opts.port, setup)
    }
  }
  return setup
}

/** The announce fields of a new Client: a random key, one per torrent, unless the options give one. */
function announceFields (setup) {
  const fields = setup.fields
  if (!setup.plain) return fields // checked for this Client alone
  return { port: fields.port, numWant: fields.numWant, key: transport.randomKey(), ip: fields.ip }
}

const LISTS_KEPT = 256

/**
 * The tiers of an announce list (lib/tiers.js) with each URL's target for
 * `setup`: { tiers: lists of { url, target }, refused: the warning texts of
 * the URLs the engine refuses (a host or path too long) }. Kept per setup
 * and list: Clients with the same options and list share it.
 */
function resolveList (list, setup) {
  let resolved = setup.lists.get(list)
  if (resolved !== undefined) return resolved
  const tiers = []
  const refused = []
  for (const urls of list.tiers) {
    const sites = []
    for (const url of urls) {
      try {
        sites.push(Object.freeze({ url, target: transport.trackerTarget(url, setup.trackerOpts, setup.targets) }))
      } catch (err) {
        refused.push(`${err.message} (${url})`)
      }
    }
    if (sites.length > 0) tiers.push(Object.freeze(sites))
  }
  resolved = Object.freeze({ tiers: Object.freeze(tiers), refused: Object.freeze(refused) })
  if (setup.lists.size >= LISTS_KEPT) setup.lists.clear()
  setup.lists.set(list, resolved)
  return resolved
}

// The constructor's parts. A function run once per Client is compiled by V8
// only when it runs a lot of bytecode, and a burst of 1,000 Clients would
// not repay compiling the constructor with all it calls inlined: so it is
// kept short.

/**
 * bittorrent-tracker's checks, then the Client's ids as the engine's
 * announces write them (lib/engine.js's storeIds: the Client is the `ids` of
 * its announces); `peerId` and `infoHash` are made from them when read.
 */
function setIds (client, opts) {
  checkRequired(opts)
  const peerId = idView(opts.peerId, 'opts.peerId')
  const infoHash = idView(opts.infoHash, 'opts.infoHash')
  transport.storeIds(client, infoHash, peerId)
}

/**
 * The tiers of a new Client (`tiersOf` its list); the list's entries that
 * cannot be used are warnings, after the constructor returns.
 */
function clientTiers (client, opts, setup) {
  const list = announceList(opts.announce)
  const sites = resolveList(list, setup)
  if (list.problems.length > 0 || sites.refused.length > 0) client._warnAll(list.problems.concat(sites.refused))
  return tiersOf(client, sites.tiers, opts.announceToAllTrackers === true)
}

function ownField (object, name, value) {
  Object.defineProperty(object, name, { value, writable: true, enumerable: true, configurable: true })
}

class Client extends EventEmitter {
  constructor (opts) {
    super()
    // (Named here, so that V8 makes room for them in the instance itself.)
    this._id0 = this._id1 = this._id2 = this._id3 = this._id4 = 0
    this._id5 = this._id6 = this._id7 = this._id8 = this._id9 = 0
    setIds(this, opts)
    this._port = opts.port
    this._getAnnounceOpts = opts.getAnnounceOpts || null
    this.destroyed = false

    this._policy = policyOf(opts)
    const setup = requestSetup(opts)
    this._fields = announceFields(setup)
    this._tiers = clientTiers(this, opts, setup)
    this._scrapes = null // a Set of the ScrapeRequests in flight, from the first scrape()
    this._onSettled = null
  }

  /**
   * bittorrent-tracker's `peerId` and `infoHash`: hex strings (the info hash
   * lower-case), made when read from the ids the announces send. Assigned,
   * they are the instance's own values (the announces keep theirs, as in
   * bittorrent-tracker, which reads them only when constructed).
   */
  get peerId () {
    return transport.storedId(this, 'peerId').toString('hex')
  }

  set peerId (value) {
    ownField(this, 'peerId', value)
  }

  get infoHash () {
    return transport.storedId(this, 'infoHash').toString('hex')
  }

  set infoHash (value) {
    ownField(this, 'infoHash', value)
  }

  /** The info hash's bytes: a new Buffer, made from the ids the announces send. */
  get _infoHashBuffer () {
    return transport.storedId(this, 'infoHash')
  }

  /** The clock given as `opts._clock` (a test hook), or null. */
  get _clock () {
    return this._policy.clock
  }

  /** Announces `started` to every tier, then re-announces every interval. */
  start (opts) {
    this._announce('started', opts)
  }

  /** Announces `stopped`; the tiers stop re-announcing. */
  stop (opts) {
    this._announce('stopped', opts)
  }

  /** Announces `completed`. */
  complete (opts) {
    this._announce('completed', opts)
  }

  /** Announces with no event (a re-announce with new counters). */
  update (opts) {
    this._announce('none', opts)
  }

  /**
   * Asks every tracker for the swarm counts: one `scrape` event per tracker
   * and info hash. `opts.infoHash`: a hash or a list of them (default: this torrent's).
   */
  scrape (opts) {
    if (this.destroyed) return
    const wanted = opts && opts.infoHash !== undefined && opts.infoHash !== null ? opts.infoHash : this._infoHashBuffer
    const hashes = (Array.isArray(wanted) ? wanted : [wanted]).map((h, i) => idBytes(h, `opts.infoHash[${i}]`))
    for (const tier of this._tiers) {
      for (const tracker of tier.trackers) {
        if (tracker.disabled) continue
        const size = transport.SCRAPE_HASHES_PER_REQUEST
        for (let at = 0; at < hashes.length; at += size) {
          const request = new ScrapeRequest(this, tracker, hashes.length <= size ? hashes : hashes.slice(at, at + size))
          request.id = transport.scrape(request, tracker.target, request.hashes)
          if (this._scrapes === null) this._scrapes = new Set()
          this._scrapes.add(request)
        }
      }
    }
  }

  /**
   * Sets the re-announce period of every tier to `intervalMs` from now (0:
   * none; not given: 30 min) until a tracker's next answer brings its own interval.
   */
  setInterval (intervalMs) {
    const ms = msOption(intervalMs, 'intervalMs', backoff.DEFAULT_INTERVAL_MS)
    for (const tier of this._tiers) tier.setPeriod(ms)
  }

  /**
   * Stops every timer and request; a `stopped` announce already sent may
   * finish for up to 1 s. `cb` is called once that is done; no event follows.
   */
  destroy (cb) {
    if (cb !== undefined && cb !== null && typeof cb !== 'function') throw new TypeError('cb must be a function')
    if (this.destroyed) {
      // bittorrent-tracker never calls a second destroy()'s callback.
      if (cb) process.nextTick(cb, null)
      return
    }
    this.destroyed = true
    this._getAnnounceOpts = null
    if (this._scrapes !== null) for (const request of this._scrapes) transport.cancel(request.id)
    this._scrapes = null
    let stopping = null
    for (const tier of this._tiers) {
      if (!tier.destroying()) continue
      if (stopping === null) stopping = []
      stopping.push(tier)
    }
    if (stopping !== null) this._finishStopping(stopping, cb)
    else if (cb) process.nextTick(cb, null)
  }

  /** destroy(): `cb` once the `stopped` announces of `stopping` (tiers) are done, or after 1 s. */
  _finishStopping (stopping, cb) {
    const finish = () => {
      if (this._onSettled === null) return
      this._onSettled = null
      clearTimeout(timer)
      for (const tier of stopping) tier.abortJob()
      if (cb) cb(null)
    }
    const timer = setTimeout(finish, DESTROY_TIMEOUT_MS)
    this._onSettled = () => {
      if (stopping.every((tier) => tier.event === null)) finish()
    }
  }

  // bittorrent-tracker's _defaultAnnounceOpts, as { counters, fields } for the engine.
  _announceParams (opts) {
    let o = opts
    if (this._getAnnounceOpts) o = Object.assign({}, opts, this._getAnnounceOpts())
    else if (o === undefined || o === null) o = {}
    const counters = {
      uploaded: counter(o.uploaded, 'opts.uploaded', 0),
      downloaded: counter(o.downloaded, 'opts.downloaded', 0),
      // Not given is "unknown" (2^64-1), as bittorrent-tracker sends; 0 means a seeder.
      left: counter(o.left, 'opts.left', U64_MAX)
    }
    let fields = this._fields
    if (o.numwant !== undefined && o.numwant !== null && o.numwant !== fields.numWant) {
      fields = Object.assign({}, fields, { numWant: numwant(o.numwant, 'opts.numwant') })
    }
    return { counters, fields }
  }

  _announce (event, opts) {
    if (this.destroyed) return
    if (opts !== undefined && opts !== null && typeof opts !== 'object') throw new TypeError('opts must be an object')
    const params = this._announceParams(opts)
    // An index, not for-of: this runs once per Client and start(), too few
    // times for V8 to compile it; an iterator would be its bulk.
    const tiers = this._tiers
    for (let i = 0, n = tiers.length; i < n; i++) tiers[i].announce(event, params)
  }

  _announceFromTimer (tier, event) {
    if (this.destroyed) return
    let params
    try {
      params = this._announceParams(undefined)
    } catch (err) {
      // getAnnounceOpts() threw or gave bad counters: nothing can be announced.
      this.emit('error', err)
      return
    }
    tier.announce(event, params)
  }

  _warnAll (problems) {
    for (const problem of problems) this._warn(new Error(problem))
  }

  _warn (err) {
    process.nextTick(() => {
      if (!this.destroyed) this.emit('warning', err)
    })
  }

  _settled () {
    if (this._onSettled !== null) this._onSettled()
  }
}

/**
 * Scrapes one tracker for one info hash or a list of them without a Client
 * of one's own: `cb(err, data)`, `data` the `scrape` payload for one hash or
 * an object of them keyed by hex info hash. Returns the Client it uses.
 */
Client.scrape = function scrape (opts, cb) {
  if (opts === undefined || opts === null || typeof opts !== 'object') throw new TypeError('opts must be an object')
  if (typeof cb !== 'function') throw new TypeError('cb must be a function')
  if (!opts.infoHash) throw new Error('Option `infoHash` is required')
  if (!opts.announce) throw new Error('Option `announce` is required')
  const hashes = Array.isArray(opts.infoHash) ? opts.infoHash : [opts.infoHash]
  const client = new Client(Object.assign({}, opts, {
    infoHash: hashes[0],
    peerId: Buffer.from('01234567890123456789'), // dummy values, as bittorrent-tracker
    port: 6881
  }))
  const wanted = new Set(hashes.map((h, i) => idBytes(h, `opts.infoHash[${i}]`).toString('hex')))
  const results = {}
  let called = false
  const done = (err, data) => {
    if (called) return
    called = true
    client.destroy()
    cb(err, data)
  }
  client.once('error', (err) => done(err))
  client.once('warning', (err) => done(err))
  client.on('scrape', (data) => {
    if (!wanted.has(data.infoHash) || results[data.infoHash] !== undefined) return
    results[data.infoHash] = data
    if (Object.keys(results).length === wanted.size) done(null, wanted.size === 1 ? data : results)
  })
  client.scrape({ infoHash: hashes })
  return client
}

// One Client with a tier of one tracker and one with a tier of two, made as
// this module loads and never used (lib/shapes.js).
{
  const opts = { infoHash: Buffer.alloc(20), peerId: Buffer.alloc(20), port: 1 }
  const solo = new Client({ ...opts, announce: ['udp://127.0.0.1:1'] })
  const tiered = new Client({ ...opts, announce: [['udp://127.0.0.1:1', 'udp://127.0.0.1:2']] })
  keepShapes(solo, tiered, ...solo._tiers, ...tiered._tiers, ...tiered._tiers[0].trackers)
  solo.destroy()
  tiered.destroy()
}

module.exports = { Client, NOT_REGISTERED }
