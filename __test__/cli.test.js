'use strict'
// The udp-tracker CLI end to end: a spawned process against a real aquatic_udp.

const test = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { startAquatic } = require('./helpers/aquatic')

const CLI = path.join(__dirname, '..', 'bin', 'udp-tracker.js')
const hex = (c) => c.repeat(40)

function cli (...args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20000 }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}

let tracker
test.before(async () => { tracker = await startAquatic({ announceInterval: 1234 }) })
test.after(async () => { if (tracker) await tracker.stop() })

test('announce --json prints the tracker reply and exits 0', async () => {
  const first = await cli('announce', tracker.url, hex('a'), '--port', '7001', '--left', '0', '--json')
  assert.equal(first.code, 0, first.stderr)
  // aquatic counts the swarm before adding the announcing peer.
  assert.deepEqual(JSON.parse(first.stdout), { interval: 1234, leechers: 0, seeds: 0, peers: [] })
  // A second peer on the same torrent sees the first one and its port.
  const second = await cli('announce', tracker.url, hex('a'), '--port', '7002', '--left', '10', '--json')
  const reply = JSON.parse(second.stdout)
  assert.equal(reply.seeds, 1)
  assert.equal(reply.leechers, 0)
  assert.deepEqual(reply.peers, ['127.0.0.1:7001'])
})

test('announce prints a table by default', async () => {
  const run = await cli('announce', tracker.url, hex('b'), '--event', 'completed', '--port', '7003')
  assert.equal(run.code, 0, run.stderr)
  const lines = run.stdout.trim().split('\n')
  assert.match(lines[0], /^interval\s+seeders\s+leechers\s+peers$/)
  assert.match(lines[1], /^1234s\s+\d+\s+\d+\s+\d+$/)
})

test('scrape reports counts per hash, from arguments and --file', async () => {
  await cli('announce', tracker.url, hex('c'), '--port', '7004', '--left', '0')
  await cli('announce', tracker.url, hex('c'), '--port', '7005', '--left', '5')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'udp-tracker-cli-'))
  const file = path.join(dir, 'hashes.txt')
  fs.writeFileSync(file, `# torrents\n${hex('d')}\n\n${hex('c')}\n`)
  const run = await cli('scrape', tracker.url, hex('a'), '--file', file, '--json')
  assert.equal(run.code, 0, run.stderr)
  const counts = JSON.parse(run.stdout)
  assert.deepEqual(Object.keys(counts).sort(), [hex('a'), hex('c'), hex('d')])
  assert.deepEqual(counts[hex('c')], { complete: 1, downloaded: 0, incomplete: 1 })
  assert.deepEqual(counts[hex('d')], { complete: 0, downloaded: 0, incomplete: 0 })

  const table = await cli('scrape', tracker.url, hex('c'))
  assert.equal(table.code, 0)
  assert.match(table.stdout, /^infohash\s+seeders\s+completed\s+leechers\n/)
  assert.match(table.stdout, new RegExp(`${hex('c')}\\s+1\\s+0\\s+1`))
})

test('a tracker that does not answer exits 1 with the timeout error', async () => {
  const run = await cli('announce', 'udp://127.0.0.1:9', hex('e'), '--timeout', '10', '--attempts', '2')
  assert.equal(run.code, 1)
  assert.match(run.stderr, /tracker is not responding after:40 \(ERR_TRACKER_TIMEOUT\)/)
})

test('bad usage exits 2 with the usage text', async () => {
  for (const args of [[], ['bogus'], ['announce', tracker.url], ['announce', tracker.url, 'zz'],
    ['announce', tracker.url, hex('a'), '--event', 'paused'], ['announce', tracker.url, hex('a'), '--port', '70000'],
    ['scrape', tracker.url, hex('a'), '--file', '/nonexistent/hashes.txt'], ['announce', tracker.url, hex('a'), '--nope']]) {
    const run = await cli(...args)
    assert.equal(run.code, 2, `${args.join(' ')} → ${run.code}: ${run.stderr}`)
    assert.match(run.stderr, /Usage:/)
  }
})

test('--help and --version', async () => {
  const help = await cli('--help')
  assert.equal(help.code, 0)
  assert.match(help.stdout, /udp-tracker announce <url> <infohash>/)
  const version = await cli('--version')
  assert.equal(version.stdout.trim(), require('../package.json').version)
})
