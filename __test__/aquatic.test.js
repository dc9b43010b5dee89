'use strict'
// Integration tests against a real tracker, aquatic_udp 0.9.0, on loopback
// (see helpers/aquatic.js; the first run builds it, see scripts/aquatic.js).
//
// What aquatic 0.9.0 does, checked with small experiments, that the
// expectations below rest on:
// - A peer is its (source IP, announced port); the peer id is not part of it.
//   Every announce here comes from 127.0.0.1, so each instance announces its
//   own port. An announce from a known ip:port replaces that peer.
// - The announce reply is built before the announcing peer is (re)inserted:
//   `seeds`/`leechers` and `peers` never include the announcing peer itself.
// - `peers` holds every other peer while there are at most
//   max_response_peers (and numWant, 50 by default) of them; above that, a
//   random 2·⌊max/2⌋ of them. With max_response_peers = 10: min(others, 10).
// - left = 0 is a seeder, left > 0 a leecher, event 3 (stopped) removes the
//   peer. A scrape's `downloaded` (completed) is always 0.
// - A scrape of more hashes than max_scrape_torrents (default 70, left at its
//   default here) is answered for the first 70 only: the client keeps those
//   counts, asks again for the rest, and sends that tracker at most 70 from
//   then on.
// - Connection ids are a keyed hash with a key made at start-up: after a
//   restart the tracker does not know the ids it gave out before, and drops
//   announces and scrapes carrying them *without any reply* (no error reply).

const { describe, it, before, after, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const { randomBytes } = require('node:crypto')

const UdpTracker = require('..')
const { startAquatic, hasIpv6Loopback } = require('./helpers/aquatic.js')

const ANNOUNCE_INTERVAL = 1800 // not aquatic's default (900): proves it is ours
const MAX_RESPONSE_PEERS = 10 // even: aquatic returns 2·⌊max/2⌋ when it samples
const DEFAULT_MAX_SCRAPE_TORRENTS = 70 // aquatic's default, which the tests keep
const TRACKER_OPTIONS = {
  announceInterval: ANNOUNCE_INTERVAL,
  maxResponsePeers: MAX_RESPONSE_PEERS
}
// A retransmission after 2 s rather than the default 30 s, should the kernel
// drop a datagram of a burst.
const FAST = { _timeout: 1000 }

let aquatic = null
const instances = []
let nextPort = 20000

before(async () => {
  aquatic = await startAquatic(TRACKER_OPTIONS)
})

after(async () => {
  for (const tracker of instances.splice(0)) tracker.destroy()
  if (aquatic !== null) await aquatic.stop()
})

// No instance of a test outlives it: its interval timer or a request still in
// flight would send datagrams during the next test.
afterEach(() => {
  for (const tracker of instances.splice(0)) tracker.destroy()
})

// ---------------------------------------------------------------------------
// Helpers.

function newHash () {
  return randomBytes(20)
}

function newPort () {
  return nextPort++
}

function fdCount () {
  return fs.readdirSync('/proc/self/fd').length
}

/** A UdpTracker that is destroyed at the end of the test. */
function tracker (infoHash, port, opts = {}, peerId = randomBytes(20), url = aquatic.url) {
  const t = new UdpTracker(peerId, infoHash, url, { port, ...opts })
  instances.push(t)
  return t
}

/** The first 'update' or 'error' of `t`: { kind, value }; kind 'none' after `ms`. */
function outcome (t, ms = 15000) {
  return new Promise((resolve) => {
    let done = false
    const finish = (kind, value) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve({ kind, value })
    }
    const timer = setTimeout(() => finish('none', `neither 'update' nor 'error' within ${ms} ms`), ms)
    t.on('update', (u) => finish('update', u))
    t.on('error', (e) => finish('error', e))
  })
}

/** Announces with a new instance and returns its 'update' (fails the test on anything else). */
async function announce (infoHash, { port = newPort(), left = 0, event = 2, peerId, opts = {}, url } = {}) {
  const t = tracker(infoHash, port, opts, peerId, url)
  const result = outcome(t)
  t.announce(event, { downloaded: 0, left, uploaded: 0 })
  const { kind, value } = await result
  assert.equal(kind, 'update', `announce (event ${event}, port ${port}, left ${left}) got ${kind}: ${value}`)
  return value
}

function peerString (port, host = '127.0.0.1') {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

const PEER_V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/

function sorted (list) {
  return [...list].sort()
}

// ---------------------------------------------------------------------------

describe('aquatic_udp 0.9.0 on 127.0.0.1', () => {
  it('one announce gets an update with counts, peers and the configured interval', async () => {
    const hash = newHash()
    const first = await announce(hash, { left: 0 })
    assert.equal(typeof first.leechers, 'number')
    assert.equal(typeof first.seeds, 'number')
    assert.ok(Array.isArray(first.peers), 'peers is an array')
    assert.equal(first.interval, ANNOUNCE_INTERVAL, 'interval is peer_announce_interval from the config')
    // The first peer of a torrent: aquatic does not count the announcer itself.
    assert.deepEqual(first, { leechers: 0, seeds: 0, peers: [], interval: ANNOUNCE_INTERVAL })

    const secondPort = newPort()
    const second = await announce(hash, { port: secondPort, left: 1000 })
    assert.equal(second.seeds, 1, 'the first (seeding) peer')
    assert.equal(second.leechers, 0, 'the announcer (a leecher) is not counted')
    assert.equal(second.peers.length, 1)
    assert.match(second.peers[0], PEER_V4)
    assert.equal(second.interval, ANNOUNCE_INTERVAL)
  })

  it('1,000 instances announce at once over one socket, each gets its own torrent\'s swarm', { timeout: 45000 }, async () => {
    // 50 torrents of 5 or 35 peers (1,000 in all), with a known split into
    // seeders (left 0) and leechers (left > 0) per torrent. Each instance has
    // its own random peer id and its own announced port.
    const HASHES = 50
    const torrents = []
    for (let i = 0; i < HASHES; i++) {
      const size = i % 2 === 0 ? 5 : 35
      const seeders = i % (size + 1)
      torrents.push({ hash: newHash(), size, seeders, leechers: size - seeders, ports: new Set() })
    }
    const peers = []
    for (const torrent of torrents) {
      for (let j = 0; j < torrent.size; j++) {
        const port = newPort()
        torrent.ports.add(port)
        peers.push({ torrent, port, peerId: randomBytes(20), left: j < torrent.seeders ? 0 : 1 + j * 1024 })
      }
    }
    assert.equal(peers.length, 1000)
    // Interleave the torrents on the wire.
    for (let i = peers.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[peers[i], peers[j]] = [peers[j], peers[i]]
    }

    UdpTracker.stats() // the engine exists before counting fds
    const fdsBefore = fdCount()
    const socketsSeen = []

    /** Every peer announces at once with a new instance; their outcomes, in order. */
    async function round (event) {
      const results = peers.map((peer) => {
        const t = tracker(peer.torrent.hash, peer.port, FAST, peer.peerId)
        const result = outcome(t, 30000)
        t.announce(event, { downloaded: 0, left: peer.left, uploaded: 0 })
        return result
      })
      socketsSeen.push(UdpTracker.stats().sockets) // all 1,000 in flight
      const outcomes = await Promise.all(results)
      socketsSeen.push(UdpTracker.stats().sockets)
      const failed = outcomes.filter((o) => o.kind !== 'update')
      assert.equal(failed.length, 0,
        `${failed.length} of 1000 announces (event ${event}) got no update, e.g. ` +
        JSON.stringify(failed.slice(0, 3)))
      return outcomes.map((o) => o.value)
    }

    /** What every update must satisfy, whatever the order the tracker saw them in. */
    function checkPeers (peer, update) {
      const { torrent, port } = peer
      const others = update.seeds + update.leechers
      assert.equal(update.interval, ANNOUNCE_INTERVAL)
      assert.equal(update.peers.length, Math.min(others, MAX_RESPONSE_PEERS),
        `peers: every other peer, at most max_response_peers (${MAX_RESPONSE_PEERS})`)
      assert.equal(new Set(update.peers).size, update.peers.length, 'no peer twice')
      for (const p of update.peers) {
        const m = PEER_V4.exec(p)
        assert.ok(m, `peer ${p} is 'a.b.c.d:port'`)
        assert.equal(`${m[1]}.${m[2]}.${m[3]}.${m[4]}`, '127.0.0.1')
        const peerPort = Number(m[5])
        assert.notEqual(peerPort, port, 'the announcing peer is not among its own peers')
        assert.ok(torrent.ports.has(peerPort), `peer ${p} announced the same torrent`)
      }
    }

    // Round 1 (started): a peer sees the peers that the tracker happened to
    // take in before it, so only bounds hold.
    const first = await round(2)
    peers.forEach((peer, i) => {
      const u = first[i]
      const { torrent } = peer
      const isSeeder = peer.left === 0
      assert.ok(u.seeds >= 0 && u.seeds <= torrent.seeders - (isSeeder ? 1 : 0), `round 1 seeds ${u.seeds}`)
      assert.ok(u.leechers >= 0 && u.leechers <= torrent.leechers - (isSeeder ? 0 : 1), `round 1 leechers ${u.leechers}`)
      checkPeers(peer, u)
    })
    for (const t of instances.splice(0)) t.destroy() // they are in their announce interval

    // Round 2 (a regular announce, event 0, by new instances for the same
    // peers): every peer is known, aquatic takes the announcer out and counts
    // the rest, so each instance sees exactly its own torrent minus itself.
    const second = await round(0)
    peers.forEach((peer, i) => {
      const u = second[i]
      const { torrent } = peer
      const isSeeder = peer.left === 0
      const expected = {
        seeds: torrent.seeders - (isSeeder ? 1 : 0),
        leechers: torrent.leechers - (isSeeder ? 0 : 1)
      }
      assert.deepEqual({ seeds: u.seeds, leechers: u.leechers }, expected,
        `a ${isSeeder ? 'seeder' : 'leecher'} of a torrent with ${torrent.seeders} seeders and ` +
        `${torrent.leechers} leechers (port ${peer.port})`)
      assert.equal(u.peers.length, Math.min(torrent.size - 1, MAX_RESPONSE_PEERS))
      checkPeers(peer, u)
    })

    socketsSeen.push(UdpTracker.stats().sockets)
    assert.deepEqual(socketsSeen, [1, 1, 1, 1, 1], 'UdpTracker.stats().sockets: one socket for all instances')
    const fdsAfter = fdCount()
    assert.ok(fdsAfter - fdsBefore <= 5,
      `open fds grew from ${fdsBefore} to ${fdsAfter} for 2,000 instances (at most a handful expected)`)
  })

  it('peers are the other peers of the same torrent, with the ports they announced', async () => {
    const hash = newHash()
    const elsewhere = newPort()
    await announce(newHash(), { port: elsewhere }) // a peer of another torrent
    const seeder = newPort()
    const leecherA = newPort()
    const leecherB = newPort()
    await announce(hash, { port: seeder, left: 0 })
    await announce(hash, { port: leecherA, left: 10 })
    await announce(hash, { port: leecherB, left: 20 })
    const me = newPort()
    const update = await announce(hash, { port: me, left: 30 })
    assert.equal(update.seeds, 1)
    assert.equal(update.leechers, 2)
    assert.deepEqual(sorted(update.peers), sorted([seeder, leecherA, leecherB].map((p) => peerString(p))),
      'exactly the three other peers of this torrent, as 127.0.0.1:port')
  })

  it('event 3 (stopped) removes the peer', async () => {
    const hash = newHash()
    const seeder = newPort()
    const leaving = newPort()
    const leavingId = randomBytes(20)
    const staying = newPort()
    await announce(hash, { port: seeder, left: 0 })
    await announce(hash, { port: leaving, left: 5, peerId: leavingId })
    await announce(hash, { port: staying, left: 5 })
    const hex = hash.toString('hex')
    assert.deepEqual(await UdpTracker.scrape(aquatic.url, [hash]), { [hex]: { complete: 1, downloaded: 0, incomplete: 2 } })

    // The leaving peer's first instance is in its announce interval, where
    // announce(3) is only queued (1.2.0's gating): the same peer (id and
    // port) stops with a new instance.
    const stopped = await announce(hash, { port: leaving, left: 5, event: 3, peerId: leavingId })
    assert.deepEqual(sorted(stopped.peers), sorted([peerString(seeder), peerString(staying)]))

    assert.deepEqual(await UdpTracker.scrape(aquatic.url, [hash]), { [hex]: { complete: 1, downloaded: 0, incomplete: 1 } },
      'one leecher fewer after the stop')
    const later = await announce(hash, { left: 7 })
    assert.equal(later.seeds, 1)
    assert.equal(later.leechers, 1, 'one leecher fewer: the stopped peer is gone')
    assert.deepEqual(sorted(later.peers), sorted([peerString(seeder), peerString(staying)]))
    assert.ok(!later.peers.includes(peerString(leaving)), 'the stopped peer is not returned')
  })

  it('a cached connection id is reused within an instance and by promise calls, not by a new instance', async () => {
    assert.equal(UdpTracker.stats().inFlight, 0, 'nothing else in flight')
    UdpTracker.forgetConnectionIds()
    const hash = newHash()
    const params = () => ({ infoHash: hash, peerId: randomBytes(20), port: newPort(), left: 1 })

    let sent = UdpTracker.stats().sent
    const t = tracker(hash, newPort())
    const first = outcome(t)
    t.announce(2, { downloaded: 0, left: 0, uploaded: 0 })
    assert.equal((await first).kind, 'update')
    assert.equal(UdpTracker.stats().sent - sent, 2, 'with no cached id: a connect and the announce')

    sent = UdpTracker.stats().sent
    const scraped = new Promise((resolve, reject) => { t.once('scrape', resolve); t.once('error', reject) })
    t.scrape()
    await scraped
    assert.equal(UdpTracker.stats().sent - sent, 1, 'the same instance reuses its id: the scrape only')

    sent = UdpTracker.stats().sent
    await announce(hash)
    assert.equal(UdpTracker.stats().sent - sent, 2, 'a new instance connects (a 1.2.0 mock expects it)')

    sent = UdpTracker.stats().sent
    await UdpTracker.announce(aquatic.url, params())
    await UdpTracker.announce(aquatic.url, params())
    assert.equal(UdpTracker.stats().sent - sent, 3, 'promise calls share one id: connect, announce, announce')

    UdpTracker.forgetConnectionIds()
    sent = UdpTracker.stats().sent
    await UdpTracker.announce(aquatic.url, params())
    assert.equal(UdpTracker.stats().sent - sent, 2, 'after forgetConnectionIds(): a connect and the announce')
  })

  // "Together" means the engine sees every start before the connect's reply:
  // the tick's starts reach it in one call (lib/engine.js).
  it('N instances announcing together send N + 1 datagrams', async () => {
    assert.equal(UdpTracker.stats().inFlight, 0, 'nothing else in flight')
    UdpTracker.forgetConnectionIds()
    const n = 50
    const sent = UdpTracker.stats().sent
    const updates = await Promise.all(Array.from({ length: n }, () => announce(newHash())))
    assert.equal(updates.length, n)
    assert.equal(UdpTracker.stats().sent - sent, n + 1, 'one shared connect, then one announce each')
  })

  // A tick of many requests reaches the engine in parts of 64 KB (about 700
  // announces each), the first of them while JS still creates the rest: they
  // still count as started together.
  it('a tick of 1,500 instances, handed over in parts, still sends N + 1 datagrams', { timeout: 60000 }, async () => {
    assert.equal(UdpTracker.stats().inFlight, 0, 'nothing else in flight')
    UdpTracker.forgetConnectionIds()
    const n = 1500
    const sent = UdpTracker.stats().sent
    const outcomes = []
    for (let i = 0; i < n; i++) {
      const t = tracker(newHash(), newPort(), FAST)
      outcomes.push(outcome(t, 30000))
      t.announce(2, { downloaded: 0, left: 1, uploaded: 0 })
      // The first part is with the engine before the tick ends.
      if (i === 1000) {
        const now = UdpTracker.stats()
        assert.ok(now.inFlight > 0 || now.sent > sent, 'the first part was handed over during the tick')
      }
    }
    const results = await Promise.all(outcomes)
    assert.deepEqual(results.filter((r) => r.kind !== 'update'), [])
    assert.equal(UdpTracker.stats().sent - sent, n + 1, 'one shared connect for the whole tick, then one announce each')
  })

  it('UdpTracker.scrape() returns the counts announced, keyed by hex hash, for 3 and 500 hashes', { timeout: 30000 }, async () => {
    // Hash j: j % 3 seeders and j % 4 leechers (none at all for j % 12 === 0).
    const hashes = Array.from({ length: 500 }, newHash)
    const announces = []
    hashes.forEach((infoHash, j) => {
      for (let s = 0; s < j % 3; s++) announces.push({ infoHash, left: 0 })
      for (let l = 0; l < j % 4; l++) announces.push({ infoHash, left: 1 + l })
    })
    await Promise.all(announces.map(({ infoHash, left }) => UdpTracker.announce(aquatic.url, {
      infoHash, peerId: randomBytes(20), port: newPort(), left, event: 'started', ...FAST
    })))
    const expected = (j) => ({ complete: j % 3, downloaded: 0, incomplete: j % 4 })

    const few = await UdpTracker.scrape(aquatic.url, [hashes[1], hashes[2].toString('hex').toUpperCase(), hashes[12]])
    assert.deepEqual(few, {
      [hashes[1].toString('hex')]: expected(1),
      [hashes[2].toString('hex')]: expected(2),
      [hashes[12].toString('hex')]: expected(12)
    })

    UdpTracker.forgetConnectionIds()
    const sent = UdpTracker.stats().sent
    const all = await UdpTracker.scrape(aquatic.url, hashes.map((h) => h.toString('hex')), FAST)
    // The first packet asks for 74 and gets 70 (aquatic's default limit); the
    // remaining 430 go 70 at a time: 7 packets.
    const packets = 1 + Math.ceil((500 - DEFAULT_MAX_SCRAPE_TORRENTS) / DEFAULT_MAX_SCRAPE_TORRENTS)
    assert.equal(UdpTracker.stats().sent - sent, 1 + packets,
      `one connect and ${packets} scrape packets: 74 asked (70 answered), then 70 at a time`)
    assert.equal(Object.keys(all).length, 500)
    hashes.forEach((h, j) => {
      assert.deepEqual(all[h.toString('hex')], expected(j), `hash #${j} ${h.toString('hex')}`)
    })
  })

  it('an instance\'s scrape() emits a scrape event with the counts', async () => {
    const hash = newHash()
    for (const left of [0, 0, 1, 2, 3]) await announce(hash, { left })
    const t = tracker(hash, newPort())
    const result = new Promise((resolve, reject) => {
      t.once('scrape', resolve)
      t.once('error', (e) => reject(new Error(`scrape() emitted error: ${e}`)))
    })
    t.scrape()
    assert.deepEqual(await result, { complete: 2, downloaded: 0, incomplete: 3 })
  })

  it('300 hashes scraped from aquatic with its default max_scrape_torrents (70)', async () => {
    const hashes = Array.from({ length: 300 }, newHash)
    await announce(hashes[299], { left: 1 })
    const all = await UdpTracker.scrape(aquatic.url, hashes, FAST)
    assert.equal(Object.keys(all).length, 300)
    assert.deepEqual(all[hashes[299].toString('hex')], { complete: 0, downloaded: 0, incomplete: 1 })
    assert.deepEqual(all[hashes[0].toString('hex')], { complete: 0, downloaded: 0, incomplete: 0 })
  })

  it('after a restart on the same port, the next announce on a cached id completes in about one round trip, not 2·_timeout', { timeout: 30000 }, async () => {
    // The promise API and an instance each cache an id from the tracker that
    // is about to go; the default _timeout (15 s) is kept.
    const hash = newHash()
    const params = () => ({ infoHash: hash, peerId: randomBytes(20), port: newPort(), left: 1 })
    await UdpTracker.announce(aquatic.url, params())
    const t = tracker(hash, newPort())
    const first = outcome(t)
    t.announce(2, { downloaded: 0, left: 0, uploaded: 0 })
    assert.equal((await first).kind, 'update')

    const { port } = aquatic
    await aquatic.stop()
    aquatic = null
    aquatic = await startAquatic({ ...TRACKER_OPTIONS, port })

    let started = Date.now()
    const update = await UdpTracker.announce(aquatic.url, params())
    const promiseMs = Date.now() - started
    assert.equal(update.interval, ANNOUNCE_INTERVAL)

    started = Date.now()
    const scraped = new Promise((resolve, reject) => { t.once('scrape', resolve); t.once('error', reject) })
    t.scrape()
    await scraped
    const instanceMs = Date.now() - started
    // The probe waits max(250 ms, 4·SRTT) on loopback; a loaded machine may
    // add seconds, but nothing near 2·_timeout = 30 s.
    for (const [what, ms] of [['promise announce', promiseMs], ['instance scrape', instanceMs]]) {
      assert.ok(ms < 10000, `${what} after the restart took ${ms} ms`)
    }
  })

  it('a new instance after a restart on the same port connects first, as a 1.2.0 mock tracker expects', { timeout: 30000 }, async () => {
    // Fill the cache with an id from the tracker that is about to go.
    const hash = newHash()
    await UdpTracker.announce(aquatic.url, { infoHash: hash, peerId: randomBytes(20), port: newPort(), left: 0 })
    assert.ok(UdpTracker.stats().cachedConnectionIds >= 1)

    const { port } = aquatic
    await aquatic.stop()
    aquatic = null
    aquatic = await startAquatic({ ...TRACKER_OPTIONS, port })

    const stats0 = UdpTracker.stats()
    const t = tracker(hash, newPort(), { _timeout: 100, maxAttempts: 4 })
    const result = outcome(t, 15000)
    t.announce(2, { downloaded: 0, left: 0, uploaded: 0 })
    const { kind, value } = await result
    const sent = UdpTracker.stats().sent - stats0.sent
    assert.equal(kind, 'update', `got ${kind}: ${value}`)
    assert.equal(value.interval, ANNOUNCE_INTERVAL)
    assert.equal(sent, 2, 'its own connect, then the announce: the stale id of another scope is not used')
  })
})

describe('aquatic_udp 0.9.0 on [::1]', () => {
  let aquatic6 = null
  let skip = false

  before(async () => {
    if (!(await hasIpv6Loopback())) {
      skip = true
      return
    }
    aquatic6 = await startAquatic({ ...TRACKER_OPTIONS, ipv6: true })
  })

  after(async () => {
    if (aquatic6 !== null) await aquatic6.stop()
  })

  it('announces to udp://[::1]:PORT and gets an update with [addr]:port peers', async (t) => {
    if (skip) {
      t.skip('this machine has no IPv6 loopback address (cannot bind a UDP socket to ::1)')
      return
    }
    assert.match(aquatic6.url, /^udp:\/\/\[::1\]:\d+$/)
    const hash = newHash()
    const first = newPort()
    const firstUpdate = await announce(hash, { port: first, left: 0, url: aquatic6.url })
    assert.deepEqual(firstUpdate, { leechers: 0, seeds: 0, peers: [], interval: ANNOUNCE_INTERVAL })
    const second = await announce(hash, { left: 1, url: aquatic6.url })
    assert.equal(second.seeds, 1)
    assert.equal(second.leechers, 0)
    assert.equal(second.interval, ANNOUNCE_INTERVAL)
    assert.deepEqual(second.peers, [peerString(first, '::1')], "peers look like '[addr]:port'")
  })
})
