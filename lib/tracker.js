'use strict'

// The 1.2.0 EventEmitter API: an instance per torrent and tracker, its
// fields and interval timers, and the engine's results turned into events.
// A plain constructor function, so that both `class X extends UdpTracker`
// and pre-ES6 `UdpTracker.apply(this, arguments)` with util.inherits work.

const { EventEmitter } = require('events')
const engine = require('./engine.js')
const intervals = require('./intervals.js')
const { targetFor } = require('./target.js')
const { keepShapes } = require('./shapes.js')
const {
  LIMITS, EVENTS, twentyByteBuffer, checkOptions, checkCounter, checkEvent, checkSharedFields, checkKey
} = require('./validate.js')

// A marker for `_socket`: 1.2.0 kept its own dgram socket there while a
// request was out; every instance now shares the engine's sockets.
const SHARED_SOCKET = Object.freeze({ shared: true })
// 1.2.0's timer arrays start as this shared empty array (an instance has no
// timer until user code asks for one; `_udpTimmers` stays empty: the
// retransmission timers are in Rust).
const NO_TIMERS = Object.freeze([])

// EventEmitter's listeners' table, made before EventEmitter's constructor
// would: an ordinary object (with no prototype to find names on) instead of
// EventEmitter's dictionary-mode one. 160 B less per instance; adding a
// listener costs a little more (about 0.5 µs: it changes the table's shape).
function Listeners () {}
Listeners.prototype = Object.create(null)
// Given a table of its own, EventEmitter's constructor (Node 20.11 and
// later) turns on a "shape mode" in which a removed listener's name stays in
// the table as `undefined`, where `eventNames()` lists it: when it runs
// (domains), that mode is switched off again; otherwise it is never on.
const kShapeMode = Object.getOwnPropertySymbols(new EventEmitter())
  .find((symbol) => symbol.description === 'shapeMode')

// Each instance reuses connection ids only among its own requests (and
// requests started together): its scope, never 0 (0 is the promise API's).
let lastScope = 0

function UdpTracker (peerId, infoHash, announceUrl, opts) {
  if (!(this instanceof UdpTracker)) {
    throw new TypeError("Class constructor UdpTracker cannot be invoked without 'new'")
  }
  // EventEmitter's constructor but for the fields whose value its prototype
  // already has (`_maxListeners`, capture-rejections): three fields fewer.
  // It still runs when domains are in use (it binds the instance to one).
  if (this._events === undefined) {
    this._events = new Listeners()
    this._eventsCount = 0
  }
  if (EventEmitter.usingDomains) {
    EventEmitter.call(this)
    if (kShapeMode !== undefined) this[kShapeMode] = false
  }
  const options = checkOptions(opts)
  // The ids as sent: a copy (lib/engine.js's storeIds), so that a later
  // change to the caller's Buffers does not reach the wire; `peerId` and
  // `infoHash` (accessors below) are made from it when read.
  const peerIdBytes = twentyByteBuffer(peerId, 'peerId', false)
  // (Named here, so that V8 makes room for them in the instance itself.)
  this._id0 = this._id1 = this._id2 = this._id3 = this._id4 = 0
  this._id5 = this._id6 = this._id7 = this._id8 = this._id9 = 0
  engine.storeIds(this, twentyByteBuffer(infoHash, 'infoHash', true), peerIdBytes)
  this.announceUrl = announceUrl
  this.opts = options
  this._fields = checkSharedFields(options, 'opts')
  this._key = checkKey(options, 'opts')
  this._target = targetFor(announceUrl, options, 'opts')
  this._scope = lastScope = lastScope >= 0xffffffff ? 1 : lastScope + 1

  // 1.2.0's fields, with their meaning.
  this._in_interval = false
  // `_last_opts` (an accessor below) is made from these when read.
  this._lastOptions = null
  this._lastEvent = 0
  this.destroyed = false

  // The interval's end: scheduled in lib/intervals.js, or a Node timer of
  // its own once user code has read `_announce_intervals_timeout`.
  this._intervalQueue = null
  this._intervalIndex = 0

  this._announceId = 0
  this._sentEvent = 0
  // The counters of the last announce call, checked: the interval's end sends them again.
  this._downloaded = 0
  this._left = 0
  this._uploaded = 0
  this._queuedEvent = null
}

Object.setPrototypeOf(UdpTracker.prototype, EventEmitter.prototype)
Object.setPrototypeOf(UdpTracker, EventEmitter)

// Fields that most instances never change start on the prototype; an
// instance gets its own when it does. Six fields fewer per instance, and no
// second object for the fields beyond the first 42.
Object.assign(UdpTracker.prototype, {
  // The Buffers `peerId` and `infoHash` (accessors below) last made or assigned.
  _peerId: null,
  _infoHash: null,
  // Another `peerId` or `infoHash` was assigned since the last request.
  _idsAssigned: false,
  // `_last_opts` once read (an accessor below).
  _lastOptsCopy: null,
  // 1.2.0's `_announce_intervals_timeout` once read (below).
  _intervalTimers: NO_TIMERS,
  _scrapeId: 0,
  _udpTimmers: NO_TIMERS
})

// 1.2.0's fields that follow from others, made when read (an instance gets
// a field of its own when one is assigned): `port` and `_timeout`, the
// options'; `destoryed`, 1.2.0's spelling of `destroyed`; `_socket`, the
// shared socket while an announce is out.
for (const [name, get] of [
  ['port', function port () { return this._fields.port }],
  ['_timeout', function _timeout () { return this._target.timeoutMs }],
  ['destoryed', function destoryed () { return this.destroyed }],
  ['_socket', function _socket () { return this._announceId !== 0 ? SHARED_SOCKET : null }]
]) {
  Object.defineProperty(UdpTracker.prototype, name, {
    get,
    set (value) {
      Object.defineProperty(this, name, { value, writable: true, enumerable: true, configurable: true })
    },
    enumerable: true,
    configurable: true
  })
}

// 1.2.0's array of interval timers. Reading it turns the scheduled interval
// end into a real Node timer, so that `clearTimeout` on its entries stops the
// re-announce, as in 1.2.0.
Object.defineProperty(UdpTracker.prototype, '_announce_intervals_timeout', {
  get () {
    const timer = intervals.materialize(this, onTimerEnd)
    if (timer !== null) {
      if (this._intervalTimers === NO_TIMERS) this._intervalTimers = [timer]
      else this._intervalTimers.push(timer)
    }
    return this._intervalTimers
  },
  set (timers) {
    void this._announce_intervals_timeout // a scheduled end keeps running, as a timer
    this._intervalTimers = timers
  },
  enumerable: true,
  configurable: true
})

// 1.2.0's `peerId` and `infoHash`: Buffers of the ids sent, made when first
// read. Another value assigned is sent from the next request on (and
// checked then).
for (const [name, field] of [['infoHash', '_infoHash'], ['peerId', '_peerId']]) {
  Object.defineProperty(UdpTracker.prototype, name, {
    get () {
      if (this[field] === null) this[field] = engine.storedId(this, name)
      return this[field]
    },
    set (value) {
      this[field] = value
      this._idsAssigned = true
    },
    enumerable: true,
    configurable: true
  })
}

// 1.2.0's copy of the last announce call's options with its `event`, made
// when read rather than on every announce.
Object.defineProperty(UdpTracker.prototype, '_last_opts', {
  get () {
    if (this._lastOptsCopy === null && this._lastOptions !== null) {
      this._lastOptsCopy = Object.assign({}, this._lastOptions, { event: this._lastEvent })
    }
    return this._lastOptsCopy
  },
  set (value) {
    this._lastOptions = null
    this._lastOptsCopy = value
  },
  enumerable: true,
  configurable: true
})

function onTimerEnd (tracker) {
  // The timer that fired is the last one added: no other is added while it
  // runs (the instance does not announce during its interval).
  const timers = tracker._intervalTimers
  if (timers.length === 1) tracker._intervalTimers = NO_TIMERS
  else timers.pop()
  tracker._onIntervalEnd()
}

/**
 * Announces `event` (0 none, 1 completed, 2 started, 3 stopped) with the
 * counters in `opts`. During the announce interval the call is stored and
 * answered with the error 'not calling announce'; the interval's end sends it.
 */
UdpTracker.prototype.announce = function announce (event, opts) {
  if (this.destroyed) return
  // The common arguments (an object of safe-integer counters, an event 0-3)
  // are taken here; lib/validate.js checks anything else. One function for
  // the JIT to compile rather than one per check (bench/LOG.md, "Compiled once").
  const options = typeof opts === 'object' && opts !== null ? opts : checkOptions(opts)
  let downloaded = options.downloaded
  if (!Number.isSafeInteger(downloaded) || downloaded < 0) downloaded = checkCounter(downloaded, 'opts', 'downloaded')
  let left = options.left
  if (!Number.isSafeInteger(left) || left < 0) left = checkCounter(left, 'opts', 'left')
  let uploaded = options.uploaded
  if (!Number.isSafeInteger(uploaded) || uploaded < 0) uploaded = checkCounter(uploaded, 'opts', 'uploaded')
  const code = event === 0 || event === 1 || event === 2 || event === 3 ? event : checkEvent(event)
  if (code === null) {
    this._emitLater('error', 'unknown event')
    return
  }
  this._lastOptions = options
  this._lastEvent = code
  if (this._lastOptsCopy !== null) this._lastOptsCopy = null
  this._downloaded = downloaded
  this._left = left
  this._uploaded = uploaded
  if (this._in_interval) {
    this._queuedEvent = code
    this._emitLater('error', 'not calling announce')
    return
  }
  this._queuedEvent = null
  this._checkIds()
  this._send(code)
}

/** Asks the tracker for this torrent's swarm counts: a `scrape` event. */
UdpTracker.prototype.scrape = function scrape () {
  if (this.destroyed) return
  this._checkIds()
  engine.cancel(this._scrapeId)
  this._scrapeId = engine.startScrape(this, this._target, this._scope, [engine.storedId(this, 'infoHash')])
}

/** Stops every request and timer; no event follows. Safe to call twice. */
UdpTracker.prototype.destroy = function destroy () {
  this.destroyed = true
  engine.cancel(this._announceId)
  this._announceId = 0
  // (`_scrapeId` and `_intervalTimers` start on the prototype: written only when set.)
  if (this._scrapeId !== 0) {
    engine.cancel(this._scrapeId)
    this._scrapeId = 0
  }
  intervals.cancel(this)
  if (this._intervalTimers !== NO_TIMERS) {
    for (const timer of this._intervalTimers) clearTimeout(timer)
    this._intervalTimers = NO_TIMERS
  }
  if (this._udpTimmers !== NO_TIMERS) this._udpTimmers = NO_TIMERS
  this._in_interval = false
}

/** 1.2.0's spelling of `destroy`. */
UdpTracker.prototype.destory = function destory () {
  this.destroy()
}

// Takes ids assigned to `peerId` or `infoHash` since the last request; throws
// a TypeError naming the field when they are not 20 bytes.
UdpTracker.prototype._checkIds = function _checkIds () {
  if (!this._idsAssigned) return
  const peerId = twentyByteBuffer(this.peerId, 'peerId', false)
  const infoHash = twentyByteBuffer(this.infoHash, 'infoHash', true)
  engine.storeIds(this, infoHash, peerId)
  this._idsAssigned = false
}

UdpTracker.prototype._send = function _send (event) {
  engine.cancel(this._announceId)
  this._sentEvent = event
  this._announceId = engine.announce(this, this._target, this._scope, this,
    this._fields, this._key, this._downloaded, this._left, this._uploaded, event)
}

// The engine's answer to this instance's announce (handled here, in one
// function for the JIT to compile once) or scrape.
UdpTracker.prototype._done = function _done (id, message, code, result) {
  if (id !== this._announceId) {
    if (id === this._scrapeId) this._onScraped(message, result)
    return
  }
  this._announceId = 0
  if (this.destroyed) return
  if (message !== null) {
    this.emit('error', message)
    return
  }
  // A successful 'stopped' ends the announcing: 1.2.0 repeated it forever.
  if (this._sentEvent !== EVENTS.stopped) {
    this._in_interval = true
    intervals.schedule(this, Math.min(result.interval * 1000, LIMITS.longestTimerMs))
  }
  this.emit('update', result)
}

UdpTracker.prototype._onScraped = function _onScraped (message, result) {
  this._scrapeId = 0
  if (this.destroyed) return
  if (message !== null) this.emit('error', message)
  else this.emit('scrape', result[0])
}

UdpTracker.prototype._onIntervalEnd = function _onIntervalEnd () {
  if (this.destroyed) return
  this._in_interval = false
  // Periodic announces are event 0 (none) unless the user queued one.
  const event = this._queuedEvent === null ? EVENTS.none : this._queuedEvent
  this._queuedEvent = null
  this._lastEvent = event
  if (this._lastOptsCopy !== null) this._lastOptsCopy.event = event
  try {
    this._checkIds()
  } catch (err) {
    this.emit('error', err.message)
    return
  }
  this._send(event)
}

UdpTracker.prototype._emitLater = function _emitLater (name, payload) {
  process.nextTick(emitUnlessDestroyed, this, name, payload)
}

function emitUnlessDestroyed (tracker, name, payload) {
  if (!tracker.destroyed) tracker.emit(name, payload)
}

// One instance, made as this module loads and never used (lib/shapes.js).
const resident = new UdpTracker(Buffer.alloc(20), Buffer.alloc(20), 'udp://127.0.0.1:1', {})
keepShapes(resident)
resident.destroy()

module.exports = UdpTracker
