#!/usr/bin/env node
'use strict'

// Burst benchmark (issue 15): N instances announcing `started` at once to a
// tracker running in its DEFAULT configuration on loopback, for each of
//
//   trackers         opentracker       Debian's /usr/bin/opentracker (whitelist-only: the
//                                      N info hashes are its whitelist), kernel default
//                                      receive buffer (net.core.rmem_default)
//                    bt-server         bittorrent-tracker 11's Server, UDP only (udp4 on
//                                      127.0.0.1, udp6 on ::1), OS default receive buffer,
//                                      in a Node process of its own
//                    aquatic           aquatic_udp 0.9.0 with its default config (one
//                                      socket worker, an 8 MB receive buffer it asks for)
//   implementations  ours, 1.2.0, bittorrent-tracker (11's Client): bench/run.js's
//                    loadImplementation, each run in a child process of its own
//
// Each (tracker, implementation) pair gets a fresh tracker and N fresh info
// hashes, one torrent per instance, every instance announcing port 6881 from
// 127.0.0.1. It reports, within a cap (150 s by default):
//   answered     'update' events / N (errors and silence are not answered)
//   time         first announce call → last update (the cap when some are missing)
//   p50/p90/p99  announce call → update, over all N: a percentile that falls on an
//                instance not answered within the cap is shown as '>cap'
//   drops        datagrams the kernel dropped at the tracker's socket(s): the drops
//                column of /proc/net/udp and /proc/net/udp6 for the tracker's port,
//                after − before (per socket, so other processes do not count)
//   sent         datagrams the client sent: ours, the engine's stats().sent; the
//                peers, calls of dgram's Socket#send (both send one datagram a call)
//   rcvbuf       Udp RcvbufErrors of /proc/net/snmp after − before: every socket of
//                the network namespace (other processes included), a cross-check
// and the load average (1 min) before and after each run: on a shared machine
// the figures are worse than on an idle one.
//
// Usage:
//   node bench/burst.js                           # N = 5000, every tracker and implementation
//   node bench/burst.js --n 500 --cap 60
//   node bench/burst.js --tracker opentracker,bt-server,aquatic --impl ours,1.2.0,bittorrent-tracker
//   node bench/burst.js --out FILE                # JSON lines appended there (default bench/results.jsonl)
//
// Needs the peers (`cd bench/peers && npm install`) for bt-server and the two
// peer implementations, opentracker (`apt-get install opentracker`) and
// aquatic_udp 0.9.0 (scripts/aquatic.js: $AQUATIC_UDP, PATH, or .aquatic/,
// built on first use). A tracker or implementation that is missing is skipped
// with the reason. Only loopback addresses are used.

const crypto = require('node:crypto')
const dgram = require('node:dgram')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const { pathToFileURL } = require('node:url')
const { CommandLine } = require('./args.js')
const { runNodeChild } = require('./child.js')
const {
  loadImplementation, peersAvailable, ownUdpDrops, trackerSocketDrops, rcvbufErrors, processCpuMs,
  machineInfo, IMPLS, ALIASES
} = require('./run.js')
const { provisionAquatic } = require('../scripts/aquatic.js')
const { aquaticConfig } = require('../scripts/aquatic-config.js')
const { startOpentracker, opentrackerUnavailable } = require('../__test__/helpers/opentracker.js')
const { freeUdpPort, waitUntilAnswering } = require('../__test__/helpers/aquatic.js')
const { spawnTracker } = require('../__test__/helpers/tracker-process.js')

const ROOT = path.resolve(__dirname, '..')
const PEERS = path.join(__dirname, 'peers')
const RESULT_PREFIX = 'BURST-RESULT '
const TRACKERS = ['opentracker', 'bt-server', 'aquatic']
const IMPL_NAMES = ['ours', '1.2.0', 'bittorrent-tracker']

const round = (x, digits = 1) => (x === null || x === undefined ? null : Number(x.toFixed(digits)))
const loadavg = () => round(os.loadavg()[0], 2)

// ---------------------------------------------------------------------------
// Arguments

function parseArgs (argv) {
  const cli = new CommandLine(__filename, argv, {
    n: { type: 'string' },
    cap: { type: 'string' },
    tracker: { type: 'string' },
    impl: { type: 'string' },
    out: { type: 'string' },
    // Internal: the child (one implementation against one tracker) and the bt-server process.
    child: { type: 'string' },
    url: { type: 'string' },
    hashes: { type: 'string' },
    'bt-server': { type: 'string' }
  })
  const v = cli.values
  return {
    n: cli.positiveInt(v.n, '--n', 5000),
    capS: cli.positiveInt(v.cap, '--cap', 150),
    trackers: cli.names(v.tracker, '--tracker', TRACKERS),
    impls: cli.names(v.impl, '--impl', IMPL_NAMES, ALIASES),
    out: cli.outFile(v.out, path.join(__dirname, 'results.jsonl')),
    child: v.child ? { impl: v.child, url: v.url, hashFile: v.hashes } : null,
    btServer: cli.positiveInt(v['bt-server'], '--bt-server', null)
  }
}

// ---------------------------------------------------------------------------
// The child: one implementation announcing to one tracker.

async function child ({ impl, url, hashFile }, capS) {
  const hashes = fs.readFileSync(hashFile, 'utf8').trim().split('\n').map((h) => Buffer.from(h, 'hex'))
  const n = hashes.length
  // The peers send with dgram; count every call (one datagram each) from the start.
  let dgramSends = 0
  const send = dgram.Socket.prototype.send
  dgram.Socket.prototype.send = function (...a) {
    // On a socket not bound yet, Node binds it and calls send again once
    // bound: count that second call only.
    try {
      this.address()
      dgramSends++
    } catch {}
    return send.apply(this, a)
  }
  // 1.2.0 logs socket errors with console.error: count them.
  let consoleErrors = 0
  console.error = () => { consoleErrors++ }
  const lib = await loadImplementation(impl)
  const peerIds = crypto.randomBytes(20 * n)

  const latency = new Float64Array(n).fill(-1)
  const started = new Float64Array(n)
  let updates = 0
  let errors = 0
  let settled = 0
  let lastUpdateAt = 0
  const errorTexts = {}
  let finish = null
  const allSettled = new Promise((resolve) => { finish = resolve })
  const instances = hashes.map((infoHash, i) => lib.create(peerIds.subarray(20 * i, 20 * i + 20), infoHash, url, {
    update: () => {
      if (latency[i] >= 0) return
      lastUpdateAt = performance.now()
      latency[i] = lastUpdateAt - started[i]
      updates++
      if (++settled === n) finish()
    },
    error: (err) => {
      if (latency[i] >= 0) return
      latency[i] = Infinity // settled, not answered
      errors++
      const text = String(err && err.message ? err.message : err).slice(0, 120)
      errorTexts[text] = (errorTexts[text] || 0) + 1
      if (++settled === n) finish()
    }
  }))

  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    started[i] = performance.now()
    lib.announce(instances[i])
  }
  const cap = setTimeout(finish, capS * 1000)
  await allSettled
  clearTimeout(cap)
  const capped = settled < n
  const timeMs = (capped || updates < n ? performance.now() : lastUpdateAt) - t0
  const engine = lib.stats ? lib.stats() : null
  const clientDrops = ownUdpDrops()
  for (const t of instances) lib.destroy(t)

  // Percentiles over all N; an instance not answered counts as slower than any.
  const answered = Array.from(latency).filter((x) => x >= 0 && x !== Infinity).sort((a, b) => a - b)
  const pct = (p) => {
    const rank = Math.ceil((p / 100) * n)
    return rank <= answered.length ? round(answered[Math.max(rank, 1) - 1], 1) : null
  }
  return {
    impl,
    version: lib.version,
    addon_sha256: lib.addon || null,
    n,
    answered: updates,
    errors,
    no_event: n - settled,
    time_ms: round(timeMs),
    capped,
    p50_ms: pct(50),
    p90_ms: pct(90),
    p99_ms: pct(99),
    max_ms: answered.length === n ? round(answered[n - 1]) : null,
    sent: engine ? engine.sent : dgramSends,
    sent_counted_by: engine ? 'stats().sent' : 'dgram send calls',
    engine,
    client_socket_drops: clientDrops.sockets ? clientDrops.drops : null,
    console_errors: consoleErrors,
    error_texts: errorTexts
  }
}

// ---------------------------------------------------------------------------
// The trackers: start(hashes) → { url, port, pid, version, stop() }

const trackers = {
  opentracker: {
    label: 'opentracker (Debian, whitelist)',
    unavailable: () => opentrackerUnavailable(),
    start: async (hashes) => {
      const t = await startOpentracker({ whitelist: hashes })
      return { url: t.url, port: t.port, pid: t.pid, version: `${t.binary} (Debian)`, stop: t.stop }
    }
  },
  'bt-server': {
    label: 'bittorrent-tracker 11 Server',
    unavailable: () => peersAvailable('bittorrent-tracker'),
    start: async () => {
      const port = await freeUdpPort('127.0.0.1')
      const t = spawnTracker(process.execPath, [__filename, '--bt-server', String(port)], { cwd: ROOT })
      try {
        await waitUntilAnswering('127.0.0.1', port, 10000, t.exited)
      } catch (err) {
        await t.stop()
        throw new Error(`bittorrent-tracker's Server did not start: ${err.message}\n${t.describeOutput()}`)
      }
      const version = JSON.parse(fs.readFileSync(path.join(PEERS, 'node_modules', 'bittorrent-tracker', 'package.json'), 'utf8')).version
      return { url: `udp://127.0.0.1:${port}`, port, pid: t.child.pid, version, stop: t.stop }
    }
  },
  aquatic: {
    label: 'aquatic_udp 0.9.0 (defaults)',
    unavailable: () => null,
    start: async () => {
      const bin = await provisionAquatic()
      const port = await freeUdpPort('127.0.0.1')
      // Its defaults, except the address (and quieter logs).
      const config = aquaticConfig(bin, { '': { log_level: 'error' }, network: { address: `127.0.0.1:${port}` } })
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'udp-tracker-burst-'))
      fs.writeFileSync(path.join(dir, 'aquatic.toml'), config)
      const t = spawnTracker(bin, ['-c', path.join(dir, 'aquatic.toml')], { cwd: dir, dir })
      try {
        await waitUntilAnswering('127.0.0.1', port, 10000, t.exited)
      } catch (err) {
        await t.stop()
        throw new Error(`aquatic_udp did not start: ${err.message}\n${t.describeOutput()}`)
      }
      return { url: `udp://127.0.0.1:${port}`, port, pid: t.child.pid, version: '0.9.0', stop: t.stop }
    }
  }
}

/** The --bt-server process: bittorrent-tracker's Server, UDP only, as its README shows. */
async function serveBt (port) {
  const { Server } = await import(pathToFileURL(path.join(PEERS, 'node_modules', 'bittorrent-tracker', 'index.js')).href)
  const server = new Server({ udp: true, http: false, ws: false, stats: false })
  server.on('error', (err) => { console.error(`server error: ${err.message}`) })
  server.on('warning', () => {})
  server.listen(port, { udp: '127.0.0.1', udp6: '::1' })
  process.once('SIGTERM', () => server.close(() => process.exit(0)))
}

// ---------------------------------------------------------------------------
// The parent

async function runChild (impl, url, hashFile, capS) {
  const argv = [__filename, '--child', impl, '--url', url, '--hashes', hashFile, '--cap', String(capS)]
  const { result, failed } = await runNodeChild(argv, { prefix: RESULT_PREFIX, killAfterS: capS + 60 })
  return failed !== undefined ? { impl, failed } : result
}

async function runOne (trackerName, impl, args) {
  const hashes = Array.from({ length: args.n }, () => crypto.randomBytes(20).toString('hex'))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'udp-tracker-burst-hashes-'))
  const hashFile = path.join(dir, 'hashes.txt')
  fs.writeFileSync(hashFile, hashes.join('\n') + '\n')
  const tracker = await trackers[trackerName].start(hashes)
  try {
    const before = { load: loadavg(), drops: trackerSocketDrops(tracker.port), rcvbuf: rcvbufErrors(), cpu: processCpuMs(tracker.pid) }
    const result = await runChild(impl, tracker.url, hashFile, args.capS)
    result.tracker = trackerName
    result.tracker_version = tracker.version
    result.tracker_socket_drops = before.drops === null ? null : trackerSocketDrops(tracker.port) - before.drops
    result.tracker_drops_counted_by = '/proc/net/udp{,6} drops column of the tracker port, after - before'
    result.udp_rcvbuf_errors_all = rcvbufErrors() - before.rcvbuf
    result.tracker_cpu_ms = round(processCpuMs(tracker.pid) - before.cpu)
    result.load_before = before.load
    result.load_after = loadavg()
    return result
  } finally {
    await tracker.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const fmtMs = (ms) => (ms === null ? '>cap' : ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`)

function printRow (r) {
  const cols = [
    [trackers[r.tracker].label, 32, true],
    [IMPLS[r.impl].label, 22, true]
  ]
  if (r.failed) {
    console.log(`${cols.map(([s, w]) => String(s).padEnd(w)).join(' ')} FAILED: ${r.failed.slice(0, 300)}`)
    return
  }
  cols.push(
    [`${r.answered}/${r.n}`, 11],
    [fmtMs(r.time_ms) + (r.capped ? ' (cap)' : ''), 14],
    [fmtMs(r.p50_ms), 8], [fmtMs(r.p90_ms), 8], [fmtMs(r.p99_ms), 8],
    [r.tracker_socket_drops, 8], [r.sent, 8], [r.udp_rcvbuf_errors_all, 7], [`${r.load_before}/${r.load_after}`, 11]
  )
  console.log(cols.map(([s, w, left]) => (left ? String(s ?? '–').padEnd(w) : String(s ?? '–').padStart(w))).join(' '))
}

async function main (args) {
  const info = machineInfo()
  console.log(`${info.date}  nproc ${info.nproc}  ${info.cpu}  node ${info.node}  git ${info.git_head}${info.git_dirty ? ' (dirty)' : ''}`)
  console.log(`N = ${args.n}, cap ${args.capS} s; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  console.log(`net.core.rmem_default ${fs.readFileSync('/proc/sys/net/core/rmem_default', 'utf8').trim()} bytes\n`)
  const skipped = []
  const header = ['tracker'.padEnd(32), 'implementation'.padEnd(22), 'answered'.padStart(11), 'time'.padStart(14),
    'p50'.padStart(8), 'p90'.padStart(8), 'p99'.padStart(8), 'drops'.padStart(8), 'sent'.padStart(8), 'rcvbuf'.padStart(7), 'load'.padStart(11)].join(' ')
  console.log(header)
  console.log('-'.repeat(header.length))
  let exitCode = 0
  for (const trackerName of args.trackers) {
    const why = trackers[trackerName].unavailable()
    if (why) { skipped.push(`${trackerName}: ${why}`); continue }
    for (const impl of args.impls) {
      const whyImpl = impl === 'ours' ? null : peersAvailable(impl)
      if (whyImpl) { skipped.push(`${impl}: ${whyImpl}`); continue }
      let result
      try {
        result = await runOne(trackerName, impl, args)
      } catch (err) {
        result = { tracker: trackerName, impl, n: args.n, failed: err.message }
      }
      if (result.failed) exitCode = 1
      printRow(result)
      const line = { ...info, bench: 'burst', cap_s: args.capS, rmem_default: Number(fs.readFileSync('/proc/sys/net/core/rmem_default', 'utf8')), ...result }
      fs.mkdirSync(path.dirname(args.out), { recursive: true })
      fs.appendFileSync(args.out, JSON.stringify(line) + '\n')
    }
  }
  console.log('\nanswered: updates within the cap; time: first announce → last update; p50/p90/p99 over all N (>cap: not answered)')
  console.log('drops: kernel drops at the tracker\'s socket(s) (/proc/net/udp drops column); sent: datagrams the client sent;')
  console.log('rcvbuf: Udp RcvbufErrors of the whole namespace (/proc/net/snmp); load: 1-min load average before/after')
  console.log(`appended to ${path.relative(process.cwd(), args.out) || args.out}`)
  for (const s of [...new Set(skipped)]) console.log(`SKIPPED ${s}`)
  return exitCode
}

if (require.main === module) {
  const args = parseArgs(process.argv.slice(2))
  if (args.btServer) {
    serveBt(args.btServer).catch((err) => { console.error(err.stack); process.exit(1) })
  } else if (args.child) {
    child(args.child, args.capS).then((result) => {
      process.stdout.write(RESULT_PREFIX + JSON.stringify(result) + '\n', () => process.exit(0))
    }, (err) => {
      process.stderr.write(`${err && err.stack ? err.stack : err}\n`, () => process.exit(1))
    })
  } else {
    main(args).then((code) => { process.exitCode = code }, (err) => {
      console.error(err && err.stack ? err.stack : err)
      process.exitCode = 1
    })
  }
}
