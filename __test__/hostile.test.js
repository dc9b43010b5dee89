'use strict'
// Hostile datagrams against the scripted tracker: random bytes sprayed at the
// client's socket, every truncation of valid replies, the largest datagrams
// UDP can carry, replies from the wrong source, replies swapped between
// instances, duplicated and reordered replies, odd error replies.
//
// What every test asserts: the process does not crash, no instance gets an
// `update` that the tracker did not send to that instance's own request (its
// own transaction id, from the tracker's address), and the 1.2.0 error
// strings come out where a reply is malformed.

const test = require('node:test')
const assert = require('node:assert/strict')
const dgram = require('node:dgram')

const UdpTracker = require('..')
const {
  ScriptServer,
  serverFor,
  prng,
  connectReply,
  announceReply,
  errorReply,
  rawReply,
  recordEvents,
  nextEvent,
  twentyBytes,
  sleep,
  until,
  delta
} = require('./helpers/script-server.js')

const PEER_ID = Buffer.from('-JS0001-hostiletest0')
const INFO_HASH = Buffer.from('5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e', 'hex')

// Every error string the library emits for a reply it could not use.
const PROTOCOL_ERRORS = [
  'connect response is not 16 bytes long',
  'announce response should be 20 bytes',
  'error action response is not 9 bytes long',
  'announce response has a truncated peer entry',
  'scrape response is not 8 + 12 bytes per info hash long'
]

function trackerFor (t, url, opts, peerId = PEER_ID, infoHash = INFO_HASH) {
  const tracker = new UdpTracker(peerId, infoHash, url, opts)
  t.after(() => tracker.destroy())
  return tracker
}

/** Binds a UDP socket on `host` (port 0 = ephemeral); the caller closes it. */
function bindSocket (t, host, port = 0) {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4')
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(port, host, () => {
      socket.off('error', reject)
      t.after(() => new Promise((r) => socket.close(r)))
      resolve(socket)
    })
  })
}

function sendFrom (socket, bytes, rinfo) {
  return new Promise((resolve, reject) => {
    socket.send(bytes, rinfo.port, rinfo.address, (err) => (err ? reject(err) : resolve()))
  })
}

/** A socket on 127.0.0.2, on the tracker's own port when that is free there. */
async function otherLoopbackSocket (t, port) {
  try {
    return await bindSocket(t, '127.0.0.2', port)
  } catch {
    return bindSocket(t, '127.0.0.2', 0)
  }
}

function ipv4Peer (bytes, at) {
  return `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}:${bytes.readUInt16BE(at + 4)}`
}

const utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true })

/**
 * What the client must make of `bytes` (at least 8 bytes, carrying the
 * transaction id of its request) as the reply to its connect request
 * (`phase` 'connect') or to its announce ('announce'), over IPv4: the rules
 * of the README (1.2.0's checks: action first, then length).
 * Returns { name: 'error', value } | { name: 'update', value } | { name: 'connected', connectionId }.
 */
function oracle (bytes, phase) {
  const len = bytes.length
  const action = bytes.readUInt32BE(0)
  const error = (value) => ({ name: 'error', value })
  switch (action) {
    case 0:
      if (len !== 16) return error('connect response is not 16 bytes long')
      return phase === 'connect' ? { name: 'connected', connectionId: bytes.readBigUInt64BE(8) } : error('unsupported event:0')
    case 1: {
      if (len < 20) return error('announce response should be 20 bytes')
      if ((len - 20) % 6 !== 0) return error('announce response has a truncated peer entry')
      if (phase === 'connect') return error('unsupported event:1')
      const peers = []
      for (let at = 20; at < len; at += 6) peers.push(ipv4Peer(bytes, at))
      return {
        name: 'update',
        value: { leechers: bytes.readUInt32BE(12), seeds: bytes.readUInt32BE(16), peers, interval: bytes.readUInt32BE(8) }
      }
    }
    case 2:
      if ((len - 8) % 12 !== 0) return error('scrape response is not 8 + 12 bytes per info hash long')
      return error('unsupported event:2')
    case 3: {
      if (len === 8) return error('error action response is not 9 bytes long')
      let end = len
      while (end > 8 && bytes[end - 1] === 0) end--
      return error(utf8.decode(bytes.subarray(8, end)))
    }
    default:
      return error(`unsupported event:${action}`)
  }
}

/** A random reply carrying `tid`: 8 to 200 bytes, an action likely to parse. */
function randomReply (rand, tid) {
  const pick = rand()
  let action
  if (pick < 0.15) action = 0
  else if (pick < 0.5) action = 1
  else if (pick < 0.6) action = 2
  else if (pick < 0.8) action = 3
  else action = rand.u32()
  let len
  if (action === 0 && rand() < 0.5) len = 16
  else if (action === 1 && rand() < 0.5) len = 20 + 6 * rand.int(31)
  else if (action === 2 && rand() < 0.5) len = 8 + 12 * rand.int(16)
  else len = 8 + rand.int(193)
  const buf = rand.bytes(len)
  buf.writeUInt32BE(action >>> 0, 0)
  buf.writeUInt32BE(tid >>> 0, 4)
  if (action === 3 && rand() < 0.3) buf.fill(0, Math.max(8, len - rand.int(4)))
  return buf
}

// ---------------------------------------------------------------------------
// (a) Random bytes.

test('10,000 random datagrams at a live request are all dropped; the genuine replies still complete it', async (t) => {
  const rand = prng(0xa11ce)
  const server = await serverFor(t)
  UdpTracker.forgetConnectionIds()
  const held = { connect: null, announce: null }
  server.onConnect = (req, rinfo) => { held.connect = { req, rinfo }; return null }
  server.onAnnounce = (req, rinfo) => { held.announce = { req, rinfo }; return null }
  // Long enough that no retransmission is due while the spray runs (they would
  // carry the same transaction id anyway).
  const tracker = trackerFor(t, server.url, { _timeout: 4000 })
  const events = recordEvents(tracker)

  const otherPort = await bindSocket(t, '127.0.0.1')
  const otherHost = await otherLoopbackSocket(t, server.port)

  const counts = { total: 0, short: 0, unknown: 0, wrongSource: 0 }
  /** Sprays `n` datagrams at the client while transaction id `liveTid` is in flight. */
  async function spray (n, liveTid, client) {
    const randomTid = () => {
      let tid
      do tid = rand.u32(); while (tid === liveTid)
      return tid
    }
    for (let done = 0; done < n;) {
      const batch = []
      for (let i = 0; i < 250 && done < n; i++, done++) {
        const kind = rand.int(4)
        if (kind === 0 || kind === 3) {
          // Random bytes, random length, a random transaction id, from the
          // tracker's own address (kind 0) or another port (kind 3).
          // Lengths 0..200, with extra weight on 0..7 (no transaction id).
          const len = rand() < 0.1 ? rand.int(8) : rand.int(201)
          const bytes = rand.bytes(len)
          if (len >= 8) bytes.writeUInt32BE(randomTid(), 4)
          if (len < 8) counts.short++
          else counts.unknown++
          batch.push(kind === 0 ? server.send(bytes, client) : sendFrom(otherPort, bytes, client))
        } else {
          // The live transaction id with random contents around it, from a
          // source that is not the tracker: another port, or 127.0.0.2.
          const len = 8 + rand.int(193)
          const bytes = rand.bytes(len)
          bytes.writeUInt32BE(liveTid, 4)
          counts.wrongSource++
          batch.push(sendFrom(kind === 1 ? otherPort : otherHost, bytes, client))
        }
        counts.total++
      }
      await Promise.all(batch)
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  const before = UdpTracker.stats()
  tracker.announce(2, { left: 5 })
  await server.waitForType('connect', 1, 2000)
  const client = held.connect.rinfo
  await spray(5000, held.connect.req.transactionId, client)
  assert.equal(UdpTracker.stats().inFlight >= 1, true, 'the request must still be in flight during the spray')
  await server.send(connectReply(held.connect.req.transactionId, 0x600d600d600dn), client)
  await server.waitForType('announce', 1, 2000)
  await spray(5000, held.announce.req.transactionId, client)
  await server.send(announceReply(held.announce.req.transactionId, {
    interval: 900, leechers: 17, seeders: 23, peers: ['10.1.2.3:4567', '192.0.2.9:80']
  }), client)
  await nextEvent(tracker, ['update', 'error'], 5000)
  // Every sprayed datagram that reached the socket must have been counted.
  await until(() => UdpTracker.stats().received - before.received >= counts.total + 2, 5000)
  await sleep(50)
  const d = delta(before, UdpTracker.stats())

  assert.deepEqual(events.map((e) => [e.name, e.value]), [['update', {
    leechers: 17, seeds: 23, peers: ['10.1.2.3:4567', '192.0.2.9:80'], interval: 900
  }]], 'exactly one update, the genuine one')
  assert.equal(server.connects.length, 1, 'no retransmission was needed')
  assert.equal(server.announces.length, 1)
  assert.equal(server.announces[0].connectionId, 0x600d600d600dn, 'the announce must carry the id from the genuine connect reply')
  assert.equal(counts.total, 10000)
  const hostileReceived = d.received - 2
  t.diagnostic(`sent ${counts.total} hostile datagrams (${counts.short} short, ${counts.unknown} unknown tid, ${counts.wrongSource} live tid from a wrong source); the engine received ${hostileReceived}; stats delta ${JSON.stringify(d)}`)
  assert.ok(hostileReceived >= counts.total * 0.98,
    `the engine received only ${hostileReceived} of ${counts.total} hostile datagrams (kernel drops?)`)
  assert.equal(d.droppedShort + d.droppedUnknown + d.droppedLate + d.droppedWrongSource, hostileReceived,
    `every hostile datagram received must be dropped and counted: ${JSON.stringify(d)}`)
  const lost = counts.total - hostileReceived
  assert.ok(d.droppedShort <= counts.short && d.droppedShort >= counts.short - lost, `droppedShort ${d.droppedShort}, sent ${counts.short}`)
  assert.ok(d.droppedUnknown + d.droppedLate <= counts.unknown && d.droppedUnknown + d.droppedLate >= counts.unknown - lost,
    `droppedUnknown+droppedLate ${d.droppedUnknown + d.droppedLate}, sent ${counts.unknown}`)
  assert.ok(d.droppedWrongSource <= counts.wrongSource && d.droppedWrongSource >= counts.wrongSource - lost,
    `droppedWrongSource ${d.droppedWrongSource}, sent ${counts.wrongSource}`)
})

test('random replies carrying an instance\'s own transaction id from the tracker\'s address: each instance gets exactly what the rules say', async (t) => {
  // 600 instances: 300 whose connect is answered with a random datagram, 300
  // whose announce is. connectionIdCache: false gives each its own connect and
  // a fresh id (an error reply to a cached id would trigger a reconnect).
  const N = 300
  const rand = prng(0xbadc0de)
  const server = await serverFor(t)
  const sentTo = new Map() // transaction id -> bytes the tracker sent to it
  const goodReply = (i) => ({ interval: 600 + i, leechers: i, seeders: 2 * i, peers: [`10.9.${i >> 8}.${i & 255}:${1000 + i}`] })
  const connectFuzzed = new Set()
  server.onConnect = (req) => {
    if (connectFuzzed.has('all')) {
      const bytes = randomReply(rand, req.transactionId)
      sentTo.set(req.transactionId, bytes)
      return bytes
    }
    return connectReply(req.transactionId, 0xc0ffeen)
  }
  server.onAnnounce = (req) => {
    const i = req.infoHash.readUInt32BE(16)
    if (i >= N) {
      const bytes = randomReply(rand, req.transactionId)
      sentTo.set(req.transactionId, bytes)
      return bytes
    }
    return announceReply(req.transactionId, goodReply(i))
  }
  const opts = { _timeout: 2000, connectionIdCache: false }
  const logs = []
  const trackers = []
  const connectTid = []

  // Announce-phase fuzz: connects are answered properly.
  for (let i = N; i < 2 * N; i++) {
    const tracker = trackerFor(t, server.url, opts, twentyBytes('-JS0001-fuzzpeer', i), twentyBytes('fuzz-announce!!!', i))
    logs[i] = recordEvents(tracker)
    trackers[i] = tracker
    tracker.announce(2, {})
  }
  await until(() => logs.slice(N).every((l) => l.length > 0), 10000)

  // Connect-phase fuzz: one instance at a time, so each connect transaction id
  // is known to belong to that instance.
  connectFuzzed.add('all')
  for (let i = 0; i < N; i++) {
    const tracker = trackerFor(t, server.url, opts, twentyBytes('-JS0001-fuzzpeer', i), twentyBytes('fuzz-announce!!!', i))
    logs[i] = recordEvents(tracker)
    trackers[i] = tracker
    const seen = server.connects.length
    tracker.announce(2, {})
    const req = await server.waitFor((all) => all.filter((r) => r.type === 'connect')[seen], 2000, `connect of instance ${i}`)
    connectTid[i] = req.transactionId
  }
  await until(() => logs.every((l) => l.length > 0), 10000)
  await sleep(100)

  const tally = {}
  for (let i = 0; i < 2 * N; i++) {
    let expected
    let sent
    if (i < N) {
      sent = sentTo.get(connectTid[i])
      expected = oracle(sent, 'connect')
      if (expected.name === 'connected') {
        // The request went on to announce with that connection id.
        const announce = server.announces.find((r) => r.infoHash.readUInt32BE(16) === i)
        assert.ok(announce, `instance ${i}: a valid connect reply must lead to an announce`)
        assert.equal(announce.connectionId, expected.connectionId, `instance ${i}: the announce must carry the fuzzed connection id`)
        const good = goodReply(i)
        expected = { name: 'update', value: { leechers: good.leechers, seeds: good.seeders, peers: good.peers, interval: good.interval } }
      }
    } else {
      const req = server.announces.find((r) => r.infoHash.readUInt32BE(16) === i)
      assert.ok(req, `instance ${i} never announced`)
      sent = sentTo.get(req.transactionId)
      expected = oracle(sent, 'announce')
    }
    const got = logs[i].map((e) => ({ name: e.name, value: e.value }))
    assert.deepEqual(got, [expected],
      `instance ${i} (${i < N ? 'connect' : 'announce'} phase) was sent ${sent.toString('hex')}; expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`)
    const key = expected.name === 'update' ? 'update' : (PROTOCOL_ERRORS.includes(expected.value) || expected.value.startsWith('unsupported event:') ? expected.value.replace(/:\d+$/, ':N') : 'tracker text')
    tally[key] = (tally[key] || 0) + 1
  }
  t.diagnostic(`outcomes: ${JSON.stringify(tally)}`)
  assert.ok(tally.update > 20 && tally['tracker text'] > 20, `the fuzz should cover updates and tracker texts: ${JSON.stringify(tally)}`)
})

// ---------------------------------------------------------------------------
// (b) Truncations.

test('every truncation of a valid connect reply: < 8 bytes dropped (timeout), 8..15 "connect response is not 16 bytes long"', async (t) => {
  const server = await serverFor(t)
  let cut = 0
  server.onConnect = (req) => connectReply(req.transactionId, 0x1122334455667788n).subarray(0, cut)
  const before = UdpTracker.stats()
  for (cut = 0; cut < 16; cut++) {
    const sends = server.connects.length
    const tracker = trackerFor(t, server.url, { _timeout: 20, maxAttempts: 1 })
    const events = recordEvents(tracker)
    tracker.announce(2, {})
    await nextEvent(tracker, ['update', 'error'], 3000)
    await sleep(cut < 8 ? 0 : 10)
    const expected = cut < 8 ? 'tracker is not responding after:40' : 'connect response is not 16 bytes long'
    assert.deepEqual(events.map((e) => [e.name, e.value]), [['error', expected]], `connect reply cut to ${cut} bytes`)
    assert.equal(server.connects.length, sends + 1, `connect reply cut to ${cut} bytes: one connect per request`)
    tracker.destroy()
  }
  assert.equal(server.announces.length, 0, 'no truncated connect reply may lead to an announce')
  const d = delta(before, UdpTracker.stats())
  assert.equal(d.droppedShort, 8, `lengths 0..7 must be counted as droppedShort: ${JSON.stringify(d)}`)
})

test('every truncation of a valid announce reply with 3 peers: the 1.2.0 strings, whole prefixes are valid replies', async (t) => {
  const server = await serverFor(t)
  const peers = ['10.0.0.1:6881', '172.16.5.4:51413', '192.168.1.254:1']
  let cut = 0
  server.onAnnounce = (req) => announceReply(req.transactionId, { interval: 1800, leechers: 3, seeders: 4, peers }).subarray(0, cut)
  const full = 20 + 6 * peers.length
  const seen = []
  for (cut = 0; cut <= full; cut++) {
    const tracker = trackerFor(t, server.url, { _timeout: 20, maxAttempts: 1 })
    const events = recordEvents(tracker)
    tracker.announce(2, {})
    await nextEvent(tracker, ['update', 'error'], 3000)
    await sleep(5)
    let expected
    if (cut < 8) expected = ['error', 'tracker is not responding after:40']
    else if (cut < 20) expected = ['error', 'announce response should be 20 bytes']
    else if ((cut - 20) % 6 !== 0) expected = ['error', 'announce response has a truncated peer entry']
    // 20, 26, 32: a whole reply with fewer peers; nothing tells them apart.
    else expected = ['update', { leechers: 3, seeds: 4, peers: peers.slice(0, (cut - 20) / 6), interval: 1800 }]
    assert.deepEqual(events.map((e) => [e.name, e.value]), [expected], `announce reply cut to ${cut} of ${full} bytes`)
    seen.push(expected[0] === 'update' ? 'update' : expected[1])
    tracker.destroy()
  }
  assert.equal(server.announces.length, full + 1, 'one announce per request (the connection id is cached)')
  t.diagnostic(`lengths 0..${full}: ${seen.filter((s) => s === 'announce response has a truncated peer entry').length} truncated-peer errors, ${seen.filter((s) => s === 'update').length} updates`)
})

// ---------------------------------------------------------------------------
// (c) The largest datagrams.

test('the largest IPv4 datagrams: a 65,504-byte announce reply (10,914 peers) is delivered whole; 65,507 bytes are errors', async (t) => {
  const server = await serverFor(t)
  const PEERS = 10914 // 20 + 6 * 10914 = 65504, the largest whole reply within 65507
  const peerBytes = Buffer.alloc(6 * PEERS)
  for (let i = 0; i < PEERS; i++) {
    peerBytes.writeUInt32BE((0x0a000000 + i) >>> 0, 6 * i)
    peerBytes.writeUInt16BE((i % 65535) + 1, 6 * i + 4)
  }
  const expectedPeers = []
  for (let i = 0; i < PEERS; i++) expectedPeers.push(ipv4Peer(peerBytes, 6 * i))

  // 65504: a whole reply.
  server.onAnnounce = (req) => Buffer.concat([announceReply(req.transactionId, { interval: 1800, leechers: 1, seeders: 2 }), peerBytes])
  let tracker = trackerFor(t, server.url, { _timeout: 500, maxAttempts: 2 })
  let got = await (tracker.announce(2, {}), nextEvent(tracker, ['update', 'error'], 5000))
  assert.equal(got.name, 'update', `a 65504-byte announce reply gave ${got.name} ${JSON.stringify(got.value).slice(0, 200)}`)
  assert.equal(got.value.peers.length, PEERS, 'every peer of the 65504-byte reply must be delivered')
  assert.deepEqual(got.value.peers, expectedPeers)
  tracker.destroy()

  // 65507, the UDP maximum over IPv4: half a peer too many.
  server.onAnnounce = (req) => Buffer.concat([announceReply(req.transactionId, { interval: 1800 }), peerBytes, Buffer.alloc(3, 7)])
  tracker = trackerFor(t, server.url, { _timeout: 500, maxAttempts: 2 })
  got = await (tracker.announce(2, {}), nextEvent(tracker, ['update', 'error'], 5000))
  assert.deepEqual(got, { name: 'error', value: 'announce response has a truncated peer entry' })
  tracker.destroy()

  // A connect reply of 65507 bytes.
  UdpTracker.forgetConnectionIds()
  server.onConnect = (req) => rawReply(0, req.transactionId, Buffer.alloc(65507 - 8, 0xab))
  tracker = trackerFor(t, server.url, { _timeout: 500, maxAttempts: 2 })
  got = await (tracker.announce(2, {}), nextEvent(tracker, ['update', 'error'], 5000))
  assert.deepEqual(got, { name: 'error', value: 'connect response is not 16 bytes long' })
  tracker.destroy()

  // A full 64 KiB (65536-byte) datagram cannot exist over UDP/IPv4: the sender refuses it.
  const sender = await bindSocket(t, '127.0.0.1')
  const refused = await new Promise((resolve) => sender.send(Buffer.alloc(65536), server.port, '127.0.0.1', (err) => resolve(err)))
  t.diagnostic(`sending 65536 bytes over UDP/IPv4: ${refused ? refused.code : 'accepted'}`)
})

test('the largest IPv6 datagrams: a 65,522-byte announce reply (3,639 peers of 18 bytes) is whole; a 65,527-byte connect reply is an error', async (t) => {
  let server
  try {
    server = await ScriptServer.create({ host: '::1' })
  } catch (err) {
    t.skip(`cannot bind ::1: ${err.message}`)
    return
  }
  t.after(() => server.close())
  const PEERS = 3639 // 20 + 18 * 3639 = 65522 <= 65527, the largest UDP/IPv6 payload
  const peerBytes = Buffer.alloc(18 * PEERS)
  const expected = []
  for (let i = 0; i < PEERS; i++) {
    peerBytes.writeUInt16BE(0x2001, 18 * i)
    peerBytes.writeUInt16BE(0x0db8, 18 * i + 2)
    peerBytes.writeUInt16BE(i + 1, 18 * i + 14)
    peerBytes.writeUInt16BE(6881, 18 * i + 16)
    expected.push(`[2001:db8::${(i + 1).toString(16)}]:6881`)
  }
  server.onAnnounce = (req) => Buffer.concat([announceReply(req.transactionId, { interval: 1800, leechers: 5 }), peerBytes])
  let tracker = trackerFor(t, server.url, { _timeout: 500, maxAttempts: 2 })
  let got = await (tracker.announce(2, {}), nextEvent(tracker, ['update', 'error'], 5000))
  assert.equal(got.name, 'update', `a 65522-byte IPv6 announce reply gave ${got.name} ${JSON.stringify(got.value).slice(0, 200)}`)
  assert.equal(got.value.peers.length, PEERS)
  assert.deepEqual(got.value.peers.slice(0, 3), expected.slice(0, 3))
  assert.deepEqual(got.value.peers, expected)
  tracker.destroy()

  UdpTracker.forgetConnectionIds()
  server.onConnect = (req) => rawReply(0, req.transactionId, Buffer.alloc(65527 - 8, 0xcd))
  tracker = trackerFor(t, server.url, { _timeout: 500, maxAttempts: 2 })
  got = await (tracker.announce(2, {}), nextEvent(tracker, ['update', 'error'], 5000))
  assert.deepEqual(got, { name: 'error', value: 'connect response is not 16 bytes long' })
})

// ---------------------------------------------------------------------------
// (d) Replies from the wrong source.

/**
 * Answers every connect and announce first from another port of 127.0.0.1,
 * then from 127.0.0.2, then (after 30 ms) from the tracker itself.
 */
async function answerFromThreeSources (t, server) {
  const otherPort = await bindSocket(t, '127.0.0.1')
  const otherHost = await otherLoopbackSocket(t, server.port)
  server.onConnect = async (req, rinfo) => {
    await sendFrom(otherPort, connectReply(req.transactionId, 111n), rinfo)
    await sendFrom(otherHost, connectReply(req.transactionId, 222n), rinfo)
    await sleep(30)
    return connectReply(req.transactionId, 333n)
  }
  server.onAnnounce = async (req, rinfo) => {
    await sendFrom(otherPort, announceReply(req.transactionId, { leechers: 111, interval: 1800 }), rinfo)
    await sendFrom(otherHost, announceReply(req.transactionId, { leechers: 222, interval: 1800 }), rinfo)
    await sleep(30)
    return announceReply(req.transactionId, { leechers: 333, interval: 1800 })
  }
  return { otherPort, otherHost }
}

test('replies from another port and from 127.0.0.2 are dropped in strict mode; the genuine ones complete the request', async (t) => {
  const server = await serverFor(t)
  const { otherHost } = await answerFromThreeSources(t, server)
  UdpTracker.forgetConnectionIds()
  const before = UdpTracker.stats()
  const tracker = trackerFor(t, server.url, { _timeout: 1000 })
  const events = recordEvents(tracker)
  tracker.announce(2, {})
  await nextEvent(tracker, ['update', 'error'], 3000)
  await sleep(50)
  assert.deepEqual(events.map((e) => [e.name, e.value.leechers ?? e.value]), [['update', 333]],
    `only the tracker's own replies may be used (127.0.0.2 socket on port ${otherHost.address().port}, tracker on ${server.port})`)
  assert.equal(server.announces[0].connectionId, 333n, 'the announce must carry the id from the genuine connect reply')
  const d = delta(before, UdpTracker.stats())
  assert.equal(d.droppedWrongSource, 4, `the four foreign replies must be counted in droppedWrongSource: ${JSON.stringify(d)}`)
  UdpTracker.forgetConnectionIds()
})

test('with strictSource: false a reply from 127.0.0.2 or another port is accepted (the first to arrive wins)', async (t) => {
  for (const [label, first] of [['another port', 'otherPort'], ['127.0.0.2', 'otherHost']]) {
    const server = await serverFor(t)
    const sockets = { otherPort: await bindSocket(t, '127.0.0.1'), otherHost: await otherLoopbackSocket(t, server.port) }
    server.onConnect = async (req, rinfo) => {
      await sendFrom(sockets[first], connectReply(req.transactionId, 444n), rinfo)
      await sleep(30)
      return connectReply(req.transactionId, 555n)
    }
    server.onAnnounce = async (req, rinfo) => {
      await sendFrom(sockets[first], announceReply(req.transactionId, { leechers: 444, interval: 1800 }), rinfo)
      await sleep(30)
      return announceReply(req.transactionId, { leechers: 555, interval: 1800 })
    }
    UdpTracker.forgetConnectionIds()
    const before = UdpTracker.stats()
    const tracker = trackerFor(t, server.url, { _timeout: 1000, strictSource: false })
    const events = recordEvents(tracker)
    tracker.announce(2, {})
    await nextEvent(tracker, ['update', 'error'], 3000)
    await sleep(60)
    assert.deepEqual(events.map((e) => [e.name, e.value.leechers ?? e.value]), [['update', 444]], `first reply from ${label}`)
    assert.equal(server.announces[0].connectionId, 444n)
    const d = delta(before, UdpTracker.stats())
    assert.equal(d.droppedWrongSource, 0, `nothing may be dropped for its source with strictSource: false (${label})`)
    assert.equal(d.droppedLate, 2, `the tracker's own replies, arriving second, are late duplicates (${label}): ${JSON.stringify(d)}`)
    tracker.destroy()
    // The id above came from a foreign source: keep it away from later tests.
    UdpTracker.forgetConnectionIds()
  }
})

// ---------------------------------------------------------------------------
// (e) Replies carrying another instance's transaction id.

test('two instances in flight, replies sent in swapped order: each gets the reply addressed to its own transaction id', async (t) => {
  const server = await serverFor(t)
  const held = []
  server.onAnnounce = (req, rinfo) => {
    held.push({ req, rinfo })
    if (held.length === 2) {
      // B's reply first, then A's.
      const [a, b] = held
      return (async () => {
        await server.send(announceReply(b.req.transactionId, { leechers: 2, seeders: 20, interval: 1800 }), b.rinfo)
        await server.send(announceReply(a.req.transactionId, { leechers: 1, seeders: 10, interval: 1800 }), a.rinfo)
      })()
    }
    return null
  }
  const a = trackerFor(t, server.url, { _timeout: 2000 }, twentyBytes('-JS0001-swap-peer', 1), twentyBytes('swap-info-hash!!', 1))
  const b = trackerFor(t, server.url, { _timeout: 2000 }, twentyBytes('-JS0001-swap-peer', 2), twentyBytes('swap-info-hash!!', 2))
  const logA = recordEvents(a)
  const logB = recordEvents(b)
  a.announce(2, {})
  await server.waitForType('announce', 1, 2000)
  b.announce(2, {})
  await Promise.all([nextEvent(a, ['update', 'error']), nextEvent(b, ['update', 'error'])].map((p) => p.catch(() => null)))
  await sleep(50)
  assert.equal(held[0].req.infoHash.readUInt32BE(16), 1, 'A announced first')
  assert.deepEqual(logA.map((e) => [e.name, e.value.leechers, e.value.seeds]), [['update', 1, 10]])
  assert.deepEqual(logB.map((e) => [e.name, e.value.leechers, e.value.seeds]), [['update', 2, 20]])
})

test('20 instances, each reply carries one instance\'s transaction id with another\'s content: routing is by transaction id only', async (t) => {
  const N = 20
  const server = await serverFor(t)
  const held = new Map() // instance -> { req, rinfo }
  const sentTo = new Map() // transaction id -> payload
  server.onAnnounce = (req, rinfo) => {
    held.set(req.infoHash.readUInt32BE(16), { req, rinfo })
    if (held.size === N) {
      // To instance i's transaction id goes the content "meant for" i+7 mod N,
      // in a scrambled order.
      return (async () => {
        const order = [...held.keys()].sort((x, y) => ((x * 13) % N) - ((y * 13) % N))
        for (const i of order) {
          const j = (i + 7) % N
          const payload = { interval: 1800, leechers: 100 + j, seeders: 200 + j, peers: [`10.20.0.${j}:${2000 + j}`] }
          const { req: r, rinfo: to } = held.get(i)
          sentTo.set(r.transactionId, payload)
          await server.send(announceReply(r.transactionId, payload), to)
        }
      })()
    }
    return null
  }
  const logs = []
  for (let i = 0; i < N; i++) {
    const tracker = trackerFor(t, server.url, { _timeout: 2000 }, twentyBytes('-JS0001-crosspeer', i), twentyBytes('cross-info-hash!', i))
    logs.push(recordEvents(tracker))
    tracker.announce(2, {})
  }
  await until(() => logs.every((l) => l.length > 0), 5000)
  await sleep(50)
  const before = UdpTracker.stats()
  // Every reply again, now that each transaction id has finished: all late.
  for (const { req, rinfo } of held.values()) await server.send(announceReply(req.transactionId, { leechers: 9999 }), rinfo)
  await until(() => UdpTracker.stats().received - before.received >= N, 2000)
  await sleep(50)
  for (let i = 0; i < N; i++) {
    const own = sentTo.get(held.get(i).req.transactionId)
    assert.deepEqual(logs[i].map((e) => [e.name, e.value]), [['update', {
      leechers: own.leechers, seeds: own.seeders, peers: own.peers, interval: own.interval
    }]], `instance ${i} must get exactly the reply sent to its own transaction id (content of ${(i + 7) % N})`)
  }
  assert.equal(delta(before, UdpTracker.stats()).droppedLate, N, 'replies to finished transaction ids are dropped as late')
})

// ---------------------------------------------------------------------------
// (f) Duplicated and reordered replies.

// Its "one connect" needs the engine to see all 50 starts before the connect
// reply: the tick's starts reach it in one call (lib/engine.js).
test('50 instances, replies reversed with delays and each sent 3 times: exactly one update each, duplicates counted late', async (t) => {
  const N = 50
  const server = await serverFor(t)
  UdpTracker.forgetConnectionIds()
  server.onConnect = (req) => {
    const reply = connectReply(req.transactionId, server.connectionId)
    return [reply, reply, reply]
  }
  const held = []
  let flushed = null
  server.onAnnounce = (req, rinfo) => {
    held.push({ req, rinfo })
    if (held.length === N) {
      flushed = (async () => {
        const reply = ({ req: r }) => {
          const i = r.infoHash.readUInt32BE(16)
          return announceReply(r.transactionId, { interval: 1800, leechers: i, seeders: 1000 + i, peers: [`10.50.0.${i}:${3000 + i}`] })
        }
        const reversed = [...held].reverse()
        for (const h of reversed) { await server.send(reply(h), h.rinfo); await sleep(1) }
        for (const h of held) { await server.send(reply(h), h.rinfo) }
        for (const h of reversed) { await server.send(reply(h), h.rinfo); await sleep(1) }
      })()
    }
    return null
  }
  const before = UdpTracker.stats()
  const logs = []
  for (let i = 0; i < N; i++) {
    const tracker = trackerFor(t, server.url, { _timeout: 4000 }, twentyBytes('-JS0001-duplicate', i), twentyBytes('dup-info-hash!!!', i))
    logs.push(recordEvents(tracker))
    tracker.announce(2, {})
  }
  await server.waitFor(() => flushed, 5000, `${N} announces`)
  await flushed
  await until(() => UdpTracker.stats().received - before.received >= 3 * N + 3, 5000)
  await sleep(50)
  for (let i = 0; i < N; i++) {
    assert.deepEqual(logs[i].map((e) => [e.name, e.value]), [['update', {
      leechers: i, seeds: 1000 + i, peers: [`10.50.0.${i}:${3000 + i}`], interval: 1800
    }]], `instance ${i}`)
  }
  assert.equal(server.connects.length, 1, 'the instances shared one connect')
  assert.equal(server.announces.length, N, 'no retransmission was needed')
  const d = delta(before, UdpTracker.stats())
  assert.equal(d.received, 3 * N + 3)
  assert.equal(d.droppedLate, 2 * N + 2, `the 2 extra copies of each reply (and of the connect reply) must be dropped as late: ${JSON.stringify(d)}`)
})

// ---------------------------------------------------------------------------
// (g) Odd error replies.

test('error replies: no text, non-UTF-8 text, only NULs, trailing and inner NULs', async (t) => {
  const cases = [
    [Buffer.alloc(0), 'error action response is not 9 bytes long'],
    [Buffer.from([0xff, 0xfe, 0x61, 0x62, 0x63]), '\ufffd\ufffdabc'],
    [Buffer.from([0x61, 0xc3]), 'a\ufffd'], // a cut 2-byte sequence
    [Buffer.from([0xe2, 0x82, 0x41]), '\ufffdA'], // a cut 3-byte sequence is one U+FFFD
    [Buffer.alloc(1), ''],
    [Buffer.alloc(40), ''],
    [Buffer.from('abc\0\0\0'), 'abc'],
    [Buffer.from('a\0b'), 'a\0b'],
    [Buffer.from('\u00e9t\u00e9 \u{1f600}'), '\u00e9t\u00e9 \u{1f600}']
  ]
  for (const phase of ['connect', 'announce']) {
    for (const [text, expected] of cases) {
      const server = await serverFor(t)
      const reply = (req) => rawReply(3, req.transactionId, text)
      if (phase === 'connect') server.onConnect = reply
      else server.onAnnounce = reply
      // connectionIdCache: false, so an error to the announce is never taken
      // for a stale cached id (which would make the client reconnect and retry).
      const tracker = trackerFor(t, server.url, { _timeout: 1000, connectionIdCache: false })
      const events = recordEvents(tracker)
      tracker.announce(2, {})
      await nextEvent(tracker, ['update', 'error'], 3000)
      await sleep(10)
      assert.deepEqual(events.map((e) => [e.name, e.value]), [['error', expected]],
        `an error reply to the ${phase} with text ${text.toString('hex') || '(none)'}`)
      assert.equal(typeof events[0].value, 'string')
      tracker.destroy()
    }
  }
})

test('an error reply of only NULs emits the empty string (an "error" event with \'\'), which is still an error event', async (t) => {
  const server = await serverFor(t)
  server.onConnect = (req) => errorReply(req.transactionId, Buffer.alloc(3))
  const tracker = trackerFor(t, server.url, { _timeout: 1000 })
  const got = await (tracker.announce(2, {}), nextEvent(tracker, ['update', 'error'], 3000))
  assert.deepEqual(got, { name: 'error', value: '' })
  await assert.rejects(
    UdpTracker.announce(server.url, { infoHash: INFO_HASH, peerId: PEER_ID, _timeout: 1000 }),
    (err) => err instanceof Error && err.message === '' && err.code === 'ERR_TRACKER_ERROR',
    'the promise API must reject with an empty message and ERR_TRACKER_ERROR')
})
