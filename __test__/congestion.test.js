'use strict'
// Per-tracker congestion control over real sockets: a scripted tracker whose
// receive queue holds a fixed number of datagrams (the rest are dropped, as
// a kernel drops what overflows a socket buffer) and which answers a fixed
// number every few milliseconds. With BEP 15 alone, each dropped datagram
// would wait 2·_timeout (30 s with the default) for its retransmission.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const dgram = require('node:dgram')

const UdpTracker = require('..')
const { parseRequest, connectReply, announceReply, ACTION, twentyBytes } = require('./helpers/script-server.js')

const QUEUE = 40 // datagrams the tracker's "socket buffer" holds
const PER_TICK = 8 // answered every TICK_MS
const TICK_MS = 2

function queueTracker () {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4')
    const queue = []
    const counts = { received: 0, dropped: 0, answered: 0 }
    socket.on('message', (msg, rinfo) => {
      counts.received++
      if (queue.length >= QUEUE) {
        counts.dropped++
        return
      }
      queue.push({ msg, rinfo })
    })
    const timer = setInterval(() => {
      for (let i = 0; i < PER_TICK && queue.length > 0; i++) {
        const { msg, rinfo } = queue.shift()
        const req = parseRequest(msg)
        if (req.transactionId === undefined) continue
        const reply = req.action === ACTION.connect
          ? connectReply(req.transactionId, 0x1234n)
          : announceReply(req.transactionId, { interval: 1800, leechers: 1 })
        counts.answered++
        socket.send(reply, rinfo.port, rinfo.address)
      }
    }, TICK_MS)
    socket.bind(0, '127.0.0.1', () => {
      resolve({
        url: `udp://127.0.0.1:${socket.address().port}`,
        counts,
        close: () => { clearInterval(timer); socket.close() }
      })
    })
  })
}

test('a burst of 600 to a tracker with a queue of 40 is answered without a 2·_timeout wait', { timeout: 60000 }, async () => {
  const tracker = await queueTracker()
  try {
    UdpTracker.forgetConnectionIds()
    const before = UdpTracker.stats()
    const started = Date.now()
    const n = 600
    const latencies = await Promise.all(Array.from({ length: n }, (_, i) => {
      const t0 = Date.now()
      return UdpTracker.announce(tracker.url, {
        infoHash: twentyBytes('congestion-hash!', i),
        peerId: twentyBytes('-JS0001-congestion', i),
        event: 'started'
      }).then(() => Date.now() - t0)
    }))
    const wall = Date.now() - started
    const after = UdpTracker.stats()
    latencies.sort((a, b) => a - b)
    const diag = `wall ${wall} ms, p50 ${latencies[n >> 1]} ms, max ${latencies[n - 1]} ms; tracker ${JSON.stringify(tracker.counts)}; ` +
      `client retransmits ${after.retransmits - before.retransmits}, losses ${after.losses - before.losses}`
    // The default _timeout is 15 s: a drop left to BEP 15 would cost 30 s.
    assert.ok(latencies[n - 1] < 15000, diag)
    assert.ok(tracker.counts.dropped > 0, `the burst must overflow the queue: ${diag}`)
    assert.ok(after.losses > before.losses, `drops are detected as losses: ${diag}`)
    // Fewer datagrams than a burst without a window would lose and resend.
    assert.ok(tracker.counts.received < 2 * n, diag)
    await new Promise((resolve) => setTimeout(resolve, 150))
    const view = UdpTracker.stats().trackers.find((t) => tracker.url.endsWith(t.address))
    assert.ok(view, 'stats().trackers has the tracker')
    assert.equal(view.outstanding, 0, JSON.stringify(view))
    assert.equal(view.waiting, 0, JSON.stringify(view))
    assert.ok(view.window >= 4, JSON.stringify(view))
    assert.ok(view.losses > 0 && view.retransmits >= view.losses && view.srttMs >= 0, JSON.stringify(view))
  } finally {
    tracker.close()
  }
})
