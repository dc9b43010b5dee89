#!/usr/bin/env node
'use strict'
// Lifecycle soak: creates and destroys UdpTracker instances in batches and
// watches for leaks.
//
//   node --expose-gc scripts/soak.js --instances 1000000 [--batch 1000]
//        [--rss-limit-mb 64] [--warmup 5] [--rows 40] [--quiet]
//        [--kinds 0,1,2,3,4,5] [--rate INSTANCES_PER_SECOND] [--warmup-seconds S]
//   AQUATIC_URL=udp://127.0.0.1:3000 node --expose-gc scripts/soak.js ...
//
// Each batch mixes instances that are
//   0 destroyed with no request,
//   1 destroyed with a request in flight (right after announce()),
//   2 destroyed during retransmission (a silent tracker, _timeout 1),
//   3 destroyed inside their 'update' handler,
//   4 destroyed twice (destroy() then destory() in 'update', and once more later),
//   5 left in their announce interval with a scrape in flight, destroyed at the batch's end.
// (--kinds picks some of them; --rate spreads the run over time and
// --warmup-seconds starts the RSS comparison only after that many seconds, e.g.
// to see whether memory levels off once the engine's 120 s memory of finished
// transaction ids is full.)
// Replies come from the package's test tracker (testing.js) in a child process
// (so its memory is not counted here), or from the tracker at AQUATIC_URL.
//
// After every batch it samples RSS (after gc), open fds (/proc/self/fd),
// process.getActiveResourcesInfo() and UdpTracker.stats(); it prints a table
// and a final JSON line, and exits non-zero when RSS grew by more than the
// limit after the warm-up batches, or when fds, active resources or requests
// in flight did not return to their starting state. It exits on its own: if
// something were left holding the event loop the script would not end, and
// an unref'd watchdog reports what it is.

const fs = require('node:fs')
const path = require('node:path')
const { fork } = require('node:child_process')

// ---------------------------------------------------------------------------
// The responder (child process).

if (process.argv.includes('--responder')) {
  runResponder()
} else {
  main().catch((err) => {
    console.error(err && err.stack ? err.stack : err)
    process.exitCode = 2
  })
}

function runResponder () {
  // The package's test tracker (testing.js): a real BEP 15 tracker, and one
  // that reads every request and answers none (loss: 1).
  const { createTracker } = require('../testing.js')
  // Every instance has its own info hash: with a 60 s interval, the tracker
  // forgets their swarms two minutes later and its memory stays bounded.
  Promise.all([createTracker({ interval: 60 }), createTracker({ loss: 1 })]).then(([responsive, silent]) => {
    process.send({ responsive: responsive.port, silent: silent.port })
    // The IPC channel keeps this process alive (the trackers' threads do
    // not); the parent disconnecting (or dying) ends it.
    process.on('disconnect', () => {
      responsive.close()
      silent.close()
    })
  }, (err) => {
    console.error(err)
    process.exit(2)
  })
}

// ---------------------------------------------------------------------------
// The soak (parent).

function parseArgs (argv) {
  const args = { instances: 100000, batch: 1000, rssLimitMb: 64, warmup: null, warmupSeconds: 0, rows: 40, quiet: false, kinds: [0, 1, 2, 3, 4, 5], rate: Infinity }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    if (a === '--instances') args.instances = Number(next())
    else if (a === '--batch') args.batch = Number(next())
    else if (a === '--rss-limit-mb') args.rssLimitMb = Number(next())
    else if (a === '--warmup') args.warmup = Number(next())
    else if (a === '--rows') args.rows = Number(next())
    else if (a === '--quiet') args.quiet = true
    else if (a === '--kinds') args.kinds = next().split(',').map(Number)
    else if (a === '--rate') args.rate = Number(next())
    else if (a === '--warmup-seconds') args.warmupSeconds = Number(next())
    else if (a === '--help' || a === '-h') {
      console.log('usage: node --expose-gc scripts/soak.js --instances N [--batch B] [--rss-limit-mb MB] [--warmup BATCHES] [--rows R] [--quiet] [--kinds 0,1,2,3,4,5] [--rate PER_SECOND]\n(AQUATIC_URL=udp://host:port to use a real tracker for the replies)')
      process.exit(0)
    } else throw new Error(`unknown argument ${a}`)
  }
  if (args.kinds.length === 0 || !args.kinds.every((k) => Number.isInteger(k) && k >= 0 && k <= 5)) {
    throw new Error('--kinds must be a comma-separated list of 0..5')
  }
  for (const k of ['instances', 'batch', 'rssLimitMb', 'rows', 'rate']) {
    if (Number.isNaN(args[k]) || args[k] <= 0 || (k !== 'rate' && !Number.isFinite(args[k]))) {
      throw new Error(`--${k} must be a positive number`)
    }
  }
  args.batch = Math.min(args.batch, args.instances)
  return args
}

function fdCount () {
  try {
    return fs.readdirSync('/proc/self/fd').length
  } catch {
    return -1
  }
}

function resourceCounts () {
  const counts = {}
  for (const name of process.getActiveResourcesInfo()) counts[name] = (counts[name] || 0) + 1
  return counts
}

function sameCounts (a, b) {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)])
  for (const k of keys) if ((a[k] || 0) !== (b[k] || 0)) return false
  return true
}

function total (counts) {
  return Object.values(counts).reduce((s, n) => s + n, 0)
}

function sample (UdpTracker) {
  // Resources first: gc() itself queues an Immediate.
  const resources = resourceCounts()
  const fds = fdCount()
  if (typeof global.gc === 'function') {
    global.gc()
    global.gc()
  }
  const stats = UdpTracker.stats()
  const memory = process.memoryUsage()
  return {
    rss: memory.rss,
    heap: memory.heapUsed,
    fds,
    resources,
    inFlight: stats.inFlight,
    sent: stats.sent,
    received: stats.received
  }
}

const MB = 1024 * 1024
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function startResponder () {
  const child = fork(__filename, ['--responder'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`the responder exited early (${code})`)))
    child.once('message', (ports) => {
      child.removeAllListeners('exit')
      resolve({ child, ports })
    })
  })
}

function stopResponder (child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.disconnect()
    setTimeout(() => child.kill('SIGKILL'), 5000).unref()
  })
}

async function main () {
  const args = parseArgs(process.argv.slice(2))
  const UdpTracker = require(path.join(__dirname, '..'))
  const start = Date.now()
  const { child, ports } = await startResponder()
  try {
    await soak(args, UdpTracker, start, child, ports)
  } catch (err) {
    // Whatever failed, the responder goes, so that this process still ends.
    await stopResponder(child)
    throw err
  }
}

async function soak (args, UdpTracker, start, child, ports) {
  const responsiveUrl = process.env.AQUATIC_URL || `udp://127.0.0.1:${ports.responsive}`
  const silentUrl = `udp://127.0.0.1:${ports.silent}`
  const batches = Math.ceil(args.instances / args.batch)
  const warmup = args.warmup ?? Math.min(Math.max(3, Math.ceil(batches / 10)), 50)
  const every = Math.max(1, Math.ceil(batches / args.rows))
  if (typeof global.gc !== 'function') console.error('note: run with --expose-gc for meaningful RSS figures')

  // One announce first, so the engine (its thread and its UDP socket) exists
  // before the starting state is taken.
  await new Promise((resolve, reject) => {
    const first = new UdpTracker(Buffer.from('-SOAK01-warmup000000'), Buffer.alloc(20, 0xee), responsiveUrl, { _timeout: 250, port: 6881 })
    first.once('update', () => { first.destroy(); resolve() })
    first.once('error', (e) => { first.destroy(); reject(new Error(`the first announce failed: ${e}`)) })
    first.announce(2, {})
  })
  // Node opens its stdout and stderr handles on first use: do that now, so
  // they are part of the starting state.
  process.stdout.write('')
  process.stderr.write('')
  await sleep(20)
  const before = sample(UdpTracker)
  let afterWarmup = null
  const peak = { rss: before.rss, fds: before.fds, resources: total(before.resources), inFlight: 0 }
  const outcome = { updates: 0, errors: 0, silentTimeouts: 0, unexpected: [] }
  const log = (line) => { if (!args.quiet) console.log(line) }
  log(`soak: ${args.instances} instances in ${batches} batches of ${args.batch}; replies from ${responsiveUrl}; silent tracker ${silentUrl}; warm-up ${warmup} batches`)
  log('batch   instances  time s   rss MB  heap MB   fds  resources                      inFlight  sent      received')
  const row = (b, created, s) => log(
    `${String(b).padStart(5)} ${String(created).padStart(11)} ${((Date.now() - start) / 1000).toFixed(0).padStart(7)} ${(s.rss / MB).toFixed(1).padStart(8)} ${(s.heap / MB).toFixed(1).padStart(8)} ${String(s.fds).padStart(5)}  ${JSON.stringify(s.resources).padEnd(30)} ${String(s.inFlight).padStart(8)}  ${String(s.sent).padEnd(9)} ${s.received}`)
  row(0, 0, before)

  const responsiveOpts = { _timeout: 250, port: 6881 }
  const silentOpts = { _timeout: 1 }
  const peerId = Buffer.from('-SOAK01-000000000000')
  let created = 0
  const loopStart = Date.now()
  for (let b = 1; b <= batches; b++) {
    const n = Math.min(args.batch, args.instances - created)
    const trackers = []
    const waiting = []
    for (let k = 0; k < n; k++, created++) {
      const infoHash = Buffer.alloc(20)
      infoHash.writeUInt32BE(created >>> 0, 16)
      infoHash.writeUInt32BE(b, 0)
      const kind = args.kinds[created % args.kinds.length]
      const tracker = new UdpTracker(peerId, infoHash, kind === 2 ? silentUrl : responsiveUrl, kind === 2 ? silentOpts : responsiveOpts)
      trackers.push(tracker)
      tracker.on('error', (e) => {
        // A silent-tracker instance may run out of retransmissions when a batch is slow.
        if (kind === 2 && String(e).startsWith('tracker is not responding after:')) { outcome.silentTimeouts++; return }
        outcome.errors++
        if (outcome.unexpected.length < 10) outcome.unexpected.push(`kind ${kind}: error ${e}`)
      })
      switch (kind) {
        case 0:
          tracker.destroy()
          break
        case 1:
          tracker.announce(2, { left: 1 })
          tracker.destroy()
          break
        case 2:
          tracker.announce(2, { left: 1 })
          break
        case 3:
        case 4:
        case 5:
          waiting.push(new Promise((resolve) => {
            tracker.once('update', () => {
              outcome.updates++
              if (kind === 3) tracker.destroy()
              if (kind === 4) { tracker.destroy(); tracker.destory() }
              if (kind === 5) tracker.scrape()
              resolve()
            })
            tracker.once('error', resolve)
          }))
          tracker.announce(kind === 5 ? 'started' : 2, { left: 10, downloaded: 0n, uploaded: 0 })
          break
      }
    }
    // Let the silent-tracker instances retransmit a few times (waits of 2, 4, 8 ... ms).
    const retransmitting = sleep(15)
    let stuck = null
    await Promise.race([Promise.all(waiting), new Promise((resolve) => { stuck = setTimeout(resolve, 30000) })])
    clearTimeout(stuck)
    await retransmitting
    for (const tracker of trackers) tracker.destroy()
    for (let k = 4; k < trackers.length; k += 6) trackers[k].destroy() // kind 4: a third time
    trackers.length = 0
    // Cancels reach the engine's thread asynchronously.
    await sleep(1)
    const s = sample(UdpTracker)
    if (afterWarmup === null && b >= warmup && Date.now() - start >= args.warmupSeconds * 1000) {
      afterWarmup = s
      afterWarmup.batch = b
    }
    peak.rss = Math.max(peak.rss, s.rss)
    peak.fds = Math.max(peak.fds, s.fds)
    peak.resources = Math.max(peak.resources, total(s.resources))
    peak.inFlight = Math.max(peak.inFlight, s.inFlight)
    if (b % every === 0 || b === batches || s === afterWarmup) row(b, created, s)
    const ahead = created / args.rate * 1000 - (Date.now() - loopStart)
    if (ahead > 0) await sleep(ahead)
  }

  // Settle: nothing may remain in flight once every instance is destroyed.
  let after = sample(UdpTracker)
  for (let i = 0; i < 50 && after.inFlight !== 0; i++) {
    await sleep(20)
    after = sample(UdpTracker)
  }
  afterWarmup = afterWarmup || before

  const failures = []
  const rssGrowth = after.rss - afterWarmup.rss
  if (rssGrowth > args.rssLimitMb * MB) {
    failures.push(`RSS grew by ${(rssGrowth / MB).toFixed(1)} MB after warm-up (limit ${args.rssLimitMb} MB)`)
  }
  if (after.fds !== before.fds) failures.push(`open fds went from ${before.fds} to ${after.fds}`)
  if (!sameCounts(after.resources, before.resources)) {
    failures.push(`active resources went from ${JSON.stringify(before.resources)} to ${JSON.stringify(after.resources)}`)
  }
  if (after.inFlight !== 0) failures.push(`${after.inFlight} requests still in flight after every instance was destroyed`)
  let expectedUpdates = 0
  for (let i = 0; i < args.instances; i++) if (args.kinds[i % args.kinds.length] >= 3) expectedUpdates++
  if (outcome.errors > 0) failures.push(`${outcome.errors} unexpected error events: ${outcome.unexpected.join('; ')}`)
  if (outcome.updates !== expectedUpdates) failures.push(`${outcome.updates} updates, expected ${expectedUpdates}`)

  await stopResponder(child)
  const result = {
    ok: failures.length === 0,
    instances: args.instances,
    batches,
    batchSize: args.batch,
    kinds: args.kinds,
    warmupBatches: warmup,
    warmupSeconds: args.warmupSeconds,
    rssBaselineBatch: afterWarmup.batch ?? 0,
    durationMs: Date.now() - start,
    gc: typeof global.gc === 'function',
    tracker: process.env.AQUATIC_URL ? 'aquatic' : 'responder',
    rssMb: {
      before: +(before.rss / MB).toFixed(1),
      afterWarmup: +(afterWarmup.rss / MB).toFixed(1),
      after: +(after.rss / MB).toFixed(1),
      peak: +(peak.rss / MB).toFixed(1),
      growthAfterWarmup: +(rssGrowth / MB).toFixed(1),
      limit: args.rssLimitMb
    },
    fds: { before: before.fds, after: after.fds, peak: peak.fds },
    resources: { before: before.resources, after: after.resources, peakTotal: peak.resources },
    inFlight: { after: after.inFlight, peak: peak.inFlight },
    updates: outcome.updates,
    silentTimeouts: outcome.silentTimeouts,
    datagrams: { sent: after.sent - before.sent, received: after.received - before.received },
    failures
  }
  console.log(JSON.stringify(result))
  if (failures.length > 0) process.exitCode = 1

  // Nothing of ours is left: the process should end now. If it does not,
  // say what holds it.
  setTimeout(() => {
    console.error(`soak: still running 10 s after the end; active resources: ${JSON.stringify(process.getActiveResourcesInfo())}`)
    process.exit(3)
  }, 10000).unref()
}
