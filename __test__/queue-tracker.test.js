'use strict'
// A tracker whose queue holds Q datagrams per service period (the model of a
// real tracker's socket buffer: helpers/queue-tracker.js), and what this
// package does against it. Before issue 15 the engine sent a whole burst at
// once (up to 4,096 requests in flight in all), the tracker dropped all but Q
// of it, and every dropped request waited for BEP 15's retransmission
// 2·_timeout later, which went out as one burst again (measured: 200 of 2,000
// within 2·_timeout, ~7,000 drops, ~9,000 datagrams). The per-tracker
// congestion window (README: *Congestion control*) paces the burst instead.

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const dgram = require('node:dgram')
const { randomBytes } = require('node:crypto')
const { performance } = require('node:perf_hooks')

const UdpTracker = require('..')
const { startQueueTracker } = require('./helpers/queue-tracker.js')
const { PROTOCOL_ID, sleep } = require('./helpers/script-server.js')

const instances = []
const trackers = []
afterEach(async () => {
  for (const t of instances.splice(0)) t.destroy()
  for (const t of trackers.splice(0)) await t.close()
})

async function queueTracker (options) {
  // No id cached for an earlier tracker that had the same port: the counts
  // below assume one connect.
  UdpTracker.forgetConnectionIds()
  const tracker = await startQueueTracker(options)
  trackers.push(tracker)
  return tracker
}

/**
 * Starts n instances announcing `started` at once to `url`; resolves after
 * `observeMs` with the latency (ms from the first announce call) of each
 * update, and the error texts.
 */
async function burst (url, n, opts, observeMs) {
  const latencies = []
  const errors = []
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const t = new UdpTracker(randomBytes(20), randomBytes(20), url, { port: 6881, ...opts })
    instances.push(t)
    t.on('update', () => latencies.push(performance.now() - t0))
    t.on('error', (err) => errors.push(String(err)))
    t.announce('started', { left: 100 })
  }
  await sleep(observeMs)
  return { latencies, errors }
}

describe('the queue tracker (helpers/queue-tracker.js)', () => {
  it('answers connect, announce and scrape as a BEP 15 tracker does', async () => {
    const tracker = await queueTracker({ queue: 10, periodMs: 20, interval: 900 })
    const infoHash = randomBytes(20)
    const opts = { _timeout: 1000 }
    const leecher = await UdpTracker.announce(tracker.url, { infoHash, peerId: randomBytes(20), port: 7001, event: 'started', left: 5 }, opts)
    assert.deepEqual(leecher, { interval: 900, leechers: 1, seeds: 0, peers: [] })
    const seeder = await UdpTracker.announce(tracker.url, { infoHash, peerId: randomBytes(20), port: 7002, event: 'started', left: 0 }, opts)
    assert.deepEqual(seeder, { interval: 900, leechers: 1, seeds: 1, peers: ['127.0.0.1:7001'] })
    const completed = await UdpTracker.announce(tracker.url, { infoHash, peerId: randomBytes(20), port: 7001, event: 'completed', left: 0 }, opts)
    assert.deepEqual(completed, { interval: 900, leechers: 0, seeds: 2, peers: ['127.0.0.1:7002'] })
    const counts = await UdpTracker.scrape(tracker.url, [infoHash, randomBytes(20)], opts)
    assert.deepEqual(Object.values(counts), [{ complete: 2, downloaded: 1, incomplete: 0 }, { complete: 0, downloaded: 0, incomplete: 0 }])
    const stopped = await UdpTracker.announce(tracker.url, { infoHash, peerId: randomBytes(20), port: 7002, event: 'stopped', left: 0 }, opts)
    assert.deepEqual(stopped, { interval: 900, leechers: 0, seeds: 1, peers: [] })
    assert.deepEqual(tracker.swarm(infoHash), { seeders: 1, leechers: 0, completed: 1, peers: 1 })
    const s = tracker.stats()
    // One connect (the id is cached), four announces, one scrape, nothing dropped.
    assert.deepEqual([s.connect, s.announce, s.scrape, s.dropped, s.answered, s.received], [1, 4, 1, 0, 6, 6])
  })

  it('serves at most Q datagrams a period and drops the rest of a burst', async () => {
    // A long period: the 50 datagrams below arrive within one or two of them.
    const tracker = await queueTracker({ queue: 10, periodMs: 1000 })
    const socket = dgram.createSocket('udp4')
    const replies = []
    socket.on('message', (msg) => replies.push(msg))
    await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve))
    try {
      for (let tid = 0; tid < 50; tid++) {
        const connect = Buffer.alloc(16)
        connect.writeBigUInt64BE(PROTOCOL_ID, 0)
        connect.writeUInt32BE(tid, 12)
        socket.send(connect, tracker.port, '127.0.0.1')
      }
      const deadline = performance.now() + 10000
      while (tracker.stats().received < 50 && performance.now() < deadline) await sleep(20)
      while (tracker.stats().queued > 0 && performance.now() < deadline) await sleep(20)
      await sleep(100)
    } finally {
      socket.close()
    }
    const s = tracker.stats()
    assert.equal(s.received, 50)
    assert.equal(s.answered + s.dropped, 50)
    assert.ok(s.answered >= 10 && s.answered <= 20, `answered ${s.answered}: one or two periods' worth`)
    assert.ok(s.busiestPeriod <= 10)
    if (s.kernelDrops !== null) assert.equal(s.kernelDrops, 0, 'the drops are the model\'s, not the kernel\'s')
    // Each reply is a connect reply to one of the transaction ids sent.
    assert.equal(replies.length, s.answered)
    const tids = new Set(replies.map((r) => {
      assert.equal(r.length, 16)
      assert.equal(r.readUInt32BE(0), 0) // action connect
      return r.readUInt32BE(4)
    }))
    assert.equal(tids.size, s.answered)
    for (const tid of tids) assert.ok(tid < 50)
  })
})

describe('a burst against a tracker with a queue of Q datagrams (issue 15)', () => {
  it('a burst within Q is answered at once: no drop, one datagram per announce plus one connect', async () => {
    const tracker = await queueTracker({ queue: 200, periodMs: 50 })
    const sent0 = UdpTracker.stats().sent
    const n = 100
    // A first wait of 2·_timeout = 6 s: a loaded machine does not retransmit.
    const { latencies, errors } = await burst(tracker.url, n, { _timeout: 3000 }, 0)
    const deadline = performance.now() + 20000
    while (latencies.length + errors.length < n && performance.now() < deadline) await sleep(20)
    assert.deepEqual(errors, [])
    assert.equal(latencies.length, n)
    const s = tracker.stats()
    assert.equal(s.dropped, 0)
    assert.equal(s.connect, 1)
    assert.equal(s.announce, n)
    assert.equal(UdpTracker.stats().sent - sent0, n + 1)
  })

  it('2,000 instances announcing at once with Q = 200 are paced by the congestion window: all answered, few drops', async (t) => {
    const tracker = await queueTracker({ queue: 200, periodMs: 50 })
    const n = 2000
    const timeout = 200
    const sent0 = UdpTracker.stats().sent
    // Until every announce is answered (0.75 s on an idle machine), or 20 s.
    const { latencies, errors } = await burst(tracker.url, n, { _timeout: timeout }, 14 * timeout)
    const deadline = performance.now() + 20000
    while (latencies.length + errors.length < n && performance.now() < deadline) await sleep(20)
    const within = latencies.filter((ms) => ms < 2 * timeout).length
    const s = tracker.stats()
    const sent = UdpTracker.stats().sent - sent0
    t.diagnostic(`answered within 2·_timeout (${2 * timeout} ms): ${within}/${n}; all answered after ${Math.round(Math.max(...latencies))} ms`)
    t.diagnostic(`tracker: received ${s.received}, dropped ${s.dropped}, answered ${s.answered}, busiest period ${s.busiestPeriod}, kernel drops ${s.kernelDrops}; client sent ${sent}`)

    // Holds whatever the client does: the tracker serves no more than Q a period,
    // so the burst cannot all be answered within the first period.
    assert.deepEqual(errors, [])
    assert.ok(s.busiestPeriod <= 200)
    assert.equal(s.received, s.answered + s.dropped + s.queued + s.unknownConnectionId + s.invalid)
    if (s.kernelDrops !== null) assert.equal(s.kernelDrops, 0)

    // The window grows while replies come back and halves on a loss, and a lost
    // datagram is resent once later ones were answered, not after 2·_timeout.
    // Measured on an idle machine: 792 of 2,000 within 2·_timeout, all within
    // 0.75 s, 808 drops and 2,809 datagrams; without the window: 200, not all,
    // ~7,000 and ~9,000. The datagram counts tell the two apart on a loaded
    // machine too, where the times (the diagnostic above) do not: there the
    // instances' creation and the replies wait for a core, and as few as 192
    // were answered within 2·_timeout with the window.
    assert.equal(latencies.length, n, `${latencies.length} of ${n} answered`)
    assert.ok(s.dropped < n, `the tracker dropped ${s.dropped}`)
    assert.ok(sent < 2 * n, `the client sent ${sent} datagrams for ${n} announces`)
  })
})
