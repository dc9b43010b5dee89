#!/usr/bin/env node
'use strict'

// Benchmark: announces/s through a SOCKS5 proxy (Debian's danted, UDP
// ASSOCIATE) against direct, in the same run, to aquatic_udp on loopback.
//
// Each run is a child process that creates N instances with random info
// hashes, announces `started` from all of them at once, waits for every
// `update` or `error`, and destroys them; the clock runs from the first
// announce to the last event, so a proxied run includes setting up its
// association. Direct and proxied runs alternate; the table shows medians.
//
//   node bench/proxy.js                  # N = 1000, 5000; 3 repetitions
//   node bench/proxy.js --n 200 --reps 1
//
// Needs aquatic_udp (as the tests: $AQUATIC_UDP, PATH or ~/.cargo/bin) and
// /usr/sbin/danted (apt-get install dante-server). Only loopback is used.

const { execFileSync } = require('node:child_process')
const crypto = require('node:crypto')
const path = require('node:path')
const { CommandLine } = require('./args.js')
const { performance } = require('node:perf_hooks')

const ROOT = path.resolve(__dirname, '..')

async function child ([mode, n, trackerUrl, proxyUrl]) {
  const UdpTracker = require(ROOT)
  const N = Number(n)
  const opts = mode === 'proxy' ? { proxy: proxyUrl, _timeout: 1000 } : { _timeout: 1000 }
  const cpu = process.cpuUsage()
  const start = performance.now()
  let ok = 0
  await Promise.all(Array.from({ length: N }, (_, i) => new Promise((resolve) => {
    const t = new UdpTracker(crypto.randomBytes(20), crypto.randomBytes(20), trackerUrl, { port: 1 + (i % 60000), ...opts })
    t.on('update', () => { ok++; t.destroy(); resolve() })
    t.on('error', () => { t.destroy(); resolve() })
    t.announce('started', { left: 1 })
  })))
  const ms = performance.now() - start
  const used = process.cpuUsage(cpu)
  const stats = UdpTracker.stats()
  process.stdout.write(JSON.stringify({
    mode, n: N, ok, ms, perSecond: N / (ms / 1000), cpuMs: (used.user + used.system) / 1000,
    sent: mode === 'proxy' ? stats.proxy.sent : stats.sent
  }) + '\n')
}

async function main () {
  const cli = new CommandLine(__filename, process.argv.slice(2), { n: { type: 'string' }, reps: { type: 'string' } })
  const ns = cli.positiveInts(cli.values.n, '--n', [1000, 5000])
  const reps = cli.positiveInt(cli.values.reps, '--reps', 3)
  const { startAquatic } = require('../__test__/helpers/aquatic')
  const { startDanted } = require('../__test__/helpers/danted')
  const tracker = await startAquatic()
  const proxy = await startDanted()
  const rows = []
  try {
    for (const n of ns) {
      const runs = { direct: [], proxy: [] }
      for (let r = 0; r < reps; r++) {
        for (const mode of r % 2 === 0 ? ['direct', 'proxy'] : ['proxy', 'direct']) {
          const out = execFileSync(process.execPath, [__filename, '--child', mode, String(n), tracker.url, proxy.url],
            { encoding: 'utf8', timeout: 120000 })
          runs[mode].push(JSON.parse(out.trim()))
        }
      }
      for (const mode of ['direct', 'proxy']) {
        const median = (key) => runs[mode].map((x) => x[key]).sort((a, b) => a - b)[Math.floor(runs[mode].length / 2)]
        rows.push({ mode, n, ok: median('ok'), perSecond: Math.round(median('perSecond')), cpuMs: Math.round(median('cpuMs')), sent: median('sent') })
      }
    }
  } finally {
    await proxy.stop()
    await tracker.stop()
  }
  console.log('| mode | N | ok | announces/s | CPU ms (this process) | datagrams sent |')
  console.log('|---|---:|---:|---:|---:|---:|')
  for (const r of rows) console.log(`| ${r.mode} | ${r.n} | ${r.ok} | ${r.perSecond} | ${r.cpuMs} | ${r.sent} |`)
  for (const n of ns) {
    const [d, p] = ['direct', 'proxy'].map((m) => rows.find((r) => r.mode === m && r.n === n))
    console.log(`N = ${n}: through danted ${(p.perSecond / d.perSecond).toFixed(2)}× the announces/s of direct`)
  }
}

if (process.argv[2] === '--child') child(process.argv.slice(3))
else main().catch((err) => { console.error(err); process.exitCode = 1 })
