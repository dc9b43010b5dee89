'use strict'

// The bridge to the Rust engine: one engine per JS realm, created on first
// use, with one UDP socket per address family for every request.
//
// Requests started during a tick are written into one buffer and handed to
// the engine in one call when the tick is over (setImmediate): one napi call
// per tick rather than per request, and a socket that the caller bound in
// the same tick (a mock tracker in a test) is listening before the first
// datagram leaves. A tick that starts hundreds of requests hands them over
// in parts of 64 KB as it goes (see `handOverPart`). Finished requests come
// back in batches of flat records (see src/binding.rs) and are handed to
// their owner's
// `_done(id, message, code, result)`: `message` and `code` on failure, else
// `result`, the announce result or the list of scrape counts.

const native = require('./native.js')
const { LIMITS } = require('./validate.js')

// The layout of a start record (src/binding.rs defines it): bytes, a 16-bit
// count and 32-bit words, in the machine's byte order, written through typed
// arrays over the batch buffer.
const LAYOUT = native.startLayout()
const COUNT_HALF = LAYOUT.count >> 1
const ID_WORD = LAYOUT.id >> 2
const SCOPE_WORD = LAYOUT.scope >> 2
const TARGET_WORD = LAYOUT.target >> 2
const KEY_WORD = LAYOUT.key >> 2
const NUM_WANT_WORD = LAYOUT.numWant >> 2
const IP_WORD = LAYOUT.ip >> 2
const COUNTERS_WORD = LAYOUT.counters >> 2
const IDS_WORD = LAYOUT.infoHash >> 2
const ERROR_CODES = native.errorCodes()
const DONE_ANNOUNCED = 0
const DONE_SCRAPED = 1
const DONE_FAILED = 2
const TWO_32 = 2 ** 32
// `announce` writes the info hash and the peer id in one go.
if (LAYOUT.peerId !== LAYOUT.infoHash + 20) throw new Error('the start record layout changed: the peer id must follow the info hash')
// The 40 bytes of an info hash and a peer id as ten 32-bit words (in the
// machine's byte order, read and written the same way): see `storeIds`.
const idsScratch = Buffer.alloc(40)
const idsWords = new Int32Array(idsScratch.buffer, idsScratch.byteOffset, 10)
if (idsScratch.byteOffset % 4 !== 0 || LAYOUT.infoHash % 4 !== 0) throw new Error('the ids must be 4-byte aligned')
const MAX_ID = 0xffffffff
const ANNOUNCE_BYTES = LAYOUT.announceRecord

let engine = null
let lastId = 0
let keepAlive = null

// The owners of the requests in flight, by id: a table indexed by the id's
// low bits. Ids are handed out in sequence, skipping any whose place is
// taken (see `start`), so no two live ids share a place: no hashing, and no
// garbage per request (a Map allocated about 110 B per entry as it grew).
// It is kept at most half full (see `ensureSlots`), and is made small again
// when empty. A place is taken when it holds an owner and an id whose place
// it is: growing copies the table (see `resizeSlots`), and a copy in a place
// that is not its id's is free.
const FIRST_SLOTS = 8192
let slotMask = FIRST_SLOTS - 1
let slotOwners = new Array(FIRST_SLOTS).fill(null)
let slotIds = new Uint32Array(FIRST_SLOTS)
let inFlight = 0
// For nextFreeId: an id whose place is taken cannot be handed out.
const slotTaken = Object.freeze({ has: (id) => placeTaken(id & slotMask) })

function placeTaken (place) {
  // Every operation always runs: when the second half ran only for a taken
  // place, V8 compiled `start` before it had seen it run (no place is taken
  // until the ids wrap around the table), and threw the compiled code away
  // at the first taken one.
  const mine = (slotIds[place] & slotMask) === place
  return slotOwners[place] !== null && mine
}

// The tick's requests, not yet handed to the engine.
const BATCH_BYTES = 1 << 16
let batch = Buffer.alloc(BATCH_BYTES)
let halves = new Uint16Array(batch.buffer)
let words = new Int32Array(batch.buffer) // records start at multiples of 4
let batchLength = 0
// (These arrays are emptied, not replaced, after each hand-over: they keep
// their element kinds, and the JIT's code for them stays valid.)
const batchTargets = [] // native targets, indexed by the records
const batchTargetIndex = new Map() // native target -> its index in batchTargets
let lastTarget = null // the last record's native target and its index
let lastTargetIndex = 0
// The tick's request ids in the order started (increasing, unless the ids
// wrapped during the tick) and their records' offsets in `batch`: the first
// `batchCount` entries. (The arrays keep their room from part to part: no
// new backing store per part for the scavenger to copy.)
const batchIds = []
const batchOffsets = []
let batchCount = 0
let batchSorted = true
let batchLive = 0 // records not cancelled
let flushScheduled = false
// Where this tick's records may end before `makeRoom` must run: 0 until the
// tick's first request, then the end of a part.
let room = 0

function getEngine () {
  if (engine === null) engine = new native.Engine(onCompletions)
  return engine
}

/**
 * The id after `last` that `taken.has` does not refuse (the engine's: an id
 * whose place in the table of requests in flight is taken): ids wrap from
 * 2^32 - 1 to 1 and never replace a live request.
 */
function nextFreeId (last, taken) {
  let id = last
  do {
    id = id >= MAX_ID ? 1 : id + 1
  } while (taken.has(id))
  return id
}

/** Removes request `id` from the table; returns its owner, or null when it is not in flight. */
function takeOwner (id) {
  const at = id & slotMask
  const owner = slotOwners[at]
  if (owner === null || slotIds[at] !== id) return null
  slotOwners[at] = null
  inFlight--
  return owner
}

/**
 * The table at `size` places (a power of two), with the requests in flight.
 * Growing doubles it by copies of itself (builtins, no loop over the places
 * here for V8 to compile): the mask only gains bits, so each request's place
 * is one of its copies, and the others are free (see `placeTaken`); a copy
 * keeps its owner alive until its place is used again. It is made small
 * again only when nothing is in flight: new, empty arrays.
 */
function resizeSlots (size) {
  if (inFlight === 0) {
    slotOwners = new Array(size).fill(null)
    slotIds = new Uint32Array(size)
  } else {
    while (slotOwners.length < size) {
      const ids = new Uint32Array(slotIds.length * 2)
      ids.set(slotIds)
      ids.set(slotIds, slotIds.length)
      slotOwners = slotOwners.concat(slotOwners)
      slotIds = ids
    }
  }
  slotMask = size - 1
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
    const owner = takeOwner(id)
    let result = null
    let message = null
    let code = null
    if (status === DONE_ANNOUNCED) {
      if (owner !== null) result = announceResult(records[r], records[r + 1], records[r + 2], n === 0 ? [] : peers.slice(p, p + n))
      r += 3
      p += n
    } else if (status === DONE_SCRAPED) {
      if (owner !== null) {
        result = new Array(n)
        for (let i = 0; i < n; i++) result[i] = scrapeResult(records[r + 3 * i], records[r + 3 * i + 1], records[r + 3 * i + 2])
      }
      r += 3 * n
    } else {
      message = messages[m++]
      code = ERROR_CODES[status - DONE_FAILED]
    }
    if (owner === null) continue // cancelled after it finished
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
  if (inFlight > 0) {
    if (keepAlive === null) keepAlive = setInterval(() => {}, LIMITS.longestTimerMs)
  } else {
    if (keepAlive !== null) {
      clearInterval(keepAlive)
      keepAlive = null
    }
    if (slotOwners.length > FIRST_SLOTS) resizeSlots(FIRST_SLOTS)
  }
}

function grow (needed) {
  let size = batch.length * 2
  while (size < needed) size *= 2
  const grown = Buffer.alloc(size)
  grown.set(batch.subarray(0, batchLength))
  batch = grown
  halves = new Uint16Array(batch.buffer)
  words = new Int32Array(batch.buffer)
}

/** The index of `target` in this part's list of targets (the record's last one's is `lastTargetIndex`). */
function targetIndex (target) {
  let index = batchTargetIndex.get(target)
  if (index === undefined) {
    index = batchTargets.length
    batchTargets.push(target)
    batchTargetIndex.set(target, index)
  }
  lastTarget = target
  lastTargetIndex = index
  return index
}

/**
 * Before a record of `bytes` that does not fit `room`: on the tick's first
 * request, its requests are to go to the engine when it is over; on a full
 * part, the part goes now; a record larger than the buffer grows it.
 */
function makeRoom (bytes) {
  if (batchLength > 0 && batchLength + bytes > PART_BYTES) handOverPart()
  if (!flushScheduled) {
    flushScheduled = true
    setImmediate(flush)
  }
  if (batchLength + bytes > batch.length) grow(batchLength + bytes)
  room = PART_BYTES
}

/** A BigInt counter as its two words, the low one first (numbers are written in `start`). */
function writeBigCounter (w, value) {
  words[w] = Number(value & 0xffffffffn)
  words[w + 1] = Number(value >> 32n)
}

// The ids `startAnnounce` writes, kept as `storeIds` keeps an instance's.
const idsHolder = {}
storeIds(idsHolder, Buffer.alloc(20), Buffer.alloc(20))

/**
 * Starts an announce for `owner`; returns its id. `scope` says who may share
 * a cached connection id: an instance's own number, or 0 for any promise
 * call. `fields` are { port, numWant, key, ip } (lib/validate.js's), `counters` { downloaded,
 * left, uploaded }, all checked; `infoHash` and `peerId` 20-byte Buffers.
 */
function startAnnounce (owner, target, scope, infoHash, peerId, fields, counters, event) {
  storeIds(idsHolder, infoHash, peerId)
  return announce(owner, target, scope, idsHolder, fields, fields.key, counters.downloaded, counters.left, counters.uploaded, event)
}

/**
 * `startAnnounce` for a caller that keeps its ids on `ids` with `storeIds`,
 * its key apart from `fields` ({ port, numWant, ip }: lib/validate.js's
 * `checkSharedFields`) and its counters as arguments: no object and no call
 * into C++ per announce (see `start`).
 */
function announce (owner, target, scope, ids, fields, key, downloaded, left, uploaded, event) {
  return start(owner, target, scope, LAYOUT.announce, ids, fields, key, downloaded, left, uploaded, event, null)
}

/** Starts a scrape of `hashes` (20-byte Buffers, at most one packet's worth) for `owner`; returns its id. */
function startScrape (owner, target, scope, hashes) {
  return start(owner, target, scope, LAYOUT.scrape, null, null, 0, 0, 0, 0, 0, hashes)
}

/**
 * The one start path: the record of a new request of `owner`'s in this
 * tick's batch, of `kind` LAYOUT.announce (with the announce arguments) or
 * LAYOUT.scrape (with `hashes`); returns the request's id. The common case is
 * written out here and the rare ones (the tick's first request or a full
 * part: makeRoom; ids wrapped onto a live request; another target than the
 * last) are functions of their own: too large to inline, this is compiled
 * once, rather than again into each caller and each of its parts apart
 * (bench/LOG.md, "Compiled once").
 */
function start (owner, target, scope, kind, ids, fields, key, downloaded, left, uploaded, event, hashes) {
  const announcing = kind === LAYOUT.announce
  const bytes = announcing ? ANNOUNCE_BYTES : LAYOUT.scrapeHeader + 20 * hashes.length
  // One rare branch, taken by every tick's first request (so V8 has seen it
  // taken before it compiles this; see ensureSlots).
  if (batchLength + bytes > room) makeRoom(bytes)
  const at = batchLength
  batchLength = at + bytes
  // The id after the last one whose place in the table is free (the table
  // has room: see ensureSlots).
  let id = lastId >= MAX_ID ? 1 : lastId + 1
  let place = id & slotMask
  if (placeTaken(place)) {
    id = nextFreeId(id, slotTaken)
    place = id & slotMask
  }
  lastId = id
  slotOwners[place] = owner
  slotIds[place] = id
  inFlight++
  if (batchCount > 0 && id < batchIds[batchCount - 1]) batchSorted = false
  batchIds[batchCount] = id
  batchOffsets[batchCount] = at
  batchCount++
  batchLive++
  // The header.
  const w = at >> 2
  // The part's views as locals: V8 loads each once rather than at every
  // store (they are module variables, which makeRoom may replace), and
  // compiles this in about two thirds of the time.
  const bytes8 = batch
  const words32 = words
  bytes8[at] = kind
  halves[(at >> 1) + COUNT_HALF] = announcing ? fields.port : hashes.length
  words32[w + ID_WORD] = id
  words32[w + SCOPE_WORD] = scope
  words32[w + TARGET_WORD] = target.native === lastTarget ? lastTargetIndex : targetIndex(target.native)
  if (announcing) {
    // Words take the low 32 bits of a number (ToInt32): the u32 fields, and
    // each counter as two words, the low one first.
    bytes8[at + LAYOUT.event] = event
    words32[w + KEY_WORD] = key
    words32[w + NUM_WANT_WORD] = fields.numWant
    words32[w + IP_WORD] = fields.ip
    const c = w + COUNTERS_WORD
    if (typeof downloaded === 'number') {
      words32[c] = downloaded
      words32[c + 1] = downloaded / TWO_32
    } else {
      writeBigCounter(c, downloaded)
    }
    if (typeof left === 'number') {
      words32[c + 2] = left
      words32[c + 3] = left / TWO_32
    } else {
      writeBigCounter(c + 2, left)
    }
    if (typeof uploaded === 'number') {
      words32[c + 4] = uploaded
      words32[c + 5] = uploaded / TWO_32
    } else {
      writeBigCounter(c + 4, uploaded)
    }
    const i = w + IDS_WORD
    words32[i] = ids._id0
    words32[i + 1] = ids._id1
    words32[i + 2] = ids._id2
    words32[i + 3] = ids._id3
    words32[i + 4] = ids._id4
    words32[i + 5] = ids._id5
    words32[i + 6] = ids._id6
    words32[i + 7] = ids._id7
    words32[i + 8] = ids._id8
    words32[i + 9] = ids._id9
  } else {
    let h = at + LAYOUT.scrapeHeader
    for (let k = 0; k < hashes.length; k++) {
      bytes8.set(hashes[k], h)
      h += 20
    }
  }
  return id
}

/**
 * Keeps the info hash and peer id (20-byte Buffers) on `holder` as the ten
 * 32-bit words `announce` writes (fields `_id0` to `_id9`): a copy, and no
 * object of its own.
 */
function storeIds (holder, infoHash, peerId) {
  idsScratch.set(infoHash, 0)
  idsScratch.set(peerId, 20)
  holder._id0 = idsWords[0]
  holder._id1 = idsWords[1]
  holder._id2 = idsWords[2]
  holder._id3 = idsWords[3]
  holder._id4 = idsWords[4]
  holder._id5 = idsWords[5]
  holder._id6 = idsWords[6]
  holder._id7 = idsWords[7]
  holder._id8 = idsWords[8]
  holder._id9 = idsWords[9]
}

/** The info hash (`which` 'infoHash') or peer id ('peerId') `storeIds` kept on `holder`, as a new Buffer. */
function storedId (holder, which) {
  idsWords[0] = holder._id0
  idsWords[1] = holder._id1
  idsWords[2] = holder._id2
  idsWords[3] = holder._id3
  idsWords[4] = holder._id4
  idsWords[5] = holder._id5
  idsWords[6] = holder._id6
  idsWords[7] = holder._id7
  idsWords[8] = holder._id8
  idsWords[9] = holder._id9
  return which === 'infoHash' ? Buffer.from(idsScratch.subarray(0, 20)) : Buffer.from(idsScratch.subarray(20, 40))
}

/** Where request `id` is in this tick's batch; -1 when it is not in it. */
function batchIndex (id) {
  if (!batchSorted) {
    for (let i = 0; i < batchCount; i++) if (batchIds[i] === id) return i
    return -1
  }
  let lo = 0
  let hi = batchCount - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const at = batchIds[mid]
    if (at === id) return mid
    if (at < id) lo = mid + 1
    else hi = mid - 1
  }
  return -1
}

/** Stops request `id` (0 for none); its owner hears nothing more. */
function cancel (id) {
  if (id === 0 || takeOwner(id) === null) return
  const index = batchIndex(id)
  if (index >= 0) {
    batch[batchOffsets[index]] = LAYOUT.skipped // never started
    batchLive--
  } else {
    engine.cancel(id)
  }
  updateKeepAlive()
}

// A tick that starts many requests hands them over in parts of about this
// size as it goes: the engine starts sending while JS still creates the
// rest, and the buffer stays small. The parts of one tick still count as
// started together (they share a connect).
const PART_BYTES = BATCH_BYTES - 1024
// The most requests started between two hand-overs: a part of the smallest
// records (a scrape header), and one to spare.
const PART_RECORDS = Math.ceil(PART_BYTES / LAYOUT.scrapeHeader) + 1
if (PART_RECORDS * 2 > FIRST_SLOTS) throw new Error('the table of requests must hold two parts')
let tickContinues = false // a part of this tick went to the engine already

/** The tick's requests so far fill a part: hands them to the engine. */
function handOverPart () {
  const continues = tickContinues
  tickContinues = true
  handOver(continues)
}

/** The tick is over (setImmediate): hands the rest of its requests over. */
function flush () {
  flushScheduled = false
  room = 0
  const continues = tickContinues
  tickContinues = false
  handOver(continues)
}

function handOver (continues) {
  let failed = null
  if (batchLive > 0) {
    try {
      getEngine().start(batch.subarray(0, batchLength), batchTargets, continues)
    } catch (err) {
      // Only when the engine cannot take requests at all (its thread is
      // gone): every request handed over fails with the reason.
      const ids = []
      for (let i = 0; i < batchCount; i++) if (batch[batchOffsets[i]] !== LAYOUT.skipped) ids.push(batchIds[i])
      failed = { ids, message: err.message }
    }
  }
  batchLength = 0
  batchTargets.length = 0
  batchTargetIndex.clear()
  lastTarget = null
  batchCount = 0
  batchSorted = true
  batchLive = 0
  // A large scrape grew the buffer: give the memory back rather than keep it.
  if (batch.length > BATCH_BYTES) {
    batch = Buffer.alloc(BATCH_BYTES)
    halves = new Uint16Array(batch.buffer)
    words = new Int32Array(batch.buffer)
  }
  updateKeepAlive()
  ensureSlots()
  // Events are never emitted inside the call that started a request.
  if (failed !== null) process.nextTick(onFailure, failed.ids, failed.message)
}

/**
 * Grows the table of requests in flight so that it stays at most half full
 * until the next hand-over, whatever the requests started until then: `start`
 * itself never checks. (A check there would be a branch taken only at the
 * first growth, and V8 undoes the compiled `start` when a branch it has
 * never seen taken is taken, then compiles it again.)
 */
function ensureSlots () {
  let size = slotOwners.length
  while ((inFlight + PART_RECORDS) * 2 > size) size *= 2
  if (size !== slotOwners.length) resizeSlots(size)
}

function onFailure (ids, message) {
  for (const id of ids) {
    const owner = takeOwner(id)
    if (owner !== null) owner._done(id, message, 'ERR_SEND', null)
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
  announce,
  storeIds,
  storedId,
  startAnnounce,
  startScrape,
  cancel,
  forgetConnectionIds,
  stats,
  nextFreeId,
  // For the tests of the id table: its first size, and the next id handed out is the one after `id`.
  _firstSlots: FIRST_SLOTS,
  _setLastId (id) { lastId = id }
}
