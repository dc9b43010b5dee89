'use strict'
// Interval gating and re-announcing, destroy at awkward moments, and whether
// a script using the library exits on its own. The tracker is the package's
// test tracker (a silent one is `loss: 1`), except where a test reads the
// announce's fields off the wire (helpers/script-server.js decodes them
// independently of the Rust codec under test).

const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawn } = require('node:child_process')

const UdpTracker = require('..')
const {
  serverFor,
  announceReply,
  recordEvents,
  nextEvent,
  sleep
} = require('./helpers/script-server.js')
const { trackerServer, received, waitUntil } = require('./helpers/test-tracker.js')

const PEER_ID = Buffer.from('-JS0001-lifecycle-01')
const INFO_HASH = Buffer.from('1111111111222222222233333333334444444444', 'hex')
const OTHER_HASH = Buffer.from('5555555555666666666677777777778888888888', 'hex')
const PACKAGE = path.join(__dirname, '..')

function trackerFor (t, url, opts, peerId = PEER_ID, infoHash = INFO_HASH) {
  const tracker = new UdpTracker(peerId, infoHash, url, opts)
  t.after(() => tracker.destroy())
  return tracker
}

/** A scripted tracker whose announce replies carry `interval` seconds. */
async function intervalServer (t, interval = 1) {
  const server = await serverFor(t)
  server.onAnnounce = (req) => announceReply(req.transactionId, { interval, leechers: 1, seeders: 2 })
  return server
}

// ---------------------------------------------------------------------------
// Interval gating.

test('_in_interval is already true when "update" fires', async (t) => {
  const server = await trackerServer(t, { interval: 1 })
  const tracker = trackerFor(t, server.url, {})
  const seen = []
  tracker.on('update', () => seen.push(tracker._in_interval))
  tracker.on('error', (e) => seen.push(`error: ${e}`))
  assert.equal(tracker._in_interval, false)
  tracker.announce(2, {})
  await nextEvent(tracker, ['update', 'error'])
  assert.deepEqual(seen, [true], '_in_interval inside the update listener')
  assert.equal(tracker._announce_intervals_timeout.length, 1, 'one interval timer after one update')
})

test('announce() during the interval emits "not calling announce" and sends nothing', async (t) => {
  const server = await trackerServer(t, { interval: 1 })
  const tracker = trackerFor(t, server.url, {})
  tracker.announce(2, { left: 10 })
  assert.equal((await nextEvent(tracker)).name, 'update')
  const sentBefore = received(server)
  const events = recordEvents(tracker)
  tracker.announce(1, { left: 0 })
  await sleep(150)
  assert.deepEqual(events.map((e) => [e.name, e.value]), [['error', 'not calling announce']])
  assert.equal(received(server), sentBefore, 'an announce during the interval must not be sent')
})

test('when the interval ends the client re-announces with the most recent counters and the queued event', async (t) => {
  const server = await intervalServer(t, 1)
  const tracker = trackerFor(t, server.url, {})
  const events = recordEvents(tracker)
  tracker.announce(2, { downloaded: 1, left: 99, uploaded: 2 })
  await nextEvent(tracker)
  const firstAt = performance.now()
  tracker.announce(2, { downloaded: 10, left: 90, uploaded: 20 })
  tracker.announce(1, { downloaded: 100, left: 0, uploaded: 200 })
  const second = await server.waitForType('announce', 2, 3000)
  const waited = performance.now() - firstAt
  assert.equal(second.event, 1, 'the re-announce must carry the event queued last during the interval')
  assert.deepEqual([second.downloaded, second.left, second.uploaded], [100n, 0n, 200n], 'the re-announce must carry the most recent counters')
  assert.ok(waited >= 900, `the re-announce came ${waited.toFixed(0)} ms after the update, before the 1 s interval ended`)
  await nextEvent(tracker, ['update'], 2000)
  assert.deepEqual(events.map((e) => e.name), ['update', 'error', 'error', 'update'])
})

test('without a queued event the periodic re-announce carries event 0 (none) and the last counters', async (t) => {
  const server = await intervalServer(t, 1)
  const tracker = trackerFor(t, server.url, {})
  tracker.on('error', () => {})
  tracker.announce(2, { downloaded: 5, left: 6, uploaded: 7 })
  const first = await server.waitForType('announce', 1, 2000)
  assert.equal(first.event, 2)
  const second = await server.waitForType('announce', 2, 3000)
  assert.equal(second.event, 0, `the periodic re-announce carried event ${second.event}, expected 0 (none)`)
  assert.deepEqual([second.downloaded, second.left, second.uploaded], [5n, 6n, 7n])
  assert.equal(second.key, first.key)
})

test('after a successful "stopped" (event 3) there is no re-announce', async (t) => {
  const server = await trackerServer(t, { interval: 1 })
  const tracker = trackerFor(t, server.url, {})
  const events = recordEvents(tracker)
  tracker.announce(3, { left: 0 })
  await nextEvent(tracker, ['update', 'error'])
  const sent = server.stats().requests
  await sleep(1500)
  assert.deepEqual(server.stats().requests, sent, 'the client sent again after a successful stopped')
  assert.deepEqual(events.map((e) => e.name), ['update'])
})

test('clearTimeout on every timer in _announce_intervals_timeout stops re-announcing', async (t) => {
  const server = await trackerServer(t, { interval: 1 })
  const tracker = trackerFor(t, server.url, {})
  const events = recordEvents(tracker)
  tracker.announce(2, {})
  await nextEvent(tracker, ['update', 'error'])
  assert.ok(tracker._announce_intervals_timeout.length >= 1, 'an update must leave an interval timer')
  for (const timer of tracker._announce_intervals_timeout) clearTimeout(timer)
  const sent = received(server)
  await sleep(1500)
  assert.equal(received(server), sent, 'the client re-announced although its interval timers were cleared')
  assert.deepEqual(events.map((e) => e.name), ['update'])
})

// ---------------------------------------------------------------------------
// destroy at awkward moments.

test('destroy inside an "update" listener: no further event or datagram', async (t) => {
  const server = await trackerServer(t, { interval: 1 })
  const tracker = trackerFor(t, server.url, {})
  const events = recordEvents(tracker)
  tracker.once('update', () => tracker.destroy())
  tracker.announce(2, {})
  await nextEvent(tracker, ['update', 'error'])
  const sent = received(server)
  await sleep(1400)
  assert.deepEqual(events.map((e) => e.name), ['update'])
  assert.equal(received(server), sent, 'a tracker destroyed in its update listener announced again')
  assert.deepEqual(tracker._announce_intervals_timeout, [])
})

test('destroy during retransmission: no "error" later and no more datagrams', async (t) => {
  const server = await trackerServer(t, { loss: 1 })
  // Connect sends at 0, 100, 300, 700 ms; the timeout error would come at 1500 ms.
  const tracker = trackerFor(t, server.url, { _timeout: 50, maxAttempts: 4 })
  const events = recordEvents(tracker)
  tracker.announce(2, {})
  await waitUntil(() => received(server) >= 2, 'the second connect', 2000)
  tracker.destroy()
  const sent = received(server)
  await sleep(1700)
  assert.deepEqual(events, [], `a destroyed tracker emitted ${JSON.stringify(events)}`)
  assert.equal(received(server), sent, `a destroyed tracker kept retransmitting: ${received(server) - sent} more datagram(s)`)
})

test('destroy while the announce (not the connect) is in flight: no event and no more datagrams', async (t) => {
  const server = await trackerServer(t, { silentFor: [INFO_HASH] })
  const tracker = trackerFor(t, server.url, { _timeout: 50, maxAttempts: 4, connectionIdCache: false })
  const events = recordEvents(tracker)
  tracker.announce(2, {})
  await waitUntil(() => server.stats().requests.announce >= 1, 'the announce', 2000)
  tracker.destroy()
  const sent = received(server)
  await sleep(1700)
  assert.deepEqual(events, [])
  assert.equal(received(server), sent, `a destroyed tracker kept retransmitting: ${received(server) - sent} more datagram(s)`)
})

test('destroying one instance does not disturb another on the same tracker', async (t) => {
  // Replies wait 50 ms, so a is destroyed with its reply on the way.
  const server = await trackerServer(t, { delay: 50 })
  const a = trackerFor(t, server.url, {})
  const b = trackerFor(t, server.url, {}, Buffer.from('-JS0001-lifecycle-02'), OTHER_HASH)
  const aEvents = recordEvents(a)
  a.announce(2, {})
  b.announce(2, { left: 3 })
  await waitUntil(() => server.stats().requests.announce >= 2, 'both announces', 2000)
  a.destroy()
  const got = await nextEvent(b, ['update', 'error'], 2000)
  // b's own swarm: b alone, leeching.
  assert.deepEqual([got.name, got.value], ['update', { leechers: 1, seeds: 0, peers: [], interval: 1800 }])
  await sleep(50)
  assert.deepEqual(aEvents, [])
})

// ---------------------------------------------------------------------------
// Does a script exit on its own?

/**
 * Runs a node script (via -e) announcing to `url`; resolves with the child
 * and a promise of its exit { code, signal, stdout, stderr }.
 */
function runScript (t, url, { destroy = false, timeout = 1000 } = {}) {
  const script = `
    const UdpTracker = require(${JSON.stringify(PACKAGE)})
    const tracker = new UdpTracker(Buffer.alloc(20, 1), Buffer.alloc(20, 2), process.env.TRACKER_URL,
      { _timeout: Number(process.env.TRACKER_TIMEOUT) })
    tracker.on('error', (e) => { console.error('error: ' + e); process.exitCode = 3 })
    tracker.on('update', (u) => {
      console.log('update ' + JSON.stringify(u))
      if (process.env.DESTROY === '1') tracker.destroy()
    })
    tracker.announce(2, { left: 1 })
  `
  const child = spawn(process.execPath, ['-e', script], {
    env: { ...process.env, TRACKER_URL: url, TRACKER_TIMEOUT: String(timeout), DESTROY: destroy ? '1' : '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += d })
  child.stderr.on('data', (d) => { stderr += d })
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      // Let the pipes drain.
      setImmediate(() => resolve({ code, signal, stdout, stderr }))
    })
  })
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return { child, exited }
}

function within (promise, ms, message) {
  let timer
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(message)), ms) })
  ])
}

// lib/tracker.js and lib/client.js each make (and destroy) instances as they
// load, for lib/shapes.js to keep: none may start anything.
test('loading the package starts no engine thread, opens no socket and adds no handle', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  const script = `
    const fs = require('fs')
    const state = () => ({
      threads: fs.readdirSync('/proc/self/task').map((id) => fs.readFileSync('/proc/self/task/' + id + '/comm', 'utf8').trim()),
      sockets: fs.readdirSync('/proc/self/fd').filter((fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd).startsWith('socket:') } catch { return false } }).length,
      handles: process.getActiveResourcesInfo()
    })
    const before = state()
    require(process.env.PACKAGE)
    console.log(JSON.stringify({ before, after: state() }))
  `
  const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, PACKAGE }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => child.kill('SIGKILL'))
  let stdout = ''
  child.stdout.on('data', (d) => { stdout += d })
  const code = await within(new Promise((resolve) => child.on('close', resolve)), 8000, 'the child did not exit on its own within 8 s of loading the package')
  assert.equal(code, 0)
  const { before, after } = JSON.parse(stdout)
  assert.ok(!after.threads.includes('udp-tracker'), `an engine thread started on load: ${after.threads}`)
  assert.equal(after.sockets, before.sockets, 'a socket was opened on load')
  assert.deepEqual(after.handles, before.handles)
})

test('a script that announces once to a responsive tracker and never destroys exits on its own', async (t) => {
  const server = await trackerServer(t, { interval: 1234 })
  const { exited } = runScript(t, server.url, { destroy: false })
  const result = await within(exited, 8000,
    'the child did not exit within 8 s after its announce: something (an interval timer that is not unref\'d, a request handle) keeps the event loop alive')
  assert.equal(result.stderr, '', `the child wrote to stderr: ${result.stderr}`)
  assert.equal(result.code, 0)
  assert.match(result.stdout, /^update \{"leechers":1,"seeds":0,"peers":\[\],"interval":1234\}$/m)
  assert.equal(server.stats().requests.announce, 1)
})

test('a script that destroys its tracker after the update exits on its own', async (t) => {
  const server = await trackerServer(t, { interval: 4321 })
  const { exited } = runScript(t, server.url, { destroy: true })
  const result = await within(exited, 8000, 'the child did not exit within 8 s after destroying its tracker')
  assert.equal(result.stderr, '', `the child wrote to stderr: ${result.stderr}`)
  assert.equal(result.code, 0)
  assert.match(result.stdout, /^update \{"leechers":1,"seeds":0,"peers":\[\],"interval":4321\}$/m)
})

test('a script announcing to a silent tracker keeps running while the request is in flight', async (t) => {
  const server = await trackerServer(t, { loss: 1 })
  const { child, exited } = runScript(t, server.url, { timeout: 1000 })
  let exit = null
  exited.then((r) => { exit = r })
  await waitUntil(() => received(server) >= 1, 'the connect', 8000)
  await sleep(300)
  assert.equal(exit, null, `the child exited with a request in flight: ${JSON.stringify(exit)}`)
  assert.equal(child.exitCode, null)
  child.kill('SIGKILL')
  const result = await within(exited, 5000, 'the child did not die after SIGKILL')
  assert.equal(result.signal, 'SIGKILL')
})
