'use strict'
// The Client (bittorrent-tracker 11's API, BEP 12 tiers) against real
// trackers: several aquatic_udp 0.9.0 processes in their default
// configuration on loopback ports, plus scripted trackers for the dead one,
// error replies and slow `stopped` answers. Backoff and interval scheduling
// run on a fake clock handed to the Client.

const { describe, it, before, after, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const { randomBytes } = require('node:crypto')

const { Client, scrape } = require('..')
const { Client: ClientFromLib, NOT_REGISTERED } = require('../lib/client.js')
const { RETRY_SCHEDULE_MS, RETRY_JITTER_MS, MIN_INTERVAL_MS, REANNOUNCE_JITTER } = require('../lib/backoff.js')
const { startAquatic, hasIpv6Loopback } = require('./helpers/aquatic.js')
const UdpTracker = require('..')
const { serverFor, nextEvent, errorReply, announceReply, sleep } = require('./helpers/script-server.js')

const TRACKERS = 4
let aquatic = []
const clients = []
let nextPort = 30000

before(async () => {
  aquatic = await Promise.all(Array.from({ length: TRACKERS }, () => startAquatic()))
})

after(async () => {
  await Promise.all(aquatic.map((a) => a.stop()))
})

afterEach(() => {
  for (const client of clients.splice(0)) client.destroy()
})

// `_random: KEEP_ORDER` keeps every tier in the order given (the shuffle
// swaps nothing: j = floor(random() · (i + 1)) = i) and puts each jitter near
// the top of its range.
const KEEP_ORDER = () => 0.999

function makeClient (opts) {
  const client = new Client(Object.assign({
    infoHash: randomBytes(20),
    peerId: randomBytes(20),
    port: nextPort++,
    _random: KEEP_ORDER
  }, opts))
  clients.push(client)
  return client
}

/** Collects the events `names` until `count` of the first name arrived. */
function collect (client, name, count, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const got = []
    const timer = setTimeout(() => reject(new Error(`${got.length} of ${count} '${name}' events within ${timeoutMs} ms`)), timeoutMs)
    client.on(name, (value) => {
      got.push(value)
      if (got.length === count) {
        clearTimeout(timer)
        resolve(got)
      }
    })
  })
}

function failOnWarning (client) {
  client.on('warning', (err) => assert.fail(`unexpected warning: ${err.message}`))
}

/** How many peers aquatic `tracker` counts for `infoHash` (seeders + leechers). */
async function swarmSize (tracker, infoHash) {
  const counts = (await scrape(tracker.url, [infoHash]))[infoHash.toString('hex')]
  return counts.complete + counts.incomplete
}

/**
 * A clock for the Client's timers that moves only when told: `fire()` runs
 * the earliest timer, moving `now` to its time.
 */
function fakeClock () {
  const timers = new Set()
  const clock = {
    t: 1e6,
    now: () => clock.t,
    setTimeout (fn, ms, arg) {
      const timer = { at: clock.t + ms, fn, ms, arg }
      timers.add(timer)
      return timer
    },
    clearTimeout: (timer) => timers.delete(timer),
    pending: () => [...timers].sort((a, b) => a.at - b.at),
    fire () {
      const [first] = clock.pending()
      assert.ok(first, 'a timer is pending')
      timers.delete(first)
      clock.t = first.at
      first.fn(first.arg)
      return first
    }
  }
  return clock
}

describe('Client: bittorrent-tracker API', () => {
  it('is exported by index.js, and by index.mjs as a named export', async () => {
    assert.equal(Client, ClientFromLib)
    const esm = await import('../index.mjs')
    assert.equal(esm.Client, Client)
  })

  it('start(): update { announce, complete, incomplete } from aquatic, then stop()', async () => {
    const client = makeClient({ announce: aquatic[0].url })
    failOnWarning(client)
    client.start()
    const { value } = await nextEvent(client, ['update'])
    assert.deepEqual(Object.keys(value).sort(), ['announce', 'complete', 'incomplete'])
    assert.equal(value.announce, aquatic[0].url)
    assert.equal(await swarmSize(aquatic[0], client._infoHashBuffer), 1)
    client.stop()
    await nextEvent(client, ['update'])
    assert.equal(await swarmSize(aquatic[0], client._infoHashBuffer), 0)
  })

  it('the ids are read when the Client is made: the caller changing its Buffers later changes nothing', async () => {
    const infoHash = randomBytes(20)
    const peerId = randomBytes(20)
    const originalHash = Buffer.from(infoHash)
    const originalPeerId = peerId.toString('hex')
    const client = makeClient({ announce: aquatic[0].url, infoHash, peerId })
    failOnWarning(client)
    infoHash.fill(0)
    peerId.fill(0)
    assert.equal(client.infoHash, originalHash.toString('hex'))
    assert.equal(client.peerId, originalPeerId)
    assert.deepEqual(client._infoHashBuffer, originalHash)
    client.start()
    await nextEvent(client, ['update'])
    assert.equal(await swarmSize(aquatic[0], originalHash), 1)
    assert.equal(await swarmSize(aquatic[0], infoHash), 0)
  })

  it('one peer event per peer, as "ip:port"; infoHash and peerId as hex strings', async () => {
    const infoHash = randomBytes(20).toString('hex').toUpperCase()
    const first = makeClient({ announce: aquatic[0].url, infoHash })
    assert.equal(first.infoHash, infoHash.toLowerCase())
    assert.match(first.peerId, /^[0-9a-f]{40}$/)
    first.start()
    await nextEvent(first, ['update'])
    const second = makeClient({ announce: aquatic[0].url, infoHash })
    const peers = []
    second.on('peer', (peer) => peers.push(peer))
    second.start()
    await nextEvent(second, ['update'])
    await sleep(20) // peer events follow the update in the same tick
    assert.deepEqual(peers, [`127.0.0.1:${first._port}`])
  })

  it('sends left = 2^64-1 when not given, counters from getAnnounceOpts, numwant, one key', async (t) => {
    const server = await serverFor(t)
    let counters = { uploaded: 10, downloaded: 20 }
    const client = makeClient({ announce: server.url, getAnnounceOpts: () => counters })
    client.start()
    await nextEvent(client, ['update'])
    counters = { uploaded: 11, downloaded: 21, left: 0 }
    client.complete({ numwant: 7 })
    await nextEvent(client, ['update'])
    const [a, b] = server.announces
    assert.equal(a.event, 2)
    assert.equal(a.left, (1n << 64n) - 1n)
    assert.equal(a.uploaded, 10n)
    assert.equal(a.downloaded, 20n)
    assert.equal(a.numWant, 50)
    assert.equal(a.port, client._port)
    assert.equal(b.event, 1)
    assert.equal(b.left, 0n)
    assert.equal(b.uploaded, 11n)
    assert.equal(b.numWant, 7)
    assert.equal(a.key, b.key)
  })

  it('a bad or non-UDP URL is a warning emitted later, never a throw', async () => {
    const urls = ['http://127.0.0.1:1/announce', 'udp://127.0.0.1:69691337', 'udp:', 'wss://tracker.invalid']
    const client = makeClient({ announce: urls })
    const warnings = []
    client.on('warning', (err) => warnings.push(err.message))
    assert.deepEqual(warnings, [], 'nothing emitted inside the constructor')
    await sleep(10)
    assert.equal(warnings.length, urls.length)
    urls.forEach((url, i) => {
      assert.match(warnings[i], /tracker/)
      assert.ok(warnings[i].includes(url.replace(/\/$/, '')), warnings[i])
    })
    client.start() // nothing to announce to: no throw, no event
  })

  it('bad arguments throw a TypeError or RangeError naming them', () => {
    const base = { infoHash: randomBytes(20), peerId: randomBytes(20), port: 6881, announce: 'udp://127.0.0.1:1' }
    assert.throws(() => new Client(Object.assign({}, base, { infoHash: 'abc' })), { name: 'TypeError', message: /opts\.infoHash/ })
    assert.throws(() => new Client(Object.assign({}, base, { port: 70000 })), { name: 'RangeError', message: /opts\.port/ })
    assert.throws(() => new Client(Object.assign({}, base, { family: 5 })), { name: 'RangeError', message: /opts\.family/ })
    assert.throws(() => new Client(Object.assign({}, base, { maxAttempts: 0 })), { name: 'RangeError', message: /opts\.maxAttempts/ })
    assert.throws(() => new Client(Object.assign({}, base, { peerId: undefined })), /Option `peerId` is required/)
    const client = new Client(base)
    assert.throws(() => client.start({ left: -1 }), { name: 'RangeError', message: /opts\.left/ })
    assert.throws(() => client.update({ numwant: 1.5 }), { name: 'RangeError', message: /opts\.numwant/ })
    client.destroy()
  })

  it('scrape(): one scrape event per tracker; Client.scrape for one hash and for many', async () => {
    const client = makeClient({ announce: [aquatic[0].url, aquatic[1].url] })
    failOnWarning(client)
    client.start()
    await collect(client, 'update', 2)
    client.scrape()
    const events = await collect(client, 'scrape', 2)
    assert.deepEqual(events.map((e) => e.announce).sort(), [aquatic[0].url, aquatic[1].url].sort())
    for (const e of events) {
      assert.deepEqual(e, { announce: e.announce, infoHash: client.infoHash, complete: 0, downloaded: 0, incomplete: 1 })
    }

    const one = await new Promise((resolve, reject) => {
      Client.scrape({ announce: aquatic[0].url, infoHash: client.infoHash }, (err, data) => err ? reject(err) : resolve(data))
    })
    assert.deepEqual(one, { announce: aquatic[0].url, infoHash: client.infoHash, complete: 0, downloaded: 0, incomplete: 1 })
    const other = randomBytes(20).toString('hex')
    const many = await new Promise((resolve, reject) => {
      Client.scrape({ announce: aquatic[0].url, infoHash: [client.infoHash, other] }, (err, data) => err ? reject(err) : resolve(data))
    })
    assert.deepEqual(Object.keys(many).sort(), [client.infoHash, other].sort())
    assert.equal(many[client.infoHash].incomplete, 1)
    assert.equal(many[other].incomplete, 0)
  })

  it('Client.scrape calls back with an Error for a bad URL', async () => {
    const err = await new Promise((resolve) => {
      Client.scrape({ announce: 'udp://', infoHash: randomBytes(20) }, (e) => resolve(e))
    })
    assert.ok(err instanceof Error)
    assert.match(err.message, /Invalid tracker URL/)
  })
})

describe('Client: tiers (BEP 12)', () => {
  it('a flat list is one tracker per tier: every tracker is announced to', async () => {
    const urls = aquatic.map((a) => a.url)
    const client = makeClient({ announce: urls })
    failOnWarning(client)
    client.start()
    const updates = await collect(client, 'update', urls.length)
    assert.deepEqual(updates.map((u) => u.announce).sort(), urls.slice().sort())
    for (const a of aquatic) assert.equal(await swarmSize(a, client._infoHashBuffer), 1)
  })

  it('all tiers are announced to, one tracker in each', async () => {
    const [a, b, c, d] = aquatic
    const client = makeClient({ announce: [[a.url, b.url], [c.url, d.url]] })
    failOnWarning(client)
    client.start()
    const updates = await collect(client, 'update', 2)
    assert.deepEqual(updates.map((u) => u.announce).sort(), [a.url, c.url].sort())
    await sleep(100)
    const sizes = await Promise.all(aquatic.map((x) => swarmSize(x, client._infoHashBuffer)))
    assert.deepEqual(sizes, [1, 0, 1, 0], 'only the first tracker of each tier was announced to')
  })

  it('announceToAllTrackers: every tracker of every tier', async () => {
    const [a, b, c] = aquatic
    const client = makeClient({ announce: [[a.url, b.url], [c.url]], announceToAllTrackers: true })
    failOnWarning(client)
    client.start()
    const updates = await collect(client, 'update', 3)
    assert.deepEqual(updates.map((u) => u.announce).sort(), [a.url, b.url, c.url].sort())
  })

  it('falls back to the next tracker after the first wait, and moves the one that answered to the front', async (t) => {
    const dead = await serverFor(t)
    dead.onConnect = () => null // a silent tracker
    const live = aquatic[0]
    const client = makeClient({ announce: [[dead.url, live.url]], _timeout: 100 })
    failOnWarning(client)
    const started = Date.now()
    client.start()
    const { value } = await nextEvent(client, ['update'], 5000)
    assert.equal(value.announce, live.url)
    assert.ok(Date.now() - started >= 200, 'the live tracker was asked only after the first wait (2 × _timeout)')
    assert.ok(dead.connects.length >= 1, 'the dead tracker was tried first')
    assert.deepEqual(client._tiers[0].trackers.map((x) => x.url), [live.url, dead.url])
    // The engine's own retransmission to the dead tracker is due at the same
    // moment as the fallback: let a datagram already sent land first.
    await sleep(100)
    const deadBefore = dead.received.length
    client.update()
    const again = await nextEvent(client, ['update'], 5000)
    assert.equal(again.value.announce, live.url)
    await sleep(300)
    assert.equal(dead.received.length, deadBefore, `the next announce went to the front tracker only: ${dead.received.map((r) => Math.round(r.at - dead.received[0].at)).join(', ')}`)
  })

  it('the first wait is 2 × the checked _timeout, also when given as a numeric string', async (t) => {
    const dead = await serverFor(t)
    dead.onConnect = () => null
    const clock = fakeClock()
    const client = makeClient({ announce: [[dead.url, aquatic[0].url]], _timeout: '40', _clock: clock })
    client.start()
    assert.deepEqual(clock.pending().map((x) => x.ms), [80])
    client.destroy()
  })

  it('a tracker error moves on to the next tracker at once, and warns naming the tracker', async (t) => {
    const failing = await serverFor(t)
    failing.onAnnounce = (req) => errorReply(req.transactionId, 'database is busy')
    const client = makeClient({ announce: [[failing.url, aquatic[1].url]] })
    const warning = nextEvent(client, ['warning'])
    client.start()
    const { value } = await nextEvent(client, ['update'])
    assert.equal(value.announce, aquatic[1].url)
    const { value: err } = await warning
    assert.equal(err.message, `database is busy (${failing.url})`)
    assert.equal(err.announce, failing.url)
    assert.equal(err.code, 'ERR_TRACKER_ERROR')
    // Not a refusal of the torrent: the tracker is backing off, not disabled.
    const state = client._tiers[0].trackers.find((x) => x.url === failing.url)
    assert.equal(state.disabled, false)
    assert.equal(state.failures, 1)
  })
})

describe('Client: many torrents', () => {
  it('2,000 clients × 4 trackers announce at once: every one answered, over the shared engine', async () => {
    const n = 2000
    const urls = aquatic.map((a) => a.url)
    let updates = 0
    const warnings = []
    let done
    const all = new Promise((resolve) => { done = resolve })
    for (let i = 0; i < n; i++) {
      // A retransmission after 2 s should the kernel drop a datagram of the burst.
      const client = makeClient({ announce: urls, _timeout: 1000, _random: Math.random })
      client.on('update', () => { if (++updates === n * urls.length) done() })
      client.on('warning', (err) => warnings.push(err.message))
    }
    for (const client of clients) client.start({ left: 0 })
    const timer = setTimeout(done, 30000)
    await all
    clearTimeout(timer)
    assert.deepEqual(warnings, [])
    assert.equal(updates, n * urls.length)
    assert.ok(UdpTracker.stats().sockets <= 2, 'one socket per address family for all of them')
  })

  it('re-announces of many torrents are spread over 5 % of the interval, not in lockstep', async (t) => {
    const server = await serverFor(t)
    server.onAnnounce = (req) => announceReply(req.transactionId, { interval: 1800 })
    const clock = fakeClock()
    const n = 200
    let updates = 0
    let done
    const all = new Promise((resolve) => { done = resolve })
    for (let i = 0; i < n; i++) {
      const client = makeClient({ announce: server.url, _clock: clock, _random: Math.random })
      client.on('update', () => { if (++updates === n) done() })
      client.start()
    }
    await all
    const delays = clock.pending().map((x) => x.ms)
    assert.equal(delays.length, n)
    assert.ok(delays.every((ms) => ms >= 1800e3 && ms <= 1890e3), 'within [interval, interval + 5 %]')
    assert.ok(new Set(delays).size >= 50, `${new Set(delays).size} distinct re-announce times for ${n} torrents`)
  })

  it('an IPv6 tracker in a tier: its peers as "[v6]:port"', async (t) => {
    if (!(await hasIpv6Loopback())) return t.skip('no ::1 on this machine')
    const v6 = await startAquatic({ ipv6: true })
    t.after(() => v6.stop())
    const infoHash = randomBytes(20)
    const first = makeClient({ announce: [[v6.url, aquatic[0].url]], infoHash })
    first.start()
    assert.equal((await nextEvent(first, ['update'])).value.announce, v6.url)
    const second = makeClient({ announce: [[v6.url]], infoHash })
    const peer = nextEvent(second, ['peer'])
    second.start()
    assert.equal((await peer).value, `[::1]:${first._port}`)
  })
})

describe('Client: failures, backoff and intervals (fake clock)', () => {
  it("follows Transmission's retry schedule with jitter, then the tracker's interval after a success", async (t) => {
    const server = await serverFor(t)
    let failing = true
    server.onAnnounce = (req) => failing
      ? errorReply(req.transactionId, 'database is busy')
      : announceReply(req.transactionId, { interval: 10 })
    const clock = fakeClock()
    const client = makeClient({ announce: server.url, _clock: clock })
    // Each wait is set up before the action that causes it: the answer may come first.
    let warned = nextEvent(client, ['warning'])
    client.start()
    const delays = []
    for (let failure = 1; failure <= RETRY_SCHEDULE_MS.length + 1; failure++) {
      await warned
      const [retry] = clock.pending()
      delays.push(retry.ms)
      assert.equal(clock.pending().length, 1)
      warned = nextEvent(client, ['warning'])
      clock.fire()
      const retried = await server.waitForType('announce', failure + 1)
      assert.equal(retried.event, 2, 'the retry sends `started` again')
    }
    // 20 s, 5, 15, 30, 60, 120, 120 min, each + 59.94 s of jitter (random() = 0.999 of
    // 60 s), in whole seconds.
    assert.deepEqual(delays, [80, 360, 960, 1860, 3660, 7260, 7260].map((s) => s * 1000))
    assert.deepEqual(RETRY_SCHEDULE_MS, [20e3, 300e3, 900e3, 1800e3, 3600e3, 7200e3])
    assert.equal(RETRY_JITTER_MS, 60e3)

    // A success: the tracker asked for 10 s; the floor makes it 60 s, plus jitter.
    await warned
    failing = false
    let updated = nextEvent(client, ['update'])
    clock.fire()
    await updated
    const [next] = clock.pending()
    assert.equal(MIN_INTERVAL_MS, 60e3)
    assert.equal(REANNOUNCE_JITTER, 0.05)
    assert.equal(next.ms, 63e3, '60 s + 5 % · 0.999, in whole seconds')
    updated = nextEvent(client, ['update'])
    clock.fire()
    await updated
    assert.equal(server.announces[server.announces.length - 1].event, 0, 'the periodic announce has no event')
    assert.equal(client._tiers[0].trackers[0].failures, 0, 'a success resets the failure count')
  })

  it("honours a long interval, with up to 5 % jitter; setInterval() from an update listener wins", async (t) => {
    const server = await serverFor(t)
    server.onAnnounce = (req) => announceReply(req.transactionId, { interval: 1800 })
    const clock = fakeClock()
    const client = makeClient({ announce: server.url, _clock: clock, _random: () => 0.999 })
    client.start()
    await nextEvent(client, ['update'])
    const [next] = clock.pending()
    assert.equal(next.ms, 1890e3, '1800 s + 5 % · 0.999, in whole seconds')
    client.once('update', () => client.setInterval(500))
    client.update()
    await nextEvent(client, ['update'])
    assert.deepEqual(clock.pending().map((x) => x.ms), [500])
  })

  it('a not-registered error stops announcing that torrent to that tracker, with a warning', async (t) => {
    const server = await serverFor(t)
    server.onAnnounce = (req) => errorReply(req.transactionId, 'Torrent not registered with this tracker')
    const clock = fakeClock()
    const client = makeClient({ announce: [[server.url, aquatic[2].url]], _clock: clock })
    const warning = nextEvent(client, ['warning'])
    client.start()
    const { value: update } = await nextEvent(client, ['update'])
    assert.equal(update.announce, aquatic[2].url, 'the next tracker of the tier was asked at once')
    const { value: err } = await warning
    assert.match(err.message, /not registered/)
    assert.equal(err.code, 'ERR_TRACKER_ERROR')
    assert.ok(err.message.includes(server.url))
    assert.ok(client._tiers[0].trackers.find((x) => x.url === server.url).disabled)
    client.update()
    await nextEvent(client, ['update'])
    client.scrape()
    await nextEvent(client, ['scrape'])
    await sleep(100)
    assert.equal(server.announces.length, 1, 'never announced to again')
    assert.equal(server.scrapes.length, 0, 'nor scraped')

    // Alone in its tier: nothing is scheduled for that tier any more.
    const lone = makeClient({ announce: server.url, _clock: fakeClock() })
    lone.start()
    await nextEvent(lone, ['warning'])
    assert.deepEqual(lone._clock.pending(), [])
    assert.ok(NOT_REGISTERED.test('unregistered torrent') && !NOT_REGISTERED.test('database is busy'))
  })

  it('getAnnounceOpts() throwing at a periodic announce is an error event, not an exception', async (t) => {
    const server = await serverFor(t)
    const clock = fakeClock()
    let calls = 0
    const client = makeClient({
      announce: server.url,
      _clock: clock,
      getAnnounceOpts () {
        if (++calls > 1) throw new Error('counters unavailable')
        return { left: 0 }
      }
    })
    client.start()
    await nextEvent(client, ['update'])
    const failed = nextEvent(client, ['error'])
    clock.fire()
    const { value } = await failed
    assert.equal(value.message, 'counters unavailable')
    assert.equal(server.announces.length, 1)
  })

  it('a timeout is transient: backoff, and a warning naming the tracker', async (t) => {
    const dead = await serverFor(t)
    dead.onConnect = () => null
    const clock = fakeClock()
    const client = makeClient({ announce: dead.url, _clock: clock, _timeout: 20, maxAttempts: 1 })
    client.start()
    // The fake clock never fires the first-wait timer: the engine's own timeout ends the request.
    const { value: err } = await nextEvent(client, ['warning'], 5000)
    assert.equal(err.code, 'ERR_TRACKER_TIMEOUT')
    assert.ok(err.message.endsWith(`(${dead.url})`))
    const tracker = client._tiers[0].trackers[0]
    assert.equal(tracker.failures, 1)
    assert.ok(!tracker.disabled)
    assert.deepEqual(clock.pending().map((x) => x.ms), [80e3], '20 s + 59.94 s of jitter')
  })
})

describe('Client: destroy', () => {
  it('destroy(cb) lets a stopped announce already sent finish, then calls cb; no event follows', async (t) => {
    const server = await serverFor(t)
    // 200 ms: under the engine's 250 ms check of a cached id's first send, after
    // which a silent tracker is asked for a new id (README: connection-id cache).
    server.onAnnounce = async (req) => {
      if (req.event === 3) await sleep(200)
      return announceReply(req.transactionId, { interval: 1800 })
    }
    const client = makeClient({ announce: server.url })
    client.start()
    await nextEvent(client, ['update'])
    client.on('update', () => assert.fail('no update after destroy()'))
    client.stop()
    const began = Date.now()
    await new Promise((resolve) => client.destroy(resolve))
    const took = Date.now() - began
    assert.equal(server.announces.length, 2)
    assert.equal(server.announces[1].event, 3)
    assert.ok(took >= 150, `cb waited for the stopped answer (${took} ms)`)
    await sleep(100)
  })

  it('destroy(cb) gives up on an unanswered stopped after about 1 s', async (t) => {
    const server = await serverFor(t)
    server.onAnnounce = (req) => req.event === 3 ? null : announceReply(req.transactionId)
    const client = makeClient({ announce: server.url })
    client.start()
    await nextEvent(client, ['update'])
    client.stop()
    const began = Date.now()
    await new Promise((resolve) => client.destroy(resolve))
    const took = Date.now() - began
    assert.ok(took >= 900 && took < 5000, `${took} ms`)
    assert.equal(server.announces[1].event, 3, 'the stopped was sent')
  })

  it('destroy() cancels the requests in flight: a silent tracker gets no resend, and no event follows', async (t) => {
    const silent = await serverFor(t)
    silent.onAnnounce = () => null
    const clients = []
    for (let i = 0; i < 20; i++) {
      const client = makeClient({ announce: silent.url, _timeout: 100 })
      client.on('warning', (err) => assert.fail(`no warning after destroy(): ${err.message}`))
      client.start()
      clients.push(client)
    }
    const deadline = Date.now() + 10000
    while (silent.announces.length < 20 && Date.now() < deadline) await sleep(20)
    assert.equal(silent.announces.length, 20, 'every first announce went out')
    for (const client of clients) client.destroy()
    // A resend would come after 100 ms, the first wait's give-up after 300.
    await sleep(600)
    assert.equal(silent.announces.length, 20, 'nothing was sent again')
  })

  it('destroy() without a pending stop aborts at once; a second destroy(cb) calls back too', async () => {
    const client = makeClient({ announce: aquatic[0].url })
    client.on('update', () => assert.fail('no update after destroy()'))
    client.update()
    await new Promise((resolve) => client.destroy(resolve))
    await new Promise((resolve) => client.destroy(resolve))
    await sleep(200)
  })
})

describe('Client: types', () => {
  it('index.d.ts types the Client (tsc --noEmit on __test__/types/client/usage.ts)', () => {
    const { spawnSync } = require('node:child_process')
    const path = require('node:path')
    const tsc = require.resolve('typescript/bin/tsc')
    const run = spawnSync(process.execPath, [tsc, '-p', path.join(__dirname, 'types', 'client', 'tsconfig.json')], { encoding: 'utf8' })
    assert.equal(run.status, 0, `tsc failed:\n${run.stdout}${run.stderr}`)
  })
})
