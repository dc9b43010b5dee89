'use strict'

// The benchmarks' command lines (bench/args.js): a bad argument is named,
// with the usage, and exits 2 before anything starts; --help prints the
// usage and exits 0. No tracker is started.

const { test } = require('node:test')
const assert = require('node:assert')
const { execFile } = require('node:child_process')
const path = require('node:path')

const BENCH = path.join(__dirname, '..', 'bench')

function run (script, args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(BENCH, script), ...args], { timeout: 20000 },
      (err, stdout, stderr) => resolve({ code: err ? err.code ?? err.signal : 0, stdout, stderr }))
  })
}

const BAD = [
  ['run.js', ['--n', '100,0'], /^run\.js: --n must be a positive integer, got 0$/m],
  ['run.js', ['--reps', '2x'], /^run\.js: --reps must be a positive integer, got 2x$/m],
  ['run.js', ['--impl', 'ours,nope'], /^run\.js: unknown --impl value nope: ours, 1\.2\.0, bittorrent-tracker, harness$/m],
  ['run.js', ['stray'], /^run\.js: unknown argument stray$/m],
  ['run.js', ['--warm', 'x'], /^run\.js: --warm must be an integer ≥ 0, got x$/m],
  ['run.js', ['--keep-none'], /^run\.js: --keep-none is about the warm-up: it needs --warm$/m],
  ['client.js', ['--n'], /^client\.js: Option '--n <value>' argument missing/m],
  ['client.js', ['--deadline', '-5'], /^client\.js: .*--deadline/m],
  ['client.js', ['--impl', 'webtorrent'], /^client\.js: unknown --impl value webtorrent: ours, bittorrent-tracker, floor$/m],
  ['burst.js', ['--cap', '0'], /^burst\.js: --cap must be a positive integer, got 0$/m],
  ['burst.js', ['--tracker', 'opentracker,udp'], /^burst\.js: unknown --tracker value udp: opentracker, bt-server, aquatic$/m],
  ['burst.js', ['--bogus'], /^burst\.js: Unknown option '--bogus'/m],
  ['proxy.js', ['--reps', '0'], /^proxy\.js: --reps must be a positive integer, got 0$/m]
]

for (const [script, args, message] of BAD) {
  test(`bench/${script} ${args.join(' ')}: exits 2 naming the argument, with the usage`, async () => {
    const { code, stdout, stderr } = await run(script, args)
    assert.strictEqual(code, 2, stderr)
    assert.match(stderr, message)
    assert.match(stderr, /Usage|usage|node bench\//, 'the usage follows the message')
    assert.strictEqual(stdout, '')
  })
}

for (const script of ['run.js', 'client.js', 'burst.js', 'proxy.js']) {
  test(`bench/${script} --help: the usage from the file's header, exit 0`, async () => {
    const { code, stdout, stderr } = await run(script, ['--help'])
    assert.strictEqual(code, 0, stderr)
    assert.match(stdout, new RegExp(`node bench/${script.replace('.', '\\.')}`))
    assert.doesNotMatch(stdout, /^\/\//m, 'comment slashes are stripped')
  })
}
