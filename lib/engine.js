'use strict'

// The bridge to the Rust engine: one engine per JS realm, created on first
// use, with one UDP socket per address family for every request.
//
// Requests started during a tick are written into one buffer and handed to
// the engine in one call when the tick is over (setImmediate): one napi call
// per tick rather than per request, and a socket that the caller bound in
// the same tick (a mock tracker in a test) is listening before the first
// datagram leaves. Finished requests come back in batches of flat records
// (see src/binding.rs) and are handed to their owner's
// `_done(id, message, code, result)`: `message` and `code` on failure, else
// `result`, the announce result or the list of scrape counts.

const native = require('./native.js')
const { LIMITS } = require('./validate.js')

// The byte layout of a start record (src/binding.rs defines it).
const LAYOUT = native.startLayout()
const ERROR_CODES = native.errorCodes()
const DONE_ANNOUNCED = 0
const DONE_SCRAPED = 1
const DONE_FAILED = 2
const TWO_32 = 2 ** 32
const MAX_ID = 0xffffffff

let engine = null
let lastId = 0
const pending = new Map() // request id -> its owner
let keepAlive = null

// The tick's requests, not yet handed to the engine.
const BATCH_BYTES = 1 << 16
let batch = new Uint8Array(BATCH_BYTES)
let view = new DataView(batch.buffer)
let batchLength = 0
let batchTargets = [] // native targets, indexed by the records
const batchTargetIndex = new Map() // native target -> its index in batchTargets
const queued = new Map() // request id -> its record's offset in `batch`
let flushScheduled = false

function getEngine () {
  if (engine === null) engine = new native.Engine(onCompletions)
  return engine
}

/**
 * The id after `last` that no request in `inUse` holds: ids wrap from
 * 2^32 - 1 to 1 and never replace a live request.
 */
function nextFreeId (last, inUse) {
  let id = last
  do {
    id = id >= MAX_ID ? 1 : id + 1
  } while (inUse.has(id))
  return id
}

/** The result of an announce, as the `update` event and the promise API give it. */
function announceResult (interval, leechers, seeds, peers) {
  return { leechers, seeds, peers, interval: interval === 0 ? LIMITS.defaultIntervalS : interval }
}

/** One info hash's scrape counts. */
function scrapeResult (complete, downloaded, incomplete) {
  return { complete, downloaded, incomplete }
}

const NO_PEERS = []

function onCompletions (records, peerList, messages) {
  const peers = peerList === '' ? NO_PEERS : peerList.split(',')
  let thrown = null
  let r = 0
  let p = 0
  let m = 0
  while (r < records.length) {
    const id = records[r]
    const status = records[r + 1]
    const n = records[r + 2]
    r += 3
    const owner = pending.get(id)
    if (owner !== undefined) pending.delete(id)
    let result = null
    let message = null
    let code = null
    if (status === DONE_ANNOUNCED) {
      if (owner !== undefined) result = announceResult(records[r], records[r + 1], records[r + 2], peers.slice(p, p + n))
      r += 3
      p += n
    } else if (status === DONE_SCRAPED) {
      if (owner !== undefined) {
        result = new Array(n)
        for (let i = 0; i < n; i++) result[i] = scrapeResult(records[r + 3 * i], records[r + 3 * i + 1], records[r + 3 * i + 2])
      }
      r += 3 * n
    } else {
      message = messages[m++]
      code = ERROR_CODES[status - DONE_FAILED]
    }
    if (owner === undefined) continue // cancelled after it finished
    try {
      owner._done(id, message, code, result)
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
  if (pending.size > 0) {
    if (keepAlive === null) keepAlive = setInterval(() => {}, LIMITS.longestTimerMs)
  } else if (keepAlive !== null) {
    clearInterval(keepAlive)
    keepAlive = null
  }
}

/** Room for `bytes` more bytes in the batch; returns the record's offset. */
function reserve (bytes) {
  const at = batchLength
  if (at + bytes > batch.length) {
    let size = batch.length * 2
    while (size < at + bytes) size *= 2
    const grown = new Uint8Array(size)
    grown.set(batch.subarray(0, at))
    batch = grown
    view = new DataView(batch.buffer)
  }
  batchLength = at + bytes
  return at
}

/** Writes a record's common header and registers its owner; returns its id. */
function header (owner, kind, count, scope, target, bytes) {
  const id = nextFreeId(lastId, pending)
  lastId = id
  const at = reserve(bytes)
  let index = batchTargetIndex.get(target.native)
  if (index === undefined) {
    index = batchTargets.length
    batchTargets.push(target.native)
    batchTargetIndex.set(target.native, index)
  }
  batch[at] = kind
  view.setUint16(at + LAYOUT.count, count, true)
  view.setUint32(at + LAYOUT.id, id, true)
  view.setUint32(at + LAYOUT.scope, scope, true)
  view.setUint32(at + LAYOUT.target, index, true)
  pending.set(id, owner)
  queued.set(id, at)
  if (!flushScheduled) {
    flushScheduled = true
    setImmediate(flush)
  }
  updateKeepAlive()
  return id
}

function writeCounter (at, value) {
  if (typeof value === 'bigint') {
    view.setBigUint64(at, value, true)
  } else {
    view.setUint32(at, value >>> 0, true)
    view.setUint32(at + 4, Math.floor(value / TWO_32), true)
  }
}

/**
 * Starts an announce for `owner`; returns its id. `scope` says who may share
 * a cached connection id: an instance's own number, or 0 for any promise
 * call. `fields` are { port, numWant, key, ip }, `counters` { downloaded,
 * left, uploaded }, all checked.
 */
function startAnnounce (owner, target, scope, infoHash, peerId, fields, counters, event) {
  const id = header(owner, LAYOUT.announce, fields.port, scope, target, LAYOUT.announceRecord)
  const at = batchLength - LAYOUT.announceRecord
  batch[at + LAYOUT.event] = event
  view.setUint32(at + LAYOUT.key, fields.key, true)
  view.setInt32(at + LAYOUT.numWant, fields.numWant, true)
  view.setUint32(at + LAYOUT.ip, fields.ip, true)
  writeCounter(at + LAYOUT.counters, counters.downloaded)
  writeCounter(at + LAYOUT.counters + 8, counters.left)
  writeCounter(at + LAYOUT.counters + 16, counters.uploaded)
  batch.set(infoHash, at + LAYOUT.infoHash)
  batch.set(peerId, at + LAYOUT.peerId)
  return id
}

/** Starts a scrape of `hashes` (20-byte Buffers, at most one packet's worth) for `owner`; returns its id. */
function startScrape (owner, target, scope, hashes) {
  const bytes = LAYOUT.scrapeHeader + 20 * hashes.length
  const id = header(owner, LAYOUT.scrape, hashes.length, scope, target, bytes)
  let at = batchLength - bytes + LAYOUT.scrapeHeader
  for (const hash of hashes) {
    batch.set(hash, at)
    at += 20
  }
  return id
}

/** Stops request `id` (0 for none); its owner hears nothing more. */
function cancel (id) {
  if (id === 0 || !pending.delete(id)) return
  const at = queued.get(id)
  if (at !== undefined) {
    batch[at] = LAYOUT.skipped // never started
    queued.delete(id)
  } else {
    engine.cancel(id)
  }
  updateKeepAlive()
}

function flush () {
  flushScheduled = false
  let failed = null
  if (queued.size > 0) {
    try {
      getEngine().start(batch.subarray(0, batchLength), batchTargets)
    } catch (err) {
      // Only when the engine cannot take requests at all (its thread is
      // gone): every request of the tick fails with the reason.
      failed = { ids: [...queued.keys()], message: err.message }
    }
  }
  batchLength = 0
  batchTargets = []
  batchTargetIndex.clear()
  queued.clear()
  // A burst grew the buffer: give the memory back rather than keep it.
  if (batch.length > BATCH_BYTES) {
    batch = new Uint8Array(BATCH_BYTES)
    view = new DataView(batch.buffer)
  }
  if (failed !== null) onFailure(failed.ids, failed.message)
}

function onFailure (ids, message) {
  for (const id of ids) {
    const owner = pending.get(id)
    if (owner === undefined) continue
    pending.delete(id)
    owner._done(id, message, 'ERR_SEND', null)
  }
  updateKeepAlive()
}

/** Forgets every cached connection id: the next request to each tracker connects first. */
function forgetConnectionIds () {
  if (engine !== null) engine.forgetConnectionIds()
}

/** Counters of the shared engine: datagrams sent, received and dropped, sockets. */
function stats () {
  return getEngine().stats()
}

module.exports = {
  startAnnounce,
  startScrape,
  cancel,
  forgetConnectionIds,
  stats,
  nextFreeId
}
