'use strict'

// Smoke test of the benchmark (bench/run.js): 50 announces from this package
// to a real aquatic_udp on loopback, in a child process, as `npm run
// bench:smoke` runs it, with the harness row. Needs neither bench/peers nor the
// Rust ceiling (--impl ours,harness --no-ceiling); the results go to a temporary file, not
// bench/results.jsonl.

const { test, before } = require('node:test')
const assert = require('node:assert')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { provisionAquatic } = require('../scripts/aquatic.js')

const RUN = path.join(__dirname, '..', 'bench', 'run.js')

// Outside the test's 30 s: the first run on a machine builds aquatic_udp.
let aquatic
before(async () => { aquatic = await provisionAquatic() })

/** `node bench/run.js ...args` with its JSON lines going to `out`: its exit code and output. */
function runBench (args, out) {
  return new Promise((resolve) => {
    execFile(process.execPath, [RUN, ...args],
      { cwd: path.join(__dirname, '..'), env: { ...process.env, AQUATIC_UDP: aquatic, BENCH_OUT: out }, timeout: 25000 },
      (err, stdout, stderr) => resolve({ code: err ? err.code ?? err.signal : 0, stdout, stderr }))
  })
}

test('bench smoke: node bench/run.js --n 50 --reps 1 --impl ours,harness --no-ceiling', { timeout: 30000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const out = path.join(dir, 'results.jsonl')

  const { code, stdout, stderr } = await runBench(['--n', '50', '--reps', '1', '--impl', 'ours,harness', '--no-ceiling'], out)
  assert.strictEqual(code, 0, `bench/run.js failed (${code}):\n${stdout}\n${stderr}`)

  // The table's row for ours: implementation (with ' *1' when other processes
  // disturbed the run), N, ok, errors.
  assert.match(stdout, /^ours \(2\.0\.0\)(?: \*\d+)?\s+50\s+50\s+0\s/m, stdout)

  const lines = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  assert.strictEqual(lines.length, 2)
  const ours = lines.find((l) => l.impl === 'ours')
  assert.strictEqual(ours.impl, 'ours')
  assert.strictEqual(ours.n, 50)
  assert.strictEqual(ours.ok, 50)
  assert.strictEqual(ours.errors, 0)
  assert.strictEqual(ours.no_event, 0)
  assert.ok(ours.announces_per_s > 0)
  // The CPU of the wall time's window is part of the whole round's.
  assert.ok(ours.cpu_window_ms > 0 && ours.cpu_window_ms <= ours.cpu_ms, `window ${ours.cpu_window_ms} ms of ${ours.cpu_ms}`)
  // Every instance shares the engine's one IPv4 socket.
  assert.strictEqual(ours.engine_after[0].sockets, 1)

  // The harness row (marked as ours's is when disturbed): every instance
  // answered without a request, and the line that sets ours against it.
  const harness = lines.find((l) => l.impl === 'harness')
  assert.strictEqual(harness.ok, 50)
  assert.strictEqual(harness.errors, 0)
  assert.strictEqual(harness.tracker_requests, 0)
  assert.match(stdout, /^harness \(no I\/O\)(?: \*\d+)?\s+50\s+50\s+0\s/m, stdout)
  assert.match(stdout, /N +50 the harness alone [0-9.]+ µs per announce; above it: ours \(2\.0\.0\) -?[0-9.]+ µs/, stdout)

  // The same CPU by thread (Linux's /proc): ours's engine thread did the
  // sending, the harness has none, and the groups add up to the process's CPU
  // (both read over the same window; schedstat and getrusage round apart).
  if (process.platform === 'linux') {
    for (const row of [ours, harness]) {
      const sum = row.cpu_main_ms + row.cpu_engine_ms + row.cpu_other_ms
      assert.ok(row.cpu_main_ms > 0, `${row.impl}: main ${row.cpu_main_ms}`)
      assert.ok(Math.abs(sum - row.cpu_ms) <= 5 + row.cpu_ms / 4, `${row.impl}: threads ${sum} ms, process ${row.cpu_ms} ms`)
    }
    assert.ok(ours.cpu_engine_ms > 0, `ours: engine ${ours.cpu_engine_ms}`)
    assert.strictEqual(harness.cpu_engine_ms, 0)
    assert.match(stdout, /^ {2}N +50 ours \(2\.0\.0\) [0-9.]+ \/ [0-9.]+ \/ [0-9.]+, {2}harness \(no I\/O\) [0-9.]+ \/ 0 \/ [0-9.]+$/m, stdout)
  }
})

test('bench smoke: --warm 1 runs the same N once, unmeasured, in the measured process', { timeout: 30000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const out = path.join(dir, 'results.jsonl')

  const { code, stdout, stderr } = await runBench(['--n', '50', '--reps', '1', '--impl', 'ours', '--no-ceiling', '--warm', '1'], out)
  assert.strictEqual(code, 0, `bench/run.js failed (${code}):\n${stdout}\n${stderr}`)
  assert.match(stdout, /^--warm 1: each process runs the same N 1 time\(s\) unmeasured first/m, stdout)
  assert.match(stdout, /^ours \(2\.0\.0\)(?: \*\d+)?\s+50\s+50\s+0\s/m, stdout)

  const [ours] = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  assert.strictEqual(ours.warm_rounds, 1)
  assert.strictEqual(ours.runs[0].warm_rounds, 1)
  assert.strictEqual(ours.warm_kept, 1)
  assert.strictEqual(ours.ok, 50)
  // The engine's counters span the process: the warm-up's 50 announces and
  // their connect went out before the measured round's.
  assert.ok(ours.engine_after[0].sent >= 2 * 51, `sent ${ours.engine_after[0].sent}`)
})

test('bench smoke: --warm 1 --keep-none keeps none of the warm-up\'s instances referenced, and says so', { timeout: 30000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const out = path.join(dir, 'results.jsonl')

  const { code, stdout, stderr } = await runBench(['--n', '50', '--reps', '1', '--impl', 'ours', '--no-ceiling', '--warm', '1', '--keep-none'], out)
  assert.strictEqual(code, 0, `bench/run.js failed (${code}):\n${stdout}\n${stderr}`)
  assert.match(stdout, /^--warm 1: each process runs the same N 1 time\(s\) unmeasured first .*, keeping none of its instances$/m, stdout)
  const [ours] = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  assert.strictEqual(ours.warm_kept, 0)
  assert.strictEqual(ours.runs[0].warm_kept, 0)
  assert.strictEqual(ours.ok, 50)
})
