'use strict'
// What Clients share and what each keeps of its own. Thousands of torrents
// carry the same announce list and options, so the Client parses a list once
// per content (lib/tiers.js), resolves it to the engine's targets once per
// list and options, and checks the options once per port; every Client still
// gets its own tiers, trackers (order, failures, backoff) and announce key.

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const { randomBytes } = require('node:crypto')

const { Client } = require('..')
const { announceList } = require('../lib/tiers.js')
const { reannounceDelay } = require('../lib/backoff.js')
const { serverFor, nextEvent, errorReply } = require('./helpers/script-server.js')

const clients = []
afterEach(() => {
  for (const client of clients.splice(0)) client.destroy()
})

// Keeps every tier in the order given (see client.test.js).
const KEEP_ORDER = () => 0.999

function makeClient (opts) {
  const client = new Client(Object.assign({ infoHash: randomBytes(20), peerId: randomBytes(20), port: 6881 }, opts))
  clients.push(client)
  return client
}

describe('Client: announce lists read once per content', () => {
  it('a URL, a flat list and a list of tiers of the same URLs are told apart', () => {
    const a = 'udp://127.0.0.1:6969'
    const b = 'udp://127.0.0.1:6970'
    assert.deepEqual(announceList(a).tiers, [[a]])
    assert.deepEqual(announceList([a]).tiers, [[a]])
    assert.deepEqual(announceList([a, b]).tiers, [[a], [b]])
    assert.deepEqual(announceList([[a, b]]).tiers, [[a, b]])
    assert.deepEqual(announceList([[a], b, [a, b]]).tiers, [[a], [b]], 'duplicates dropped, first place wins')
  })

  it('a list changed in place after a Client took it is read again', () => {
    const a = 'udp://127.0.0.1:6969'
    const b = 'udp://127.0.0.1:6970'
    const list = [a]
    assert.deepEqual(announceList(list).tiers, [[a]])
    list.push(b)
    assert.deepEqual(announceList(list).tiers, [[a], [b]], 'an entry added')
    list[1] = [b, a]
    assert.deepEqual(announceList(list).tiers, [[a], [b]], 'a URL became a tier (its duplicate dropped)')
    list[1].reverse()
    list[0] = 'udp://127.0.0.1:6971'
    assert.deepEqual(announceList(list).tiers, [['udp://127.0.0.1:6971'], [a, b]], 'a tier reordered, a URL replaced')
    list[1][1] = Buffer.from(b)
    assert.deepEqual(announceList(list).tiers, [['udp://127.0.0.1:6971'], [a, b]], 'bytes in a tier')
    assert.deepEqual(announceList(a).tiers, [[a]], 'then a URL alone')
    assert.deepEqual(announceList([a]).tiers, [[a]], 'and a list of it')
  })

  it('equal lists give the same read-only result; entries that are not strings are read every time', () => {
    const urls = ['udp://127.0.0.1:6969/announce', 'http://127.0.0.1:80/announce']
    const first = announceList(urls.slice())
    assert.equal(announceList(urls.slice()), first)
    assert.deepEqual(first.tiers, [['udp://127.0.0.1:6969/announce']])
    assert.deepEqual(first.problems, ['Unsupported tracker protocol: http://127.0.0.1:80/announce'])
    assert.equal(first.urls, 1)
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first.tiers) && Object.isFrozen(first.tiers[0]))

    const long = Array.from({ length: 600 }, (_, i) => `udp://127.0.0.1:${6000 + i}/announce`)
    assert.equal(announceList(long).tiers.length, 600)
    assert.notEqual(announceList(long), announceList(long), 'a list longer than 16 KiB as JSON is not kept')

    const bytes = [Buffer.from('udp://127.0.0.1:6969/announce/')]
    const fromBytes = announceList(bytes)
    assert.deepEqual(fromBytes.tiers, [['udp://127.0.0.1:6969/announce']], 'bytes as text, one trailing slash dropped')
    assert.notEqual(announceList(bytes), fromBytes)
  })

  it('Clients with the same list get tiers and trackers of their own', () => {
    const list = [['udp://127.0.0.1:6969', 'udp://127.0.0.1:6970'], ['udp://127.0.0.1:6971']]
    const one = makeClient({ announce: list, _random: KEEP_ORDER })
    const two = makeClient({ announce: list.map((tier) => tier.slice()), _random: KEEP_ORDER })
    assert.equal(one._tiers.length, 2)
    for (let i = 0; i < one._tiers.length; i++) {
      assert.notEqual(one._tiers[i], two._tiers[i])
      assert.notEqual(one._tiers[i].trackers, two._tiers[i].trackers)
      one._tiers[i].trackers.forEach((tracker, j) => {
        assert.notEqual(tracker, two._tiers[i].trackers[j])
        assert.equal(tracker.tier, one._tiers[i])
      })
    }
    // Reordering one Client's tier (as an answer does) leaves the other's alone.
    one._tiers[0].trackers.reverse()
    assert.deepEqual(two._tiers[0].trackers.map((t) => t.url), list[0])
    assert.deepEqual(makeClient({ announce: list, _random: KEEP_ORDER })._tiers[0].trackers.map((t) => t.url), list[0])
  })

  it("one Client's failure backs off its own tracker only", async (t) => {
    const server = await serverFor(t)
    server.onAnnounce = (req) => errorReply(req.transactionId, 'database is busy')
    const failing = makeClient({ announce: [server.url] })
    const other = makeClient({ announce: [server.url] })
    failing.start()
    await nextEvent(failing, ['warning'])
    assert.equal(failing._tiers[0].trackers[0].failures, 1)
    assert.equal(other._tiers[0].trackers[0].failures, 0)
    assert.equal(other._tiers[0].trackers[0].retryAt, 0)
  })
})

describe('Client: options checked once, a key per torrent', () => {
  it('each Client draws its own announce key; one given as `key` is sent', async (t) => {
    const server = await serverFor(t)
    const a = makeClient({ announce: server.url })
    const b = makeClient({ announce: server.url })
    const c = makeClient({ announce: server.url, key: 1234 })
    for (const client of [a, b, c]) {
      client.start()
      await nextEvent(client, ['update'])
    }
    const keys = server.announces.map((req) => req.key)
    assert.equal(keys.length, 3)
    assert.notEqual(keys[0], keys[1], 'two torrents, two random keys')
    assert.equal(keys[2], 1234)
    assert.notEqual(a._fields, b._fields)
  })

  it('the port and numWant each Client announces are its own', () => {
    const one = makeClient({ announce: 'udp://127.0.0.1:6969', port: 1 })
    const two = makeClient({ announce: 'udp://127.0.0.1:6969', port: 2 })
    const few = makeClient({ announce: 'udp://127.0.0.1:6969', port: 1, numWant: 5 })
    assert.equal(one._fields.port, 1)
    assert.equal(two._fields.port, 2)
    assert.equal(one._fields.numWant, 50)
    assert.equal(few._fields.numWant, 5)
  })
})

describe('Client: re-announce delays', () => {
  it("the tracker's interval, floored, plus up to 5 %, in whole seconds", () => {
    assert.equal(reannounceDelay(10, 60e3, () => 0), 60e3, 'floored at minInterval')
    assert.equal(reannounceDelay(1800, 60e3, () => 0.999), 1890e3)
    assert.equal(reannounceDelay(0, 60e3, () => 0), 30 * 60e3, 'none given: 30 min')
    assert.equal(reannounceDelay(2 ** 31, 60e3, () => 0.5), 2 ** 31 - 1, 'bounded by the longest timer')
  })
})
