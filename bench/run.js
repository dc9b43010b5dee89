#!/usr/bin/env node
'use strict'

// Benchmark: N tracker instances announcing at once to a real tracker
// (aquatic_udp 0.9.0 on loopback), for three implementations measured in the
// same run, a Rust-only ceiling, and the harness alone.
//
//   ours                  require('../..'): this package (one shared socket per family)
//   1.2.0                 bittorrent-udp-tracker@1.2.0 from bench/peers (a socket per request)
//   bittorrent-tracker    bittorrent-tracker@11's Client with a udp:// announce URL
//   ceiling               examples/loadgen.rs: our codec on one blocking std UdpSocket,
//                         256 announces in flight (no Node, no napi)
//   harness               no tracker client: an EventEmitter per instance whose announce
//                         is answered with a constant 'update' on the next turn of the
//                         event loop, no I/O. What this harness itself costs (ids,
//                         instances, listeners, events), within every other row's CPU
//
// Every (implementation, N, repetition) runs in its own child process, so
// that memory, descriptors and CPU time do not mix. Within a repetition the
// implementations alternate (the order rotates between repetitions); the
// table shows the medians of the repetitions, and bench/results.jsonl gets one
// JSON line per implementation × N with those medians and every repetition's
// raw numbers.
//
// Usage:
//   node bench/run.js                      # N = 1000, 5000, 20000; 3 repetitions; all
//   node bench/run.js --n 100,1000 --reps 1
//   node bench/run.js --impl ours          # or 1.2.0, bittorrent-tracker, harness; comma-separated
//   node bench/run.js --no-ceiling         # skip the Rust load generator
//   node bench/run.js --big                # then N = 100,000 for ours only
//   node bench/run.js --deadline 60        # seconds a run waits for its events
//   node bench/run.js --warm 2             # each process first runs the same N twice, unmeasured:
//                                          # the cost in a long-lived process, its code compiled
//                                          # (issue 11's goals are set without warm-up)
//   node bench/run.js --warm 2 --keep-none # ... and none of the warm-up's instances stays referenced:
//                                          # a program that destroys them all and collects between batches
//   node bench/run.js --out FILE           # JSON lines elsewhere (also BENCH_OUT=FILE)
//   node bench/run.js --idle-wait 120      # on a shared machine: before each run, wait (≤ 120 s)
//                     --retry-disturbed 2  # until it is idle; run again a run that other processes
//                                          # disturbed (more than 100 ms + 10 % of its time in CPU)
//
// The peers need `cd bench/peers && npm install` once; `--impl ours
// --no-ceiling` needs neither that nor cargo. aquatic_udp comes from
// scripts/aquatic.js ($AQUATIC_UDP, PATH, or <repo>/.aquatic, built there on
// first use). Only loopback addresses are used.

const { spawn, spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const dgram = require('node:dgram')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const { pathToFileURL } = require('node:url')
const { CommandLine } = require('./args.js')
const { runNodeChild } = require('./child.js')
const { findAquatic, provisionAquatic } = require('../scripts/aquatic.js')
const { aquaticConfig } = require('../scripts/aquatic-config.js')

const ROOT = path.resolve(__dirname, '..')
const PEERS = path.join(__dirname, 'peers')
const DEFAULT_NS = [1000, 5000, 20000]
const BIG_N = 100000
const PORT_ANNOUNCED = 6881
const RESULT_PREFIX = 'BENCH-RESULT '

const IMPLS = {
  ours: { label: 'ours (2.0.0)' },
  '1.2.0': { label: 'udp-tracker@1.2.0' },
  'bittorrent-tracker': { label: 'bittorrent-tracker@11' },
  ceiling: { label: 'ceiling (Rust loadgen)' },
  harness: { label: 'harness (no I/O)' }
}
const ALIASES = {
  ours: 'ours',
  '2.0.0': 'ours',
  '1.2.0': '1.2.0',
  original: '1.2.0',
  v1: '1.2.0',
  'bittorrent-udp-tracker@1.2.0': '1.2.0',
  'bittorrent-tracker': 'bittorrent-tracker',
  bt: 'bittorrent-tracker',
  webtorrent: 'bittorrent-tracker',
  harness: 'harness'
}

// ---------------------------------------------------------------------------
// Arguments

function parseArgs (argv) {
  const cli = new CommandLine(__filename, argv, {
    n: { type: 'string' },
    reps: { type: 'string' },
    impl: { type: 'string' },
    'no-ceiling': { type: 'boolean' },
    big: { type: 'boolean' },
    deadline: { type: 'string' },
    warm: { type: 'string' },
    'keep-none': { type: 'boolean' },
    'idle-wait': { type: 'string' },
    'retry-disturbed': { type: 'string' },
    out: { type: 'string' },
    child: { type: 'boolean' } // --child IMPL N URL (internal)
  }, { allowPositionals: true })
  const { values: v, positionals } = cli
  if (positionals.length && !v.child) cli.fail(`unknown argument ${positionals[0]}`)
  const warm = cli.count(v.warm, '--warm', 0)
  if (v['keep-none'] && warm === 0) cli.fail('--keep-none is about the warm-up: it needs --warm')
  return {
    ns: cli.positiveInts(v.n, '--n', DEFAULT_NS),
    reps: cli.positiveInt(v.reps, '--reps', 3),
    impls: cli.names(v.impl, '--impl', ['ours', '1.2.0', 'bittorrent-tracker', 'harness'], ALIASES),
    ceiling: !v['no-ceiling'],
    big: Boolean(v.big),
    deadlineS: cli.positiveInt(v.deadline, '--deadline', 60),
    warm,
    keepNone: Boolean(v['keep-none']),
    idleWaitS: cli.positiveInt(v['idle-wait'], '--idle-wait', 0),
    retryDisturbed: cli.positiveInt(v['retry-disturbed'], '--retry-disturbed', 0),
    out: cli.outFile(v.out, path.join(__dirname, 'results.jsonl')),
    child: v.child
      ? { impl: positionals[0], n: cli.positiveInt(positionals[1] ?? '', 'N'), url: positionals[2] }
      : null
  }
}

// ---------------------------------------------------------------------------
// The child: one implementation, one N, one repetition.

/**
 * `create` and `announce` through 1.2.0's API, for its class `Tracker`: the
 * same steps for ours, 1.2.0 and the harness.
 */
function steps (Tracker) {
  return {
    create: (peerId, infoHash, url, on) => {
      const t = new Tracker(peerId, infoHash, url, { port: PORT_ANNOUNCED })
      t.on('update', on.update)
      t.on('error', on.error)
      return t
    },
    announce: (t) => t.announce(2, { downloaded: 0, left: 0, uploaded: 0 })
  }
}

/** Each implementation as: create(i) → instance, announce, destroy. */
async function loadImplementation (impl) {
  if (impl === 'ours') {
    const UdpTracker = require(ROOT)
    return {
      version: require(path.join(ROOT, 'package.json')).version,
      addon: addonHash(),
      ...steps(UdpTracker),
      destroy: (t) => t.destroy(),
      stats: () => UdpTracker.stats()
    }
  }
  if (impl === 'harness') return harness()
  const peersModules = path.join(PEERS, 'node_modules')
  if (impl === '1.2.0') {
    const dir = path.join(peersModules, 'bittorrent-udp-tracker')
    const UDPTracker = require(dir)
    return {
      version: require(path.join(dir, 'package.json')).version,
      ...steps(UDPTracker),
      destroy: (t) => t.destory(), // 1.2.0 has only this spelling
      stats: null
    }
  }
  if (impl === 'bittorrent-tracker') {
    const dir = path.join(peersModules, 'bittorrent-tracker')
    const { Client } = await import(pathToFileURL(path.join(dir, 'index.js')).href)
    return {
      version: JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version,
      create: (peerId, infoHash, url, on) => {
        const c = new Client({ infoHash, peerId, announce: [url], port: PORT_ANNOUNCED })
        c.on('update', on.update)
        c.on('error', on.error)
        c.on('warning', on.error) // a failed UDP request is a 'warning' here
        return c
      },
      announce: (c) => c.start({ downloaded: 0, left: 0, uploaded: 0 }),
      destroy: (c) => c.destroy(),
      stats: null
    }
  }
  throw new Error(`no such implementation: ${impl}`)
}

/**
 * The `harness` row: an EventEmitter per instance (its constructor run, as
 * 1.2.0's and bittorrent-tracker's are), and announces answered together on
 * the next turn of the event loop with a new result object each, as a real
 * reply would bring: the cost of the ids, instances, listeners and events
 * that every implementation here pays too, without any request.
 */
function harness () {
  const { EventEmitter } = require('node:events')
  class Harness extends EventEmitter {
    constructor (peerId, infoHash, url, opts) {
      super()
      this.peerId = peerId
      this.infoHash = infoHash
      this.announceUrl = url
      this.opts = opts
      this.destroyed = false
      this.lastOpts = null
    }

    announce (event, opts) {
      this.lastOpts = opts
      if (due.push(this) === 1) setImmediate(answer)
    }
  }
  let due = []
  const answer = () => {
    const answered = due
    due = []
    for (const t of answered) {
      if (!t.destroyed) t.emit('update', { leechers: 0, seeds: 1, peers: [], interval: 120 })
    }
  }
  return {
    version: '-',
    ...steps(Harness),
    destroy: (t) => { t.destroyed = true },
    stats: null
  }
}

/** The first 16 hex digits of the SHA-256 of the addon (the .node file beside package.json). */
function addonHash () {
  const node = fs.readdirSync(ROOT).find((f) => f.endsWith('.node'))
  if (!node) return null
  return crypto.createHash('sha256').update(fs.readFileSync(path.join(ROOT, node))).digest('hex').slice(0, 16)
}

function countFds () {
  return fs.readdirSync('/proc/self/fd').length
}

/**
 * The CPU time of each of this process's threads so far (ms, from
 * /proc/self/task/<tid>/schedstat), by thread id, with its group: 'main' (the
 * JavaScript thread), 'engine' (the addon's: ours's `udp-tracker` thread and
 * napi's `tokio-*` runtime) or 'other' (V8's helper threads, which compile
 * optimized code and help collect garbage, and libuv's). null where there is
 * no /proc (not Linux).
 */
function threadCpu () {
  let tids
  try {
    tids = fs.readdirSync('/proc/self/task')
  } catch {
    return null
  }
  const threads = new Map()
  for (const tid of tids) {
    try {
      const ns = Number(fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0])
      const name = fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()
      const group = Number(tid) === process.pid ? 'main' : name === 'udp-tracker' || name.startsWith('tokio-') ? 'engine' : 'other'
      threads.set(tid, { group, ms: ns / 1e6 })
    } catch {} // the thread ended meanwhile
  }
  return threads
}

/**
 * The CPU ms of each group of threads (see `threadCpu`) since `before`; null
 * without /proc. A thread that ended in between is not counted.
 */
function threadCpuSince (before) {
  const now = threadCpu()
  if (before === null || now === null) return null
  const spent = { main: 0, engine: 0, other: 0 }
  for (const [tid, t] of now) spent[t.group] += t.ms - (before.has(tid) ? before.get(tid).ms : 0)
  return spent
}

/** The UDP sockets of this network namespace: inode → { port, drops }. */
function udpSockets () {
  const sockets = new Map()
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text
    try {
      text = fs.readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 13) continue
      const port = parseInt(f[1].split(':')[1], 16)
      sockets.set(f[9], { port, local: f[1], drops: Number(f[12]) })
    }
  }
  return sockets
}

/** This process's open UDP sockets and the datagrams the kernel dropped at them. */
function ownUdpDrops () {
  const all = udpSockets()
  let count = 0
  let drops = 0
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      continue
    }
    const m = /^socket:\[(\d+)\]$/.exec(target)
    const socket = m && all.get(m[1])
    if (socket) {
      count++
      drops += socket.drops
    }
  }
  return { sockets: count, drops }
}

/** ['UDPWRAP', 'Timeout', 'Timeout'] → 'Timeout×2 UDPWRAP' */
function summarizeResources (list) {
  const counts = new Map()
  for (const name of list) counts.set(name, (counts.get(name) || 0) + 1)
  return [...counts].sort().map(([k, v]) => (v > 1 ? `${k}×${v}` : k)).join(' ')
}

/** The items of `list` left after taking away one of each item of `base`. */
function without (list, base) {
  const left = [...list]
  for (const item of base) {
    const at = left.indexOf(item)
    if (at !== -1) left.splice(at, 1)
  }
  return left
}

function percentile (sorted, p) {
  if (sorted.length === 0) return null
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1]
}

const round = (x, digits = 1) => (x === null || x === undefined ? null : Number(x.toFixed(digits)))
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * One round of the benchmark's steps: `n` instances of `lib` created with the
 * ids in `ids` (40 bytes each), all announcing `started` at once, each one's
 * first event waited for (until the deadline), then all destroyed; CPU time
 * over the whole. `probe.created`, `probe.announced` and `probe.answered`, when
 * given, run after each step (inside the CPU time, outside the step's own).
 */
async function runSteps (lib, ids, n, url, deadlineS, probe) {
  const instances = new Array(n)
  const started = new Float64Array(n)
  const latency = new Float64Array(n).fill(-1)
  let updates = 0
  let errors = 0
  let done = 0
  let lastEventAt = 0
  const errorTexts = new Map()
  let finish = null
  const allDone = new Promise((resolve) => { finish = resolve })
  const settle = (i) => {
    if (latency[i] >= 0) return false // only an instance's first event counts
    lastEventAt = performance.now()
    latency[i] = lastEventAt - started[i]
    if (++done === n) finish()
    return true
  }

  const threads0 = threadCpu()
  const cpu0 = process.cpuUsage()
  const tCreate = performance.now()
  for (let i = 0; i < n; i++) {
    const peerId = ids.subarray(40 * i, 40 * i + 20)
    const infoHash = ids.subarray(40 * i + 20, 40 * i + 40)
    instances[i] = lib.create(peerId, infoHash, url, {
      update: () => { if (settle(i)) updates++ },
      error: (err) => {
        if (!settle(i)) return
        errors++
        const text = String(err && err.message ? err.message : err).slice(0, 200)
        if (errorTexts.size < 5 || errorTexts.has(text)) errorTexts.set(text, (errorTexts.get(text) || 0) + 1)
      }
    })
  }
  const createMs = performance.now() - tCreate
  if (probe.created) probe.created()

  const cpuAnnounce = process.cpuUsage()
  const tAnnounce = performance.now()
  for (let i = 0; i < n; i++) {
    started[i] = performance.now()
    lib.announce(instances[i])
  }
  const announceLoopMs = performance.now() - tAnnounce
  if (probe.announced) probe.announced()

  const deadline = setTimeout(finish, deadlineS * 1000)
  await allDone
  // The process's CPU while the wall time ran (first announce call to last event).
  const cpuWindow = process.cpuUsage(cpuAnnounce)
  clearTimeout(deadline)
  const timedOut = done < n
  const wallMs = (timedOut ? performance.now() : lastEventAt) - tAnnounce
  if (probe.answered) probe.answered()

  for (let i = 0; i < n; i++) lib.destroy(instances[i])
  const cpu = process.cpuUsage(cpu0)
  const threads = threadCpuSince(threads0)
  return { cpu, cpuWindow, threads, createMs, announceLoopMs, wallMs, latency, updates, errors, done, timedOut, errorTexts, first: instances[0] }
}

// One instance of each warm-up round, kept referenced for the process's life (see `child`).
const warmUpResidents = []

/**
 * --warm: the same steps first, `rounds` times, unmeasured, so that the
 * measured round runs in a process whose code is already compiled, as in a
 * long-lived one. With `keep`, one (destroyed) instance of each round stays
 * referenced until the end, as a long-lived process always has some:
 * otherwise the collection before the measured round frees the hidden
 * classes of all of them, and V8 throws away the code it compiled for those
 * ("weak objects") and compiles it again. Without (--keep-none), nothing of
 * the warm-up stays: a program that destroys every instance and collects
 * before its next batch. (A function of its own: a suspended async function
 * keeps what its registers last held, a round's instances among them.)
 */
async function warmUp (lib, n, url, deadlineS, rounds, keep) {
  for (let k = 0; k < rounds; k++) {
    const round = await runSteps(lib, crypto.randomBytes(40 * n), n, url, deadlineS, {})
    if (keep) warmUpResidents.push(round.first)
    await delay(round.timedOut ? 1200 : 100)
  }
}

/** The JSON fields that say how a result was warmed up: the rounds, and (with any) how many left an instance kept. */
function warmFields (warm, keepNone) {
  return warm > 0 ? { warm_rounds: warm, warm_kept: keepNone ? 0 : warm } : { warm_rounds: 0 }
}

async function child ({ impl, n, url }, deadlineS, warm, keepNone) {
  // Open the stdio streams now, so that a library touching them (debug does)
  // does not show up as a handle or descriptor of its own.
  void process.stdout
  void process.stderr
  // 1.2.0 hands socket errors (EMFILE and the like) to console.error, bound
  // when it creates each socket: count them instead of printing thousands.
  const consoleErrors = { count: 0, first: new Map() }
  console.error = (...parts) => {
    consoleErrors.count++
    const text = parts.map((p) => (p instanceof Error ? `${p.code || ''} ${p.message}` : String(p))).join(' ').slice(0, 200)
    if (consoleErrors.first.size < 5 || consoleErrors.first.has(text)) {
      consoleErrors.first.set(text, (consoleErrors.first.get(text) || 0) + 1)
    }
  }
  const uncaught = { count: 0, first: [] }
  process.on('uncaughtException', (err) => {
    uncaught.count++
    if (uncaught.first.length < 3) uncaught.first.push(String(err && err.stack ? err.stack : err).slice(0, 300))
  })

  // Descriptors and handles of a bare Node process, before the library loads.
  const fdsBase = countFds()
  const handlesBase = process.getActiveResourcesInfo()
  const lib = await loadImplementation(impl)
  await warmUp(lib, n, url, deadlineS, warm, !keepNone)
  // What the warm-up logged or threw is not the measured round's.
  consoleErrors.count = 0
  consoleErrors.first.clear()
  uncaught.count = 0
  uncaught.first.length = 0
  // The random ids, made before anything is measured: 20 bytes each.
  const ids = crypto.randomBytes(40 * n)
  if (global.gc) global.gc()
  const rssBase = process.memoryUsage.rss()

  let rssCreated = 0
  let rssAlive = 0
  let engineAlive = null
  let udp = null
  const measured = await runSteps(lib, ids, n, url, deadlineS, {
    created: () => { rssCreated = process.memoryUsage.rss() },
    // Every instance is alive here, with its request in flight or answered.
    announced: () => {
      rssAlive = process.memoryUsage.rss()
      engineAlive = lib.stats ? lib.stats() : null
    },
    // Datagrams the kernel dropped at the sockets this process still has open
    // (ours: the engine's; 1.2.0 and bittorrent-tracker close theirs after
    // each reply, so theirs are gone by now).
    answered: () => { udp = ownUdpDrops() }
  })
  const { cpu, cpuWindow, threads, createMs, announceLoopMs, wallMs, latency, updates, errors, done, timedOut, errorTexts } = measured
  // Let closes and destroy timers (bittorrent-tracker waits up to 1 s for
  // requests still out) run before counting what is left.
  await delay(timedOut ? 1200 : 100)
  const fdsAfter = countFds()
  const handlesAfter = process.getActiveResourcesInfo()
  const engine = lib.stats ? lib.stats() : null

  const lat = Array.from(latency).filter((x) => x >= 0).sort((a, b) => a - b)
  return {
    impl,
    version: lib.version,
    addon_sha256: lib.addon,
    n,
    ...warmFields(warm, keepNone),
    ok: updates,
    errors,
    no_event: n - done,
    create_ms: round(createMs),
    announce_loop_ms: round(announceLoopMs),
    wall_ms: round(wallMs),
    cpu_ms: round((cpu.user + cpu.system) / 1000),
    cpu_user_ms: round(cpu.user / 1000),
    cpu_system_ms: round(cpu.system / 1000),
    // Of cpu_ms, what the process spent from the first announce call to the last event (wall_ms).
    cpu_window_ms: round((cpuWindow.user + cpuWindow.system) / 1000),
    // cpu_ms by thread (Linux): the JS thread, the addon's, and the rest (V8's helpers, libuv).
    cpu_main_ms: threads && round(threads.main),
    cpu_engine_ms: threads && round(threads.engine),
    cpu_other_ms: threads && round(threads.other),
    peak_rss_mb: round(process.resourceUsage().maxRSS / 1024),
    rss_base_mb: round(rssBase / 1048576),
    rss_created_mb: round(rssCreated / 1048576),
    rss_alive_mb: round(rssAlive / 1048576),
    announces_per_s: Math.round(updates / (wallMs / 1000)),
    p50_ms: round(percentile(lat, 50), 2),
    p99_ms: round(percentile(lat, 99), 2),
    max_ms: round(lat.length ? lat[lat.length - 1] : null, 2),
    fds_base: fdsBase,
    fds_after: fdsAfter,
    handles_base: handlesBase.length,
    handles_after: handlesAfter.length,
    handles_after_list: summarizeResources(handlesAfter),
    handles_added: summarizeResources(without(handlesAfter, handlesBase)),
    error_texts: Object.fromEntries(errorTexts),
    console_errors: consoleErrors.count,
    console_error_texts: Object.fromEntries(consoleErrors.first),
    uncaught_exceptions: uncaught.count,
    uncaught_texts: uncaught.first,
    udp_sockets_open_at_end: udp.sockets,
    client_socket_drops: udp.sockets ? udp.drops : null,
    cpu_process_total_ms: round((() => { const c = process.cpuUsage(); return (c.user + c.system) / 1000 })()),
    engine_alive: engineAlive,
    engine
  }
}

// ---------------------------------------------------------------------------
// The tracker

function freeUdpPort () {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4')
    s.once('error', reject)
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

function freeTcpPort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Sends BEP 15 connect requests until the tracker answers one. */
function waitForTracker (port, timeoutMs) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4')
    const tid = crypto.randomBytes(4)
    const packet = Buffer.concat([Buffer.from('0000041727101980', 'hex'), Buffer.alloc(4), tid])
    let timer = null
    const stop = (err) => {
      clearInterval(timer)
      clearTimeout(giveUp)
      s.close()
      if (err) reject(err)
      else resolve()
    }
    const giveUp = setTimeout(() => stop(new Error(`aquatic_udp did not answer on 127.0.0.1:${port}`)), timeoutMs)
    s.on('error', () => {}) // ECONNREFUSED until it is up
    s.on('message', (msg) => {
      if (msg.length === 16 && msg.readUInt32BE(0) === 0 && msg.subarray(4, 8).equals(tid)) stop(null)
    })
    const send = () => s.send(packet, port, '127.0.0.1')
    timer = setInterval(send, 100)
    send()
  })
}

async function startTracker () {
  const bin = await provisionAquatic()
  const port = await freeUdpPort()
  const metricsPort = await freeTcpPort()
  const config = aquaticConfig(bin, {
    '': { socket_workers: 1, log_level: 'error' },
    network: { address: `127.0.0.1:${port}` },
    // Tracker-side request and response counts per run, collected every second.
    statistics: { prometheus_endpoint_address: `127.0.0.1:${metricsPort}`, run_prometheus_endpoint: true, interval: 1 }
  })
  // Every announce is for its own new torrent, so a reply carries no peers:
  // the default max_response_peers (30) is never reached.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'udp-tracker-bench-'))
  const configPath = path.join(dir, 'aquatic.toml')
  fs.writeFileSync(configPath, config)
  const versionOut = spawnSync(bin, ['-v'], { encoding: 'utf8' })
  const proc = spawn(bin, ['-c', configPath], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  proc.stdout.on('data', (d) => { output = (output + d).slice(-4000) })
  proc.stderr.on('data', (d) => { output = (output + d).slice(-4000) })
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })))
  const stopped = { value: false }
  exited.then(({ code, signal }) => {
    if (!stopped.value) console.error(`aquatic_udp exited early (code ${code}, signal ${signal}):\n${output}`)
  })
  try {
    await waitForTracker(port, 10000)
  } catch (err) {
    proc.kill('SIGTERM')
    throw new Error(`${err.message}\n${output}`)
  }
  return {
    port,
    metricsPort,
    url: `udp://127.0.0.1:${port}`,
    pid: proc.pid,
    version: (versionOut.stdout || '').trim() || bin,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    stop: async () => {
      stopped.value = true
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** aquatic's Prometheus counters (best effort: null when not reachable). */
function trackerCounters (metricsPort) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: metricsPort, path: '/metrics', timeout: 2000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => { body += d })
      res.on('end', () => {
        const sum = (re) => {
          let total = 0
          for (const line of body.split('\n')) {
            const m = re.exec(line)
            if (m) total += Number(m[1])
          }
          return total
        }
        resolve({
          requests: sum(/^aquatic_requests_total\{[^}]*\} (\d+)/),
          connect: sum(/^aquatic_responses_total\{type="connect"[^}]*\} (\d+)/),
          announce: sum(/^aquatic_responses_total\{type="announce"[^}]*\} (\d+)/),
          error: sum(/^aquatic_responses_total\{type="error"[^}]*\} (\d+)/)
        })
      })
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(null))
  })
}

// ---------------------------------------------------------------------------
// The parent

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  return (r.status === 0 && Number(r.stdout.trim())) || 100
})()

/** Busy CPU time of the whole machine, in ms (every core). */
function machineBusyMs () {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal …
  const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] || 0)
  return (busy * 1000) / CLK_TCK
}

// A run is "disturbed" when the rest of the machine used more CPU than this
// during it (the clock ticks are 10 ms; an idle machine shows 0–30 ms).
const DISTURBED_MS = 100
const DISTURBED_SHARE = 0.1

/** Waits (at most maxS seconds) until a one-second sample finds the machine ≥ 90 % idle. */
async function waitForIdle (maxS) {
  const until = performance.now() + maxS * 1000
  let said = false
  for (;;) {
    const b0 = machineBusyMs()
    await delay(1000)
    const share = (machineBusyMs() - b0) / (1000 * os.cpus().length)
    if (share <= 0.1) return true
    if (performance.now() > until) {
      console.log(`  (machine still ${(share * 100).toFixed(0)} % busy after ${maxS} s: running anyway)`)
      return false
    }
    if (!said) {
      console.log(`  (machine ${(share * 100).toFixed(0)} % busy: waiting up to ${maxS} s for it to be idle)`)
      said = true
    }
  }
}

/** CPU time of one process (user + system), in ms; null when it is gone. */
function processCpuMs (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK
  } catch {
    return null
  }
}

/** Datagrams the kernel dropped at the tracker's socket so far. */
function trackerSocketDrops (port) {
  let drops = null
  for (const socket of udpSockets().values()) {
    if (socket.port === port) drops = (drops || 0) + socket.drops
  }
  return drops
}

/** Udp RcvbufErrors of the whole network namespace (every socket). */
function rcvbufErrors () {
  const lines = fs.readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'))
  const names = lines[0].split(/\s+/)
  const values = lines[1].split(/\s+/)
  return Number(values[names.indexOf('RcvbufErrors')])
}

async function runChild (impl, n, url, deadlineS, warm, keepNone) {
  const argv = ['--expose-gc', __filename, '--child', impl, String(n), url, '--deadline', String(deadlineS), '--warm', String(warm),
    ...(keepNone ? ['--keep-none'] : [])]
  const { result, stderr, failed } = await runNodeChild(argv, { prefix: RESULT_PREFIX, killAfterS: deadlineS + 60 })
  if (failed !== undefined) return { impl, n, failed }
  if (stderr) result.stderr = stderr.slice(-600)
  return result
}

function runCeiling (binary, n, port, deadlineS) {
  const out = spawnSync(binary, ['--tracker', `127.0.0.1:${port}`, '--n', String(n), '--deadline-s', String(deadlineS)],
    { encoding: 'utf8', timeout: (deadlineS + 30) * 1000 })
  const line = (out.stdout || '').split('\n').find((l) => l.startsWith('{'))
  if (!line) return { impl: 'ceiling', n, failed: `loadgen exited ${out.status}: ${(out.stderr || '').trim().slice(-1500)}` }
  const r = JSON.parse(line)
  return { ...r, impl: 'ceiling', cpu_ms: r.cpu_process_total_ms }
}

function buildLoadgen () {
  console.log('building the ceiling: cargo build --release --example loadgen …')
  const out = spawnSync('cargo', ['build', '--release', '--example', 'loadgen'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'inherit', 'inherit'] })
  if (out.status !== 0) throw new Error('cargo build --release --example loadgen failed')
  const meta = spawnSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: ROOT, encoding: 'utf8' })
  const targetDir = meta.status === 0 ? JSON.parse(meta.stdout).target_directory : path.join(ROOT, 'target')
  return path.join(targetDir, 'release', 'examples', 'loadgen')
}

function peersAvailable (impl) {
  const dir = impl === '1.2.0' ? 'bittorrent-udp-tracker' : 'bittorrent-tracker'
  if (fs.existsSync(path.join(PEERS, 'node_modules', dir, 'package.json'))) return null
  return `bench/peers is not installed (run: cd bench/peers && npm install)`
}

/** A line per N: each implementation's CPU by thread group (see `threadCpu`), where measured. */
function threadLines (rows) {
  const lines = []
  for (const n of [...new Set(rows.map((r) => r.n))]) {
    const parts = rows.filter((r) => r.n === n && r.cpu_main_ms != null)
      .map((r) => `${IMPLS[r.impl].label} ${r.cpu_main_ms} / ${r.cpu_engine_ms} / ${r.cpu_other_ms}`)
    if (parts.length) lines.push(`N ${pad(n, 6)} ${parts.join(',  ')}`)
  }
  return lines
}

/**
 * Lines comparing ours with each peer at each N against issue 11's goals:
 * ≥ 10× the announces/s, ≤ 1/10 of the CPU per announce, ≥ 0.7 of the
 * ceiling, ≤ 1.5 KB of RSS per live instance.
 */
function goalRatios (rows, slopes) {
  const mark = (ok) => (ok ? 'met' : 'NOT met')
  const cpuPer = (r) => (r.cpu_ms != null && r.ok ? r.cpu_ms / r.ok : null)
  const lines = []
  for (const ours of rows.filter((r) => r.impl === 'ours')) {
    for (const peer of rows.filter((r) => r.n === ours.n && (r.impl === '1.2.0' || r.impl === 'bittorrent-tracker'))) {
      const rate = ours.announces_per_s && peer.announces_per_s ? ours.announces_per_s / peer.announces_per_s : null
      const cpu = cpuPer(ours) && cpuPer(peer) ? cpuPer(ours) / cpuPer(peer) : null
      lines.push(`N ${pad(ours.n, 6)} vs ${pad(IMPLS[peer.impl].label, 24, true)} announces/s ${rate === null ? '-' : rate.toFixed(1) + '×'} (goal ≥ 10×: ${mark(rate >= 10)}), ` +
        `CPU per announce ${cpu === null ? '-' : cpu.toFixed(3) + '×'} = ${cpuPer(ours) === null ? '-' : (1000 * cpuPer(ours)).toFixed(1)} µs vs ${cpuPer(peer) === null ? '-' : (1000 * cpuPer(peer)).toFixed(1)} µs (goal ≤ 0.1×: ${mark(cpu !== null && cpu <= 0.1)})`)
    }
    if (ours.fraction_of_ceiling != null) {
      lines.push(`N ${pad(ours.n, 6)} fraction of the Rust ceiling ${ours.fraction_of_ceiling} (goal ≥ 0.7: ${mark(ours.fraction_of_ceiling >= 0.7)})`)
    }
  }
  // What each implementation costs above the harness's own share.
  for (const h of rows.filter((r) => r.impl === 'harness' && cpuPer(r) !== null)) {
    const above = rows.filter((r) => r.n === h.n && r.impl !== 'harness' && r.impl !== 'ceiling' && cpuPer(r) !== null)
      .map((r) => `${IMPLS[r.impl].label} ${(1000 * (cpuPer(r) - cpuPer(h))).toFixed(1)} µs`)
    lines.push(`N ${pad(h.n, 6)} the harness alone ${(1000 * cpuPer(h)).toFixed(1)} µs per announce; above it: ${above.join(', ')}`)
  }
  if (slopes.ours) {
    const b = slopes.ours.bytes_per_instance_alive
    lines.push(`RSS per live instance ${b} B (goal ≤ 1536 B: ${mark(b <= 1536)})`)
  }
  return lines
}

function median (values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const mid = Math.floor(v.length / 2)
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

const MEDIAN_FIELDS = ['ok', 'errors', 'no_event', 'timeouts', 'create_ms', 'wall_ms', 'cpu_ms', 'cpu_window_ms', 'cpu_main_ms', 'cpu_engine_ms', 'cpu_other_ms', 'peak_rss_mb',
  'rss_base_mb', 'rss_created_mb', 'rss_alive_mb', 'announces_per_s', 'p50_ms', 'p99_ms', 'max_ms',
  'fds_base', 'fds_after', 'handles_base', 'handles_after', 'console_errors', 'uncaught_exceptions', 'retransmits',
  'tracker_requests', 'tracker_connect_responses', 'tracker_announce_responses', 'tracker_error_responses',
  'tracker_cpu_ms', 'tracker_socket_drops', 'client_socket_drops', 'udp_rcvbuf_errors_all', 'other_cpu_ms', 'cpu_process_total_ms']

function summarize (impl, n, runs) {
  const good = runs.filter((r) => !r.failed)
  const s = { impl, n, reps: runs.length, failed_reps: runs.length - good.length, disturbed_reps: good.filter((r) => r.disturbed).length }
  for (const f of MEDIAN_FIELDS) {
    if (good.some((r) => typeof r[f] === 'number')) s[f] = round(median(good.map((r) => r[f])), 2)
  }
  if (good.length) {
    s.version = good[0].version
    const addons = [...new Set(good.map((r) => r.addon_sha256).filter(Boolean))]
    if (addons.length) s.addon_sha256 = addons.join(' ')
    for (const f of ['handles_after_list', 'handles_added']) {
      const lists = [...new Set(good.map((r) => r[f]).filter((x) => x !== undefined))]
      if (lists.length) s[f] = lists.join(' | ')
    }
    const texts = {}
    for (const r of good) {
      for (const [k, v] of Object.entries({ ...(r.error_texts || {}), ...(r.console_error_texts || {}) })) texts[k] = (texts[k] || 0) + v
    }
    if (Object.keys(texts).length) s.error_texts = texts
    const engines = good.map((r) => r.engine).filter(Boolean)
    if (engines.length) s.engine_after = engines
  }
  if (runs.some((r) => r.failed)) s.failures = runs.filter((r) => r.failed).map((r) => r.failed)
  return s
}

function machineInfo () {
  const cpus = os.cpus()
  let head = null
  let dirty = null
  const git = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' })
  if (git.status === 0) head = git.stdout.trim()
  const status = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' })
  if (status.status === 0) dirty = status.stdout.trim() !== ''
  let addon = null
  const node = fs.readdirSync(ROOT).find((f) => f.endsWith('.node'))
  if (node) {
    addon = { file: node, sha256: addonHash(), mtime: fs.statSync(path.join(ROOT, node)).mtime.toISOString() }
  }
  return {
    date: new Date().toISOString(),
    nproc: cpus.length,
    cpu: cpus[0] ? cpus[0].model.trim() : 'unknown',
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
    fd_limit: (() => {
      const r = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' })
      return r.status === 0 ? r.stdout.trim() : null
    })(),
    git_head: head,
    git_dirty: dirty,
    addon
  }
}

function pad (s, w, left = false) {
  s = s === null || s === undefined ? '–' : String(s)
  return left ? s.padEnd(w) : s.padStart(w)
}

function printTable (rows) {
  const cols = [
    ['implementation', (r) => IMPLS[r.impl].label + (r.disturbed_reps ? ` *${r.disturbed_reps}` : ''), 24, true],
    ['N', (r) => r.n, 7],
    ['ok', (r) => r.ok, 7],
    ['err', (r) => r.errors, 6],
    ['sock err', (r) => r.console_errors, 8],
    ['no event', (r) => r.no_event ?? r.timeouts, 8],
    ['wall ms', (r) => r.wall_ms, 9],
    ['CPU ms', (r) => r.cpu_ms, 8],
    ['peak RSS MB', (r) => r.peak_rss_mb, 11],
    ['announces/s', (r) => r.announces_per_s, 11],
    ['p50 ms', (r) => r.p50_ms, 8],
    ['p99 ms', (r) => r.p99_ms, 9],
    ['fds after/base', (r) => (r.fds_after === undefined ? null : `${r.fds_after}/${r.fds_base}`), 14],
    ['handles after/base', (r) => (r.handles_after === undefined ? null : `${r.handles_after}/${r.handles_base}`), 18],
    ['handles added', (r) => (r.handles_added === undefined ? null : r.handles_added || 'none'), 14, true]
  ]
  const header = cols.map(([name, , w, left]) => pad(name, w, left)).join('  ')
  console.log(header)
  console.log('-'.repeat(header.length))
  for (const r of rows) {
    if (r.failed_reps === r.reps) {
      console.log(`${pad(IMPLS[r.impl].label, 24, true)}  ${pad(r.n, 7)}  FAILED: ${(r.failures || []).join('; ').slice(0, 300)}`)
      continue
    }
    console.log(cols.map(([, get, w, left]) => pad(get(r), w, left)).join('  '))
  }
}

async function main (args) {
  const info = machineInfo()
  const unavailable = {}
  for (const impl of args.impls) {
    if (impl === '1.2.0' || impl === 'bittorrent-tracker') {
      const why = peersAvailable(impl)
      if (why) unavailable[impl] = why
    }
  }
  const impls = args.impls.filter((i) => !unavailable[i])
  for (const [impl, why] of Object.entries(unavailable)) console.error(`SKIPPED ${IMPLS[impl].label}: ${why}`)
  const loadgen = args.ceiling ? buildLoadgen() : null
  const order = loadgen ? [...impls, 'ceiling'] : impls

  const tracker = await startTracker()
  const stopTracker = async () => { await tracker.stop() }
  process.once('SIGINT', () => { stopTracker().finally(() => process.exit(130)) })
  console.log(`${info.date}  nproc ${info.nproc}  ${info.cpu}  node ${info.node}  fd limit ${info.fd_limit}`)
  console.log(`tracker: aquatic_udp ${tracker.version} on ${tracker.url} (socket_workers = 1)`)
  const load = os.loadavg()[0]
  if (load > 0.5) console.log(`WARNING: the machine is busy before the benchmark (load average ${load.toFixed(2)}): numbers will be disturbed`)
  console.log(`N = ${args.ns.join(', ')}; ${args.reps} repetition(s); deadline ${args.deadlineS} s; order rotates each repetition: ${order.join(', ')}`)
  if (args.warm) console.log(`--warm ${args.warm}: each process runs the same N ${args.warm} time(s) unmeasured first (the ceiling has no warm-up: it is compiled)${args.keepNone ? ', keeping none of its instances' : ''}`)
  console.log('')

  // Tracker-side counts per run: the counters are collected every second.
  const settleMs = 1500
  await delay(settleMs)
  let counters = await trackerCounters(tracker.metricsPort)
  const measure = async (run) => {
    for (let attempt = 1; ; attempt++) {
      if (args.idleWaitS > 0) await waitForIdle(args.idleWaitS)
      const result = await measureOnce(run)
      result.attempt = attempt
      if (!result.disturbed || attempt > args.retryDisturbed) return result
      console.log(`  (disturbed: other processes used ${result.other_cpu_ms} ms of CPU during ${result.run_ms} ms; again)`)
    }
  }
  const measureOnce = async (run) => {
    const t0 = performance.now()
    const busy0 = machineBusyMs()
    const tracker0 = processCpuMs(tracker.pid)
    const drops0 = trackerSocketDrops(tracker.port)
    const rcvbuf0 = rcvbufErrors()
    const result = await run()
    const runMs = performance.now() - t0
    const busy = machineBusyMs() - busy0
    const trackerCpu = processCpuMs(tracker.pid) - tracker0
    result.tracker_cpu_ms = round(trackerCpu)
    result.tracker_socket_drops = drops0 === null ? null : trackerSocketDrops(tracker.port) - drops0
    result.udp_rcvbuf_errors_all = rcvbufErrors() - rcvbuf0
    // CPU the rest of the machine used meanwhile (other processes): a busy
    // machine makes every number here worse.
    const own = result.cpu_process_total_ms ?? result.cpu_ms ?? 0
    result.other_cpu_ms = round(Math.max(0, busy - trackerCpu - own))
    result.run_ms = round(runMs)
    result.disturbed = result.other_cpu_ms > DISTURBED_MS + DISTURBED_SHARE * runMs
    if (counters !== null) {
      await delay(settleMs)
      const now = await trackerCounters(tracker.metricsPort)
      if (now !== null) {
        result.tracker_requests = now.requests - counters.requests
        result.tracker_connect_responses = now.connect - counters.connect
        result.tracker_announce_responses = now.announce - counters.announce
        result.tracker_error_responses = now.error - counters.error
      }
      counters = now
    }
    if (!tracker.alive()) throw new Error('aquatic_udp stopped during the benchmark')
    return result
  }

  const runs = new Map() // `${impl} ${n}` → [result]
  const record = (r) => {
    const key = `${r.impl} ${r.n}`
    if (!runs.has(key)) runs.set(key, [])
    runs.get(key).push(r)
    const status = r.failed
      ? `FAILED ${r.failed.slice(0, 200)}`
      : `ok ${r.ok} err ${r.errors} no-event ${r.no_event ?? r.timeouts} wall ${r.wall_ms} ms ${r.announces_per_s}/s`
    console.log(`  ${pad(IMPLS[r.impl].label, 24, true)} N=${pad(r.n, 6)}  ${status}`)
  }

  let exitCode = Object.keys(unavailable).length ? 1 : 0
  try {
    for (let rep = 0; rep < args.reps; rep++) {
      console.log(`repetition ${rep + 1}/${args.reps}`)
      const rotated = order.map((_, i) => order[(i + rep) % order.length])
      for (const n of args.ns) {
        for (const impl of rotated) {
          record(await measure(() => (impl === 'ceiling'
            ? runCeiling(loadgen, n, tracker.port, args.deadlineS)
            : runChild(impl, n, tracker.url, args.deadlineS, args.warm, args.keepNone))))
        }
      }
    }
    let big = null
    if (args.big) {
      console.log(`N = ${BIG_N}, ours only`)
      big = await measure(() => runChild('ours', BIG_N, tracker.url, args.deadlineS, args.warm, args.keepNone))
      record(big)
    }

    // Medians.
    const rows = []
    for (const impl of order) {
      for (const n of args.ns) {
        const list = runs.get(`${impl} ${n}`)
        if (list) rows.push(summarize(impl, n, list))
      }
    }
    const find = (impl, n) => rows.find((r) => r.impl === impl && r.n === n)
    for (const r of rows) {
      if (r.impl === 'ours') {
        const c = find('ceiling', r.n)
        if (c && c.announces_per_s) r.fraction_of_ceiling = round(r.announces_per_s / c.announces_per_s, 3)
      }
      // The peers may fail at some N (that is a result); ours may not.
      if (r.impl === 'ours' && (r.failed_reps || !(r.ok >= r.n))) exitCode = 1
    }
    // RSS per live instance: the slope between the two largest N (5,000 and
    // 20,000 by default), from the RSS with every instance alive.
    const sortedNs = [...args.ns].sort((a, b) => a - b)
    const slopes = {}
    if (sortedNs.length >= 2) {
      const [lo, hi] = sortedNs.slice(-2)
      for (const impl of impls) {
        const a = find(impl, lo)
        const b = find(impl, hi)
        if (a && b && a.rss_alive_mb != null && b.rss_alive_mb != null) {
          slopes[impl] = {
            from_n: lo,
            to_n: hi,
            bytes_per_instance_alive: Math.round(((b.rss_alive_mb - a.rss_alive_mb) * 1048576) / (hi - lo)),
            bytes_per_instance_created: Math.round(((b.rss_created_mb - a.rss_created_mb) * 1048576) / (hi - lo))
          }
          for (const r of rows.filter((x) => x.impl === impl)) r.rss_per_instance = slopes[impl]
        }
      }
    }

    console.log(`\nMedians of ${args.reps} repetition(s)  (${info.date}, nproc ${info.nproc}, ${info.cpu}, node ${info.node})`)
    console.log('wall ms: first announce call → last event;  CPU ms: process.cpuUsage() over create + announce + destroy, all threads;')
    console.log('fds, handles after/base: open descriptors and process.getActiveResourcesInfo() after destroy / in the bare process;')
    console.log('err: error events (bittorrent-tracker: error + warning);  sock err: socket errors 1.2.0 only logs (console.error), no event follows;')
    console.log('no event: neither update nor error by the deadline\n')
    printTable(rows)
    if (Object.keys(slopes).length) {
      console.log('\nRSS per live instance (slope of RSS between N runs, every instance alive):')
      for (const [impl, s] of Object.entries(slopes)) {
        console.log(`  ${pad(IMPLS[impl].label, 24, true)} N ${s.from_n}→${s.to_n}: ${s.bytes_per_instance_alive} B/instance announcing, ${s.bytes_per_instance_created} B/instance just created`)
      }
    }
    const fractions = rows.filter((r) => r.fraction_of_ceiling != null)
    if (fractions.length) {
      // On a machine of few cores the wall time is bounded by the CPU that
      // ours and the tracker need in it: hence the CPU figures beside it.
      console.log('\nours as a fraction of the ceiling (announces/s); in ours\'s wall time, the CPU ms of ours and of the tracker:')
      for (const r of fractions) {
        const c = find('ceiling', r.n)
        console.log(`  N ${pad(r.n, 6)}: ${r.announces_per_s} / ${c.announces_per_s} = ${r.fraction_of_ceiling};  ` +
          `wall ${r.wall_ms} ms (the ceiling's ${c.wall_ms}), CPU ${r.cpu_window_ms ?? '-'} + ${r.tracker_cpu_ms ?? '-'} ms on ${os.cpus().length} cores`)
      }
    }
    const goals = goalRatios(rows, slopes)
    if (goals.length) {
      console.log(`\nissue 11's goals, as ratios from this run (ours against each peer, same N)${args.warm ? `, after ${args.warm} warm-up round(s) in each process (the goals are set without)` : ''}:`)
      for (const g of goals) console.log(`  ${g}`)
    }
    const byThread = threadLines(rows)
    if (byThread.length) {
      console.log('\nCPU ms by thread, of the CPU ms above (medians): the JS thread / the addon\'s (ours: the engine) / the rest (V8\'s helpers: the optimizing compiler, GC; libuv):')
      for (const l of byThread) console.log(`  ${l}`)
    }
    for (const r of rows.filter((x) => x.impl === 'ours')) {
      const dropped = (r.engine_after || []).map((e) => `${e.droppedShort}/${e.droppedUnknown}/${e.droppedLate}/${e.droppedWrongSource}`)
      console.log(`ours N ${r.n}: stats() dropped short/unknown/late/wrong-source per repetition: ${dropped.join(', ')}; sockets ${(r.engine_after || []).map((e) => e.sockets).join(', ')}`)
    }
    for (const r of rows) {
      if (r.error_texts) console.log(`${IMPLS[r.impl].label} N ${r.n} errors (all repetitions): ${JSON.stringify(r.error_texts).slice(0, 400)}`)
    }
    console.log('\ndatagrams and tracker CPU (medians per run): what the tracker received and answered (aquatic\'s Prometheus')
    console.log('counters), what the kernel dropped at its socket and at ours (/proc/net/udp), and ours\' engine counters')
    console.log(`  ${pad('implementation', 24, true)} ${pad('N', 6)} ${pad('tracker req', 11)} ${pad('connect', 7)} ${pad('announce', 8)} ${pad('drops@tracker', 13)} ${pad('drops@client', 12)} ${pad('sent', 7)} ${pad('received', 8)} ${pad('tracker CPU ms', 14)} ${pad('other CPU ms', 12)}`)
    for (const r of rows) {
      const e = (r.engine_after || [])
      const sent = e.length ? median(e.map((x) => x.sent)) : (r.impl === 'ceiling' ? median(runs.get(`${r.impl} ${r.n}`).map((x) => x.sent)) : null)
      const received = e.length ? median(e.map((x) => x.received)) : (r.impl === 'ceiling' ? median(runs.get(`${r.impl} ${r.n}`).map((x) => x.received)) : null)
      console.log(`  ${pad(IMPLS[r.impl].label, 24, true)} ${pad(r.n, 6)} ${pad(r.tracker_requests, 11)} ${pad(r.tracker_connect_responses, 7)} ${pad(r.tracker_announce_responses, 8)} ${pad(r.tracker_socket_drops, 13)} ${pad(r.client_socket_drops, 12)} ${pad(sent, 7)} ${pad(received, 8)} ${pad(r.tracker_cpu_ms, 14)} ${pad(r.other_cpu_ms, 12)}`)
    }
    const addonsSeen = new Set([...runs.values()].flat().map((r) => r.addon_sha256).filter(Boolean))
    if (addonsSeen.size > 1) console.log(`\nWARNING: the addon changed during the benchmark (SHA-256 ${[...addonsSeen].join(', ')}): ours' repetitions ran different builds`)
    const busyRows = rows.filter((r) => r.disturbed_reps)
    if (busyRows.length) {
      console.log(`\nWARNING (*k in the table): other processes used the CPU during k of the repetitions of ${busyRows.map((r) => `${IMPLS[r.impl].label} N ${r.n}`).join(', ')}: those numbers are disturbed`)
    }
    if (big) {
      if (big.failed) console.log(`\nN = ${BIG_N}, ours: FAILED ${big.failed}`)
      else {
        console.log(`\nN = ${BIG_N}, ours: ok ${big.ok}, errors ${big.errors}, no event ${big.no_event}, wall ${big.wall_ms} ms, ` +
          `${big.announces_per_s}/s, p99 ${big.p99_ms} ms, peak RSS ${big.peak_rss_mb} MB, ` +
          `sockets ${big.engine_alive && big.engine_alive.sockets} (while alive) / ${big.engine && big.engine.sockets} (after destroy), ` +
          `fds ${big.fds_after}/${big.fds_base}`)
        if (big.ok < BIG_N) exitCode = 1
      }
    }

    // JSON lines.
    const lines = rows.map((r) => ({ ...r, runs: runs.get(`${r.impl} ${r.n}`) }))
    if (big) lines.push({ ...summarize('ours', BIG_N, [big]), big: true, sockets_alive: big.engine_alive && big.engine_alive.sockets, runs: [big] })
    const context = { ...info, tracker: tracker.version, deadline_s: args.deadlineS, ...warmFields(args.warm, args.keepNone) }
    fs.mkdirSync(path.dirname(args.out), { recursive: true })
    // Appended, as bench/burst.js does: the file is the history of every run.
    fs.appendFileSync(args.out, lines.map((l) => JSON.stringify({ ...context, ...l })).join('\n') + '\n')
    console.log(`\nappended ${lines.length} lines to ${path.relative(process.cwd(), args.out) || args.out}`)
    for (const [impl, why] of Object.entries(unavailable)) console.log(`SKIPPED ${IMPLS[impl].label}: ${why}`)
  } finally {
    await stopTracker()
  }
  return exitCode
}

// ---------------------------------------------------------------------------

// bench/burst.js reuses the implementations, /proc readers and machine info.
module.exports = {
  findAquatic,
  loadImplementation,
  peersAvailable,
  ownUdpDrops,
  trackerSocketDrops,
  rcvbufErrors,
  processCpuMs,
  percentile,
  machineInfo,
  IMPLS,
  ALIASES
}

if (require.main !== module) {
  // required for its functions (the smoke test, bench/burst.js): run nothing
} else if (process.argv.includes('--child')) {
  const args = parseArgs(process.argv.slice(2))
  child(args.child, args.deadlineS, args.warm, args.keepNone).then((result) => {
    process.stdout.write(RESULT_PREFIX + JSON.stringify(result) + '\n', () => process.exit(0))
  }, (err) => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`, () => process.exit(1))
  })
} else {
  main(parseArgs(process.argv.slice(2))).then((code) => { process.exitCode = code }, (err) => {
    console.error(err && err.stack ? err.stack : err)
    process.exitCode = 1
  })
}
