'use strict'

// A torrent's whole announce list, with bittorrent-tracker 11's Client API
// (udp:// trackers only), on this package's public API (lib/transport.js):
// BEP 12 tiers, a per-tracker failure backoff, interval floors and jitter.
// Every Client of a process shares the engine, its sockets, connection ids and
// DNS look-ups.

const { EventEmitter } = require('events')
const { randomInt } = require('crypto')
const backoff = require('./backoff.js')
const { parseAnnounceList } = require('./tiers.js')
const transport = require('./transport.js')

const DEFAULT_NUMWANT = 50 // bittorrent-tracker's DEFAULT_ANNOUNCE_PEERS
// A Client gives up on one request after two sends per phase (waits of 2 and
// 4 × _timeout: 90 s with the default 15 s); the tier has moved on long before.
const DEFAULT_MAX_ATTEMPTS = 2
const DEFAULT_TIMEOUT_MS = 15000
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

/** An Error for `warning`: the message names the tracker; `code` kept from the engine. */
function trackerWarning (err, url) {
  const warning = new Error(`${err && err.message ? err.message : String(err)} (${url})`)
  if (err && err.code !== undefined) warning.code = err.code
  warning.announce = url
  return warning
}

// One tracker of a tier: its failure count, when it may be tried again, and
// whether it refused this torrent for good.
class TrackerState {
  constructor (url) {
    this.url = url
    this.failures = 0
    this.retryAt = 0
    this.disabled = false
  }
}

// One request of a job, to one tracker: told of its outcome by the transport.
class Request {
  constructor (tier, job, tracker) {
    this.tier = tier
    this.job = job
    this.tracker = tracker
    this.firstWait = null
    this.handle = null
  }

  onFirstWait () {
    this.firstWait = null
    this.tier.tryNext(this.job)
  }

  onAnswer (reply) {
    this.tier.answered(this.job, this, reply)
  }

  onFailure (err) {
    this.tier.refused(this.job, this, err)
  }
}

// One announce of a tier: its trackers are tried in order, the next one
// started when the current one's first wait passes unanswered (the earlier
// requests go on); the first answer wins and the others are aborted.
class Job {
  constructor (tier, event, params, order) {
    this.tier = tier
    this.event = event
    this.params = params
    this.order = order
    this.next = 0
    this.requests = [] // in flight
    this.done = false
  }
}

class Tier {
  constructor (client, urls) {
    this.client = client
    this.trackers = urls.map((url) => new TrackerState(url))
    this.job = null
    this.timer = null
    this.timerEvent = null // what the timer announces when it fires
    this.active = false // re-announcing periodically (after a success that was not `stopped`)
  }

  clearTimer () {
    if (this.timer !== null) this.client._clock.clearTimeout(this.timer)
    this.timer = null
    this.timerEvent = null
  }

  schedule (event, delayMs) {
    this.clearTimer()
    this.timerEvent = event
    this.timer = this.client._clock.setTimeout(() => {
      this.timer = null
      this.timerEvent = null
      this.client._announceFromTimer(this, event)
    }, Math.max(0, delayMs))
  }

  /** Announces `event` with `params`: a new job replacing the one in flight. */
  announce (event, params) {
    const client = this.client
    if (this.job !== null) {
      // A periodic or `update` announce does not replace a `started` or
      // `completed` the tracker has not confirmed yet: it is sent again.
      if (event === 'none' && (this.job.event === 'started' || this.job.event === 'completed')) event = this.job.event
      this.abortJob()
    }
    this.clearTimer()
    const now = client._clock.now()
    const ready = this.readyTrackers(now)
    if (ready.length === 0) {
      // Every tracker of the tier is backing off: announce when the first may.
      const at = this.nextRetryAt()
      if (at !== Infinity && event !== 'stopped') this.schedule(event, at - now)
      return
    }
    this.job = new Job(this, event, params, ready)
    this.tryNext(this.job)
  }

  /** The trackers that may be asked now, in tier order (a snapshot). */
  readyTrackers (now) {
    const all = this.trackers
    // A one-tracker tier is never reordered: its list is its own snapshot.
    if (all.length === 1) return all[0].disabled || all[0].retryAt > now ? NONE : all
    return all.filter((t) => !t.disabled && t.retryAt <= now)
  }

  /** When the first tracker still in use may be asked again (Infinity: none is). */
  nextRetryAt () {
    let at = Infinity
    for (const t of this.trackers) if (!t.disabled && t.retryAt < at) at = t.retryAt
    return at
  }

  tryNext (job) {
    if (job.done) return
    if (this.client.destroyed || job.next >= job.order.length) {
      if (job.requests.length === 0) this.failed(job)
      return
    }
    const client = this.client
    const request = new Request(this, job, job.order[job.next++])
    job.requests.push(request)
    // The next tracker of the tier is asked when this one's first wait passes
    // unanswered (a tier of one has no next).
    if (job.next < job.order.length) request.firstWait = client._clock.setTimeout(() => request.onFirstWait(), client._firstWaitMs)
    request.handle = transport.announce(request.tracker.url, client._peerIdBuffer, client._infoHashBuffer,
      job.params.trackerOpts, job.event, job.params.counters, request)
  }

  endRequest (job, request) {
    const at = job.requests.indexOf(request)
    if (at !== -1) job.requests.splice(at, 1)
    if (request.firstWait !== null) this.client._clock.clearTimeout(request.firstWait)
    request.firstWait = null
  }

  abortJob () {
    const job = this.job
    this.job = null
    if (job === null) return
    job.done = true
    const requests = job.requests
    while (requests.length > 0) {
      const request = requests.pop()
      if (request.firstWait !== null) this.client._clock.clearTimeout(request.firstWait)
      request.firstWait = null
      request.handle.destroy()
    }
  }

  answered (job, request, result) {
    if (job.done) return
    this.endRequest(job, request)
    this.abortJob()
    const client = this.client
    const tracker = request.tracker
    tracker.failures = 0
    tracker.retryAt = 0
    // BEP 12: a tracker that answered moves to the front of its tier.
    const at = this.trackers.indexOf(tracker)
    if (at > 0) this.trackers.unshift(...this.trackers.splice(at, 1))
    if (job.event === 'stopped') {
      this.active = false
    } else {
      // The tracker's interval is applied before `update` is emitted, so a
      // setInterval() called from an `update` listener wins.
      this.active = true
      const period = backoff.trackerPeriod(result.interval, client._minIntervalMs)
      this.schedule('none', backoff.reannounceDelay(period, client._random))
    }
    client._emitAnnounce(tracker.url, result)
    client._settled()
  }

  refused (job, request, err) {
    if (job.done) return
    this.endRequest(job, request)
    const client = this.client
    const tracker = request.tracker
    const message = err && err.message ? err.message : String(err)
    if (err.code === undefined && !(err instanceof TypeError) && NOT_REGISTERED.test(message)) {
      tracker.disabled = true
      client._warn(trackerWarning(err, tracker.url))
    } else if (err instanceof TypeError || err instanceof RangeError) {
      // The engine refused the URL or an option: this tracker cannot be used.
      tracker.disabled = true
      client._warn(trackerWarning(err, tracker.url))
    } else {
      tracker.failures++
      tracker.retryAt = client._clock.now() + backoff.retryDelay(tracker.failures, client._random)
      // As bittorrent-tracker: a `stopped` that times out is not worth a warning.
      if (!(job.event === 'stopped' && err && err.code === 'ERR_TRACKER_TIMEOUT')) client._warn(trackerWarning(err, tracker.url))
    }
    this.tryNext(job)
  }

  /** Every tracker tried failed: announce again when the first one may. */
  failed (job) {
    job.done = true
    this.job = null
    const at = this.nextRetryAt()
    if (at !== Infinity && job.event !== 'stopped' && !this.client.destroyed) {
      this.schedule(job.event, at - this.client._clock.now())
    }
    this.client._settled()
  }

  setPeriod (ms) {
    // Only a tier waiting for its periodic announce moves: one backing off
    // keeps its retry time, one in flight gets the tracker's interval.
    if (!this.active || this.job !== null || (this.timer !== null && this.timerEvent !== 'none')) return
    if (ms > 0) this.schedule('none', ms)
    else this.clearTimer()
  }
}

class Client extends EventEmitter {
  constructor (opts) {
    super()
    if (opts === undefined || opts === null || typeof opts !== 'object') throw new TypeError('opts must be an object')
    // bittorrent-tracker's checks and messages.
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
    const peerId = idBytes(opts.peerId, 'opts.peerId')
    const infoHash = idBytes(opts.infoHash, 'opts.infoHash')
    // As bittorrent-tracker: hex strings, the info hash lower-case.
    this.peerId = peerId.toString('hex')
    this.infoHash = infoHash.toString('hex')
    this._peerIdBuffer = peerId
    this._infoHashBuffer = infoHash
    this._port = opts.port
    this._getAnnounceOpts = opts.getAnnounceOpts || null
    this.destroyed = false

    // Test hooks: a clock { now, setTimeout, clearTimeout } and random().
    this._clock = opts._clock || backoff.realClock
    this._random = opts._random || Math.random
    this._minIntervalMs = msOption(opts.minInterval, 'opts.minInterval', backoff.MIN_INTERVAL_MS)

    // UdpTracker's options for every request; numWant as bittorrent-tracker's default.
    const trackerOpts = { port: opts.port, maxAttempts: DEFAULT_MAX_ATTEMPTS, numWant: DEFAULT_NUMWANT }
    let userOptions = false
    for (const name of TRACKER_OPTIONS) {
      if (opts[name] !== undefined && opts[name] !== null) {
        trackerOpts[name] = opts[name]
        userOptions = true
      }
    }
    // One announce key per torrent, the same for every tracker and announce.
    if (trackerOpts.key === undefined) trackerOpts.key = randomInt(0, 2 ** 32)
    // The engine's checks: a bad option is a TypeError or RangeError naming it, from here.
    if (userOptions) transport.checkOptions(peerId, infoHash, trackerOpts)
    this._trackerOpts = trackerOpts
    this._firstWaitMs = 2 * (typeof trackerOpts._timeout === 'number' ? trackerOpts._timeout : DEFAULT_TIMEOUT_MS)

    const { tiers, problems } = parseAnnounceList(opts.announce, {
      random: this._random,
      allTrackers: opts.announceToAllTrackers === true
    })
    this._tiers = tiers.map((urls) => new Tier(this, urls))
    this._scrapes = new Set() // AbortControllers of scrapes in flight
    this._onSettled = null
    for (const problem of problems) this._warn(new Error(problem))
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
        const controller = new AbortController()
        this._scrapes.add(controller)
        transport.scrape(tracker.url, hashes, this._trackerOpts, controller.signal).then((result) => {
          this._scrapes.delete(controller)
          if (this.destroyed) return
          for (const hash of hashes) {
            const hex = hash.toString('hex')
            const counts = result[hex]
            this.emit('scrape', {
              announce: tracker.url,
              infoHash: hex,
              complete: counts.complete,
              downloaded: counts.downloaded,
              incomplete: counts.incomplete
            })
          }
        }, (err) => {
          this._scrapes.delete(controller)
          if (!this.destroyed && !(err && err.code === 'ERR_ABORTED')) this._warn(trackerWarning(err, tracker.url))
        }).finally(() => this._settled())
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
    for (const controller of this._scrapes) controller.abort()
    this._scrapes.clear()
    const stopping = []
    for (const tier of this._tiers) {
      tier.clearTimer()
      const job = tier.job
      if (job !== null && job.event === 'stopped' && job.requests.length > 0) {
        // No other tracker is tried; the requests out may finish.
        for (const request of job.requests) {
          if (request.firstWait !== null) this._clock.clearTimeout(request.firstWait)
          request.firstWait = null
        }
        stopping.push(tier)
      } else {
        tier.abortJob()
      }
    }
    const finish = () => {
      if (this._onSettled === null) return
      this._onSettled = null
      clearTimeout(timer)
      for (const tier of stopping) tier.abortJob()
      if (cb) cb(null)
    }
    const timer = setTimeout(finish, stopping.length > 0 ? DESTROY_TIMEOUT_MS : 0)
    this._onSettled = () => {
      if (stopping.every((tier) => tier.job === null)) finish()
    }
  }

  // bittorrent-tracker's _defaultAnnounceOpts, then the engine's names.
  // bittorrent-tracker's _defaultAnnounceOpts, as { counters, trackerOpts }.
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
    let trackerOpts = this._trackerOpts
    if (o.numwant !== undefined && o.numwant !== null && o.numwant !== trackerOpts.numWant) {
      trackerOpts = Object.assign({}, trackerOpts, { numWant: numwant(o.numwant, 'opts.numwant') })
    }
    return { counters, trackerOpts }
  }

  _announce (event, opts) {
    if (this.destroyed) return
    if (opts !== undefined && opts !== null && typeof opts !== 'object') throw new TypeError('opts must be an object')
    const params = this._announceParams(opts)
    for (const tier of this._tiers) tier.announce(event, params)
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

  _emitAnnounce (url, result) {
    if (this.destroyed) return
    this.emit('update', { announce: url, complete: result.seeds, incomplete: result.leechers })
    for (const peer of result.peers) {
      if (this.destroyed) return
      this.emit('peer', peer)
    }
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

module.exports = { Client, NOT_REGISTERED }
