'use strict'
// BEP 15 on the wire against a scripted tracker: the 1.2.0 error strings,
// retransmission, transaction-id and source matching, the update payload, the
// announce datagram, the connection-id cache, and many instances on one socket.

const test = require('node:test')
const assert = require('node:assert/strict')

const UdpTracker = require('..')
const {
  ScriptServer,
  serverFor,
  PROTOCOL_ID,
  connectReply,
  announceReply,
  errorReply,
  rawReply,
  recordEvents,
  nextEvent,
  twentyBytes,
  sleep
} = require('./helpers/script-server.js')

const PEER_ID = Buffer.from('-JS0001-protocoltest')
const INFO_HASH = Buffer.from('aabbccddeeff00112233445566778899aabbccdd', 'hex')

function trackerFor (t, url, opts, peerId = PEER_ID, infoHash = INFO_HASH) {
  const tracker = new UdpTracker(peerId, infoHash, url, opts)
  t.after(() => tracker.destroy())
  return tracker
}

/** Announces once and returns the first 'update' or 'error' as { name, value }. */
async function announceAndWait (t, server, opts = {}, timeoutMs = 3000) {
  const tracker = trackerFor(t, server.url, opts)
  tracker.announce(2, { left: 100 })
  return nextEvent(tracker, ['update', 'error'], timeoutMs)
}

function expectError (got, message) {
  assert.deepEqual(got, { name: 'error', value: message },
    `expected the error ${JSON.stringify(message)}, got ${got.name} ${JSON.stringify(got.value)}`)
}

// ---------------------------------------------------------------------------
// Error strings (byte for byte those of 1.2.0).

test('a connect reply of 15 bytes is "connect response is not 16 bytes long"', async (t) => {
  const server = await serverFor(t)
  server.onConnect = (req) => rawReply(0, req.transactionId, Buffer.alloc(7, 1))
  expectError(await announceAndWait(t, server), 'connect response is not 16 bytes long')
})

test('a connect reply of 17 bytes is "connect response is not 16 bytes long"', async (t) => {
  const server = await serverFor(t)
  server.onConnect = (req) => rawReply(0, req.transactionId, Buffer.alloc(9, 1))
  expectError(await announceAndWait(t, server), 'connect response is not 16 bytes long')
})

test('an announce reply of 19 bytes is "announce response should be 20 bytes"', async (t) => {
  const server = await serverFor(t)
  server.onAnnounce = (req) => rawReply(1, req.transactionId, Buffer.alloc(11))
  expectError(await announceAndWait(t, server), 'announce response should be 20 bytes')
})

test('an error reply (action 3) of exactly 8 bytes is "error action response is not 9 bytes long"', async (t) => {
  const server = await serverFor(t)
  server.onConnect = (req) => rawReply(3, req.transactionId)
  expectError(await announceAndWait(t, server), 'error action response is not 9 bytes long')
})

test('an error reply with text is emitted as that text, trailing NULs stripped', async (t) => {
  const server = await serverFor(t)
  server.onAnnounce = (req) => errorReply(req.transactionId, 'torrent not registered\0\0')
  expectError(await announceAndWait(t, server), 'torrent not registered')
})

test('an error reply to the connect request is emitted as its text', async (t) => {
  const server = await serverFor(t)
  server.onConnect = (req) => errorReply(req.transactionId, 'go away')
  expectError(await announceAndWait(t, server), 'go away')
})

test('a reply with unknown action 5 is "unsupported event:5"', async (t) => {
  const server = await serverFor(t)
  server.onConnect = (req) => rawReply(5, req.transactionId, Buffer.alloc(8))
  expectError(await announceAndWait(t, server), 'unsupported event:5')
})

test('a valid reply of the wrong kind (an announce reply to a connect) is "unsupported event:1"', async (t) => {
  const server = await serverFor(t)
  server.onConnect = (req) => announceReply(req.transactionId, { interval: 10 })
  expectError(await announceAndWait(t, server), 'unsupported event:1')
})

test('an announce reply with a truncated peer entry is an error, not a crash', async (t) => {
  const server = await serverFor(t)
  server.onAnnounce = (req) => Buffer.concat([announceReply(req.transactionId, { peers: ['1.2.3.4:5'] }), Buffer.from([9, 9, 9])])
  expectError(await announceAndWait(t, server), 'announce response has a truncated peer entry')
})

// ---------------------------------------------------------------------------
// Retransmission and timeouts.

test('silence with _timeout 20 and maxAttempts 3 is "tracker is not responding after:160" after 3 connect sends', async (t) => {
  const server = await serverFor(t)
  server.onConnect = () => null
  const started = performance.now()
  const got = await announceAndWait(t, server, { _timeout: 20, maxAttempts: 3 }, 3000)
  const elapsed = performance.now() - started
  expectError(got, 'tracker is not responding after:160')
  assert.equal(server.connects.length, 3, `expected 3 connect sends, the tracker received ${server.connects.length}`)
  assert.equal(server.received.length, 3)
  // 40 + 80 + 160 ms of waiting: the error comes after the last wait.
  assert.ok(elapsed >= 270, `the timeout error came after ${elapsed.toFixed(0)} ms, before the last wait (280 ms) had passed`)
})

test('silence with the default 8 attempts and _timeout 5 is "tracker is not responding after:1280" after 8 connect sends', async (t) => {
  const server = await serverFor(t)
  server.onConnect = () => null
  const got = await announceAndWait(t, server, { _timeout: 5 }, 8000)
  expectError(got, 'tracker is not responding after:1280')
  assert.equal(server.connects.length, 8, `expected 8 connect sends, the tracker received ${server.connects.length}`)
})

test('connect retransmissions are spaced _timeout * 2^k apart (80, 160, 320 ms) with one transaction id', async (t) => {
  const server = await serverFor(t)
  server.onConnect = () => null
  const got = await announceAndWait(t, server, { _timeout: 40, maxAttempts: 4 }, 4000)
  expectError(got, 'tracker is not responding after:640')
  const sends = server.connects
  assert.equal(sends.length, 4, `expected 4 connect sends, got ${sends.length}`)
  const expected = [80, 160, 320]
  for (let i = 0; i < 3; i++) {
    const gap = sends[i + 1].at - sends[i].at
    assert.ok(gap >= expected[i] - 10, `gap ${i + 1} was ${gap.toFixed(1)} ms, expected about ${expected[i]} ms (retransmitted too early)`)
    assert.ok(gap < expected[i] + 150, `gap ${i + 1} was ${gap.toFixed(1)} ms, expected about ${expected[i]} ms (retransmitted far too late)`)
  }
  const tids = new Set(sends.map((r) => r.transactionId))
  assert.equal(tids.size, 1, `retransmissions used ${tids.size} different transaction ids`)
})

test('announce retransmissions repeat the same datagram (same transaction and connection id)', async (t) => {
  const server = await serverFor(t)
  let seen = 0
  server.onAnnounce = (req) => (++seen < 3 ? null : announceReply(req.transactionId, { leechers: 3 }))
  const got = await announceAndWait(t, server, { _timeout: 20, maxAttempts: 4 }, 3000)
  assert.equal(got.name, 'update', `expected an update after the third announce send, got ${JSON.stringify(got)}`)
  assert.equal(got.value.leechers, 3)
  const sends = server.announces
  assert.equal(sends.length, 3)
  assert.equal(server.connects.length, 1)
  assert.deepEqual(sends[1].bytes, sends[0].bytes)
  assert.deepEqual(sends[2].bytes, sends[0].bytes)
})

// ---------------------------------------------------------------------------
// Matching replies to requests.

test('a reply with a wrong transaction id is dropped and the request completes with the right one', async (t) => {
  const server = await serverFor(t)
  server.onConnect = async (req, rinfo) => {
    await server.send(connectReply((req.transactionId ^ 0x5a5a5a5a) >>> 0, 1n), rinfo)
    await sleep(30)
    return connectReply(req.transactionId, 2n)
  }
  server.onAnnounce = async (req, rinfo) => {
    await server.send(announceReply((req.transactionId ^ 0x00ff00ff) >>> 0, { leechers: 666, seeders: 666 }), rinfo)
    await sleep(30)
    return announceReply(req.transactionId, { leechers: 7, seeders: 8, interval: 1800 })
  }
  const before = UdpTracker.stats().droppedUnknown
  const tracker = trackerFor(t, server.url, { _timeout: 1000 })
  const events = recordEvents(tracker)
  tracker.announce(2, {})
  await nextEvent(tracker, ['update', 'error'], 3000)
  await sleep(50)
  assert.deepEqual(events.map((e) => e.name), ['update'], `events: ${JSON.stringify(events)}`)
  assert.equal(events[0].value.leechers, 7)
  assert.equal(events[0].value.seeds, 8)
  assert.equal(server.announces[0].connectionId, 2n, 'the announce must use the id from the matching connect reply')
  const after = UdpTracker.stats().droppedUnknown
  assert.ok(after >= before + 2, `stats().droppedUnknown went from ${before} to ${after}; expected it to count both stray replies`)
})

/** Answers every request first from another port, then (after 40 ms) from the tracker's own. */
function answerFromBothPorts (server) {
  server.onConnect = async (req, rinfo) => {
    await server.sendFromOtherSocket(connectReply(req.transactionId, 111n), rinfo)
    await sleep(40)
    return connectReply(req.transactionId, 222n)
  }
  server.onAnnounce = async (req, rinfo) => {
    await server.sendFromOtherSocket(announceReply(req.transactionId, { leechers: 111, seeders: 1 }), rinfo)
    await sleep(40)
    return announceReply(req.transactionId, { leechers: 222, seeders: 2 })
  }
}

test('a reply from another source port is dropped in the default strict mode', async (t) => {
  const server = await serverFor(t)
  answerFromBothPorts(server)
  const before = UdpTracker.stats().droppedWrongSource
  const tracker = trackerFor(t, server.url, { _timeout: 1000 })
  const events = recordEvents(tracker)
  tracker.announce(2, {})
  await nextEvent(tracker, ['update', 'error'], 3000)
  await sleep(50)
  assert.deepEqual(events.map((e) => e.name), ['update'], `events: ${JSON.stringify(events)}`)
  assert.equal(events[0].value.leechers, 222, 'the update must come from the reply sent by the tracker\'s own port')
  assert.equal(server.announces[0].connectionId, 222n, 'the connect reply from another port must not be used')
  const after = UdpTracker.stats().droppedWrongSource
  assert.ok(after >= before + 2, `stats().droppedWrongSource went from ${before} to ${after}; expected both foreign replies counted`)
})

test('a reply from another source port is accepted with strictSource: false', async (t) => {
  const server = await serverFor(t)
  answerFromBothPorts(server)
  const tracker = trackerFor(t, server.url, { _timeout: 1000, strictSource: false })
  const events = recordEvents(tracker)
  tracker.announce(2, {})
  await nextEvent(tracker, ['update', 'error'], 3000)
  await sleep(50)
  assert.deepEqual(events.map((e) => e.name), ['update'], `events: ${JSON.stringify(events)}`)
  assert.equal(events[0].value.leechers, 111, 'with strictSource: false the first reply (from another port) must be used')
  assert.equal(server.announces[0].connectionId, 111n)
})

// ---------------------------------------------------------------------------
// What the client sends and what it makes of the reply.

test('the update payload is { leechers, seeds, peers, interval } from the reply', async (t) => {
  const server = await serverFor(t)
  server.onAnnounce = (req) => announceReply(req.transactionId, {
    interval: 1234,
    leechers: 5,
    seeders: 9,
    peers: ['10.0.0.1:6881', '192.168.255.254:65535', '1.2.3.4:1']
  })
  const got = await announceAndWait(t, server)
  assert.deepEqual(got, {
    name: 'update',
    value: { leechers: 5, seeds: 9, peers: ['10.0.0.1:6881', '192.168.255.254:65535', '1.2.3.4:1'], interval: 1234 }
  })
})

test('an update with no peers has an empty peers array', async (t) => {
  const server = await serverFor(t)
  server.onAnnounce = (req) => announceReply(req.transactionId, { interval: 60, leechers: 0, seeders: 1 })
  const got = await announceAndWait(t, server)
  assert.deepEqual(got, { name: 'update', value: { leechers: 0, seeds: 1, peers: [], interval: 60 } })
})

test('the connect request is 16 bytes: protocol id, action 0, a transaction id', async (t) => {
  const server = await serverFor(t)
  await announceAndWait(t, server)
  const connect = server.received[0]
  assert.equal(connect.type, 'connect', `the first datagram was not a connect request: ${connect.bytes.toString('hex')}`)
  assert.equal(connect.length, 16)
  assert.equal(connect.bytes.readBigUInt64BE(0), PROTOCOL_ID)
  assert.equal(connect.bytes.readUInt32BE(8), 0)
})

test('the announce datagram carries info hash, peer id, counters, event, key, num_want, port and the connection id', async (t) => {
  const server = await ScriptServer.create({ connectionId: 0xfedcba9876543210n })
  t.after(() => server.close())
  const tracker = trackerFor(t, server.url, { port: 6881, key: 0x01020304 })
  tracker.announce(1, { downloaded: 2n ** 53n + 3n, left: 42, uploaded: 7n })
  assert.equal((await nextEvent(tracker)).name, 'update')
  const req = server.announces[0]
  assert.equal(req.action, 1)
  assert.equal(req.connectionId, 0xfedcba9876543210n)
  assert.notEqual(req.transactionId, server.connects[0].transactionId, 'the announce must not reuse the connect\'s transaction id')
  assert.deepEqual(req.infoHash, INFO_HASH)
  assert.deepEqual(req.peerId, PEER_ID)
  assert.equal(req.downloaded, 2n ** 53n + 3n)
  assert.equal(req.left, 42n)
  assert.equal(req.uploaded, 7n)
  assert.equal(req.event, 1)
  assert.equal(req.ip, 0)
  assert.equal(req.key, 0x01020304)
  assert.equal(req.numWant, 50)
  assert.equal(req.port, 6881)
})

test('a URL with a path and query sends them as BEP 41 URL data: type 2, length, bytes, end of options', async (t) => {
  const server = await serverFor(t)
  const tracker = trackerFor(t, `${server.url}/announce?x=1`, {})
  tracker.announce(2, {})
  assert.equal((await nextEvent(tracker)).name, 'update')
  const req = server.announces[0]
  const path = Buffer.from('/announce?x=1')
  assert.deepEqual(req.extra, Buffer.concat([Buffer.from([2, path.length]), path, Buffer.from([0])]),
    `bytes after the fixed 98: ${req.extra.toString('hex')}`)
  assert.equal(req.length, 98 + 2 + 13 + 1)
})

test('a URL without a path sends no BEP 41 options (exactly 98 bytes)', async (t) => {
  for (const suffix of ['', '/']) {
    const server = await serverFor(t)
    const tracker = trackerFor(t, server.url + suffix, {})
    tracker.announce(2, {})
    assert.equal((await nextEvent(tracker)).name, 'update')
    assert.equal(server.announces[0].length, 98, `URL ${JSON.stringify(server.url + suffix)}: announce was ${server.announces[0].length} bytes`)
  }
})

test('URL data longer than 255 bytes is split over several URL data options', async (t) => {
  const server = await serverFor(t)
  const path = '/a' + 'b'.repeat(300)
  const tracker = trackerFor(t, server.url + path, {})
  tracker.announce(2, {})
  assert.equal((await nextEvent(tracker)).name, 'update')
  const req = server.announces[0]
  assert.equal(req.malformed, false)
  assert.equal(req.ended, true)
  assert.deepEqual(req.options.map((o) => [o.type, o.data.length]), [[2, 255], [2, path.length - 255], [0, 0]])
  assert.equal(req.urlData, path)
})

test('an IPv6 tracker ([::1]) works and its peers are 18-byte entries shown as [v6]:port', async (t) => {
  let server
  try {
    server = await ScriptServer.create({ host: '::1' })
  } catch (err) {
    t.skip(`cannot bind ::1: ${err.message}`)
    return
  }
  t.after(() => server.close())
  server.onAnnounce = (req) => announceReply(req.transactionId, { interval: 100, leechers: 1, seeders: 2, peers: ['[2001:db8::1]:6881'] })
  const got = await announceAndWait(t, server)
  assert.deepEqual(got, { name: 'update', value: { leechers: 1, seeds: 2, peers: ['[2001:db8::1]:6881'], interval: 100 } })
  assert.equal(server.received[0].rinfo.family, 'IPv6')
})

// ---------------------------------------------------------------------------
// Connection-id cache.

test('an instance reuses its connection id; a second instance connects first, as a 1.2.0 mock expects', async (t) => {
  UdpTracker.forgetConnectionIds()
  const server = await serverFor(t)
  const a = trackerFor(t, server.url, {})
  a.announce(2, {})
  assert.equal((await nextEvent(a)).name, 'update')
  a.scrape()
  assert.equal((await nextEvent(a, ['scrape', 'error'])).name, 'scrape')
  const b = trackerFor(t, server.url, {}, Buffer.from('-JS0001-secondpeer00'))
  b.announce(2, {})
  assert.equal((await nextEvent(b)).name, 'update')
  assert.deepEqual(server.received.map((r) => r.type), ['connect', 'announce', 'scrape', 'connect', 'announce'],
    'the instance reuses its id for the scrape; the second instance connects')
})

test('promise-API calls share a cached connection id', async (t) => {
  UdpTracker.forgetConnectionIds()
  const server = await serverFor(t)
  for (const peer of ['-JS0001-promise-0001', '-JS0001-promise-0002']) {
    await UdpTracker.announce(server.url, { infoHash: Buffer.alloc(20, 7), peerId: Buffer.from(peer) })
  }
  assert.deepEqual(server.received.map((r) => r.type), ['connect', 'announce', 'announce'])
  assert.equal(server.announces[1].connectionId, server.connectionId)
})

test('with connectionIdCache: false every instance connects first', async (t) => {
  UdpTracker.forgetConnectionIds()
  const server = await serverFor(t)
  for (const peer of ['-JS0001-nocache-0001', '-JS0001-nocache-0002']) {
    const tracker = trackerFor(t, server.url, { connectionIdCache: false }, Buffer.from(peer))
    tracker.announce(2, {})
    assert.equal((await nextEvent(tracker)).name, 'update')
  }
  assert.deepEqual(server.received.map((r) => r.type), ['connect', 'announce', 'connect', 'announce'])
})

test('forgetConnectionIds() makes the next request connect again', async (t) => {
  UdpTracker.forgetConnectionIds()
  const server = await serverFor(t)
  const a = trackerFor(t, server.url, {})
  a.announce(2, {})
  assert.equal((await nextEvent(a)).name, 'update')
  UdpTracker.forgetConnectionIds()
  const b = trackerFor(t, server.url, {}, Buffer.from('-JS0001-secondpeer00'))
  b.announce(2, {})
  assert.equal((await nextEvent(b)).name, 'update')
  assert.deepEqual(server.received.map((r) => r.type), ['connect', 'announce', 'connect', 'announce'])
})

/** A tracker that "restarts": after restart() it issues a new id and refuses the old one. */
function restartableTracker (server, { alwaysRefuse = false } = {}) {
  const state = { current: 1001n, restarted: false }
  server.onConnect = (req) => connectReply(req.transactionId, state.current)
  server.onAnnounce = (req) => {
    if (req.connectionId !== state.current || (alwaysRefuse && state.restarted)) {
      return errorReply(req.transactionId, 'Connection ID missmatch.')
    }
    return announceReply(req.transactionId, { interval: 1800, leechers: 4 })
  }
  return () => { state.current = 2002n; state.restarted = true }
}

/** Promise-API announces share scope 0, so the second reuses the first's id. */
function promiseAnnounce (server, peer) {
  return UdpTracker.announce(server.url, { infoHash: Buffer.alloc(20, 9), peerId: Buffer.from(peer) }, { timeout: 3000 })
}

test('an error reply to an announce made with a cached id makes the client reconnect and retry (restarted tracker)', async (t) => {
  UdpTracker.forgetConnectionIds()
  const server = await serverFor(t)
  const restart = restartableTracker(server)
  await promiseAnnounce(server, '-JS0001-firstpeer000')
  restart()
  const update = await promiseAnnounce(server, '-JS0001-secondpeer00')
  assert.equal(update.leechers, 4, 'after the tracker refused the cached id the client should reconnect and succeed')
  assert.deepEqual(server.received.map((r) => r.type), ['connect', 'announce', 'announce', 'connect', 'announce'])
  assert.deepEqual(server.announces.map((r) => r.connectionId), [1001n, 1001n, 2002n])
})

test('the reconnect after an error on a cached id happens once: a second error is emitted', async (t) => {
  UdpTracker.forgetConnectionIds()
  const server = await serverFor(t)
  const restart = restartableTracker(server, { alwaysRefuse: true })
  await promiseAnnounce(server, '-JS0001-firstpeer000')
  restart()
  await assert.rejects(promiseAnnounce(server, '-JS0001-secondpeer00'),
    { code: 'ERR_TRACKER_ERROR', message: 'Connection ID missmatch.' })
  await sleep(100)
  assert.deepEqual(server.received.map((r) => r.type), ['connect', 'announce', 'announce', 'connect', 'announce'])
})

test('an error reply to an announce made with a fresh id is emitted without a reconnect', async (t) => {
  UdpTracker.forgetConnectionIds()
  const server = await serverFor(t)
  server.onAnnounce = (req) => errorReply(req.transactionId, 'banned')
  const tracker = trackerFor(t, server.url, {})
  const events = recordEvents(tracker)
  tracker.announce(2, {})
  await nextEvent(tracker, ['update', 'error'], 3000)
  await sleep(100)
  assert.deepEqual(events.map((e) => [e.name, e.value]), [['error', 'banned']])
  assert.deepEqual(server.received.map((r) => r.type), ['connect', 'announce'])
})

// "At the same time" needs the engine to see every start before the connect's
// reply: the tick's starts reach it in one call (lib/engine.js).
test('instances announcing at the same time share one connect', async (t) => {
  UdpTracker.forgetConnectionIds()
  const server = await serverFor(t)
  const trackers = []
  for (let i = 0; i < 5; i++) trackers.push(trackerFor(t, server.url, {}, twentyBytes('-JS0001-shared--', i)))
  const done = trackers.map((tr) => nextEvent(tr, ['update', 'error'], 3000))
  for (const tr of trackers) tr.announce(2, {})
  const results = await Promise.all(done)
  assert.deepEqual(results.map((r) => r.name), ['update', 'update', 'update', 'update', 'update'])
  assert.equal(server.connects.length, 1, `5 concurrent announces sent ${server.connects.length} connect requests`)
  assert.equal(server.announces.length, 5)
})

// ---------------------------------------------------------------------------
// Many instances on one socket.

test('200 instances on one tracker with replies in shuffled order each get exactly their own counts', async (t) => {
  const N = 200
  const server = await serverFor(t)
  const pending = new Map() // instance index -> [transaction id, rinfo]
  server.onAnnounce = (req, rinfo) => {
    const i = req.infoHash.readUInt32BE(16)
    if (!pending.has(i)) pending.set(i, [req.transactionId, rinfo])
    if (pending.size === N && !pending.flushed) {
      pending.flushed = true
      const order = [...pending.keys()]
      for (let k = order.length - 1; k > 0; k--) {
        const j = Math.floor(Math.random() * (k + 1))
        ;[order[k], order[j]] = [order[j], order[k]]
      }
      for (const idx of order) {
        const [tid, to] = pending.get(idx)
        server.send(announceReply(tid, {
          interval: 1800,
          leechers: 1000 + idx,
          seeders: 3 * idx + 1,
          peers: [`10.0.${idx >> 8}.${idx & 255}:${6000 + idx}`]
        }), to)
      }
    }
    return null
  }
  const results = new Array(N)
  const trackers = []
  for (let i = 0; i < N; i++) {
    const tracker = trackerFor(t, server.url, { _timeout: 3000 }, twentyBytes('-JS0001-many----', i), twentyBytes('many-instances!!', i))
    results[i] = []
    tracker.on('update', (u) => results[i].push(['update', u]))
    tracker.on('error', (e) => results[i].push(['error', e]))
    trackers.push(tracker)
  }
  const all = Promise.all(trackers.map((tr) => nextEvent(tr, ['update', 'error'], 10000)))
  for (const tracker of trackers) tracker.announce(2, { left: 1 })
  await all
  await sleep(100)
  for (let i = 0; i < N; i++) {
    assert.deepEqual(results[i], [['update', {
      leechers: 1000 + i,
      seeds: 3 * i + 1,
      peers: [`10.0.${i >> 8}.${i & 255}:${6000 + i}`],
      interval: 1800
    }]], `instance ${i} got ${JSON.stringify(results[i])}`)
  }
})
