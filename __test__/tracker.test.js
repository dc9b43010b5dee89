'use strict'
// The test tracker (bittorrent-udp-tracker/testing) with this package's own
// client: announces, scrapes, IPv6, every injected fault, restart(), option
// checks, and `udp-tracker serve`. Clients nobody here wrote are in
// tracker-peers.test.js.

const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn, spawnSync } = require('node:child_process')
const { createHash } = require('node:crypto')
const path = require('node:path')
const UdpTracker = require('..')
const { createTracker } = require('../testing.js')

const ROOT = path.join(__dirname, '..')
const hash = (name) => createHash('sha1').update(name).digest()
const peerId = (n) => Buffer.from(`-TT0001-${String(n).padStart(12, '0')}`)
// Fast retransmission for the fault tests: waits of 50, 100, 200 … ms.
const FAST = { _timeout: 25, maxAttempts: 8 }

async function withTracker (options, fn) {
  const tracker = await createTracker(options)
  try {
    return await fn(tracker)
  } finally {
    await tracker.close()
  }
}

function announce (tracker, n, params = {}, options = {}) {
  return UdpTracker.announce(tracker.url, {
    infoHash: hash('swarm'), peerId: peerId(n), port: 7000 + n, event: 'started', left: 100, ...params, ...options
  })
}

test('createTracker serves on a free loopback port and closes', async () => {
  const tracker = await createTracker()
  assert.equal(tracker.host, '127.0.0.1')
  assert.ok(tracker.port > 0)
  assert.equal(tracker.url, `udp://127.0.0.1:${tracker.port}`)
  assert.equal(tracker.replyPort, tracker.port)
  assert.deepEqual(tracker.stats().requests, { connect: 0, announce: 0, scrape: 0, invalid: 0 })
  await tracker.close()
  await tracker.close() // twice is fine
  await assert.rejects(
    UdpTracker.announce(tracker.url, { infoHash: hash('x'), peerId: peerId(1), _timeout: 20, maxAttempts: 1 }),
    { code: 'ERR_TRACKER_TIMEOUT' })
  assert.equal(tracker.stats().requests.connect, 0, 'nothing served after close()')
})

test('announces build a swarm: counts, other peers only, numWant, events', () => withTracker({}, async (tracker) => {
  const a = await announce(tracker, 1, { left: 0 })
  assert.deepEqual(a, { interval: 1800, seeds: 1, leechers: 0, peers: [] })
  const b = await announce(tracker, 2)
  assert.deepEqual(b.peers, ['127.0.0.1:7001'])
  const c = await announce(tracker, 3)
  assert.equal(c.seeds, 1)
  assert.equal(c.leechers, 2)
  assert.deepEqual(c.peers.sort(), ['127.0.0.1:7001', '127.0.0.1:7002'])
  const one = await announce(tracker, 3, { event: 'none', numWant: 1 })
  assert.equal(one.peers.length, 1)
  assert.ok(!one.peers.includes('127.0.0.1:7003'), 'never the announcing peer')

  await announce(tracker, 2, { event: 'completed', left: 0 })
  await announce(tracker, 2, { event: 'completed', left: 0 })
  const gone = await announce(tracker, 3, { event: 'stopped' })
  assert.deepEqual({ seeds: gone.seeds, leechers: gone.leechers, peers: gone.peers }, { seeds: 2, leechers: 0, peers: [] })

  const swarm = tracker.swarm(hash('swarm'))
  assert.deepEqual([swarm.complete, swarm.incomplete, swarm.downloaded], [2, 0, 1])
  const two = swarm.peers.find((p) => p.peerId.equals(peerId(2)))
  assert.equal(two.address, '127.0.0.1:7002')
  assert.equal(two.event, 'completed')
  assert.equal(two.left, 0n)
  assert.equal(tracker.swarm(hash('nobody')), null)
  assert.equal(tracker.swarm(hash('swarm').toString('hex')).complete, 2, 'hex hashes too')

  const scraped = await UdpTracker.scrape(tracker.url, [hash('swarm'), hash('nobody')])
  assert.deepEqual(scraped[hash('swarm').toString('hex')], { complete: 2, downloaded: 1, incomplete: 0 })
  assert.deepEqual(scraped[hash('nobody').toString('hex')], { complete: 0, downloaded: 0, incomplete: 0 })
  const stats = tracker.stats()
  assert.equal(stats.requests.announce, 7)
  assert.equal(stats.requests.scrape, 1)
  assert.ok(stats.requests.connect >= 1)
  assert.equal(stats.replies, stats.requests.connect + 8)
  assert.deepEqual([stats.swarms, stats.peers], [1, 2])
}))

test('the class API gets update and scrape events, with BEP 41 URL data and key', () => withTracker({ interval: 60 }, async (tracker) => {
  const client = new UdpTracker(peerId(9), hash('class'), `${tracker.url}/announce?pass=1`, { port: 6999, key: 77 })
  const update = await new Promise((resolve, reject) => {
    client.once('update', resolve)
    client.once('error', reject)
    client.announce('started', { left: 5 })
  })
  assert.equal(update.interval, 60)
  assert.equal(update.leechers, 1)
  const scrape = await new Promise((resolve) => { client.once('scrape', resolve); client.scrape() })
  assert.deepEqual(scrape, { complete: 0, downloaded: 0, incomplete: 1 })
  client.destroy()
  const [peer] = tracker.swarm(hash('class')).peers
  assert.equal(peer.urlData, '/announce?pass=1')
  assert.equal(peer.key, 77)
  assert.equal(peer.address, '127.0.0.1:6999')
}))

test('host ::1 serves IPv6 with 18-byte peers', () => withTracker({ host: '::1' }, async (tracker) => {
  assert.equal(tracker.url, `udp://[::1]:${tracker.port}`)
  await announce(tracker, 1)
  const b = await announce(tracker, 2)
  assert.deepEqual(b.peers, ['[::1]:7001'])
}))

test('loss: 1 answers nothing; the client times out and drops are counted', () => withTracker({ loss: 1 }, async (tracker) => {
  await assert.rejects(announce(tracker, 1, {}, { _timeout: 20, maxAttempts: 2 }), { code: 'ERR_TRACKER_TIMEOUT' })
  const stats = tracker.stats()
  assert.equal(stats.dropped.loss, 2)
  assert.equal(stats.replies, 0)
  assert.equal(stats.requests.connect, 0, 'a lost request is never read')
}))

test('loss: 0.2 is survived by retransmission', () => withTracker({ loss: 0.2, seed: 7 }, async (tracker) => {
  const results = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((n) =>
    announce(tracker, n, {}, { ...FAST, connectionIdCache: false })))
  assert.equal(results.length, 8)
  assert.ok(tracker.stats().dropped.loss > 0)
}))

test('delay holds every reply back by the given time', () => withTracker({ delay: [150, 200] }, async (tracker) => {
  const started = Date.now()
  await announce(tracker, 1, {}, { connectionIdCache: false })
  // A connect and an announce, each answered after at least 150 ms.
  assert.ok(Date.now() - started >= 300, `${Date.now() - started} ms`)
}))

test('duplicate replies are counted, and the client takes the first', () => withTracker({ duplicate: 1 }, async (tracker) => {
  const before = UdpTracker.stats()
  const r = await announce(tracker, 1, {}, { connectionIdCache: false })
  assert.equal(r.leechers, 1)
  const stats = tracker.stats()
  assert.equal(stats.duplicates, 2)
  assert.equal(stats.replies, 4)
  // The second copies arrive for requests already answered: dropped as late.
  let after = UdpTracker.stats()
  for (let i = 0; i < 100 && after.droppedLate - before.droppedLate < 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    after = UdpTracker.stats()
  }
  assert.equal(after.droppedLate - before.droppedLate, 2)
}))

test('errorFor answers those hashes with an error reply; others are served', async () => {
  const options = { errorFor: { [hash('banned').toString('hex')]: 'torrent is banned' }, silentFor: [] }
  await withTracker(options, async (tracker) => {
    await assert.rejects(announce(tracker, 1, { infoHash: hash('banned') }), { code: 'ERR_TRACKER_ERROR', message: 'torrent is banned' })
    await assert.rejects(UdpTracker.scrape(tracker.url, [hash('fine'), hash('banned')]), { message: 'torrent is banned' })
    assert.equal((await announce(tracker, 1)).leechers, 1)
    // The scrape used a cached connection id: after its error reply the
    // client connected again and asked once more.
    assert.equal(tracker.stats().errors, 3)
  })
  await withTracker({ errorFor: [hash('x')] }, async (tracker) => {
    const client = new UdpTracker(peerId(1), hash('x'), tracker.url, {})
    const error = await new Promise((resolve) => { client.once('error', resolve); client.announce('started', {}) })
    client.destroy()
    assert.equal(error, 'unregistered torrent', 'the class emits the text as a string')
  })
})

test('silentFor never answers those hashes', () => withTracker({ silentFor: [hash('quiet').toString('hex')] }, async (tracker) => {
  await assert.rejects(announce(tracker, 1, { infoHash: hash('quiet') }, { _timeout: 20, maxAttempts: 2 }), { code: 'ERR_TRACKER_TIMEOUT' })
  assert.equal((await announce(tracker, 2)).leechers, 1)
  assert.equal(tracker.stats().dropped.silent, 2)
}))

test('replyFrom answers from another port: refused by strictSource, taken without it', () => withTracker({ replyFrom: 0 }, async (tracker) => {
  assert.notEqual(tracker.replyPort, tracker.port)
  const before = UdpTracker.stats().droppedWrongSource
  await assert.rejects(announce(tracker, 1, {}, { _timeout: 20, maxAttempts: 2 }), { code: 'ERR_TRACKER_TIMEOUT' })
  assert.ok(UdpTracker.stats().droppedWrongSource - before >= 2)
  const r = await announce(tracker, 1, {}, { strictSource: false })
  assert.equal(r.leechers, 1)
}))

test('restart() forgets connection ids and swarms; a cached id is dropped and the client reconnects', () => withTracker({}, async (tracker) => {
  await announce(tracker, 1)
  await announce(tracker, 2)
  tracker.restart()
  assert.equal(tracker.swarm(hash('swarm')), null)
  const connects = tracker.stats().requests.connect
  // The client still holds the old id; the tracker drops it, and the client
  // connects again after the first wait.
  const r = await announce(tracker, 3, {}, FAST)
  assert.equal(r.leechers, 1, 'only the peer announced after the restart')
  const stats = tracker.stats()
  assert.ok(stats.dropped.connectionId >= 1)
  assert.equal(stats.requests.connect, connects + 1)
}))

test('seeded trackers choose the same peers', async () => {
  const picks = []
  for (let run = 0; run < 2; run++) {
    await withTracker({ seed: 42, maxPeers: 3 }, async (tracker) => {
      for (let n = 1; n <= 10; n++) await announce(tracker, n)
      picks.push((await announce(tracker, 11)).peers.sort())
    })
  }
  assert.equal(picks[0].length, 3)
  assert.deepEqual(picks[0], picks[1])
})

test('bad options are a TypeError or RangeError naming the option', async () => {
  const cases = [
    [null, TypeError, /options must be an object/],
    [{ prot: 1 }, TypeError, /unknown option 'prot'/],
    [{ port: '80' }, TypeError, /options\.port/],
    [{ port: 70000 }, RangeError, /options\.port/],
    [{ interval: 0 }, RangeError, /options\.interval/],
    [{ maxScrape: 0 }, RangeError, /options\.maxScrape/],
    [{ maxPeers: 1.5 }, RangeError, /options\.maxPeers/],
    [{ loss: 2 }, RangeError, /options\.loss/],
    [{ duplicate: NaN }, RangeError, /options\.duplicate/],
    [{ delay: -1 }, RangeError, /options\.delay/],
    [{ delay: [5, 1] }, RangeError, /options\.delay/],
    [{ delay: [1, 2, 3] }, RangeError, /options\.delay/],
    [{ delay: '5' }, TypeError, /options\.delay/],
    [{ errorFor: 'abc' }, TypeError, /options\.errorFor/],
    [{ errorFor: ['00'] }, RangeError, /options\.errorFor\[0\]/],
    [{ errorFor: { [hash('a').toString('hex')]: 5 } }, TypeError, /options\.errorFor/],
    [{ silentFor: [Buffer.alloc(19)] }, RangeError, /options\.silentFor\[0\]/],
    [{ replyFrom: -1 }, RangeError, /options\.replyFrom/],
    [{ seed: -1 }, RangeError, /options\.seed/],
    [{ host: 'localhost' }, RangeError, /options\.host must be an IP address/],
    [{ host: 5 }, TypeError, /options\.host/],
    [{ host: '0.0.0.0' }, RangeError, /allowNonLoopback/],
    [{ allowNonLoopback: 'yes' }, TypeError, /options\.allowNonLoopback/]
  ]
  for (const [options, type, message] of cases) {
    await assert.rejects(createTracker(options), (err) => {
      assert.ok(err instanceof type, `${JSON.stringify(options)}: ${err}`)
      assert.match(err.message, message)
      return true
    })
  }
  await withTracker({}, async (tracker) => {
    assert.throws(() => tracker.swarm('nothex'), RangeError)
    assert.throws(() => tracker.swarm(5), TypeError)
    await assert.rejects(createTracker({ port: tracker.port }), /cannot bind 127\.0\.0\.1 port \d+/)
  })
})

test('the ES module entry exports createTracker', () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e',
    "import testing, { createTracker } from 'bittorrent-udp-tracker/testing'; const t = await createTracker(); console.log(typeof testing.createTracker, t.url.startsWith('udp://127.0.0.1:')); await t.close()"],
  { cwd: ROOT, encoding: 'utf8' })
  assert.equal(r.stderr, '')
  assert.equal(r.stdout.trim(), 'function true')
})

function startServe (args) {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'udp-tracker.js'), 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => { out += d })
  child.stderr.on('data', (d) => { err += d })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const url = new Promise((resolve, reject) => {
    child.stdout.on('data', () => {
      const m = /serving (udp:\/\/\S+)/.exec(out)
      if (m) resolve(m[1])
    })
    exited.then(() => reject(new Error(`serve exited: ${err}`)))
  })
  return { child, url, exited, output: () => ({ out, err }) }
}

test('udp-tracker serve prints its URL, a line per N requests, and a summary on SIGTERM', async () => {
  const serve = startServe(['--port', '0', '--every', '2'])
  const url = await serve.url
  const cli = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'udp-tracker.js'), 'announce', url, hash('cli').toString('hex'), '--port', '6881', '--stay', '--json'], { encoding: 'utf8' })
  assert.equal(cli.status, 0, cli.stderr)
  assert.equal(JSON.parse(cli.stdout).leechers, 0, 'the CLI announces as a seeder (left 0)')
  while (!/2 requests/.test(serve.output().out)) await new Promise((resolve) => setTimeout(resolve, 50))
  serve.child.kill('SIGTERM')
  const { code } = await serve.exited
  assert.equal(code, 0)
  assert.match(serve.output().out, /stopped after 2 requests \(1 connect, 1 announce, 0 scrape, 0 invalid\), 2 replies/)
})

test('udp-tracker serve: SIGINT exits 0, --json summary, bad flags exit 2 naming the flag', async () => {
  const serve = startServe(['--port', '0', '--host', '::1', '--json'])
  assert.match(await serve.url, /^udp:\/\/\[::1\]:\d+$/)
  serve.child.kill('SIGINT')
  assert.equal((await serve.exited).code, 0)
  const summary = JSON.parse(serve.output().out.trim().split('\n').pop())
  assert.equal(summary.replies, 0)
  for (const [args, message] of [
    [['--loss', '2'], /--loss must be a probability/],
    [['--max-peers', '9999'], /--max-peers must be an integer from 0 to 3638/],
    [['--delay', 'soon'], /--delay/],
    [['--host', '10.0.0.1'], /allowNonLoopback|allow-non-loopback/],
    [['--bogus'], /bogus/]
  ]) {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'udp-tracker.js'), 'serve', '--port', '0', ...args], { encoding: 'utf8' })
    assert.equal(r.status, 2, `${args}: ${r.stderr}`)
    assert.match(r.stderr, message)
  }
})

test('testing.d.ts types every option and result (tsc on __test__/types/testing-usage.ts)', () => {
  const tsc = require.resolve('typescript/bin/tsc')
  const project = path.join(__dirname, 'types', 'testing.tsconfig.json')
  const run = spawnSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8' })
  assert.equal(run.status, 0, `tsc failed:\n${run.stdout}${run.stderr}`)
})
