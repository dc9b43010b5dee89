'use strict'

// Smoke test of the Client benchmark (bench/client.js): 20 torrents × 5
// aquatic_udp processes, ours and the floor (bare UdpTrackers), in child
// processes, as `npm run bench:client` runs them. Needs no bench/peers; the
// results go to BENCH_OUT, a temporary file, not bench/client-results.jsonl.

const { test, before } = require('node:test')
const assert = require('node:assert')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { provisionAquatic } = require('../scripts/aquatic.js')

const BENCH = path.join(__dirname, '..', 'bench', 'client.js')
const DEFAULT_OUT = path.join(__dirname, '..', 'bench', 'client-results.jsonl')

// Outside the test's time: the first run on a machine builds aquatic_udp.
let aquatic
before(async () => { aquatic = await provisionAquatic() })

function size (file) {
  return fs.existsSync(file) ? fs.statSync(file).size : 0
}

test('bench/client.js --n 20 --impl ours,floor: every announce answered, results in BENCH_OUT', { timeout: 60000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-client-smoke-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const out = path.join(dir, 'results.jsonl')
  const defaultSize = size(DEFAULT_OUT)

  const { code, stdout, stderr } = await new Promise((resolve) => {
    execFile(process.execPath, [BENCH, '--n', '20', '--reps', '1', '--impl', 'ours,floor', '--deadline', '30'],
      { cwd: path.join(__dirname, '..'), env: { ...process.env, AQUATIC_UDP: aquatic, BENCH_OUT: out }, timeout: 55000 },
      (err, stdout, stderr) => resolve({ code: err ? err.code ?? err.signal : 0, stdout, stderr }))
  })
  assert.strictEqual(code, 0, `bench/client.js failed (${code}):\n${stdout}\n${stderr}`)

  // The table: implementation, N, announces, ok, warn, lost.
  assert.match(stdout, /^ours\s+20\s+100\s+100\s+0\s+0\s/m, stdout)
  assert.match(stdout, /^floor\s+20\s+100\s+100\s+0\s+0\s/m, stdout)

  const lines = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  assert.deepStrictEqual(lines.map((r) => r.impl).sort(), ['floor', 'ours'])
  for (const r of lines) {
    assert.strictEqual(r.n, 20)
    assert.strictEqual(r.ok, 100)
    assert.ok(r.cpu_ms > 0 && r.wall_ms > 0, JSON.stringify(r))
  }
  assert.strictEqual(size(DEFAULT_OUT), defaultSize, 'nothing was appended to bench/client-results.jsonl')
})
