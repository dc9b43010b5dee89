'use strict'
// opts.proxy against a scripted SOCKS5 server (helpers/socks-server.js):
// username/password, wrong passwords, refused associations, backoff, BND.ADDR
// 0.0.0.0, fragments and spoofed relay datagrams, connection ids kept per
// (proxy, tracker), argument checks. In every failure case the scripted
// tracker behind it counts zero datagrams: nothing goes around the proxy.
// The real-proxy cases (danted) are in proxy.test.js.

const test = require('node:test')
const assert = require('node:assert/strict')
const dgram = require('node:dgram')
const UdpTracker = require('..')
const { ScriptServer, connectReply, announceReply, nextEvent } = require('./helpers/script-server')
const { SocksServer, listenOnFreshPort } = require('./helpers/socks-server')

const HASH = 'cd'.repeat(20)
const PEER_ID = '-PX0001-000000000000'

function params (proxy, extra = {}) {
  return { infoHash: HASH, peerId: PEER_ID, port: 6881, event: 'started', proxy, _timeout: 2000, ...extra }
}

async function fixtures (t, proxyOptions) {
  const tracker = await ScriptServer.create()
  const proxy = await SocksServer.create(proxyOptions)
  t.after(async () => { await tracker.close(); await proxy.close() })
  return { tracker, proxy }
}

test('username and password (RFC 1929): accepted, the announce goes through the relay', async (t) => {
  const { tracker, proxy } = await fixtures(t, { users: { alice: 's3cr:t@' } })
  const update = await UdpTracker.announce(tracker.url, params(proxy.url('alice', 's3cr:t@')))
  assert.equal(update.interval, 1800)
  assert.deepEqual(proxy.greetings, [[0, 2]], 'no-auth and username/password offered')
  assert.deepEqual(proxy.auths, [{ user: 'alice', password: 's3cr:t@', ok: true }])
  assert.equal(proxy.relayed.length, 2, 'connect and announce went through the relay')
  assert.deepEqual(tracker.received.map((r) => r.type), ['connect', 'announce'])
  assert.equal(UdpTracker.stats().sockets, 0, 'no direct socket was ever opened')
})

test('a wrong password rejects with ERR_PROXY, and the tracker gets nothing', async (t) => {
  const { tracker, proxy } = await fixtures(t, { users: { alice: 'secret' } })
  await assert.rejects(UdpTracker.announce(tracker.url, params(proxy.url('alice', 'wrong'))), (err) => {
    assert.equal(err.code, 'ERR_PROXY')
    assert.equal(err.message, `SOCKS5 proxy 127.0.0.1:${proxy.port}: authentication rejected (RFC 1929 status 1)`)
    assert.ok(!err.message.includes('wrong'), 'the password is not in the message')
    return true
  })
  assert.equal(proxy.auths.length, 1)
  assert.equal(tracker.received.length, 0)
})

test('no credentials for a proxy that needs them: the class emits the error string', async (t) => {
  const { tracker, proxy } = await fixtures(t, { users: { alice: 'secret' } })
  const client = new UdpTracker(PEER_ID, HASH, tracker.url, { proxy: proxy.url(), _timeout: 2000 })
  t.after(() => client.destroy())
  client.announce('started', {})
  const event = await nextEvent(client, ['update', 'error'], 10000)
  assert.equal(event.name, 'error')
  assert.equal(typeof event.value, 'string')
  assert.match(event.value, /^SOCKS5 proxy 127\.0\.0\.1:\d+: no acceptable authentication method/)
  assert.equal(tracker.received.length, 0)
})

test('UDP ASSOCIATE refused: ERR_PROXY, zero datagrams, and a backoff before the next attempt', async (t) => {
  const { tracker, proxy } = await fixtures(t, { refuse: 2 })
  const url = proxy.url()
  await assert.rejects(UdpTracker.announce(tracker.url, params(url)), {
    code: 'ERR_PROXY',
    message: `SOCKS5 proxy 127.0.0.1:${proxy.port}: UDP ASSOCIATE refused: connection not allowed by ruleset (reply 2)`
  })
  assert.equal(proxy.connections, 1)
  // Straight after a failed attempt: fails at once, without connecting again.
  await assert.rejects(UdpTracker.announce(tracker.url, params(url)), (err) => {
    assert.equal(err.code, 'ERR_PROXY')
    assert.match(err.message, /UDP ASSOCIATE refused: .*\(next attempt in \d+ ms\)$/)
    return true
  })
  assert.equal(proxy.connections, 1, 'no new attempt within the backoff')
  // After the first backoff (1 s) a request tries again.
  await new Promise((resolve) => setTimeout(resolve, 1100))
  await assert.rejects(UdpTracker.announce(tracker.url, params(url)), { code: 'ERR_PROXY' })
  assert.equal(proxy.connections, 2)
  assert.equal(tracker.received.length, 0)
})

test('BND.ADDR 0.0.0.0 means the proxy\'s own address', async (t) => {
  const { tracker, proxy } = await fixtures(t, { bindUnspecified: true })
  const update = await UdpTracker.announce(tracker.url, params(proxy.url()))
  assert.equal(update.interval, 1800)
  assert.equal(tracker.announces.length, 1)
})

test('fragments and datagrams from another address than the relay are dropped', async (t) => {
  const { tracker, proxy } = await fixtures(t)
  const before = UdpTracker.stats().proxy
  proxy.onReply = (payload, source, send) => {
    const header = require('./helpers/socks-server').encodeAddress(source.address, source.port)
    send(header, Buffer.from(payload).fill(0xee, 8), 1) // a fragment: same tid, garbage after it
    send(header, payload)
  }
  const spoofer = dgram.createSocket('udp4')
  t.after(() => spoofer.close())
  tracker.onAnnounce = async (req) => {
    // A forged reply straight to the client's relay socket, before the real one.
    const client = proxy.associates.at(-1)
    const forged = Buffer.concat([Buffer.from([0, 0, 0, 1, 127, 0, 0, 1]), Buffer.alloc(2), announceReply(req.transactionId, { interval: 7 })])
    forged.writeUInt16BE(tracker.port, 8)
    await new Promise((resolve) => spoofer.send(forged, client.port, '127.0.0.1', resolve))
    await new Promise((resolve) => setTimeout(resolve, 50))
    return announceReply(req.transactionId, { interval: 1234 })
  }
  const update = await UdpTracker.announce(tracker.url, params(proxy.url()))
  assert.equal(update.interval, 1234, 'neither the fragment nor the forged reply was taken')
  const after = UdpTracker.stats().proxy
  assert.equal(after.droppedFragments - before.droppedFragments, 2, 'connect and announce fragments')
  assert.equal(after.droppedRelaySource - before.droppedRelaySource, 1)
})

test('the proxy closing the control connection fails the requests through it', async (t) => {
  const { tracker, proxy } = await fixtures(t)
  tracker.onConnect = () => null // silent: the request stays in flight
  const pending = UdpTracker.announce(tracker.url, params(proxy.url(), { _timeout: 60000 }))
  await tracker.waitForType('connect', 1, 5000)
  proxy.closeControls()
  await assert.rejects(pending, {
    code: 'ERR_PROXY',
    message: `SOCKS5 proxy 127.0.0.1:${proxy.port}: control connection closed`
  })
  assert.equal(tracker.received.length, 1, 'the one connect through the relay, nothing after')
  // The next request sets up a new association at once.
  tracker.onConnect = (req) => connectReply(req.transactionId, 5n)
  await UdpTracker.announce(tracker.url, params(proxy.url()))
  assert.equal(proxy.connections, 2)
})

test('connection ids are kept per (proxy, tracker): never shared with direct requests', async (t) => {
  const { tracker, proxy } = await fixtures(t)
  // The tracker issues a distinct id per source, and checks each announce's.
  const issued = new Map()
  let next = 100n
  tracker.onConnect = (req, rinfo) => {
    const id = next++
    issued.set(id, rinfo.port)
    return connectReply(req.transactionId, id)
  }
  const wrongIds = []
  tracker.onAnnounce = (req, rinfo) => {
    if (issued.get(req.connectionId) !== rinfo.port) wrongIds.push(req.connectionId)
    return announceReply(req.transactionId, { interval: 60 })
  }
  const direct = { ...params(undefined), proxy: undefined }
  await UdpTracker.announce(tracker.url, direct)
  await UdpTracker.announce(tracker.url, params(proxy.url()))
  await UdpTracker.announce(tracker.url, direct)
  await UdpTracker.announce(tracker.url, params(proxy.url()))
  assert.deepEqual(wrongIds, [])
  assert.equal(tracker.connects.length, 2, 'one connect directly, one through the proxy, then both cached')
  assert.equal(tracker.announces.length, 4)
  assert.notEqual(tracker.connects[0].rinfo.port, tracker.connects[1].rinfo.port)
  UdpTracker.forgetConnectionIds() // the proxies' too
  await UdpTracker.announce(tracker.url, params(proxy.url()))
  assert.equal(tracker.connects.length, 3)
  assert.equal(tracker.connects[2].rinfo.port, tracker.connects[1].rinfo.port, 'through the proxy')
  assert.deepEqual(wrongIds, [])
})

test('bad proxy URLs are TypeErrors naming opts.proxy (params.proxy for the promise API)', async () => {
  const url = 'udp://127.0.0.1:6969'
  const bad = [
    42, {}, '', 'not a url', 'http://127.0.0.1:1080', 'socks4://127.0.0.1:1080', 'socks5://',
    'socks5://127.0.0.1:1080/path', 'socks5://127.0.0.1:1080?q=1', 'socks5://127.0.0.1:0',
    'socks5://127.0.0.1:65536', `socks5://${'u'.repeat(256)}:p@127.0.0.1:1080`,
    `socks5://u:${'p'.repeat(256)}@127.0.0.1:1080`, 'socks5://:p@127.0.0.1:1080', 'socks5://%zz:p@127.0.0.1:1080'
  ]
  for (const proxy of bad) {
    assert.throws(() => new UdpTracker(PEER_ID, HASH, url, { proxy }), (err) => {
      assert.ok(err instanceof TypeError, `${String(proxy)}: ${err}`)
      assert.match(err.message, /^opts\.proxy /)
      return true
    })
    await assert.rejects(UdpTracker.announce(url, params(proxy)), (err) => err instanceof TypeError && /^params\.proxy /.test(err.message))
    await assert.rejects(UdpTracker.scrape(url, [HASH], { proxy }), (err) => err instanceof TypeError && /^opts\.proxy /.test(err.message))
  }
  assert.throws(() => new UdpTracker(PEER_ID, HASH, url, { proxy: 'socks5://user:hunter2@127.0.0.1:0' }),
    (err) => !err.message.includes('hunter2'))
  // Accepted: both schemes, IPv6 literals, no port (1080), a user with an empty password.
  for (const proxy of ['socks5://127.0.0.1:1080', 'socks5h://[::1]:1', 'socks5://localhost', 'socks5h://u:@127.0.0.1:9', null, undefined]) {
    new UdpTracker(PEER_ID, HASH, url, { proxy }).destroy()
  }
})

test('a proxy that breaks the handshake: ERR_PROXY saying how, and nothing sent to the tracker', async (t) => {
  const net = require('node:net')
  const tracker = await ScriptServer.create()
  t.after(() => tracker.close())
  // Each answers the client's n-th write (greeting, then UDP ASSOCIATE) with replies[n].
  const cases = [
    [[Buffer.from([4, 0])], 'protocol error: unexpected SOCKS version 4'],
    [[null], 'it closed the connection during the handshake'],
    [[Buffer.from([5, 0]), Buffer.from([5, 0, 0, 9, 0])], 'protocol error: unknown SOCKS5 address type 9'],
    [[Buffer.from([5, 0]), Buffer.from([5, 0, 0, 3, 5, 112, 114, 111, 120, 121, 0, 80])], 'UDP ASSOCIATE named its relay by host name'],
    [[Buffer.from([5, 0xff])], 'no acceptable authentication method (does it need a user name and password?)']
  ]
  for (const [replies, what] of cases) {
    const server = net.createServer((socket) => {
      socket.on('error', () => {})
      let n = 0
      socket.on('data', () => {
        const reply = replies[n++]
        if (reply === null || reply === undefined) socket.end()
        else socket.write(reply)
      })
    })
    const port = await listenOnFreshPort(server, '127.0.0.1')
    try {
      await assert.rejects(UdpTracker.announce(tracker.url, params(`socks5://127.0.0.1:${port}`), { timeout: 20000 }), {
        code: 'ERR_PROXY',
        message: `SOCKS5 proxy 127.0.0.1:${port}: ${what}`
      })
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  }
  assert.equal(tracker.received.length, 0)
})

test('the Client passes proxy on to every request: the tracker sees only relayed datagrams', async (t) => {
  const { tracker, proxy } = await fixtures(t, { users: { alice: 'secret' } })
  const client = new UdpTracker.Client({
    infoHash: HASH, peerId: PEER_ID, port: 6881, announce: [tracker.url], proxy: proxy.url('alice', 'secret')
  })
  const update = nextEvent(client, ['update', 'warning', 'error'], 10000)
  client.start()
  const event = await update
  assert.equal(event.name, 'update', `got ${event.name}: ${event.value}`)
  const stopped = nextEvent(client, ['update', 'warning', 'error'], 10000)
  client.stop() // its 'stopped' goes through the proxy too
  assert.equal((await stopped).name, 'update')
  await new Promise((resolve) => client.destroy(resolve))
  assert.deepEqual(proxy.auths, [{ user: 'alice', password: 'secret', ok: true }])
  assert.deepEqual(tracker.received.map((r) => r.type), ['connect', 'announce', 'announce'])
  assert.equal(tracker.received.length, proxy.relayed.length, 'every datagram the tracker got was relayed')
  assert.ok(proxy.relayed.every((r) => r.to.port === tracker.port))
  const source = tracker.received[0].rinfo.port
  assert.ok(tracker.received.every((r) => r.rinfo.port === source), 'all from the relay\'s one outbound socket')
})

test('the Client with a wrong proxy password: a warning coded ERR_PROXY, and the tracker gets nothing', async (t) => {
  const { tracker, proxy } = await fixtures(t, { users: { alice: 'secret' } })
  const client = new UdpTracker.Client({
    infoHash: HASH, peerId: PEER_ID, port: 6881, announce: [tracker.url], proxy: proxy.url('alice', 'hunter2')
  })
  t.after(() => client.destroy())
  const warning = nextEvent(client, ['update', 'warning', 'error'], 10000)
  client.start()
  const event = await warning
  assert.equal(event.name, 'warning')
  assert.equal(event.value.code, 'ERR_PROXY')
  assert.match(event.value.message, /^SOCKS5 proxy 127\.0\.0\.1:\d+: authentication rejected/)
  assert.ok(!event.value.message.includes('hunter2'), 'the password is not in the warning')
  assert.equal(tracker.received.length, 0)
})

test('the CLI: a bad --proxy is a usage error naming the flag; a refused one exits 1 with ERR_PROXY', async (t) => {
  const path = require('node:path')
  const { execFile } = require('node:child_process')
  const cli = path.join(__dirname, '..', 'bin', 'udp-tracker.js')
  const run = (args) => new Promise((resolve) => execFile(process.execPath, [cli, ...args], { timeout: 20000 },
    (err, stdout, stderr) => resolve({ status: err ? err.code : 0, stdout, stderr })))
  for (const command of [['announce', 'udp://127.0.0.1:6969', HASH], ['scrape', 'udp://127.0.0.1:6969', HASH]]) {
    const bad = await run([...command, '--proxy', 'http://user:hunter2@127.0.0.1:1080'])
    assert.equal(bad.status, 2, bad.stderr)
    assert.match(bad.stderr, /^udp-tracker: --proxy must be a socks5:\/\/\[user:password@\]host:port or socks5h:\/\/ URL: unsupported scheme http:/)
    assert.ok(!bad.stderr.includes('hunter2') && !bad.stderr.includes('opts.proxy') && !bad.stderr.includes('params.proxy'))
  }
  const { tracker, proxy } = await fixtures(t, { users: { alice: 'secret' } })
  const refused = await run(['announce', tracker.url, HASH, '--port', '6881', '--json', '--proxy', proxy.url('alice', 'hunter2')])
  assert.equal(refused.status, 1, refused.stderr)
  const { error } = JSON.parse(refused.stdout)
  assert.equal(error.code, 'ERR_PROXY')
  assert.match(error.message, /authentication rejected/)
  assert.ok(!refused.stdout.includes('hunter2'))
  assert.equal(tracker.received.length, 0)
})
