'use strict'
// libtorrent's older UDP tracker extensions (authentication, request string)
// and the announce options real clients set, checked byte for byte on the wire.

const test = require('node:test')
const assert = require('node:assert/strict')
const { createHash } = require('node:crypto')
const UdpTracker = require('..')
const { ScriptServer, twentyBytes } = require('./helpers/script-server')

const sha1 = (...parts) => createHash('sha1').update(Buffer.concat(parts.map((p) => Buffer.from(p)))).digest()

async function announcedBytes (url, opts) {
  const server = await ScriptServer.create()
  try {
    const tracker = new UdpTracker(twentyBytes('ext-peer'), twentyBytes('ext-hash'), server.url + url, opts)
    const done = new Promise((resolve, reject) => { tracker.on('update', resolve); tracker.on('error', reject) })
    tracker.announce(2, { left: 1 })
    await done
    tracker.destroy()
    return server.announces[0].bytes
  } finally {
    await server.close()
  }
}

test('authentication: user name, then 8 bytes of SHA1(packet without them || SHA1(password))', async () => {
  const bytes = await announcedBytes('/announce', { auth: { user: 'alice', password: 'secret' } })
  assert.equal(bytes.readUInt16BE(98), 0x1, 'extension bit 1 only')
  assert.equal(bytes[100], 5)
  assert.equal(bytes.subarray(101, 106).toString(), 'alice')
  assert.equal(bytes.length, 106 + 8, 'nothing after the hash: no BEP 41 options in extension mode')
  const expected = sha1(bytes.subarray(0, 106), sha1('secret')).subarray(0, 8)
  assert.deepEqual(bytes.subarray(106, 114), expected)
})

test('request string: extension bit 2, a length byte and the string', async () => {
  const bytes = await announcedBytes('', { requestString: '/announce?passkey=abc' })
  assert.equal(bytes.readUInt16BE(98), 0x2)
  assert.equal(bytes[100], 21)
  assert.equal(bytes.subarray(101).toString(), '/announce?passkey=abc')
})

test('both extensions: authentication first, the hash covers the request string after it', async () => {
  const bytes = await announcedBytes('', { auth: { user: 'bob', password: Buffer.from('pw') }, requestString: '/a' })
  assert.equal(bytes.readUInt16BE(98), 0x3)
  assert.equal(bytes[100], 3)
  assert.equal(bytes.subarray(101, 104).toString(), 'bob')
  const hashAt = 104
  assert.equal(bytes[hashAt + 8], 2)
  assert.equal(bytes.subarray(hashAt + 9).toString(), '/a')
  const expected = sha1(bytes.subarray(0, hashAt), bytes.subarray(hashAt + 8), sha1('pw')).subarray(0, 8)
  assert.deepEqual(bytes.subarray(hashAt, hashAt + 8), expected)
})

test('without extensions the URL path goes as BEP 41 URL data and no extension field is written', async () => {
  const bytes = await announcedBytes('/announce', {})
  assert.deepEqual([...bytes.subarray(98)], [2, 9, ...Buffer.from('/announce'), 0])
})

test('numWant, key and ip land at their BEP 15 offsets', async () => {
  const bytes = await announcedBytes('', { numWant: -1, key: 0xdeadbeef, ip: '192.0.2.7', port: 51413 })
  assert.equal(bytes.readUInt32BE(84), (192 << 24 >>> 0) + (0 << 16) + (2 << 8) + 7)
  assert.equal(bytes.readUInt32BE(88), 0xdeadbeef)
  assert.equal(bytes.readInt32BE(92), -1)
  assert.equal(bytes.readUInt16BE(96), 51413)
  assert.equal(bytes.length, 98)
})

test('extension options are checked', () => {
  const make = (opts) => new UdpTracker(twentyBytes('p'), twentyBytes('h'), 'udp://127.0.0.1:1', opts)
  assert.throws(() => make({ auth: { user: 'x'.repeat(256), password: 'p' } }), { name: 'RangeError', message: /opts\.auth\.user/ })
  assert.throws(() => make({ auth: { user: 'u' } }), { name: 'TypeError', message: /opts\.auth\.password/ })
  assert.throws(() => make({ auth: 'u:p' }), { name: 'TypeError', message: /opts\.auth/ })
  assert.throws(() => make({ requestString: 42 }), { name: 'TypeError', message: /opts\.requestString/ })
  assert.throws(() => make({ requestString: 'x'.repeat(256) }), { name: 'RangeError', message: /opts\.requestString/ })
  assert.throws(() => make({ ip: '::1' }), { name: 'TypeError', message: /opts\.ip/ })
  assert.throws(() => make({ family: 5 }), { name: 'RangeError', message: /opts\.family/ })
})
