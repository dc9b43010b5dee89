'use strict'
// The udp-tracker CLI end to end, as a spawned process: usage and argument
// errors (no tracker started), a silent tracker (the deadline), the bytes it
// sends (a scripted tracker), and a real aquatic_udp in its default
// configuration.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const dgram = require('node:dgram')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const UdpTracker = require('..')
const { startAquatic } = require('./helpers/aquatic')
const { serverFor } = require('./helpers/script-server')

const CLI = path.join(__dirname, '..', 'bin', 'udp-tracker.js')
const hex = (c) => c.repeat(40)
const NOWHERE = 'udp://127.0.0.1:9' // never reached: every case using it fails before sending

/** Runs the CLI; resolves to { code, stdout, stderr, ms }. */
function cli (...args) {
  const started = Date.now()
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60000 }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code ?? err.signal : 0, stdout, stderr, ms: Date.now() - started })
    })
  })
}

function tempFile (t, name, text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'udp-tracker-cli-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, name)
  fs.writeFileSync(file, text)
  return file
}

/** A UDP socket on loopback that never answers: a dead tracker. */
async function silentTracker (t) {
  const socket = dgram.createSocket('udp4')
  await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve))
  t.after(() => socket.close())
  return `udp://127.0.0.1:${socket.address().port}`
}

describe('without a tracker', () => {
  it('--help lists every flag; --version prints the version', async () => {
    const help = await cli('--help')
    assert.equal(help.code, 0)
    for (const text of ['udp-tracker announce <url> <infohash>', 'udp-tracker scrape <url>', '--timeout MS',
      '--retransmit-timeout MS', '--attempts N', '--stay', '--peer-id ID', '--num-want N', '--json', '-BU2000-']) {
      assert.ok(help.stdout.includes(text), `--help lacks ${text}`)
    }
    assert.equal((await cli('announce', '--help')).stdout, help.stdout)
    const version = await cli('--version')
    assert.equal(version.code, 0)
    assert.equal(version.stdout.trim(), require('../package.json').version)
  })

  it('bad usage exits 2 with a message naming the flag, and the usage lines', async (t) => {
    const file = tempFile(t, 'hashes.txt', `# torrents\n${hex('a')}\n\nnot-a-hash\n`)
    const cases = [
      [[], /no command given/],
      [['bogus'], /unknown command 'bogus'/],
      [['announce', NOWHERE], /announce takes <url> <infohash>/],
      [['announce', NOWHERE, 'zz'], /<infohash> is not a 40-character hex info hash: 'zz'/],
      [['announce', NOWHERE, hex('a'), '--event', 'paused'], /--event must be started, completed, stopped or none, got 'paused'/],
      [['announce', NOWHERE, hex('a'), '--port', '70000'], /--port must be an integer from 0 to 65535, got '70000'/],
      [['announce', NOWHERE, hex('a'), '--num-want', '-2'], /--num-want must be an integer from -1/],
      [['announce', NOWHERE, hex('a'), '--peer-id', '-qB4500-abcdefghijklm'], /--peer-id must be 1 to 20 bytes, got 21/],
      [['announce', NOWHERE, hex('a'), '--stay'], /--stay needs --port/],
      [['announce', NOWHERE, hex('a'), '--timeout', '0'], /--timeout must be an integer from 1/],
      [['announce', NOWHERE, hex('a'), '--retransmit-timeout', 'soon'], /--retransmit-timeout must be an integer/],
      [['announce', NOWHERE, hex('a'), '--attempts', '9'], /--attempts must be an integer from 1 to 8/],
      [['announce', 'http://127.0.0.1:9', hex('a')], /<url> must be a udp:\/\/ URL/],
      [['announce', 'udp://127.0.0.1:0', hex('a')], /<url> port must be from 1 to 65535/],
      [['announce', NOWHERE, hex('a'), '--nope'], /Unknown option '--nope'/],
      [['scrape', NOWHERE, hex('a'), '--event', 'started'], /Unknown option '--event'/],
      [['scrape', NOWHERE], /scrape needs at least one <infohash> or --file/],
      [['scrape', NOWHERE, '--file', '/nonexistent/hashes.txt'], /cannot read --file \/nonexistent\/hashes.txt/],
      [['scrape', NOWHERE, '--file', file], new RegExp(`--file ${file.replace(/[.\\]/g, '\\$&')}:4: is not a 40-character hex info hash: 'not-a-hash'`)]
    ]
    for (const [args, message] of cases) {
      const run = await cli(...args)
      assert.equal(run.code, 2, `${args.join(' ')} → ${run.code}: ${run.stderr}`)
      assert.match(run.stderr, message, args.join(' '))
      assert.match(run.stderr, /Usage:\n {2}udp-tracker announce/)
      assert.doesNotMatch(run.stderr, /params\.|options\.|announceUrl/, 'names the library\'s parameters')
      assert.equal(run.stdout, '')
    }
  })

  it('with --json, a failure is one JSON document on stdout', async () => {
    const run = await cli('announce', NOWHERE, hex('a'), '--port', '-5', '--json')
    assert.equal(run.code, 2)
    assert.equal(run.stderr, '')
    assert.deepEqual(JSON.parse(run.stdout), {
      error: { code: 'ERR_USAGE', message: "--port must be an integer from 0 to 65535, got '-5'" }
    })
    const unknown = await cli('scrape', NOWHERE, hex('a'), '--json', '--bogus')
    assert.equal(unknown.code, 2)
    assert.equal(JSON.parse(unknown.stdout).error.code, 'ERR_USAGE')
  })
})

describe('a tracker that answers the connect but not the announce', () => {
  // The announce may have reached the tracker and only its reply been lost:
  // the probe still leaves no peer behind.
  it('announce sends stopped as the same peer, then exits 1 with the timeout', async (t) => {
    const server = await serverFor(t)
    server.onAnnounce = () => null
    const run = await cli('announce', server.url, hex('f'), '--timeout', '1500', '--port', '6881')
    assert.equal(run.code, 1, run.stderr)
    assert.match(run.stderr, /^udp-tracker: no answer from the tracker within --timeout 1500 ms \(ERR_TRACKER_TIMEOUT\)\n$/)
    const started = server.announces.filter((a) => a.event === 2)
    const stopped = server.announces.filter((a) => a.event === 3)
    assert.ok(started.length >= 1, 'the started announce was sent')
    assert.ok(stopped.length >= 1, 'a stopped announce followed')
    assert.ok(stopped[0].index > started[started.length - 1].index, 'after the last started')
    for (const field of ['peerId', 'infoHash']) assert.deepEqual(stopped[0][field], started[0][field], field)
    assert.equal(stopped[0].key, started[0].key)
    assert.equal(stopped[0].port, 6881)
    // At most about a second more than --timeout.
    assert.ok(run.ms < 1500 + 1000 + 1500, `took ${run.ms} ms`)
  })

  it('--stay, or a tracker that never answered, gets no stopped', async (t) => {
    const half = await serverFor(t)
    half.onAnnounce = () => null
    const stay = await cli('announce', half.url, hex('f'), '--timeout', '1000', '--port', '6881', '--stay')
    assert.equal(stay.code, 1, stay.stderr)
    assert.ok(half.announces.length >= 1)
    assert.deepEqual(half.announces.filter((a) => a.event === 3), [])

    const dead = await serverFor(t)
    dead.onConnect = () => null
    const run = await cli('announce', dead.url, hex('f'), '--timeout', '1000')
    assert.equal(run.code, 1, run.stderr)
    assert.ok(dead.connects.length >= 1)
    assert.deepEqual(dead.announces, [], 'nothing but connects: the tracker cannot know the peer')
  })
})

describe('a tracker that does not answer', () => {
  it('with the default flags, announce gives up at the 15 s deadline and exits 1', async (t) => {
    const url = await silentTracker(t)
    const run = await cli('announce', url, hex('e'))
    assert.equal(run.code, 1, run.stderr)
    assert.equal(run.stdout, '')
    assert.match(run.stderr, /^udp-tracker: no answer from the tracker within --timeout 15000 ms \(ERR_TRACKER_TIMEOUT\)\n$/)
    assert.ok(run.ms >= 14000, `gave up after ${run.ms} ms`)
  })

  it('--timeout sets the deadline, and with --json the failure is JSON', async (t) => {
    const url = await silentTracker(t)
    const run = await cli('scrape', url, hex('e'), '--timeout', '1500', '--json')
    assert.equal(run.code, 1)
    assert.equal(run.stderr, '')
    assert.deepEqual(JSON.parse(run.stdout), {
      error: { code: 'ERR_TRACKER_TIMEOUT', message: 'no answer from the tracker within --timeout 1500 ms' }
    })
  })

  it('--retransmit-timeout and --attempts set the retransmissions, which can end first', async (t) => {
    const url = await silentTracker(t)
    const run = await cli('announce', url, hex('e'), '--retransmit-timeout', '10', '--attempts', '2')
    assert.equal(run.code, 1)
    // Two sends, then the last wait: 10 · 2^2 ms.
    assert.match(run.stderr, /no answer from the tracker after every retransmission \(--attempts, --retransmit-timeout\): tracker is not responding after:40 \(ERR_TRACKER_TIMEOUT\)/)
  })
})

describe('what announce sends (a scripted tracker)', () => {
  it('an Azureus-style --peer-id and --num-want -1 are taken as values; stopped follows the answer', async (t) => {
    const server = await serverFor(t)
    const run = await cli('announce', server.url, hex('1'), '--peer-id', '-qB4500-abcdefghijkl', '--num-want', '-1',
      '--port', '7000', '--left', '5', '--json')
    assert.equal(run.code, 0, run.stderr)
    assert.deepEqual(JSON.parse(run.stdout), { interval: 1800, leechers: 0, seeds: 0, peers: [] })
    const [first, second, ...more] = server.announces
    assert.equal(more.length, 0)
    assert.equal(first.event, 2) // started
    assert.equal(first.peerId.toString(), '-qB4500-abcdefghijkl')
    assert.equal(first.numWant, -1)
    assert.equal(first.port, 7000)
    assert.equal(first.left, 5n)
    assert.equal(first.infoHash.toString('hex'), hex('1'))
    // The same peer leaves: same id, key and port.
    assert.equal(second.event, 3) // stopped
    assert.deepEqual(second.peerId, first.peerId)
    assert.equal(second.key, first.key)
    assert.equal(second.port, first.port)
    assert.deepEqual(second.infoHash, first.infoHash)
  })

  it('by default the peer id is this package\'s -BU2000- and 12 random characters, the port a random one', async (t) => {
    const server = await serverFor(t)
    assert.equal((await cli('announce', server.url, hex('2'))).code, 0)
    assert.equal((await cli('announce', server.url, hex('2'))).code, 0)
    const ids = server.announces.map((a) => a.peerId.toString('latin1'))
    assert.equal(ids.length, 4)
    for (const id of ids) assert.match(id, /^-BU2000-[0-9A-Za-z]{12}$/)
    assert.notEqual(ids[0], ids[2], 'each run has its own peer id')
    assert.deepEqual(server.announces.map((a) => [a.event, a.left]), [[2, 0n], [3, 0n], [2, 0n], [3, 0n]])
    const ports = server.announces.map((a) => a.port)
    for (const port of ports) assert.ok(port >= 49152 && port <= 65535, `port ${port}`)
    assert.equal(ports[1], ports[0])
    assert.equal(ports[3], ports[2])
    // A shorter --peer-id is a prefix.
    assert.equal((await cli('announce', server.url, hex('2'), '--peer-id', '-XX0001-', '--stay', '--port', '1')).code, 0)
    assert.match(server.announces[4].peerId.toString('latin1'), /^-XX0001-[0-9A-Za-z]{12}$/)
  })

  it('--stay and --event stopped send one announce', async (t) => {
    const server = await serverFor(t)
    assert.equal((await cli('announce', server.url, hex('3'), '--stay', '--port', '7001')).code, 0)
    assert.equal((await cli('announce', server.url, hex('3'), '--event', 'stopped', '--port', '7001')).code, 0)
    assert.deepEqual(server.announces.map((a) => [a.event, a.port]), [[2, 7001], [3, 7001]])
  })

  it('a tracker error exits 1 with its message; with --json as JSON', async (t) => {
    const server = await serverFor(t)
    const { errorReply } = require('./helpers/script-server')
    server.onAnnounce = (req) => errorReply(req.transactionId, 'torrent not registered')
    const run = await cli('announce', server.url, hex('4'))
    assert.equal(run.code, 1)
    assert.equal(run.stderr, 'udp-tracker: torrent not registered (ERR_TRACKER_ERROR)\n')
    const json = await cli('announce', server.url, hex('4'), '--json')
    assert.equal(json.code, 1)
    assert.deepEqual(JSON.parse(json.stdout), { error: { code: 'ERR_TRACKER_ERROR', message: 'torrent not registered' } })
  })
})

describe('against aquatic_udp in its default configuration', () => {
  let tracker
  before(async () => { tracker = await startAquatic() })
  after(async () => { if (tracker) await tracker.stop() })

  /** The swarm of `hash` as another client sees it. */
  async function swarm (hash) {
    return (await UdpTracker.scrape(tracker.url, [hash]))[hash]
  }

  it('announce prints the reply as JSON and leaves no peer behind', async () => {
    const run = await cli('announce', tracker.url, hex('a'), '--json')
    assert.equal(run.code, 0, run.stderr)
    // aquatic's default interval; it counts the swarm before adding the announcing peer.
    assert.deepEqual(JSON.parse(run.stdout), { interval: 900, leechers: 0, seeds: 0, peers: [] })
    assert.deepEqual(await swarm(hex('a')), { complete: 0, downloaded: 0, incomplete: 0 })
    // A leecher announcing after it gets no peer either.
    const other = await UdpTracker.announce(tracker.url, {
      infoHash: hex('a'), peerId: '-XX0001-000000000000', port: 7100, left: 10, event: 'started'
    })
    assert.deepEqual([other.seeds, other.leechers, other.peers], [0, 0, []])
    await UdpTracker.announce(tracker.url, { infoHash: hex('a'), peerId: '-XX0001-000000000000', port: 7100, event: 'stopped' })
  })

  it('--stay keeps the peer in the swarm until an --event stopped', async () => {
    const stay = await cli('announce', tracker.url, hex('b'), '--stay', '--port', '7001')
    assert.equal(stay.code, 0, stay.stderr)
    const second = await cli('announce', tracker.url, hex('b'), '--port', '7002', '--left', '10', '--json')
    assert.equal(second.code, 0, second.stderr)
    assert.deepEqual(JSON.parse(second.stdout), { interval: 900, leechers: 0, seeds: 1, peers: ['127.0.0.1:7001'] })
    // The first is still there; the second (no --stay) is not.
    assert.deepEqual(await swarm(hex('b')), { complete: 1, downloaded: 0, incomplete: 0 })
    const stop = await cli('announce', tracker.url, hex('b'), '--event', 'stopped', '--port', '7001')
    assert.equal(stop.code, 0, stop.stderr)
    assert.deepEqual(await swarm(hex('b')), { complete: 0, downloaded: 0, incomplete: 0 })
  })

  it('announce prints a table by default', async () => {
    await cli('announce', tracker.url, hex('c'), '--stay', '--port', '7003', '--left', '3')
    const run = await cli('announce', tracker.url, hex('c'), '--event', 'completed')
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.stdout, 'interval  seeders  leechers  peers\n900s      0        1         1\n\npeers:\n  127.0.0.1:7003\n')
    await cli('announce', tracker.url, hex('c'), '--event', 'stopped', '--port', '7003')
  })

  it('scrape reports counts per hash, from arguments and --file, as JSON or a table', async (t) => {
    await cli('announce', tracker.url, hex('d'), '--stay', '--port', '7004', '--left', '0')
    await cli('announce', tracker.url, hex('d'), '--stay', '--port', '7005', '--left', '5')
    t.after(async () => {
      for (const port of ['7004', '7005']) await cli('announce', tracker.url, hex('d'), '--event', 'stopped', '--port', port)
    })
    const file = tempFile(t, 'hashes.txt', `# torrents\n${hex('f')}\n\n${hex('d')}  # two peers\n`)
    const run = await cli('scrape', tracker.url, hex('a'), '--file', file, '--json')
    assert.equal(run.code, 0, run.stderr)
    assert.deepEqual(JSON.parse(run.stdout), {
      [hex('a')]: { complete: 0, downloaded: 0, incomplete: 0 },
      [hex('f')]: { complete: 0, downloaded: 0, incomplete: 0 },
      [hex('d')]: { complete: 1, downloaded: 0, incomplete: 1 }
    })
    const table = await cli('scrape', tracker.url, hex('d'))
    assert.equal(table.code, 0, table.stderr)
    assert.equal(table.stdout, `infohash${' '.repeat(34)}seeders  completed  leechers\n${hex('d')}  1        0          1\n`)
  })

  // aquatic's default max_scrape_torrents is 70 and the client sends up to 74
  // hashes a packet: aquatic answers the first 70, and the engine asks again
  // for the rest (and sends 70 a packet to it from then on).
  it('scrapes 300 hashes from a file', async (t) => {
    const hashes = Array.from({ length: 300 }, (_, i) => i.toString(16).padStart(40, '0'))
    const seeded = [hashes[0], hashes[73], hashes[74], hashes[299]]
    for (const [i, hash] of seeded.entries()) {
      assert.equal((await cli('announce', tracker.url, hash, '--stay', '--port', String(7200 + i))).code, 0)
    }
    t.after(async () => {
      for (const [i, hash] of seeded.entries()) await cli('announce', tracker.url, hash, '--event', 'stopped', '--port', String(7200 + i))
    })
    const file = tempFile(t, 'many.txt', hashes.join('\n') + '\n')
    const run = await cli('scrape', tracker.url, '--file', file, '--json')
    assert.equal(run.code, 0, run.stdout + run.stderr)
    const counts = JSON.parse(run.stdout)
    assert.deepEqual(Object.keys(counts).sort(), [...hashes].sort())
    for (const hash of hashes) {
      assert.deepEqual(counts[hash], { complete: seeded.includes(hash) ? 1 : 0, downloaded: 0, incomplete: 0 }, hash)
    }
  })
})
