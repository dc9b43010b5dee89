'use strict'
// What 1.2.0 accepted and did, kept (issue 10): a mock tracker bound in the
// same tick as the announce gets the first datagram; a 1.2.0 user's own test
// suite passes unchanged and exits; numeric strings for numeric options;
// pre-ES6 subclassing; an interval of 0; request ids that wrap.

const test = require('node:test')
const assert = require('node:assert/strict')
const dgram = require('node:dgram')
const path = require('node:path')
const util = require('node:util')

const UdpTracker = require('..')
const engine = require('../lib/engine.js')
const { nextFreeId } = engine
const { targetFor } = require('../lib/target.js')
const { serverFor, announceReply, recordEvents, nextEvent } = require('./helpers/script-server.js')
const { runNode, PACKAGE } = require('./helpers/child.js')
const PEER_ID = Buffer.from('-JS0001-compat000000')
const INFO_HASH = Buffer.alloc(20, 0xc0)

/** A UDP port that was free a moment ago. */
async function freePort () {
  const probe = dgram.createSocket('udp4')
  await new Promise((resolve) => probe.bind(0, '127.0.0.1', resolve))
  const { port } = probe.address()
  await new Promise((resolve) => probe.close(resolve))
  return port
}

/**
 * A plain dgram mock, as a user writes one: bound by `bind()` (called by the
 * test, in the same tick as the announce), answering connects and announces.
 */
function plainMock (t) {
  const mock = { datagrams: [], socket: dgram.createSocket('udp4') }
  mock.socket.on('message', (msg, remote) => {
    mock.datagrams.push(msg)
    const action = msg.readUInt32BE(8)
    const tid = msg.readUInt32BE(12)
    const reply = Buffer.alloc(action === 0 ? 16 : 20)
    reply.writeUInt32BE(action, 0)
    reply.writeUInt32BE(tid, 4)
    if (action === 0) reply.writeUInt32BE(0xc0ffee, 12)
    else reply.writeUInt32BE(60, 8)
    mock.socket.send(reply, remote.port, remote.address)
  })
  t.after(() => new Promise((resolve) => mock.socket.close(resolve)))
  return mock
}

for (const order of ['bind() then announce()', 'announce() then bind()']) {
  for (const bindHost of ['127.0.0.1', undefined]) {
    test(`a mock bound in the same tick as the announce (${order}, bind(PORT${bindHost ? ', HOST' : ''})) gets the first datagram`, async (t) => {
      const port = await freePort()
      const mock = plainMock(t)
      // A lost first datagram would be sent again only after 2 · 10 s.
      const tracker = new UdpTracker(PEER_ID, INFO_HASH, `udp://127.0.0.1:${port}`, { _timeout: 10000, connectionIdCache: false })
      t.after(() => tracker.destroy())
      const bind = () => bindHost ? mock.socket.bind(port, bindHost) : mock.socket.bind(port)
      if (order.startsWith('bind')) {
        bind()
        tracker.announce('started', {})
      } else {
        tracker.announce('started', {})
        bind()
      }
      const done = await nextEvent(tracker, ['update', 'error'], 8000)
      assert.equal(done.name, 'update', JSON.stringify(done.value))
      assert.deepEqual(mock.datagrams.map((d) => d.readUInt32BE(8)), [0, 1], 'one connect and one announce: nothing was lost')
    })
  }
}

/**
 * Runs the 1.2.0-style suite, with or without its tests that expect a
 * connect; resolves to the child's output and { results: name -> 'ok' | 'not ok' }.
 */
async function runUserSuite (t, withConnectTests) {
  const port = await freePort()
  const env = { PACKAGE, PORT: String(port), SKIP_CONNECT_TESTS: withConnectTests ? '' : '1' }
  const run = await runNode(t, ['--test-reporter=tap', path.join(__dirname, 'fixtures', 'user-suite-1.2.0.js')], { limitMs: 30000, env })
  const results = {}
  for (const match of run.stdout.matchAll(/^(ok|not ok) \d+ - ([^#\n]*?)( # SKIP.*)?$/gm)) {
    if (!match[3]) results[match[2]] = match[1]
  }
  return { ...run, results }
}

test('a 1.2.0 user\'s suite (fixed port, same-tick bind, a new mock per test) passes and its process exits on its own', async (t) => {
  const run = await runUserSuite(t, false)
  t.diagnostic(`child exited after ${run.ms} ms: ${JSON.stringify(run.results)}`)
  assert.equal(run.killed, false, `the suite did not exit within 30 s (a hang):\n${run.stdout.slice(-3000)}`)
  assert.equal(Object.keys(run.results).length, 5, `expected the suite's 5 plain tests to run:\n${run.stdout.slice(-3000)}${run.stderr}`)
  for (const [name, result] of Object.entries(run.results)) assert.equal(result, 'ok', `${name}\n${run.stdout.slice(-3000)}`)
  assert.equal(run.code, 0)
})

test('a 1.2.0 user\'s suite: connect-phase tests see a connect from every new instance, and the whole suite exits', async (t) => {
  const run = await runUserSuite(t, true)
  t.diagnostic(`child exited after ${run.ms} ms: ${JSON.stringify(run.results)}`)
  assert.equal(run.killed, false, `the suite did not exit within 30 s (a hang):\n${run.stdout.slice(-3000)}`)
  const connect = Object.entries(run.results).filter(([name]) => name.startsWith('connect:'))
  assert.equal(connect.length, 4)
  for (const [name, result] of Object.entries(run.results)) assert.equal(result, 'ok', `${name}\n${run.stdout.slice(-3000)}`)
  assert.equal(run.code, 0)
})

test('each instance has its own connection-id scope, never 0 (the promise API\'s shared scope)', (t) => {
  const a = new UdpTracker(PEER_ID, INFO_HASH, 'udp://127.0.0.1:9')
  const b = new UdpTracker(PEER_ID, INFO_HASH, 'udp://127.0.0.1:9')
  t.after(() => { a.destroy(); b.destroy() })
  assert.notEqual(a._scope, 0)
  assert.notEqual(b._scope, 0)
  assert.notEqual(a._scope, b._scope)
})

// ---------------------------------------------------------------------------
// Numeric strings (from environment variables or config files).

test('strings of decimal digits are accepted for numeric options and sent as numbers', async (t) => {
  const server = await serverFor(t)
  const tracker = new UdpTracker(PEER_ID, INFO_HASH, server.url, { port: '6881', _timeout: '1000', maxAttempts: '2', numWant: '-1', key: '42' })
  t.after(() => tracker.destroy())
  assert.equal(tracker.port, 6881)
  assert.equal(tracker._timeout, 1000)
  tracker.on('error', () => {})
  tracker.announce(2, {})
  const req = await server.waitForType('announce')
  assert.equal(req.port, 6881)
  assert.equal(req.numWant, -1)
  assert.equal(req.key, 42)
})

test('numeric strings out of range are still a RangeError naming the option', () => {
  const cases = { port: '65536', _timeout: '0', maxAttempts: '9', numWant: '-2', key: '4294967296' }
  for (const [option, value] of Object.entries(cases)) {
    assert.throws(() => new UdpTracker(PEER_ID, INFO_HASH, 'udp://127.0.0.1:9', { [option]: value }), (err) => {
      assert.ok(err instanceof RangeError, `${option} ${value}: ${err}`)
      assert.match(err.message, new RegExp(`opts\\.${option}\\b`))
      return true
    })
  }
})

test('the promise API takes numeric strings too', async (t) => {
  const server = await serverFor(t)
  server.onAnnounce = (req) => announceReply(req.transactionId, { interval: 60 })
  const result = await UdpTracker.announce(server.url, { infoHash: INFO_HASH, peerId: PEER_ID, port: '6881', numWant: '10' }, { timeout: '5000' })
  assert.equal(result.interval, 60)
  const req = await server.waitForType('announce')
  assert.equal(req.port, 6881)
  assert.equal(req.numWant, 10)
})

// ---------------------------------------------------------------------------
// Subclassing.

test('pre-ES6 subclassing (UdpTracker.apply(this, arguments) + util.inherits) works', async (t) => {
  function MyTracker () {
    UdpTracker.apply(this, arguments)
    this.mine = true
  }
  util.inherits(MyTracker, UdpTracker)
  MyTracker.prototype.describe = function () { return `tracker for ${this.announceUrl}` }
  const server = await serverFor(t)
  const tracker = new MyTracker(PEER_ID, INFO_HASH, server.url, { port: 1234 })
  t.after(() => tracker.destroy())
  assert.ok(tracker instanceof MyTracker && tracker instanceof UdpTracker)
  assert.equal(tracker.mine, true)
  assert.equal(tracker.describe(), `tracker for ${server.url}`)
  tracker.announce(2, {})
  const done = await nextEvent(tracker, ['update', 'error'], 5000)
  assert.equal(done.name, 'update', JSON.stringify(done.value))
})

test('class X extends UdpTracker works, and UdpTracker without new (and not as a base) is a TypeError', async (t) => {
  class Tracked extends UdpTracker {
    announce (event, opts) {
      this.calls = (this.calls || 0) + 1
      return super.announce(event, opts)
    }
  }
  const server = await serverFor(t)
  const tracker = new Tracked(PEER_ID, INFO_HASH, server.url)
  t.after(() => tracker.destroy())
  tracker.announce('started', {})
  const done = await nextEvent(tracker, ['update', 'error'], 5000)
  assert.equal(done.name, 'update')
  assert.equal(tracker.calls, 1)
  assert.throws(() => UdpTracker(PEER_ID, INFO_HASH, server.url), TypeError)
  assert.throws(() => UdpTracker.call({}, PEER_ID, INFO_HASH, server.url), TypeError)
})

// ---------------------------------------------------------------------------
// Intervals.

test('an announce interval of 0 is taken as none given: 1,800 s; 1 s is honoured exactly', async (t) => {
  const server = await serverFor(t)
  let interval = 0
  server.onAnnounce = (req) => announceReply(req.transactionId, { interval })
  const tracker = new UdpTracker(PEER_ID, INFO_HASH, server.url)
  t.after(() => tracker.destroy())
  const events = recordEvents(tracker)
  tracker.announce(2, {})
  const first = await nextEvent(tracker, ['update', 'error'], 5000)
  assert.equal(first.name, 'update')
  assert.equal(first.value.interval, 1800)
  // Read, the interval's end is a Node timer for the time left.
  const [timer] = tracker._announce_intervals_timeout
  assert.ok(timer._idleTimeout > 1790 * 1000 && timer._idleTimeout <= 1800 * 1000, `${timer._idleTimeout} ms`)
  tracker.destroy()
  // Interval 1: the next announce comes after one second, not sooner or much later.
  interval = 1
  const quick = new UdpTracker(PEER_ID, INFO_HASH, server.url)
  t.after(() => quick.destroy())
  quick.announce(2, {})
  const update = await nextEvent(quick, ['update', 'error'], 5000)
  assert.equal(update.value.interval, 1)
  const updatedAt = performance.now()
  const before = server.announces.length
  await server.waitForType('announce', before + 1, 3000)
  const waited = server.announces[before].at - updatedAt
  assert.ok(waited >= 990, `re-announced after ${waited.toFixed(0)} ms`)
  assert.deepEqual(events.filter((e) => e.name === 'error'), [])
})

// ---------------------------------------------------------------------------
// Request ids.

test('request ids wrap from 2^32 - 1 to 1 and skip every id still in use', () => {
  assert.equal(nextFreeId(0, new Set()), 1)
  assert.equal(nextFreeId(41, new Set()), 42)
  assert.equal(nextFreeId(0xffffffff, new Set()), 1)
  assert.equal(nextFreeId(0xfffffffe, new Set([0xffffffff, 1, 2])), 3)
  assert.equal(nextFreeId(0xffffffff, new Map([[1, {}], [2, {}]])), 3)
})

test('the table of requests in flight: ids in sequence, wrapping, skipping a place still taken, growing', () => {
  // Every request here is cancelled within the tick that started it: never
  // handed to the engine, nothing is sent.
  const target = targetFor('udp://127.0.0.1:9', {}, 'opts')
  const ids = {}
  engine.storeIds(ids, Buffer.alloc(20, 1), Buffer.alloc(20, 2))
  const fields = Object.freeze({ port: 6881, numWant: 50, ip: 0 })
  const owner = { _done () { throw new Error('a cancelled request was answered') } }
  const start = () => engine.announce(owner, target, 1, ids, fields, 7, 0, 0, 0, 2)
  const size = engine._firstSlots

  engine._setLastId(0xfffffffe)
  const wrapped = [start(), start(), start()]
  assert.deepEqual(wrapped, [0xffffffff, 1, 2], 'wraps from 2^32 - 1 to 1')

  // size + 1 and size + 2 have the places of 1 and 2, still in flight: skipped.
  engine._setLastId(size)
  assert.equal(start(), size + 3)
  for (const id of [...wrapped, size + 3]) engine.cancel(id)
  engine._setLastId(size)
  assert.equal(start(), size + 1, 'the place is free again once 1 is cancelled')
  engine.cancel(size + 1)

  // The table grows as parts are handed over (it stays at most half full
  // until the next one); the ids stay in sequence.
  engine._setLastId(5000)
  const count = size / 2 + 500
  const many = Array.from({ length: count }, start)
  assert.deepEqual(many, Array.from({ length: count }, (_, i) => 5001 + i))
  // Grown by copies of itself: 5001 + size's place holds a copy of 5001's
  // entry, which is not a request in flight, so that id is handed out.
  engine._setLastId(5000 + size)
  assert.equal(start(), 5001 + size)
  engine.cancel(5001 + size)
  for (const id of many) engine.cancel(id)
  engine.cancel(many[0]) // a second cancel finds nothing
  // Grown, then made small again (nothing in flight): 1 + size has the place of 1 again.
  engine._setLastId(0)
  assert.equal(start(), 1)
  engine._setLastId(size)
  assert.equal(start(), size + 2)
  engine.cancel(1)
  engine.cancel(size + 2)
})
