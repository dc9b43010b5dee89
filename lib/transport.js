'use strict'

// The Client's requests, on the engine's one request path (lib/engine.js)
// and its shared native targets (lib/target.js), as the class and the promise
// API use them: no UdpTracker, no EventEmitter and no timer per request. An
// owner is any object with `_done(id, message, code, result)`; a request is
// its id, and cancelling it is one Map deletion (one napi call once sent).
// Every Client shares connection ids (scope 0, as the promise API).

const engine = require('./engine.js')
const { targetFor } = require('./target.js')
const { EVENTS, LIMITS, checkAnnounceFields, checkRequestOptions, randomKey } = require('./validate.js')

const SHARED_SCOPE = 0

// Targets by request options, then by URL: thousands of torrents share a few
// trackers and options, and targetFor builds a key string per call.
const targetCaches = new Map()
const CACHES_KEPT = 64
const TARGETS_KEPT = 1024
const CACHED_BY = ['family', 'timeoutMs', 'maxAttempts', 'strictSource', 'reuseConnectionId']

/**
 * Checks `opts` (UdpTracker's option names; TypeError or RangeError naming
 * the option, as UdpTracker throws) and returns { fields, targets }: the
 * announce fields ({ port, numWant, key, ip }) and the cache of targets for
 * these request options, for `trackerTarget`.
 */
function checkOptions (opts) {
  const request = checkRequestOptions(opts, 'opts')
  const fields = checkAnnounceFields(opts, 'opts')
  // Only targets defined by these fields are cached here; with any other
  // option (libtorrent's extensions hold a password) targetFor decides.
  for (const name in request) {
    if (request[name] !== undefined && !CACHED_BY.includes(name)) return { fields, targets: null }
  }
  const key = CACHED_BY.map((name) => request[name]).join(' ')
  let targets = targetCaches.get(key)
  if (targets === undefined) {
    if (targetCaches.size >= CACHES_KEPT) targetCaches.clear()
    targets = new Map()
    targetCaches.set(key, targets)
  }
  return { fields, targets }
}

/** The target for `url` with `opts`, whose `targets` checkOptions gave; throws as targetFor. */
function trackerTarget (url, opts, targets) {
  if (targets === null) return targetFor(url, opts, 'opts')
  let target = targets.get(url)
  if (target === undefined) {
    target = targetFor(url, opts, 'opts')
    if (targets.size >= TARGETS_KEPT) targets.clear()
    targets.set(url, target)
  }
  return target
}

/**
 * Announces for `owner`: `announce(owner, target, SHARED_SCOPE, ids, fields,
 * key, downloaded, left, uploaded, EVENTS[event])`, with `ids` an object
 * `storeIds(ids, infoHash, peerId)` gave its ids (the Client), `fields` ({
 * port, numWant, ip }), `key` and the counters (numbers or BigInts), all
 * checked; returns the request's id. `owner._done` hears of it, never inside
 * this call. The engine's own functions: a wrapper here would be one more
 * function for V8 to compile in every process.
 */
const announce = engine.announce
const storeIds = engine.storeIds
const storedId = engine.storedId

/**
 * Scrapes `hashes` (Buffers, at most SCRAPE_HASHES_PER_REQUEST; the engine
 * sends them in packets the tracker answers) for `owner`; returns the request's id.
 */
function scrape (owner, target, hashes) {
  return engine.startScrape(owner, target, SHARED_SCOPE, hashes)
}

/** Cancels request `id` (0: none); its owner hears nothing more. */
function cancel (id) {
  engine.cancel(id)
}

module.exports = {
  SCRAPE_HASHES_PER_REQUEST: LIMITS.scrapeHashesPerRequest,
  checkOptions,
  trackerTarget,
  randomKey, // one per torrent (BEP 15's `key`), from lib/validate.js's pool
  SHARED_SCOPE,
  EVENTS,
  announce,
  storeIds,
  storedId,
  scrape,
  cancel
}
