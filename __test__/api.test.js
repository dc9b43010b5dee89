'use strict'
// The constructor, what the options put on the wire, and destroy semantics
// of the 1.2.0-compatible UdpTracker class. Bad arguments: bad-input.test.js.
// What goes on the wire is read by the scripted server (helpers/script-server.js
// decodes it independently of the Rust codec under test); the other tests use
// the package's test tracker.

const test = require('node:test')
const assert = require('node:assert/strict')
const { EventEmitter } = require('node:events')

const UdpTracker = require('..')
const {
  serverFor,
  errorReply,
  announceReply,
  recordEvents,
  nextEvent,
  sleep
} = require('./helpers/script-server.js')
const { trackerServer, received, waitUntil } = require('./helpers/test-tracker.js')

const PEER_ID = Buffer.from('-JS0001-abcdefghijkl')
const INFO_HASH = Buffer.from('0123456789abcdef0123456789abcdef01234567', 'hex')
// Any syntactically valid udp URL, for checks that never send.
const NOWHERE = 'udp://127.0.0.1:9/announce'

function trackerFor (t, url, opts, peerId = PEER_ID, infoHash = INFO_HASH) {
  const tracker = new UdpTracker(peerId, infoHash, url, opts)
  t.after(() => tracker.destroy())
  return tracker
}

/** Announces once to a fresh scripted server and returns the announce datagram. */
async function announceOnWire (t, { opts, event = 2, counters = {}, peerId, infoHash } = {}) {
  const server = await serverFor(t)
  const tracker = trackerFor(t, server.url, opts, peerId, infoHash)
  const events = recordEvents(tracker)
  tracker.announce(event, counters)
  const req = await server.waitForType('announce', 1, 2000)
  const done = await nextEvent(tracker, ['update', 'error'], 2000)
  assert.equal(done.name, 'update', `expected an update, got ${done.name} ${JSON.stringify(done.value)}; events: ${JSON.stringify(events)}`)
  return req
}

// ---------------------------------------------------------------------------
// Module shape.

test('UdpTracker.UdpTracker and UdpTracker.default are UdpTracker itself', () => {
  assert.equal(typeof UdpTracker, 'function')
  assert.equal(UdpTracker.UdpTracker, UdpTracker)
  assert.equal(UdpTracker.default, UdpTracker)
})

test('an instance is an EventEmitter with the 1.2.0 fields', (t) => {
  const tracker = trackerFor(t, NOWHERE, { port: 1234 })
  assert.ok(tracker instanceof EventEmitter)
  assert.ok(tracker instanceof UdpTracker)
  assert.equal(typeof tracker.on, 'function')
  assert.equal(tracker.announceUrl, NOWHERE)
  assert.equal(tracker.port, 1234)
  assert.equal(tracker.destroyed, false)
  assert.equal(tracker.destoryed, false)
  assert.equal(tracker._in_interval, false)
  assert.deepEqual(tracker._announce_intervals_timeout, [])
  assert.deepEqual(tracker._udpTimmers, [])
  assert.equal(tracker._socket, null)
  assert.equal(tracker._timeout, 15000)
})

test("1.2.0's fields made from others can be assigned, and read back as assigned", (t) => {
  const tracker = trackerFor(t, NOWHERE, { port: 1234, _timeout: 2000 })
  const other = trackerFor(t, NOWHERE, { port: 1234, _timeout: 2000 })
  const values = { port: 4321, destoryed: 'yes', _timeout: 99, _socket: 'mine', _udpTimmers: [1] }
  for (const [name, value] of Object.entries(values)) tracker[name] = value
  for (const [name, value] of Object.entries(values)) assert.deepEqual(tracker[name], value, name)
  // Only that instance: the others keep theirs.
  assert.equal(other.port, 1234)
  assert.equal(other.destoryed, false)
  assert.equal(other._timeout, 2000)
  assert.equal(other._socket, null)
  assert.deepEqual(other._udpTimmers, [])
})

// ---------------------------------------------------------------------------
// peerId and infoHash.

test('peerId may be a 20-byte Buffer, Uint8Array or a 20-byte string', (t) => {
  const fromBuffer = trackerFor(t, NOWHERE, {}, Buffer.from('ABCDEFGHIJKLMNOPQRST'))
  assert.deepEqual(fromBuffer.peerId, Buffer.from('ABCDEFGHIJKLMNOPQRST'))
  const fromString = trackerFor(t, NOWHERE, {}, 'ABCDEFGHIJKLMNOPQRST')
  assert.ok(Buffer.isBuffer(fromString.peerId))
  assert.deepEqual(fromString.peerId, Buffer.from('ABCDEFGHIJKLMNOPQRST'))
  const fromUint8 = trackerFor(t, NOWHERE, {}, new Uint8Array(20).fill(7))
  assert.deepEqual(fromUint8.peerId, Buffer.alloc(20, 7))
})

test('infoHash may be a 20-byte Buffer or a 40-character hex string (either case)', (t) => {
  const hex = '0123456789abcdef0123456789abcdef01234567'
  assert.deepEqual(trackerFor(t, NOWHERE, {}, PEER_ID, hex).infoHash, Buffer.from(hex, 'hex'))
  assert.deepEqual(trackerFor(t, NOWHERE, {}, PEER_ID, hex.toUpperCase()).infoHash, Buffer.from(hex, 'hex'))
  assert.deepEqual(trackerFor(t, NOWHERE, {}, PEER_ID, Buffer.alloc(20, 9)).infoHash, Buffer.alloc(20, 9))
})

test('a later change to the caller\'s peerId or infoHash buffer does not reach the wire', async (t) => {
  const peerId = Buffer.from('ABCDEFGHIJKLMNOPQRST')
  const infoHash = Buffer.alloc(20, 0x11)
  const server = await serverFor(t)
  const tracker = trackerFor(t, server.url, {}, peerId, infoHash)
  tracker.on('error', () => {})
  peerId.fill(0)
  infoHash.fill(0)
  tracker.announce(2, {})
  const req = await server.waitForType('announce')
  assert.deepEqual(req.peerId, Buffer.from('ABCDEFGHIJKLMNOPQRST'))
  assert.deepEqual(req.infoHash, Buffer.alloc(20, 0x11))
})

// ---------------------------------------------------------------------------
// announceUrl and options.

// ---------------------------------------------------------------------------
// Counters.

test('numeric counters are sent as u64 on the wire', async (t) => {
  const req = await announceOnWire(t, { counters: { downloaded: 1, left: 2 ** 53 - 1, uploaded: 123456789 } })
  assert.equal(req.downloaded, 1n)
  assert.equal(req.left, 2n ** 53n - 1n)
  assert.equal(req.uploaded, 123456789n)
})

test('BigInt counters up to 2^64-1 are sent exactly', async (t) => {
  const req = await announceOnWire(t, { counters: { downloaded: 2n ** 64n - 1n, left: 2n ** 53n + 1n, uploaded: 0n } })
  assert.equal(req.downloaded, 2n ** 64n - 1n)
  assert.equal(req.left, 2n ** 53n + 1n)
  assert.equal(req.uploaded, 0n)
})

test('missing counters are sent as 0', async (t) => {
  const req = await announceOnWire(t, { counters: { left: 77 } })
  assert.equal(req.downloaded, 0n)
  assert.equal(req.left, 77n)
  assert.equal(req.uploaded, 0n)
  const bare = await announceOnWire(t, { counters: undefined })
  assert.deepEqual([bare.downloaded, bare.left, bare.uploaded], [0n, 0n, 0n])
})

// ---------------------------------------------------------------------------
// Events.

test('an event outside 0-3 emits error "unknown event" and sends nothing', async (t) => {
  const server = await trackerServer(t)
  for (const event of [4, -1, 1.5, 'bogus', '4', null, undefined, {}]) {
    const tracker = trackerFor(t, server.url, {})
    const events = recordEvents(tracker)
    tracker.announce(event, { left: 1 })
    await sleep(20)
    assert.deepEqual(events.map((e) => [e.name, e.value]), [['error', 'unknown event']], `event ${String(event)}`)
  }
  await sleep(150)
  assert.equal(received(server), 0, `"unknown event" must send nothing, the tracker received ${received(server)} datagram(s)`)
})

test('events are emitted asynchronously: a listener attached after announce() returns gets "unknown event"', async (t) => {
  const tracker = trackerFor(t, NOWHERE, {})
  // With no 'error' listener a synchronous emit would throw out of announce().
  assert.doesNotThrow(() => tracker.announce(9, {}))
  const got = await nextEvent(tracker, ['error', 'update'], 1000)
  assert.deepEqual(got, { name: 'error', value: 'unknown event' })
})

test('event names and numeric strings are accepted as events', async (t) => {
  const cases = [['none', 0], ['completed', 1], ['started', 2], ['stopped', 3], ['1', 1]]
  for (const [event, code] of cases) {
    const req = await announceOnWire(t, { event })
    assert.equal(req.event, code, `event ${JSON.stringify(event)}`)
  }
})

// ---------------------------------------------------------------------------
// numWant, key, ip.

test('opts.numWant defaults to 50 on the wire; -1 and other values are sent as given', async (t) => {
  assert.equal((await announceOnWire(t, {})).numWant, 50)
  assert.equal((await announceOnWire(t, { opts: { numWant: -1 } })).numWant, -1)
  assert.equal((await announceOnWire(t, { opts: { numWant: 200 } })).numWant, 200)
  assert.equal((await announceOnWire(t, { opts: { numWant: 0 } })).numWant, 0)
})

test('opts.key is sent as given', async (t) => {
  assert.equal((await announceOnWire(t, { opts: { key: 0xdeadbeef } })).key, 0xdeadbeef)
  assert.equal((await announceOnWire(t, { opts: { key: 0 } })).key, 0)
})

test('the key is the same across one instance\'s announces', async (t) => {
  const server = await serverFor(t)
  let answered = 0
  // The first announce is refused, so the instance is not in an interval and
  // can announce again at once.
  server.onAnnounce = (req) => (answered++ === 0
    ? errorReply(req.transactionId, 'try again')
    : announceReply(req.transactionId, { interval: 1800 }))
  const tracker = trackerFor(t, server.url, {})
  tracker.announce(2, {})
  assert.deepEqual(await nextEvent(tracker), { name: 'error', value: 'try again' })
  tracker.announce(2, {})
  assert.equal((await nextEvent(tracker)).name, 'update')
  const keys = server.announces.map((r) => r.key)
  assert.equal(keys.length, 2)
  assert.equal(keys[0], keys[1], `the key changed between announces of one instance: ${keys}`)
})

test('opts.ip is sent as a big-endian u32; default 0', async (t) => {
  assert.equal((await announceOnWire(t, { opts: { ip: '10.1.2.3' } })).ip, 0x0a010203)
  assert.equal((await announceOnWire(t, { opts: { ip: '255.255.255.254' } })).ip, 0xfffffffe)
  assert.equal((await announceOnWire(t, {})).ip, 0)
})

// ---------------------------------------------------------------------------
// destroy.

test('destroy() sets destroyed and destoryed, clears _socket and _udpTimmers, and is safe twice', async (t) => {
  const server = await trackerServer(t, { loss: 1 }) // keeps the request in flight
  const tracker = trackerFor(t, server.url, { _timeout: 1000 })
  const events = recordEvents(tracker)
  tracker.announce(2, {})
  await waitUntil(() => received(server) >= 1, 'the connect', 2000)
  tracker.destroy()
  assert.equal(tracker.destroyed, true)
  assert.equal(tracker.destoryed, true)
  assert.equal(tracker._socket, null)
  assert.deepEqual(tracker._udpTimmers, [])
  assert.deepEqual(tracker._announce_intervals_timeout, [])
  assert.doesNotThrow(() => tracker.destroy())
  assert.doesNotThrow(() => tracker.destory())
  assert.equal(tracker.destroyed, true)
  assert.equal(tracker._socket, null)
  await sleep(100)
  assert.deepEqual(events, [])
})

test('destroy() during a scrape cancels it: no event, and its id is given up', async (t) => {
  const server = await trackerServer(t, { loss: 1 }) // keeps the request in flight
  const tracker = trackerFor(t, server.url, { _timeout: 1000 })
  const events = recordEvents(tracker)
  tracker.scrape()
  await waitUntil(() => received(server) >= 1, 'the connect', 2000)
  assert.notEqual(tracker._scrapeId, 0)
  tracker.destroy()
  assert.equal(tracker._scrapeId, 0)
  await sleep(100)
  assert.deepEqual(events, [])
})

test('destory() (the 1.2.0 spelling) destroys too, and clears the interval timers', async (t) => {
  const server = await trackerServer(t, { interval: 60 })
  const tracker = trackerFor(t, server.url, {})
  tracker.announce(2, {})
  assert.equal((await nextEvent(tracker)).name, 'update')
  assert.ok(tracker._announce_intervals_timeout.length >= 1, 'an update must leave an interval timer')
  tracker.destory()
  assert.equal(tracker.destroyed, true)
  assert.equal(tracker.destoryed, true)
  assert.equal(tracker._socket, null)
  assert.deepEqual(tracker._udpTimmers, [])
  assert.deepEqual(tracker._announce_intervals_timeout, [])
})

test('calls after destroy are harmless: no throw, no event, no datagram', async (t) => {
  const server = await trackerServer(t)
  const tracker = trackerFor(t, server.url, {})
  const events = recordEvents(tracker)
  tracker.destroy()
  assert.doesNotThrow(() => tracker.announce(2, { left: 5 }))
  assert.doesNotThrow(() => tracker.announce(9, {})) // would otherwise be 'unknown event'
  assert.doesNotThrow(() => tracker.announce(0))
  assert.doesNotThrow(() => tracker.scrape())
  assert.doesNotThrow(() => tracker.destroy())
  await sleep(150)
  assert.deepEqual(events, [], `a destroyed instance emitted ${JSON.stringify(events)}`)
  assert.equal(received(server), 0, `a destroyed instance sent ${received(server)} datagram(s)`)
})
