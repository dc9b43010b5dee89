'use strict'
// The test tracker checked by clients nobody here wrote: bittorrent-tracker
// 11's Client (a package of bench/peers, installed by the first run),
// and a raw BEP 15 exchange written below from the spec
// (https://www.bittorrent.org/beps/bep_0015.html), over IPv4 and IPv6.

const test = require('node:test')
const assert = require('node:assert/strict')
const dgram = require('node:dgram')
const path = require('node:path')
const { createHash, randomBytes } = require('node:crypto')
const { pathToFileURL } = require('node:url')
const { createTracker } = require('../testing.js')
const { connectRequest, announceRequest } = require('./helpers/aquatic.js')
const { installFolder } = require('./helpers/npm-folder.js')

const PEERS = path.join(__dirname, '..', 'bench', 'peers')
const CLIENT_DIR = path.join(PEERS, 'node_modules', 'bittorrent-tracker')
// Installed here when missing (skipped, saying why, where it cannot be).
let noClient = null
test.before(() => { noClient = installFolder(PEERS, ['bittorrent-tracker']) })
const hash = (name) => createHash('sha1').update(name).digest()

// ---------------------------------------------------------------------------
// bittorrent-tracker's Client

async function withClients (tracker, infoHash, count, fn) {
  const { Client } = await import(pathToFileURL(path.join(CLIENT_DIR, 'index.js')).href)
  const clients = []
  for (let i = 0; i < count; i++) {
    const client = new Client({ infoHash, peerId: randomBytes(20), announce: [tracker.url], port: 6881 + i })
    client.on('error', (err) => { throw err })
    clients.push(client)
  }
  try {
    return await fn(clients)
  } finally {
    await Promise.all(clients.map((c) => new Promise((resolve) => c.destroy(resolve))))
  }
}

// Resolves with the next `update` of `client` and the `peer`s it brought;
// a `warning` (bittorrent-tracker's name for a failed request) rejects.
function nextUpdate (client, action) {
  return new Promise((resolve, reject) => {
    const peers = []
    const onPeer = (peer) => peers.push(peer)
    const onWarning = (err) => { done(); reject(err) }
    const onUpdate = (update) => {
      // The peers of a reply are emitted right after its update.
      setImmediate(() => { done(); resolve({ ...update, peers: peers.sort() }) })
    }
    const done = () => {
      client.off('peer', onPeer)
      client.off('warning', onWarning)
      client.off('update', onUpdate)
    }
    client.on('peer', onPeer)
    client.on('warning', onWarning)
    client.on('update', onUpdate)
    action()
  })
}

function nextScrape (client) {
  return new Promise((resolve, reject) => {
    client.once('warning', reject)
    client.once('scrape', (data) => { client.off('warning', reject); resolve(data) })
    client.scrape()
  })
}

test('bittorrent-tracker Client: start, update, complete, stop and scrape across three peers', async (t) => {
  if (noClient) return t.skip(noClient)
  const tracker = await createTracker()
  const infoHash = hash('three peers')
  try {
    await withClients(tracker, infoHash, 3, async ([a, b, c]) => {
      const first = await nextUpdate(a, () => a.start({ left: 100 }))
      assert.deepEqual([first.complete, first.incomplete, first.peers], [0, 1, []])
      const second = await nextUpdate(b, () => b.start({ left: 0 }))
      assert.deepEqual([second.complete, second.incomplete, second.peers], [1, 1, ['127.0.0.1:6881']])
      const third = await nextUpdate(c, () => c.start({ left: 100 }))
      assert.deepEqual([third.complete, third.incomplete], [1, 2])
      assert.deepEqual(third.peers, ['127.0.0.1:6881', '127.0.0.1:6882'], 'every other peer, never itself')

      const again = await nextUpdate(a, () => a.update({ left: 50 }))
      assert.deepEqual(again.peers, ['127.0.0.1:6882', '127.0.0.1:6883'])
      await nextUpdate(c, () => c.complete({ left: 0 }))
      const stopped = await nextUpdate(a, () => a.stop({ left: 50 }))
      assert.deepEqual([stopped.complete, stopped.incomplete], [2, 0])

      const scrape = await nextScrape(b)
      assert.equal(scrape.infoHash, infoHash.toString('hex'))
      assert.deepEqual([scrape.complete, scrape.downloaded, scrape.incomplete], [2, 1, 0])
    })
    const swarm = tracker.swarm(infoHash)
    assert.deepEqual(swarm.peers.map((p) => p.address).sort(), ['127.0.0.1:6882', '127.0.0.1:6883'])
    const stats = tracker.stats()
    assert.equal(stats.requests.announce, 6)
    assert.equal(stats.requests.scrape, 1)
    assert.equal(stats.requests.connect, 7, 'bittorrent-tracker connects before every request')
  } finally {
    await tracker.close()
  }
})

test('bittorrent-tracker Client gets errorFor as a warning with the text', async (t) => {
  if (noClient) return t.skip(noClient)
  const tracker = await createTracker({ errorFor: { [hash('refused').toString('hex')]: 'not on this tracker' } })
  try {
    await withClients(tracker, hash('refused'), 1, async ([client]) => {
      await assert.rejects(nextUpdate(client, () => client.start()), /not on this tracker/)
    })
  } finally {
    await tracker.close()
  }
})

// ---------------------------------------------------------------------------
// A raw BEP 15 exchange

class RawClient {
  constructor (family) {
    this.socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4')
    this.queue = []
    this.waiters = []
    this.socket.on('message', (msg) => {
      const waiter = this.waiters.shift()
      if (waiter) waiter(msg)
      else this.queue.push(msg)
    })
  }

  bind (host) {
    return new Promise((resolve) => this.socket.bind(0, host, resolve))
  }

  // Sends and resolves with the next datagram, or null after `ms` of silence.
  request (bytes, tracker, ms = 2000) {
    this.socket.send(bytes, tracker.port, tracker.host)
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift())
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(onMessage), 1)
        resolve(null)
      }, ms)
      const onMessage = (msg) => { clearTimeout(timer); resolve(msg) }
      this.waiters.push(onMessage)
    })
  }

  close () {
    this.socket.close()
  }
}

// BEP 15, "Scrape": connection_id, action 2, transaction_id, then info hashes.
function scrapeRequest (connectionId, tid, hashes) {
  const head = Buffer.alloc(16)
  connectionId.copy(head, 0)
  head.writeUInt32BE(2, 8)
  head.writeUInt32BE(tid, 12)
  return Buffer.concat([head, ...hashes])
}

async function connect (client, tracker, tid) {
  const reply = await client.request(connectRequest(tid), tracker)
  assert.equal(reply.length, 16)
  assert.equal(reply.readUInt32BE(0), 0, 'action connect')
  assert.equal(reply.readUInt32BE(4), tid)
  return reply.subarray(8, 16)
}

function parseAnnounce (reply, tid, entry) {
  assert.equal(reply.readUInt32BE(0), 1, `action announce (got ${reply.subarray(8)})`)
  assert.equal(reply.readUInt32BE(4), tid)
  assert.equal((reply.length - 20) % entry, 0, 'whole peer entries')
  const peers = []
  for (let at = 20; at < reply.length; at += entry) {
    const ip = entry === 6
      ? [...reply.subarray(at, at + 4)].join('.')
      : `[${reply.subarray(at, at + 16).toString('hex').match(/.{4}/g).map((g) => g.replace(/^0+(?=.)/, '')).join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}]`
    peers.push(`${ip}:${reply.readUInt16BE(at + entry - 2)}`)
  }
  return { interval: reply.readUInt32BE(8), leechers: reply.readUInt32BE(12), seeders: reply.readUInt32BE(16), peers: peers.sort() }
}

for (const family of [4, 6]) {
  const host = family === 4 ? '127.0.0.1' : '::1'
  const entry = family === 4 ? 6 : 18
  const address = (port) => family === 4 ? `127.0.0.1:${port}` : `[::1]:${port}`

  test(`raw BEP 15 over IPv${family}: connect, announce with ${entry}-byte peers, numWant, stopped, scrape`, async () => {
    const tracker = await createTracker({ host, interval: 900, maxScrape: 3 })
    const clients = [new RawClient(family), new RawClient(family), new RawClient(family)]
    try {
      await Promise.all(clients.map((c) => c.bind(host)))
      const infoHash = hash(`raw v${family}`)
      const ids = []
      for (let i = 0; i < 3; i++) ids.push(await connect(clients[i], tracker, 100 + i))
      const peerIds = [0, 1, 2].map(() => randomBytes(20))
      const results = []
      for (let i = 0; i < 3; i++) {
        const tid = 200 + i
        const reply = await clients[i].request(announceRequest(ids[i], tid, {
          infoHash, peerId: peerIds[i], left: i === 0 ? 0n : 10n, port: 7000 + i
        }), tracker)
        results.push(parseAnnounce(reply, tid, entry))
      }
      assert.deepEqual(results[0], { interval: 900, leechers: 0, seeders: 1, peers: [] })
      assert.deepEqual(results[2], { interval: 900, leechers: 2, seeders: 1, peers: [address(7000), address(7001)] })

      const one = parseAnnounce(await clients[2].request(announceRequest(ids[2], 300, {
        infoHash, peerId: peerIds[2], left: 10n, event: 0, numWant: 1, port: 7002
      }), tracker), 300, entry)
      assert.equal(one.peers.length, 1)

      const stopped = parseAnnounce(await clients[1].request(announceRequest(ids[1], 301, {
        infoHash, peerId: peerIds[1], left: 10n, event: 3, port: 7001
      }), tracker), 301, entry)
      assert.deepEqual([stopped.seeders, stopped.leechers, stopped.peers], [1, 1, []])

      // Five hashes asked, maxScrape 3: the first three are answered.
      const scrape = await clients[0].request(scrapeRequest(ids[0], 400,
        [infoHash, hash('unknown'), infoHash, infoHash, infoHash]), tracker)
      assert.equal(scrape.readUInt32BE(0), 2, 'action scrape')
      assert.equal(scrape.readUInt32BE(4), 400)
      assert.equal(scrape.length, 8 + 3 * 12)
      const entries = [0, 1, 2].map((i) => [0, 4, 8].map((o) => scrape.readUInt32BE(8 + 12 * i + o)))
      assert.deepEqual(entries, [[1, 0, 1], [0, 0, 0], [1, 0, 1]])
    } finally {
      clients.forEach((c) => c.close())
      await tracker.close()
    }
  })

  test(`raw BEP 15 over IPv${family}: forged or foreign connection ids get no reply, errors are action 3`, async () => {
    const tracker = await createTracker({ host, errorFor: [hash('refused')] })
    const client = new RawClient(family)
    try {
      await client.bind(host)
      const id = await connect(client, tracker, 1)
      const forged = Buffer.from(id)
      forged[7] ^= 1
      const params = { infoHash: hash('x'), peerId: randomBytes(20), port: 1 }
      assert.equal(await client.request(announceRequest(forged, 2, params), tracker, 300), null)
      assert.equal(await client.request(scrapeRequest(Buffer.alloc(8), 3, [hash('x')]), tracker, 300), null)
      assert.equal(tracker.stats().dropped.connectionId, 2)

      const error = await client.request(announceRequest(id, 4, { ...params, infoHash: hash('refused') }), tracker)
      assert.equal(error.readUInt32BE(0), 3, 'action error')
      assert.equal(error.readUInt32BE(4), 4)
      assert.equal(error.subarray(8).toString(), 'unregistered torrent')

      const bad = announceRequest(id, 5, params)
      bad.writeUInt32BE(7, 80) // no such event
      const malformed = await client.request(bad, tracker)
      assert.equal(malformed.readUInt32BE(0), 3)
      assert.equal(malformed.readUInt32BE(4), 5)
    } finally {
      client.close()
      await tracker.close()
    }
  })
}
