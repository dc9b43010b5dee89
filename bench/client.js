#!/usr/bin/env node
'use strict'

// Benchmark of the Client: N torrents, each with the same 5 udp:// trackers
// (a flat list: every tracker is announced to), all started at once, against
// 5 aquatic_udp 0.9.0 processes on loopback (__test__/helpers/aquatic.js, its
// default configuration). Ours and bittorrent-tracker 11's Client run in the
// same invocation, each (implementation, N, repetition) in a child process of
// its own. A run ends when every (torrent, tracker) pair has had its `update`
// or `warning`, or at the deadline.
//
//   npm run bench:client                       # N = 1000 and 10000, 1 repetition, both
//   node bench/client.js --n 1000 --reps 3 --impl ours,bittorrent-tracker --deadline 120
//   node bench/client.js --impl ours,floor      # floor: 5 bare UdpTrackers per torrent, no Client
//   BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' node bench/client.js --n 10000 --impl ours
//   node bench/client.js --out FILE             # JSON lines elsewhere (also BENCH_OUT=FILE)
//
// Columns: ok = updates, warn = warnings (failed announces), lost = pairs with
// neither by the deadline; announces/s = ok / wall time from the first
// start() to the last event; CPU ms = user + system of the whole process (our
// engine thread included) over the same span, and per announce; peak RSS.
// Each child first announces 100 torrents unmeasured (JIT warm-up; ours also
// starts its engine and gets connection ids). One JSON line per run goes to
// bench/client-results.jsonl (or --out / BENCH_OUT).
// bittorrent-tracker comes from bench/peers (`cd bench/peers && npm install`).

const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const { pathToFileURL } = require('node:url')
const { CommandLine } = require('./args.js')
const { runNodeChild } = require('./child.js')

const ROOT = path.resolve(__dirname, '..')
const TRACKERS = 5
const RESULT_PREFIX = 'BENCH-CLIENT '
const WARM_UP = 100
const DEFAULT_OUT = path.join(__dirname, 'client-results.jsonl')

function parseArgs (argv) {
  const cli = new CommandLine(__filename, argv, {
    n: { type: 'string' },
    reps: { type: 'string' },
    impl: { type: 'string' },
    deadline: { type: 'string' },
    out: { type: 'string' }
  })
  const v = cli.values
  return {
    ns: cli.positiveInts(v.n, '--n', [1000, 10000]),
    reps: cli.positiveInt(v.reps, '--reps', 1),
    impls: cli.names(v.impl, '--impl', ['ours', 'bittorrent-tracker', 'floor'], {}, ['ours', 'bittorrent-tracker']),
    deadline: cli.positiveInt(v.deadline, '--deadline', 120),
    out: cli.outFile(v.out, DEFAULT_OUT)
  }
}

// `--impl floor`: no Client, one UdpTracker per (torrent, tracker) announcing
// once: what this package costs without tiers and scheduling.
function floorClient () {
  const { UdpTracker } = require(ROOT)
  const { EventEmitter } = require('node:events')
  return class Floor extends EventEmitter {
    constructor ({ infoHash, peerId, announce, port }) {
      super()
      this.trackers = announce.map((url) => {
        const t = new UdpTracker(peerId, infoHash, url, { port })
        t.on('update', () => this.emit('update'))
        t.on('error', (message) => this.emit('warning', new Error(message)))
        return t
      })
    }

    start (counters) { for (const t of this.trackers) t.announce('started', counters) }
    destroy (cb) { for (const t of this.trackers) t.destroy(); process.nextTick(cb) }
  }
}

async function loadClient (impl) {
  if (impl === 'ours') return require(ROOT).Client
  if (impl === 'floor') return floorClient()
  const dir = path.join(__dirname, 'peers', 'node_modules', 'bittorrent-tracker')
  return (await import(pathToFileURL(path.join(dir, 'index.js')).href)).default
}

// ---------------------------------------------------------------------------
// One run, in a child process.

async function child (impl, n, urls, deadlineS) {
  const Client = await loadClient(impl)
  // Warm-up, not measured, the same for both: WARM_UP torrents announced
  // (the JIT has seen every path; ours has its engine thread and connection ids).
  await announceAll(Client, WARM_UP, urls, deadlineS)
  if (global.gc) global.gc()
  return Object.assign({ impl, warm_up: WARM_UP }, await announceAll(Client, n, urls, deadlineS))
}

async function announceAll (Client, n, urls, deadlineS) {
  const ids = crypto.randomBytes(40 * n)
  const expected = n * urls.length
  let ok = 0
  let warnings = 0
  let events = 0
  let lastEventAt = 0
  const texts = new Map()
  let finish = null
  const allDone = new Promise((resolve) => { finish = resolve })
  const event = () => {
    lastEventAt = performance.now()
    if (++events === expected) finish()
  }
  const clients = new Array(n)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const client = new Client({
      infoHash: ids.subarray(40 * i, 40 * i + 20),
      peerId: ids.subarray(40 * i + 20, 40 * i + 40),
      announce: urls,
      port: 6881
    })
    client.on('update', () => { ok++; event() })
    const onWarning = (err) => {
      warnings++
      const text = String(err && err.message ? err.message : err).replace(/udp:\/\/[^) ]+/g, 'udp://…').slice(0, 160)
      if (texts.size < 5 || texts.has(text)) texts.set(text, (texts.get(text) || 0) + 1)
      event()
    }
    client.on('warning', onWarning)
    client.on('error', onWarning)
    clients[i] = client
  }
  for (let i = 0; i < n; i++) clients[i].start({ uploaded: 0, downloaded: 0, left: 0 })
  const loopMs = performance.now() - t0
  const deadline = setTimeout(finish, deadlineS * 1000)
  await allDone
  clearTimeout(deadline)
  const wallMs = (events === expected ? lastEventAt : performance.now()) - t0
  const cpu = process.cpuUsage(cpu0)
  const cpuMs = (cpu.user + cpu.system) / 1000
  await Promise.all(clients.map((c) => new Promise((resolve) => c.destroy(resolve))))
  return {
    n,
    trackers: urls.length,
    expected,
    ok,
    warnings,
    lost: expected - events,
    wall_ms: Math.round(wallMs),
    start_loop_ms: Math.round(loopMs),
    announces_per_s: Math.round(ok / (wallMs / 1000)),
    cpu_ms: Math.round(cpuMs),
    cpu_us_per_announce: ok > 0 ? Math.round((cpuMs * 1000) / ok) : null,
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    warning_texts: Object.fromEntries(texts)
  }
}

// ---------------------------------------------------------------------------
// The parent: trackers, children, table.

async function runChild (impl, n, urls, deadlineS) {
  // BENCH_NODE_ARGS: extra node flags for the children, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'.
  const extra = (process.env.BENCH_NODE_ARGS || '').split(' ').filter(Boolean)
  const argv = [...extra, '--expose-gc', __filename, '--child', impl, String(n), urls.join(','), String(deadlineS)]
  const { result, failed } = await runNodeChild(argv, { prefix: RESULT_PREFIX, killAfterS: deadlineS + 60 })
  return failed !== undefined ? { impl, n, failed } : result
}

function median (values) {
  const sorted = values.slice().sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)]
}

function pad (s, w) {
  return String(s).padStart(w)
}

async function main () {
  const args = parseArgs(process.argv.slice(2))
  const { startAquatic } = require(path.join(ROOT, '__test__', 'helpers', 'aquatic.js'))
  const trackers = []
  try {
    for (let i = 0; i < TRACKERS; i++) trackers.push(await startAquatic())
    const urls = trackers.map((t) => t.url)
    const rows = []
    for (const n of args.ns) {
      for (let rep = 0; rep < args.reps; rep++) {
        // Alternate which implementation goes first between repetitions.
        const order = rep % 2 === 0 ? args.impls : args.impls.slice().reverse()
        for (const impl of order) {
          const result = await runChild(impl, n, urls, args.deadline)
          result.rep = rep
          result.date = new Date().toISOString()
          result.node = process.version
          fs.appendFileSync(args.out, JSON.stringify(result) + '\n')
          rows.push(result)
          if (result.failed) console.log(`${impl} N=${n}: ${result.failed}`)
        }
      }
    }
    console.log(`\n${TRACKERS} aquatic_udp processes, each torrent announces to all ${TRACKERS}; medians of ${args.reps} repetition(s)\n`)
    console.log(['impl', 'N', 'announces', 'ok', 'warn', 'lost', 'announces/s', 'CPU ms', 'CPU µs/ann', 'peak RSS MB'].map((h, i) => i === 0 ? h.padEnd(20) : pad(h, 11)).join(' '))
    const summary = {}
    for (const n of args.ns) {
      for (const impl of args.impls) {
        const runs = rows.filter((r) => r.impl === impl && r.n === n && !r.failed)
        if (runs.length === 0) continue
        const m = (key) => median(runs.map((r) => r[key]))
        summary[`${impl} ${n}`] = { rate: m('announces_per_s'), cpu: m('cpu_us_per_announce') }
        console.log([impl.padEnd(20), n, n * TRACKERS, m('ok'), m('warnings'), m('lost'), m('announces_per_s'), m('cpu_ms'),
          m('cpu_us_per_announce'), m('peak_rss_mb')].map((v, i) => i === 0 ? v : pad(v, 11)).join(' '))
        const texts = Object.entries(runs[Math.floor((runs.length - 1) / 2)].warning_texts || {})
        if (texts.length > 0) console.log(`  warnings (one run): ${texts.slice(0, 3).map(([t, c]) => `${c}× ${t}`).join('; ')}`)
      }
    }
    for (const n of args.ns) {
      const ours = summary[`ours ${n}`]
      const theirs = summary[`bittorrent-tracker ${n}`]
      if (ours && theirs && theirs.rate > 0) {
        console.log(`N = ${n}: ours ${(ours.rate / theirs.rate).toFixed(1)}× the announces/s, ${(ours.cpu / theirs.cpu).toFixed(2)}× the CPU per announce`)
      }
    }
  } finally {
    await Promise.all(trackers.map((t) => t.stop()))
  }
}

if (process.argv[2] === '--child') {
  const [, , , impl, n, urls, deadline] = process.argv
  child(impl, Number(n), urls.split(','), Number(deadline)).then((result) => {
    process.stdout.write(RESULT_PREFIX + JSON.stringify(result) + '\n')
    process.exit(0)
  }, (err) => {
    console.error(err && err.stack ? err.stack : err)
    process.exit(1)
  })
} else {
  main().catch((err) => {
    console.error(err && err.stack ? err.stack : err)
    process.exitCode = 1
  })
}
