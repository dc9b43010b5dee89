#!/usr/bin/env node
'use strict'

// Benchmark for per-tracker congestion control: N instances (5,000 by
// default) announce `started` at once to a tracker running with its DEFAULT
// socket settings on loopback, for three trackers and three clients measured
// in the same run:
//
//   trackers  opentracker (Debian's /usr/bin/opentracker; whitelist-only, so
//             the N info hashes are written to its whitelist, -w FILE),
//             bittorrent-tracker 11's Server (Node, the OS default receive
//             buffer), aquatic_udp 0.9.0 (its default configuration)
//   clients   ours (this package), bittorrent-udp-tracker 1.2.0,
//             bittorrent-tracker 11's Client (from bench/peers)
//
// Each (tracker, client) pair gets a fresh tracker and its own child process.
// Printed: how many were answered, completion time, p50/p90/p99 latency, and
// the datagrams the kernel dropped at the tracker's socket (/proc/net/udp;
// "n/a" where the kernel does not report it). One JSON line per pair goes to
// bench/congestion.jsonl. Goal (issue 15): every announce answered, p99 ≤ 3 s.
//
//   node bench/congestion.js                       # all trackers × all clients, N = 5000
//   node bench/congestion.js --n 2000 --tracker opentracker --client ours,1.2.0
//   node bench/congestion.js --deadline 150        # seconds a run waits for its events
//
// Needs `cd bench/peers && npm install` for the peers and the Server;
// aquatic_udp from $AQUATIC_UDP (see __test__/helpers/aquatic.js). Only
// loopback addresses are used.

const { spawn } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const { pathToFileURL, parseArgs } = { ...require('node:url'), ...require('node:util') }

const ROOT = path.resolve(__dirname, '..')
const PEERS = path.join(__dirname, 'peers', 'node_modules')
const OUT = path.join(__dirname, 'congestion.jsonl')
const RESULT = 'CONGESTION-RESULT '
const TRACKERS = ['opentracker', 'bittorrent-tracker', 'aquatic']
const CLIENTS = ['ours', '1.2.0', 'bittorrent-tracker']
const OPENTRACKER = '/usr/bin/opentracker'

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function percentile (sorted, p) {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]
}

/** The info hashes of run `seed`: the same in the tracker's whitelist and the child. */
function hashes (n, seed) {
  return Array.from({ length: n }, (_, i) => crypto.createHash('sha1').update(`${seed}:${i}`).digest())
}

// ---------------------------------------------------------------------------
// The child: one client, N announces at once.

async function client (name) {
  if (name === 'ours') {
    const UdpTracker = require(ROOT)
    return {
      create: (peerId, infoHash, url, on) => {
        const t = new UdpTracker(peerId, infoHash, url, { port: 6881 })
        t.on('update', on.update)
        t.on('error', on.error)
        return t
      },
      announce: (t) => t.announce(2, { downloaded: 0, left: 0, uploaded: 0 }),
      destroy: (t) => t.destroy(),
      stats: () => UdpTracker.stats()
    }
  }
  if (name === '1.2.0') {
    const UDPTracker = require(path.join(PEERS, 'bittorrent-udp-tracker'))
    console.error = () => {} // 1.2.0 prints every socket error
    return {
      create: (peerId, infoHash, url, on) => {
        const t = new UDPTracker(peerId, infoHash, url, { port: 6881 })
        t.on('update', on.update)
        t.on('error', on.error)
        return t
      },
      announce: (t) => t.announce(2, { downloaded: 0, left: 0, uploaded: 0 }),
      destroy: (t) => t.destory(),
      stats: () => null
    }
  }
  const { Client } = await import(pathToFileURL(path.join(PEERS, 'bittorrent-tracker', 'index.js')).href)
  return {
    create: (peerId, infoHash, url, on) => {
      const c = new Client({ infoHash, peerId, announce: [url], port: 6881 })
      c.on('update', on.update)
      c.on('error', on.error)
      c.on('warning', on.error)
      return c
    },
    announce: (c) => c.start({ downloaded: 0, left: 0, uploaded: 0 }),
    destroy: (c) => c.destroy(),
    stats: () => null
  }
}

async function child (name, n, url, seed, deadlineS) {
  process.on('uncaughtException', () => {})
  const lib = await client(name)
  const infoHashes = hashes(n, seed)
  const latency = new Float64Array(n).fill(-1)
  const started = new Float64Array(n)
  let ok = 0
  let done = 0
  let finish
  const allDone = new Promise((resolve) => { finish = resolve })
  const settle = (i, good) => {
    if (latency[i] >= 0) return
    latency[i] = performance.now() - started[i]
    if (good) ok++
    if (++done === n) finish()
  }
  const instances = infoHashes.map((infoHash, i) => lib.create(crypto.randomBytes(20), infoHash, url, {
    update: () => settle(i, true),
    error: () => settle(i, false)
  }))
  const t0 = performance.now()
  instances.forEach((t, i) => { started[i] = performance.now(); lib.announce(t) })
  const timer = setTimeout(finish, deadlineS * 1000)
  await allDone
  clearTimeout(timer)
  const wallMs = performance.now() - t0
  const stats = lib.stats()
  instances.forEach((t) => lib.destroy(t))
  const lat = Array.from(latency).filter((x) => x >= 0).sort((a, b) => a - b)
  const r = (x) => (x === null ? null : Math.round(x))
  return {
    ok,
    failed: done - ok,
    no_event: n - done,
    wall_ms: r(wallMs),
    p50_ms: r(percentile(lat, 50)),
    p90_ms: r(percentile(lat, 90)),
    p99_ms: r(percentile(lat, 99)),
    max_ms: r(lat.length ? lat[lat.length - 1] : null),
    engine: stats && { sent: stats.sent, retransmits: stats.retransmits, losses: stats.losses }
  }
}

// ---------------------------------------------------------------------------
// The trackers, each in its default configuration.

function freePort () {
  return new Promise((resolve, reject) => {
    const socket = require('node:dgram').createSocket('udp4')
    socket.once('error', reject)
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address()
      socket.close(() => resolve(port))
    })
  })
}

/** Datagrams the kernel dropped at the UDP socket(s) bound to `port`, or null. */
function socketDrops (port) {
  let drops = null
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text
    try { text = fs.readFileSync(file, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length >= 13 && parseInt(f[1].split(':')[1], 16) === port) drops = (drops || 0) + Number(f[12])
    }
  }
  return drops
}

/** Resolves once something answers a BEP 15 connect on 127.0.0.1:port. */
async function answering (port, timeoutMs) {
  const dgram = require('node:dgram')
  const deadline = Date.now() + timeoutMs
  const request = Buffer.alloc(16)
  request.writeBigUInt64BE(0x41727101980n, 0)
  request.writeUInt32BE(0xdead, 12)
  while (Date.now() < deadline) {
    const socket = dgram.createSocket('udp4')
    const got = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 200)
      socket.on('message', () => { clearTimeout(timer); resolve(true) })
      socket.on('error', () => {})
      socket.send(request, port, '127.0.0.1')
    })
    socket.close()
    if (got) return
  }
  throw new Error(`nothing answered on 127.0.0.1:${port}`)
}

async function startTracker (name, n, seed) {
  if (name === 'aquatic') {
    const { startAquatic } = require(path.join(ROOT, '__test__', 'helpers', 'aquatic.js'))
    const t = await startAquatic()
    return { url: t.url, port: t.port, stop: () => t.stop() }
  }
  const port = await freePort()
  let proc
  let dir = null
  if (name === 'opentracker') {
    // opentracker refuses to keep root privileges: it chroots to `dir` and
    // becomes nobody, so the whitelist is named inside the chroot.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opentracker-'))
    fs.chmodSync(dir, 0o755)
    fs.writeFileSync(path.join(dir, 'whitelist'), hashes(n, seed).map((h) => h.toString('hex')).join('\n') + '\n', { mode: 0o644 })
    proc = spawn(OPENTRACKER, ['-i', '127.0.0.1', '-p', String(port), '-P', String(port), '-d', dir, '-u', 'nobody', '-w', '/whitelist'],
      { stdio: 'ignore' })
  } else {
    const script = `import(${JSON.stringify(pathToFileURL(path.join(PEERS, 'bittorrent-tracker', 'index.js')).href)})
      .then(({ Server }) => { const s = new Server({ http: false, ws: false, stats: false }); s.on('error', () => {}); s.on('warning', () => {}); s.listen({ udp: ${port} }, '127.0.0.1') })`
    proc = spawn(process.execPath, ['-e', script], { stdio: 'ignore' })
  }
  await answering(port, 10000)
  return {
    url: `udp://127.0.0.1:${port}`,
    port,
    stop: async () => {
      proc.kill('SIGKILL')
      await new Promise((resolve) => proc.once('close', resolve))
      if (dir) fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

function runChild (clientName, n, url, seed, deadlineS) {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [__filename, '--child', clientName, '--n', String(n), '--url', url,
      '--seed', seed, '--deadline', String(deadlineS)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    proc.stdout.on('data', (d) => { out += d })
    proc.stderr.on('data', (d) => { err = (err + d).slice(-2000) })
    proc.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith(RESULT))
      resolve(line ? JSON.parse(line.slice(RESULT.length)) : { error: `exit ${code}: ${err.trim()}` })
    })
  })
}

async function main () {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      n: { type: 'string', default: '5000' },
      url: { type: 'string' },
      seed: { type: 'string' },
      deadline: { type: 'string', default: '150' },
      tracker: { type: 'string', default: TRACKERS.join(',') },
      client: { type: 'string', default: CLIENTS.join(',') }
    }
  })
  const n = Number(values.n)
  const deadlineS = Number(values.deadline)
  if (!Number.isInteger(n) || n < 1) throw new RangeError('--n must be a positive integer')
  if (values.child) {
    const result = await child(values.child, n, values.url, values.seed, deadlineS)
    process.stdout.write(RESULT + JSON.stringify(result) + '\n')
    process.exit(0)
  }
  const rows = []
  for (const trackerName of values.tracker.split(',')) {
    for (const clientName of values.client.split(',')) {
      const seed = crypto.randomBytes(8).toString('hex')
      const tracker = await startTracker(trackerName, n, seed)
      const drops0 = socketDrops(tracker.port)
      const result = await runChild(clientName, n, tracker.url, seed, deadlineS)
      await delay(200)
      const drops1 = socketDrops(tracker.port)
      await tracker.stop()
      const row = {
        date: new Date().toISOString(),
        tracker: trackerName,
        client: clientName,
        n,
        ...result,
        tracker_drops: drops0 === null || drops1 === null ? null : drops1 - drops0
      }
      rows.push(row)
      fs.appendFileSync(OUT, JSON.stringify(row) + '\n')
      const s = (ms) => (ms === null || ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`)
      console.log(`${trackerName.padEnd(19)} ${clientName.padEnd(19)} ok ${String(row.ok ?? '-').padStart(5)}/${n}  ` +
        `all ${s(row.wall_ms).padStart(8)}  p50 ${s(row.p50_ms).padStart(8)}  p90 ${s(row.p90_ms).padStart(8)}  ` +
        `p99 ${s(row.p99_ms).padStart(8)}  drops ${row.tracker_drops ?? 'n/a'}${row.error ? '  ' + row.error : ''}`)
    }
  }
  return rows
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
