'use strict'

// Smoke test of the burst benchmark (bench/burst.js): 40 announces from this
// package to each tracker it knows, in their default configuration, as
// `npm run bench:burst -- --n 40 --impl ours` runs it. opentracker is skipped
// where it is not installed and bittorrent-tracker's Server until
// `cd bench/peers && npm install`; the results go to a temporary file, not
// bench/results.jsonl.

const { test, before } = require('node:test')
const assert = require('node:assert')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { provisionAquatic } = require('../scripts/aquatic.js')
const { opentrackerUnavailable } = require('./helpers/opentracker.js')
const { peersAvailable } = require('../bench/run.js')

const BURST = path.join(__dirname, '..', 'bench', 'burst.js')
const N = 40

// Outside the test's time limit: the first run on a machine builds aquatic_udp.
let aquatic
before(async () => { aquatic = await provisionAquatic() })

test(`bench smoke: node bench/burst.js --n ${N} --impl ours`, { timeout: 60000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'burst-smoke-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const out = path.join(dir, 'results.jsonl')
  const expected = ['aquatic']
  if (!opentrackerUnavailable()) expected.unshift('opentracker')
  if (!peersAvailable('bittorrent-tracker')) expected.splice(expected.length - 1, 0, 'bt-server')

  const { code, stdout, stderr } = await new Promise((resolve) => {
    execFile(process.execPath, [BURST, '--n', String(N), '--cap', '30', '--impl', 'ours', '--tracker', expected.join(','), '--out', out],
      { cwd: path.join(__dirname, '..'), env: { ...process.env, AQUATIC_UDP: aquatic }, timeout: 55000 },
      (err, stdout, stderr) => resolve({ code: err ? err.code ?? err.signal : 0, stdout, stderr }))
  })
  assert.strictEqual(code, 0, `bench/burst.js failed (${code}):\n${stdout}\n${stderr}`)

  const lines = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  assert.deepStrictEqual(lines.map((l) => [l.bench, l.tracker, l.impl]), expected.map((tr) => ['burst', tr, 'ours']))
  for (const r of lines) {
    assert.strictEqual(r.n, N)
    assert.strictEqual(r.answered, N, `${r.tracker}: ${JSON.stringify(r.error_texts)}`)
    assert.strictEqual(r.errors, 0)
    assert.strictEqual(r.capped, false)
    assert.ok(r.p50_ms <= r.p90_ms && r.p90_ms <= r.p99_ms && r.p99_ms <= r.max_ms, JSON.stringify(r))
    // One connect, then the cached connection id: N + 1, more only if something was dropped.
    assert.ok(r.sent >= N + 1, `sent ${r.sent}`)
    assert.strictEqual(r.engine.sockets, 1)
    assert.ok(Number.isInteger(r.tracker_socket_drops) && r.tracker_socket_drops >= 0, `drops ${r.tracker_socket_drops}`)
    assert.ok(typeof r.load_before === 'number' && typeof r.load_after === 'number')
    // The table's row for this tracker says N/N.
    assert.match(stdout, new RegExp(`ours \\(2\\.0\\.0\\)\\s+${N}/${N}\\s`))
  }
})
