'use strict'
// The promise API (announce, scrape), its error codes, AbortSignal and
// timeouts; the ES module entry. The package's test tracker answers, except
// for a malformed reply and where the exact scrape packets are counted
// (helpers/script-server.js).

const test = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const UdpTracker = require('..')
const { canIsolateNames, runWithNames, SKIP_REASON } = require('./helpers/private-names')
const { ScriptServer, rawReply, scrapeReply, twentyBytes } = require('./helpers/script-server')
const { received, waitUntil, withTracker } = require('./helpers/test-tracker.js')

const INFO_HASH = twentyBytes('promise-hash')
const PEER_ID = twentyBytes('promise-peer')

async function withServer (fn) {
  const server = await ScriptServer.create()
  try {
    return await fn(server)
  } finally {
    await server.close()
  }
}

test('announce resolves with interval, leechers, seeds and peers', () => withTracker({ interval: 120 }, async (tracker) => {
  // Two seeders first, then our leecher: its reply lists both of them.
  for (const [n, port] of [[1, 6881], [2, 51413]]) {
    await UdpTracker.announce(tracker.url, { infoHash: INFO_HASH, peerId: twentyBytes('promise-seed', n), event: 'started', port, left: 0 })
  }
  const result = await UdpTracker.announce(tracker.url, { infoHash: INFO_HASH, peerId: PEER_ID, event: 'started', port: 7001, left: 5 })
  result.peers.sort()
  assert.deepEqual(result, { interval: 120, leechers: 1, seeds: 2, peers: ['127.0.0.1:51413', '127.0.0.1:6881'] })
  const sent = tracker.swarm(INFO_HASH).peers.find((p) => p.peerId.equals(PEER_ID))
  assert.equal(sent.event, 'started')
  assert.equal(sent.address, '127.0.0.1:7001')
  assert.equal(sent.left, 5n)
}))

test('announce defaults to event 0 (none) and takes hex info hashes', () => withTracker({}, async (tracker) => {
  await UdpTracker.announce(tracker.url, { infoHash: INFO_HASH.toString('hex'), peerId: PEER_ID })
  const swarm = tracker.swarm(INFO_HASH)
  assert.ok(swarm, 'the announce was for INFO_HASH')
  assert.deepEqual(swarm.peers.map((p) => [p.peerId, p.event]), [[PEER_ID, 'none']])
}))

test('a tracker error rejects with ERR_TRACKER_ERROR and the tracker text', () => withTracker({ errorFor: { [INFO_HASH.toString('hex')]: 'unregistered torrent' } }, async (tracker) => {
  await assert.rejects(
    UdpTracker.announce(tracker.url, { infoHash: INFO_HASH, peerId: PEER_ID, connectionIdCache: false }),
    { code: 'ERR_TRACKER_ERROR', message: 'unregistered torrent' })
}))

test('a malformed reply rejects with ERR_BAD_RESPONSE and the 1.2.0 text', () => withServer(async (server) => {
  server.onAnnounce = (req) => rawReply(1, req.transactionId, Buffer.alloc(5))
  await assert.rejects(
    UdpTracker.announce(server.url, { infoHash: INFO_HASH, peerId: PEER_ID }),
    { code: 'ERR_BAD_RESPONSE', message: 'announce response should be 20 bytes' })
}))

test('no answer rejects with ERR_TRACKER_TIMEOUT after the retransmissions', () => withTracker({ loss: 1 }, async (tracker) => {
  await assert.rejects(
    UdpTracker.announce(tracker.url, { infoHash: INFO_HASH, peerId: PEER_ID, _timeout: 10, maxAttempts: 2 }),
    { code: 'ERR_TRACKER_TIMEOUT', message: 'tracker is not responding after:40' })
  assert.equal(received(tracker), 2, 'two connects, both lost')
}))

test('options.timeout bounds the whole request', () => withTracker({ loss: 1 }, async (tracker) => {
  const started = Date.now()
  await assert.rejects(
    UdpTracker.announce(tracker.url, { infoHash: INFO_HASH, peerId: PEER_ID }, { timeout: 150 }),
    { code: 'ERR_TRACKER_TIMEOUT', message: 'tracker is not responding after:150' })
  assert.ok(Date.now() - started >= 140)
  assert.equal(UdpTracker.stats().inFlight, 0, 'the request was cancelled')
}))

test('a name that does not resolve rejects with ERR_DNS', { skip: !canIsolateNames && SKIP_REASON }, async () => {
  // In a child whose lookups use only a private hosts file: no DNS query leaves the machine.
  const { code, out, err } = await runWithNames(`
    require('.').announce('udp://nonexistent.invalid:6969', { infoHash: 'ab'.repeat(20), peerId: 'x'.repeat(20) })
      .then(() => console.log('resolved'), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })))
  `)
  assert.equal(code, 0, err)
  const result = JSON.parse(out.trim())
  assert.equal(result.code, 'ERR_DNS')
  assert.ok(result.message.length > 0)
})

test('an AbortSignal cancels a request in flight with ERR_ABORTED', () => withTracker({ loss: 1 }, async (tracker) => {
  const controller = new AbortController()
  const pending = UdpTracker.announce(tracker.url, { infoHash: INFO_HASH, peerId: PEER_ID }, { signal: controller.signal })
  await waitUntil(() => received(tracker) >= 1, 'the connect', 2000)
  controller.abort(new Error('user gave up'))
  await assert.rejects(pending, (err) => err.code === 'ERR_ABORTED' && err.name === 'AbortError' && err.cause.message === 'user gave up')
  assert.equal(UdpTracker.stats().inFlight, 0)
}))

test('an already aborted signal rejects at once and sends nothing', () => withTracker({}, async (tracker) => {
  const pending = UdpTracker.announce(tracker.url, { infoHash: INFO_HASH, peerId: PEER_ID }, { signal: AbortSignal.abort() })
  await assert.rejects(pending, { code: 'ERR_ABORTED' })
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(received(tracker), 0)
}))

test('bad arguments reject with TypeError or RangeError naming them', async () => {
  const url = 'udp://127.0.0.1:6969'
  await assert.rejects(UdpTracker.announce(url, { infoHash: 'abc', peerId: PEER_ID }), { name: 'TypeError', message: /params\.infoHash/ })
  await assert.rejects(UdpTracker.announce(url, { infoHash: INFO_HASH, peerId: PEER_ID, event: 9 }), { name: 'RangeError', message: /params\.event/ })
  await assert.rejects(UdpTracker.announce(url, { infoHash: INFO_HASH, peerId: PEER_ID, left: -1 }), { name: 'RangeError', message: /params\.left/ })
  await assert.rejects(UdpTracker.announce('http://x', { infoHash: INFO_HASH, peerId: PEER_ID }), { name: 'TypeError', message: /announceUrl/ })
  await assert.rejects(UdpTracker.announce(url, { infoHash: INFO_HASH, peerId: PEER_ID }, { signal: 'no' }), { name: 'TypeError', message: /options\.signal/ })
  await assert.rejects(UdpTracker.announce(url, { infoHash: INFO_HASH, peerId: PEER_ID }, { timeout: -5 }), { name: 'RangeError', message: /options\.timeout/ })
  await assert.rejects(UdpTracker.scrape(url, []), { name: 'TypeError', message: /infoHashes/ })
  await assert.rejects(UdpTracker.scrape(url, ['zz']), { name: 'TypeError', message: /infoHashes\[0\]/ })
})

test('scrape splits many hashes into packets of at most 74 and keys results by hex', () => withServer(async (server) => {
  server.onScrape = (req) => scrapeReply(req.transactionId, req.infoHashes.map((h) => ({
    seeders: h.readUInt32BE(16), completed: 1, leechers: 2
  })))
  const hashes = Array.from({ length: 200 }, (_, i) => twentyBytes('scrape-many', i))
  const result = await UdpTracker.scrape(server.url, hashes)
  assert.equal(Object.keys(result).length, 200)
  for (let i = 0; i < 200; i++) {
    assert.deepEqual(result[hashes[i].toString('hex')], { complete: i, downloaded: 1, incomplete: 2 })
  }
  const packets = server.scrapes
  assert.deepEqual(packets.map((d) => d.infoHashes.length).sort((a, b) => a - b), [52, 74, 74])
  assert.equal(server.connects.length, 1, 'one connection id for all packets')
}))

test('scrape over IPv6 uses packets of at most 60 hashes', async () => {
  const server = await ScriptServer.create({ host: '::1' })
  try {
    server.onScrape = (req) => scrapeReply(req.transactionId, req.infoHashes.map(() => ({ seeders: 1, completed: 1, leechers: 1 })))
    const hashes = Array.from({ length: 130 }, (_, i) => twentyBytes('scrape-v6', i))
    const result = await UdpTracker.scrape(server.url, hashes)
    assert.equal(Object.keys(result).length, 130)
    const sizes = server.scrapes.map((d) => d.infoHashes.length)
    assert.deepEqual(sizes.sort((a, b) => a - b), [10, 60, 60])
  } finally {
    await server.close()
  }
})

test('an instance scrape() emits a scrape event with its counts', () => withTracker({}, async (server) => {
  // INFO_HASH's swarm: a seeder that completed, a seeder that started so, and
  // three leechers; another torrent has one leecher.
  const peers = [['completed', 0], ['started', 0], ['started', 9], ['started', 9], ['started', 9]]
  for (const [i, [event, left]] of peers.entries()) {
    await UdpTracker.announce(server.url, { infoHash: INFO_HASH, peerId: twentyBytes('promise-swarm', i), event, left, port: 6000 + i })
  }
  await UdpTracker.announce(server.url, { infoHash: twentyBytes('promise-other'), peerId: PEER_ID, left: 1 })
  const tracker = new UdpTracker(PEER_ID, INFO_HASH, server.url)
  const got = new Promise((resolve, reject) => { tracker.on('scrape', resolve); tracker.on('error', reject) })
  tracker.scrape()
  assert.deepEqual(await got, { complete: 2, downloaded: 1, incomplete: 3 })
  assert.equal(server.stats().requests.scrape, 1)
  tracker.destroy()
}))

test('the ES module entry has a default and named exports', () => {
  const script = `
    import UdpTracker, { UdpTracker as Named, announce, scrape, forgetConnectionIds, stats } from 'bittorrent-udp-tracker'
    import { createRequire } from 'node:module'
    const cjs = createRequire(import.meta.url)('bittorrent-udp-tracker')
    if (UdpTracker !== cjs || Named !== cjs) throw new Error('not the same class')
    for (const f of [announce, scrape, forgetConnectionIds, stats]) if (typeof f !== 'function') throw new Error('missing export')
    console.log('esm ok')
  `
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: path.join(__dirname, '..'), encoding: 'utf8' })
  assert.equal(run.status, 0, run.stderr)
  assert.equal(run.stdout.trim(), 'esm ok')
})

test('a tracker address outside the forced family rejects with ERR_SEND and sends nothing', async () => {
  const before = UdpTracker.stats().sent
  await assert.rejects(
    UdpTracker.announce('udp://127.0.0.1:9', { infoHash: INFO_HASH, peerId: PEER_ID, family: 6 }),
    { code: 'ERR_SEND', message: '127.0.0.1 is not an address of the requested family' })
  assert.equal(UdpTracker.stats().sent, before)
})

test('when the engine cannot take requests, every request of the tick fails: an error event, an ERR_SEND rejection', async (t) => {
  const { runNode } = require('./helpers/child.js')
  const script = `
    const native = require('./lib/native.js')
    native.Engine.prototype.start = () => { throw new Error('the tracker driver has stopped') }
    const UdpTracker = require('.')
    const tracker = new UdpTracker(Buffer.alloc(20, 1), Buffer.alloc(20, 2), 'udp://127.0.0.1:9')
    const results = []
    tracker.on('error', (message) => results.push(['event', message]))
    tracker.announce('started', {})
    UdpTracker.announce('udp://127.0.0.1:9', { infoHash: Buffer.alloc(20, 3), peerId: Buffer.alloc(20, 4) })
      .catch((err) => results.push(['rejection', err.code, err.message]))
    setTimeout(() => console.log(JSON.stringify({ results, inFlight: UdpTracker.stats().inFlight })), 200)
  `
  const run = await runNode(t, ['-e', script], { limitMs: 10000 })
  assert.equal(run.code, 0, run.stderr)
  const out = JSON.parse(run.stdout.trim().split('\n').pop())
  assert.deepEqual(out.results.sort(), [
    ['event', 'the tracker driver has stopped'],
    ['rejection', 'ERR_SEND', 'the tracker driver has stopped']
  ])
  assert.equal(out.inFlight, 0)
})
