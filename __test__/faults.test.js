'use strict'
// Network faults: the test tracker losing requests and replies, a lossy
// relay in front of the scripted tracker, a tracker that restarts and forgets
// its connection ids, a port with nobody listening, a host name that does not
// resolve, and the retransmission schedule when the first sends are lost.

const test = require('node:test')
const assert = require('node:assert/strict')
const dgram = require('node:dgram')
const { performance } = require('node:perf_hooks')

const UdpTracker = require('..')
const { canIsolateNames, runWithNames, SKIP_REASON } = require('./helpers/private-names')
const {
  serverFor,
  prng,
  connectReply,
  announceReply,
  errorReply,
  recordEvents,
  nextEvent,
  twentyBytes,
  sleep,
  until,
  delta
} = require('./helpers/script-server.js')
const { trackerServer } = require('./helpers/test-tracker.js')

const PEER_ID = Buffer.from('-JS0001-faults-test0')
const INFO_HASH = Buffer.from('fa17fa17fa17fa17fa17fa17fa17fa17fa17fa17', 'hex')

// The loss rate of the lossy tests; FAULTS_LOSS=0.5 node --test ... tries another.
const LOSS = Number(process.env.FAULTS_LOSS || 0.2)

const PROTOCOL_ERRORS = [
  'connect response is not 16 bytes long',
  'announce response should be 20 bytes',
  'error action response is not 9 bytes long',
  'announce response has a truncated peer entry',
  'unknown event',
  'not calling announce'
]

function trackerFor (t, url, opts, peerId = PEER_ID, infoHash = INFO_HASH) {
  const tracker = new UdpTracker(peerId, infoHash, url, opts)
  t.after(() => tracker.destroy())
  return tracker
}

function bindUdp (host = '127.0.0.1', port = 0) {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4')
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(port, host, () => {
      socket.off('error', reject)
      resolve(socket)
    })
  })
}

/**
 * A UDP relay on 127.0.0.1 between the client (every instance shares one
 * socket) and the tracker. `drop(direction, bytes, index)` decides per
 * datagram ('up' client -> tracker, 'down' tracker -> client); every datagram
 * is recorded with its arrival time and whether it was dropped.
 */
class Relay {
  static async create (t, tracker, drop) {
    const front = await bindUdp()
    const back = await bindUdp()
    const relay = new Relay(front, back, tracker, drop)
    t.after(() => relay.close())
    return relay
  }

  constructor (front, back, tracker, drop) {
    this.front = front
    this.back = back
    this.tracker = tracker
    this.drop = drop
    this.client = null
    this.up = []
    this.down = []
    front.on('message', (bytes, rinfo) => {
      this.client = rinfo
      const dropped = this.drop('up', bytes, this.up.length)
      this.up.push({ at: performance.now(), bytes, dropped })
      if (!dropped) back.send(bytes, tracker.port, tracker.host)
    })
    back.on('message', (bytes, rinfo) => {
      if (rinfo.port !== tracker.port || this.client === null) return
      const dropped = this.drop('down', bytes, this.down.length)
      this.down.push({ at: performance.now(), bytes, dropped })
      if (!dropped) front.send(bytes, this.client.port, this.client.address)
    })
  }

  get url () { return `udp://127.0.0.1:${this.front.address().port}` }

  close () {
    return Promise.all([this.front, this.back].map((s) => new Promise((resolve) => s.close(resolve))))
  }
}

function lossRate (records) {
  return records.length === 0 ? 0 : records.filter((r) => r.dropped).length / records.length
}

// ---------------------------------------------------------------------------
// (a) 20 % loss each way.

/** Datagrams of a test tracker's stats, split by where the `loss` fault dropped them. */
function lossCounts ({ requests, replies, dropped }) {
  const read = requests.connect + requests.announce + requests.scrape + requests.invalid
  // Every request read is answered unless a fault or a bad id drops it.
  const repliesLost = read - replies - dropped.silent - dropped.connectionId - dropped.malformed
  return { read, repliesLost, requestsLost: dropped.loss - repliesLost, replies }
}

test(`100 instances against a tracker losing ${LOSS * 100} % of requests and of replies: every one gets its own update or the timeout error, none is lost`, async (t) => {
  const N = 100
  const server = await trackerServer(t, { loss: LOSS, seed: 20 })
  // Torrent i first gets a seeder on port 5000 + i, so that instance i's
  // update (that seeder and the instance itself) is told apart from any other's.
  const seed = async (i) => {
    const params = { infoHash: twentyBytes('lossy-info-hash!', i), peerId: twentyBytes('-JS0001-lossyseed', i), port: 5000 + i, left: 0, event: 'started', _timeout: 20 }
    for (let attempt = 1; ; attempt++) {
      try {
        return await UdpTracker.announce(server.url, params)
      } catch (err) {
        if (err.code !== 'ERR_TRACKER_TIMEOUT' || attempt === 5) throw err
      }
    }
  }
  await Promise.all(Array.from({ length: N }, (_, i) => seed(i)))
  const reply = (i) => ({ leechers: 1, seeds: 1, peers: [`127.0.0.1:${5000 + i}`], interval: 1800 })
  const before = lossCounts(server.stats())
  const inFlightBefore = UdpTracker.stats().inFlight

  // connectionIdCache: false: each instance connects first, as 1.2.0 did, so
  // 200 request phases cross the lossy tracker (with the cache the 100
  // announces would share one connect).
  const logs = []
  for (let i = 0; i < N; i++) {
    const tracker = trackerFor(t, server.url, { _timeout: 20, connectionIdCache: false },
      twentyBytes('-JS0001-lossypeer', i), twentyBytes('lossy-info-hash!', i))
    logs.push(recordEvents(tracker))
    tracker.announce(2, { left: i + 1 })
  }
  // The slowest possible request: 8 connect sends and 8 announce sends, waits
  // of 40 .. 5120 ms each phase (20.4 s). In practice a few seconds.
  const started = performance.now()
  await until(() => logs.every((l) => l.length > 0), 25000, 20)
  const elapsed = performance.now() - started
  await sleep(200)

  let updates = 0
  let timeouts = 0
  for (let i = 0; i < N; i++) {
    const events = logs[i].map((e) => [e.name, e.value])
    assert.equal(events.length, 1, `instance ${i} must get exactly one event, got ${JSON.stringify(events)}`)
    const [name, value] = events[0]
    if (name === 'update') {
      assert.deepEqual(value, reply(i), `instance ${i}: not its own update`)
      updates++
    } else {
      assert.equal(value, 'tracker is not responding after:5120', `instance ${i}: unexpected error`)
      timeouts++
    }
  }
  assert.equal(updates + timeouts, N, 'every instance is accounted for')
  const c = delta(before, lossCounts(server.stats()))
  const sent = c.read + c.requestsLost // every datagram the client sent arrived at the tracker's socket
  const upLoss = c.requestsLost / sent
  const downLoss = c.repliesLost / c.read
  t.diagnostic(`${updates} updates, ${timeouts} timeouts in ${elapsed.toFixed(0)} ms; the client sent ${sent} (${(upLoss * 100).toFixed(1)} % lost), the tracker read ${c.read} and answered ${c.read - c.repliesLost} (${(downLoss * 100).toFixed(1)} % lost); at least ${sent - 2 * N} retransmissions`)
  assert.ok(Math.abs(upLoss - LOSS) < 0.1, `the tracker dropped ${upLoss} of the client's datagrams, expected about ${LOSS}`)
  assert.ok(Math.abs(downLoss - LOSS) < 0.1, `the tracker dropped ${downLoss} of its replies, expected about ${LOSS}`)
  assert.ok(c.read > 2 * N, `the tracker read ${c.read} datagrams; with ${LOSS * 100} % loss each way retransmissions should push it above ${2 * N}`)
  // At most 2N distinct requests (a connect and an announce per instance): any more sends are retransmissions.
  assert.ok(sent > 2 * N, 'some datagrams must have been retransmitted')
  assert.equal(UdpTracker.stats().inFlight, inFlightBefore, 'no request may be left in flight')
})

test(`100 instances with the default connection-id cache through the same ${LOSS * 100} % loss: all accounted for, shared connects survive loss`, async (t) => {
  const N = 100
  UdpTracker.forgetConnectionIds()
  const server = await serverFor(t)
  server.onAnnounce = (req) => {
    const i = req.infoHash.readUInt32BE(16)
    return announceReply(req.transactionId, { interval: 1800, leechers: i, seeders: 3 * i })
  }
  const rand = prng(0x20cace)
  const relay = await Relay.create(t, { host: '127.0.0.1', port: server.port }, () => rand() < LOSS)
  const logs = []
  for (let i = 0; i < N; i++) {
    const tracker = trackerFor(t, relay.url, { _timeout: 20 }, twentyBytes('-JS0001-lossycach', i), twentyBytes('lossy-cached-ih!', i))
    logs.push(recordEvents(tracker))
    tracker.announce(2, {})
  }
  await until(() => logs.every((l) => l.length > 0), 25000, 20)
  await sleep(200)
  let updates = 0
  for (let i = 0; i < N; i++) {
    const events = logs[i].map((e) => [e.name, e.value])
    assert.equal(events.length, 1, `instance ${i}: ${JSON.stringify(events)}`)
    if (events[0][0] === 'update') {
      assert.deepEqual([events[0][1].leechers, events[0][1].seeds], [i, 3 * i], `instance ${i}: not its own update`)
      updates++
    } else {
      assert.equal(events[0][1], 'tracker is not responding after:5120', `instance ${i}`)
    }
  }
  const retransmitted = relay.up.length - new Set(relay.up.map((r) => r.bytes.readUInt32BE(12))).size
  t.diagnostic(`${updates} updates; the tracker received ${server.received.length} datagrams (${server.connects.length} connects); ${retransmitted} retransmissions`)
  assert.ok(retransmitted > 0, 'some datagrams must have been retransmitted')
  UdpTracker.forgetConnectionIds()
})

// ---------------------------------------------------------------------------
// (b) A tracker restart.

test('the tracker restarts mid-run and refuses the old connection id: announces in flight and new ones reconnect once and succeed', async (t) => {
  UdpTracker.forgetConnectionIds()
  const server = await serverFor(t)
  const state = { current: 1001n, hold: false, held: [] }
  server.onConnect = (req) => connectReply(req.transactionId, state.current)
  server.onAnnounce = (req, rinfo) => {
    if (req.connectionId !== state.current) return errorReply(req.transactionId, 'Connection ID missmatch.')
    if (state.hold) { state.held.push({ req, rinfo }); return null }
    return announceReply(req.transactionId, { interval: 1800, leechers: Number(req.connectionId), seeders: req.infoHash.readUInt32BE(16) })
  }
  // Promise-API announces: they share one connection-id scope, as the
  // announces of one instance do.
  const opts = { _timeout: 1000 }
  const make = (i) => {
    const log = []
    UdpTracker.announce(server.url, { infoHash: twentyBytes('restart-hash!!!!', i), peerId: twentyBytes('-JS0001-restarter', i), ...opts })
      .then((u) => log.push({ name: 'update', value: u }), (err) => log.push({ name: 'error', value: err.message }))
    return { log }
  }
  const settled = (group) => until(() => group.every((g) => g.log.length > 0), 8000)
  // 1: ten instances get id 1001.
  const first = Array.from({ length: 10 }, (_, i) => make(i))
  await settled(first)
  // 2: ten more announce with the cached 1001; the tracker holds them, restarts,
  // then refuses them.
  state.hold = true
  const second = Array.from({ length: 10 }, (_, i) => make(10 + i))
  await until(() => state.held.length === 10, 3000)
  const connectsBeforeRestart = server.connects.length
  state.current = 2002n
  state.hold = false
  for (const { req, rinfo } of state.held) await server.send(errorReply(req.transactionId, 'Connection ID missmatch.'), rinfo)
  await settled(second)
  // 3: ten new instances, still within the minute the old id was cached for.
  const third = Array.from({ length: 10 }, (_, i) => make(20 + i))
  await settled(third)
  await sleep(50)

  const all = [...first, ...second, ...third]
  all.forEach((g, i) => {
    const expectedId = i < 10 ? 1001 : 2002
    assert.deepEqual(g.log.map((e) => [e.name, e.value.leechers ?? e.value, e.value.seeds]), [['update', expectedId, i]],
      `instance ${i}: expected one update carrying connection id ${expectedId}`)
  })
  const reconnects = server.connects.length - connectsBeforeRestart
  t.diagnostic(`connects: ${connectsBeforeRestart} before the restart, ${reconnects} after`)
  assert.ok(reconnects >= 1 && reconnects <= 10, `after the restart the client connected ${reconnects} times`)
  assert.equal(server.announces.filter((r) => r.connectionId === 2002n).length, 20, 'the 10 refused and the 10 new announces use the new id')
  UdpTracker.forgetConnectionIds()
})

// ---------------------------------------------------------------------------
// (c) Nobody listening.

test('a port with nothing listening: _timeout 10, maxAttempts 2 ends with "tracker is not responding after:40"', async (t) => {
  const probe = await bindUdp()
  const port = probe.address().port
  await new Promise((resolve) => probe.close(resolve))
  const url = `udp://127.0.0.1:${port}`
  const tracker = trackerFor(t, url, { _timeout: 10, maxAttempts: 2 })
  const events = recordEvents(tracker)
  const started = performance.now()
  tracker.announce(2, {})
  await nextEvent(tracker, ['update', 'error'], 5000)
  const elapsed = performance.now() - started
  await sleep(50)
  assert.deepEqual(events.map((e) => [e.name, e.value]), [['error', 'tracker is not responding after:40']])
  assert.ok(elapsed >= 55, `the timeout came after ${elapsed.toFixed(0)} ms, before the waits of 20 + 40 ms had passed`)
  await assert.rejects(UdpTracker.announce(url, { infoHash: INFO_HASH, peerId: PEER_ID, _timeout: 10, maxAttempts: 2 }),
    { code: 'ERR_TRACKER_TIMEOUT', message: 'tracker is not responding after:40' })
})

// ---------------------------------------------------------------------------
// (d) A name that does not resolve.

test('a host name that does not resolve: an "error" with the resolver\'s message, ERR_DNS from the promise API',
  { skip: !canIsolateNames && SKIP_REASON }, async (t) => {
    // In a child whose lookups use only a private hosts file, so the failing
    // lookup sends no DNS query off the machine.
    const { code, out, err } = await runWithNames(`
      const UdpTracker = require('.')
      const url = 'udp://nonexistent.invalid:6969'
      const hash = 'ab'.repeat(20)
      const peer = 'x'.repeat(20)
      const tracker = new UdpTracker(peer, hash, url, { _timeout: 1000 })
      const events = []
      tracker.on('update', (u) => events.push(['update', u]))
      tracker.on('error', async (message) => {
        events.push(['error', message])
        tracker.destroy()
        const promise = await UdpTracker.announce(url, { infoHash: hash, peerId: peer, _timeout: 1000 }).catch((e) => e)
        const scrape = await UdpTracker.scrape(url, [hash], { _timeout: 1000 }).catch((e) => e)
        setTimeout(() => console.log(JSON.stringify({ events, promise: [promise.code, promise.message], scrape: scrape.code })), 20)
      })
      tracker.announce(2, {})
    `)
    assert.equal(code, 0, err)
    const { events, promise, scrape } = JSON.parse(out.trim())
    assert.equal(events.length, 1, `events: ${JSON.stringify(events)}`)
    const [[name, value]] = events
    assert.equal(name, 'error')
    assert.equal(typeof value, 'string')
    assert.ok(value.length > 0, 'the resolver message must not be empty')
    assert.ok(!PROTOCOL_ERRORS.includes(value) && !value.startsWith('tracker is not responding') && !value.startsWith('unsupported event'),
      `expected the resolver's message, got the protocol string ${JSON.stringify(value)}`)
    t.diagnostic(`resolver message: ${JSON.stringify(value)}`)
    assert.ok(value.startsWith('cannot resolve nonexistent.invalid: '), `the message names the host: ${value}`)
    // The failure is cached (150 s): the promise call gets the same message at once.
    assert.deepEqual(promise, ['ERR_DNS', value])
    assert.equal(scrape, 'ERR_DNS')
  })

// ---------------------------------------------------------------------------
// (e) The retransmission schedule under loss.

test('the first two connects are lost: the third gets through, sent 2T and then 4T after the previous one', async (t) => {
  UdpTracker.forgetConnectionIds()
  const T = 50
  const server = await serverFor(t)
  server.onAnnounce = (req) => announceReply(req.transactionId, { interval: 1800, leechers: 42 })
  let connectsSeen = 0
  const relay = await Relay.create(t, { host: '127.0.0.1', port: server.port }, (direction, bytes) => {
    if (direction !== 'up' || bytes.length !== 16) return false
    return ++connectsSeen <= 2
  })
  const tracker = trackerFor(t, relay.url, { _timeout: T })
  const events = recordEvents(tracker)
  tracker.announce(2, {})
  await nextEvent(tracker, ['update', 'error'], 5000)
  await sleep(50)
  assert.deepEqual(events.map((e) => [e.name, e.value.leechers ?? e.value]), [['update', 42]])
  const connects = relay.up.filter((r) => r.bytes.length === 16)
  assert.equal(connects.length, 3, `the client sent ${connects.length} connects; expected 3 (2 lost, the third answered)`)
  assert.deepEqual(connects.map((r) => r.dropped), [true, true, false])
  assert.equal(new Set(connects.map((r) => r.bytes.readUInt32BE(12))).size, 1, 'the retransmissions reuse one transaction id')
  assert.equal(server.connects.length, 1, 'the tracker saw only the third connect')
  assert.ok(Math.abs(server.connects[0].at - connects[2].at) < 50, 'the tracker\'s only connect is the third send')
  const gaps = [connects[1].at - connects[0].at, connects[2].at - connects[1].at]
  t.diagnostic(`gaps between connect sends: ${gaps.map((g) => g.toFixed(1)).join(', ')} ms (expected ${2 * T}, ${4 * T})`)
  assert.ok(gaps[0] >= 2 * T - 10 && gaps[0] < 2 * T + 250, `first gap ${gaps[0].toFixed(1)} ms, expected about ${2 * T}`)
  assert.ok(gaps[1] >= 4 * T - 10 && gaps[1] < 4 * T + 250, `second gap ${gaps[1].toFixed(1)} ms, expected about ${4 * T}`)
  assert.equal(server.announces.length, 1)
})
