'use strict'

// The promise API: announce once, scrape many info hashes. Requests go the
// same way as the class's (lib/engine.js), in the shared scope 0: every call
// may reuse a connection id another call obtained.

const engine = require('./engine.js')
const { targetFor } = require('./target.js')
const {
  EVENTS, LIMITS, toTwentyBytes, checkOptions, checkSignal, checkTimeout, checkCounters, checkEvent, checkAnnounceFields
} = require('./validate.js')

const SHARED_SCOPE = 0

function trackerError (message, code) {
  const err = new Error(message)
  err.code = code
  return err
}

function abortError (signal) {
  const err = trackerError('The operation was aborted', 'ERR_ABORTED')
  err.name = 'AbortError'
  if (signal.reason !== undefined) err.cause = signal.reason
  return err
}

/**
 * Requests run together: resolves with their results in order, or rejects on
 * the first failure, an abort or the overall timeout, cancelling the rest.
 */
class RequestGroup {
  constructor (count, signal, timeout, resolve, reject) {
    this.ids = []
    this.results = new Array(count)
    this.left = count
    this.settled = false
    this.signal = signal
    this.resolve = resolve
    this.reject = reject
    this.onAbort = () => this.settle(abortError(signal))
    this.timer = timeout === null
      ? null
      : setTimeout(() => this.settle(trackerError(`tracker is not responding after:${timeout}`, 'ERR_TRACKER_TIMEOUT')), timeout)
    if (signal !== null) signal.addEventListener('abort', this.onAbort, { once: true })
  }

  _done (id, message, code, result) {
    if (message !== null) return this.settle(trackerError(message, code))
    this.results[this.ids.indexOf(id)] = result
    if (--this.left === 0) this.settle(null)
  }

  settle (err) {
    if (this.settled) return
    this.settled = true
    for (const id of this.ids) engine.cancel(id)
    if (this.timer !== null) clearTimeout(this.timer)
    if (this.signal !== null) this.signal.removeEventListener('abort', this.onAbort)
    if (err) this.reject(err)
    else this.resolve(this.results)
  }
}

/**
 * Checks `options` ({ signal, timeout }), then runs `count` requests, each
 * started by `start(group)` in order (returning its id).
 */
function run (count, options, start) {
  const opts = checkOptions(options, 'options')
  const signal = checkSignal(opts.signal, 'options.signal')
  const timeout = opts.timeout === undefined || opts.timeout === null ? null : checkTimeout(opts.timeout, 'options.timeout')
  if (signal !== null && signal.aborted) return Promise.reject(abortError(signal))
  return new Promise((resolve, reject) => {
    const group = new RequestGroup(count, signal, timeout, resolve, reject)
    for (let i = 0; i < count; i++) group.ids.push(start(group, i))
  })
}

/**
 * Announces once: resolves to `{ leechers, seeds, peers, interval }`.
 * `params` holds `infoHash`, `peerId`, the event and counters and every
 * option of the class; `options` is `{ signal, timeout }`.
 */
function announce (announceUrl, params, options) {
  try {
    const p = checkOptions(params, 'params')
    const event = p.event === undefined || p.event === null ? EVENTS.none : checkEvent(p.event)
    if (event === null) throw new RangeError(`params.event must be 0-3 or none/completed/started/stopped, got ${String(p.event)}`)
    const fields = checkAnnounceFields(p, 'params')
    const infoHash = toTwentyBytes(p.infoHash, 'params.infoHash', true)
    const peerId = toTwentyBytes(p.peerId, 'params.peerId', false)
    const counters = checkCounters(p, 'params')
    const target = targetFor(announceUrl, p, 'params')
    return run(1, options, (group) => engine.startAnnounce(group, target, SHARED_SCOPE, infoHash, peerId, fields, counters, event))
      .then((results) => results[0])
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
    const target = targetFor(announceUrl, options, 'opts')
    // The engine splits each request into packets the tracker answers (74
    // hashes over IPv4, 60 over IPv6, fewer where a tracker answered fewer).
    const size = LIMITS.scrapeHashesPerRequest
    const batches = []
    for (let at = 0; at < hashes.length; at += size) batches.push(hashes.slice(at, at + size))
    return run(batches.length, options, (group, i) => engine.startScrape(group, target, SHARED_SCOPE, batches[i]))
      .then((results) => {
        const counts = {}
        batches.forEach((batch, b) => {
          batch.forEach((hash, i) => { counts[hash.toString('hex')] = results[b][i] })
        })
        return counts
      })
  } catch (err) {
    return Promise.reject(err)
  }
}

module.exports = { announce, scrape }
