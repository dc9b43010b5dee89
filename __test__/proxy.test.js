'use strict'
// opts.proxy through a real SOCKS5 proxy, Debian's danted (helpers/danted.js),
// to a real tracker (aquatic_udp) or a scripted one that counts datagrams.
// danted sends proxied traffic from 127.0.0.2: aquatic lists a proxied peer
// as 127.0.0.2:port to a direct one, which proves the announce went through
// the proxy. Every failure case checks that the tracker got zero datagrams
// from this process directly (from 127.0.0.1).

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { execFile } = require('node:child_process')
const UdpTracker = require('..')
const { startAquatic } = require('./helpers/aquatic')
const { startDanted, available, canIsolate, SKIP_REASON } = require('./helpers/danted')
const { ScriptServer, nextEvent } = require('./helpers/script-server')
const { runWithNames } = require('./helpers/private-names')

const skip = !available && SKIP_REASON
// An overall limit on each promise-API call, so a broken case fails instead of retransmitting for hours.
const LIMIT = { timeout: 20000 }
const randomHash = () => require('node:crypto').randomBytes(20).toString('hex')
const peerId = (n) => `-PX0001-${String(n).padStart(12, '0')}`

function announceOnce (url, infoHash, n, opts) {
  const client = new UdpTracker(peerId(n), infoHash, url, { port: 10000 + n, ...opts })
  const done = nextEvent(client, ['update', 'error'], 30000).finally(() => client.destroy())
  client.announce('started', { left: 100 })
  return done
}

/** TCP connections established to `port` on loopback (both families). */
function connectionsTo (port) {
  let count = 0
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try { text = fs.readFileSync(file, 'utf8') } catch { continue }
    for (const line of text.trim().split('\n').slice(1)) {
      const [, local, remote, state] = line.trim().split(/\s+/)
      if (state === '01' && parseInt(remote.split(':').at(-1), 16) === port && parseInt(local.split(':').at(-1), 16) !== port) count++
    }
  }
  return count
}

const openFds = () => fs.readdirSync('/proc/self/fd').length

test('through danted', { skip, timeout: 180000 }, async (t) => {
  const proxy = await startDanted()
  t.after(() => proxy.stop())
  const tracker = await startAquatic()
  t.after(() => tracker.stop())

  await t.test('IPv4: announce and scrape; a direct peer sees the proxied one as 127.0.0.2', async () => {
    const infoHash = randomHash()
    const proxied = await announceOnce(tracker.url, infoHash, 1, { proxy: proxy.url })
    assert.equal(proxied.name, 'update', String(proxied.value))
    assert.equal(UdpTracker.stats().sockets, 0, 'no direct socket opened for the proxied announce')
    const direct = await announceOnce(tracker.url, infoHash, 2, {})
    assert.equal(direct.name, 'update', String(direct.value))
    assert.deepEqual(direct.value.peers, ['127.0.0.2:10001'])
    const counts = await UdpTracker.scrape(tracker.url, [infoHash], { proxy: proxy.url, ...LIMIT })
    assert.deepEqual(counts[infoHash], { complete: 0, downloaded: 0, incomplete: 2 })
    const stats = UdpTracker.stats()
    assert.equal(stats.proxy.associations, 1)
    assert.equal(stats.sockets, 1, 'the direct peer\'s IPv4 socket only')
  })

  await t.test('IPv6 proxy and tracker: announce and scrape, no direct IPv6 socket', async (t) => {
    const tracker6 = await startAquatic({ ipv6: true })
    t.after(() => tracker6.stop())
    const infoHash = randomHash()
    const sockets = UdpTracker.stats().sockets
    const first = await announceOnce(tracker6.url, infoHash, 3, { proxy: proxy.url6 })
    assert.equal(first.name, 'update', String(first.value))
    const second = await UdpTracker.announce(tracker6.url, { infoHash, peerId: peerId(4), port: 10004, left: 1, event: 'started', proxy: proxy.url6 }, LIMIT)
    assert.deepEqual(second.peers, ['[::1]:10003'], 'an 18-byte IPv6 peer entry, parsed as such')
    const counts = await UdpTracker.scrape(tracker6.url, [infoHash], { proxy: proxy.url6, ...LIMIT })
    assert.deepEqual(counts[infoHash], { complete: 0, downloaded: 0, incomplete: 2 })
    // An IPv6 tracker through the proxy's IPv4 address: ATYP 4 in an IPv4 relay's datagrams.
    const crossed = await UdpTracker.announce(tracker6.url, { infoHash, peerId: peerId(5), port: 10005, left: 1, event: 'started', proxy: proxy.url }, LIMIT)
    assert.deepEqual(crossed.peers.sort(), ['[::1]:10003', '[::1]:10004'])
    assert.equal(UdpTracker.stats().sockets, sockets, 'no direct socket was opened')
    assert.equal(UdpTracker.stats().proxy.associations, 2, 'one per proxy address')
  })

  await t.test('the command line: --proxy', async () => {
    const infoHash = randomHash()
    const cli = path.join(__dirname, '..', 'bin', 'udp-tracker.js')
    const out = await new Promise((resolve, reject) => execFile(process.execPath,
      // --stay: no 'stopped' after the answer, so the peer is still there to be seen.
      [cli, 'announce', tracker.url, infoHash, '--proxy', proxy.url, '--port', '10005', '--stay', '--json'],
      { timeout: 20000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))))
    assert.equal(JSON.parse(out).interval > 0, true)
    const direct = await announceOnce(tracker.url, infoHash, 6, {})
    assert.deepEqual(direct.value.peers, ['127.0.0.2:10005'])
  })
})

test('1,000 instances through one proxy share one control connection and one relay', { skip, timeout: 180000 }, async (t) => {
  const proxy = await startDanted()
  t.after(() => proxy.stop())
  const tracker = await startAquatic()
  t.after(() => tracker.stop())
  const fdsBefore = openFds()
  const N = 1000
  const results = await Promise.all(Array.from({ length: N }, (_, i) =>
    announceOnce(tracker.url, randomHash(), 100 + i, { proxy: proxy.url, _timeout: 1000 })))
  const failed = results.filter((r) => r.name !== 'update')
  assert.deepEqual(failed.slice(0, 3), [], `${failed.length} of ${N} failed`)
  assert.equal(connectionsTo(proxy.port), 1, 'one TCP control connection to the proxy')
  const stats = UdpTracker.stats()
  assert.equal(stats.proxy.associations, 1)
  assert.ok(openFds() - fdsBefore <= 3, `descriptors: ${fdsBefore} before, ${openFds()} after`)
  assert.ok(stats.proxy.sent >= N + 1 && stats.proxy.sent <= N + 50, `sent ${stats.proxy.sent}: one connect, then cached ids`)
})

test('the proxy not listening: ERR_PROXY, and not one datagram to the tracker', { skip, timeout: 180000 }, async (t) => {
  const tracker = await ScriptServer.create()
  t.after(() => tracker.close())
  const proxy = await startDanted()
  await proxy.stop() // its port is now closed
  const url = `socks5://127.0.0.1:${proxy.port}`
  await assert.rejects(
    UdpTracker.announce(tracker.url, { infoHash: randomHash(), peerId: peerId(1), proxy: url }),
    (err) => err.code === 'ERR_PROXY' && err.message.startsWith(`SOCKS5 proxy 127.0.0.1:${proxy.port}: cannot connect: Connection refused`))
  const client = new UdpTracker(peerId(2), randomHash(), tracker.url, { proxy: url })
  t.after(() => client.destroy())
  client.announce('started', {})
  const event = await nextEvent(client, ['update', 'error'], 10000)
  assert.equal(event.name, 'error')
  assert.match(event.value, /^SOCKS5 proxy 127\.0\.0\.1:\d+: cannot connect/)
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.equal(tracker.received.length, 0)
})

test('the proxy killed mid-request: requests fail, none goes direct, later ones retry', { skip, timeout: 180000 }, async (t) => {
  const tracker = await ScriptServer.create()
  t.after(() => tracker.close())
  tracker.onConnect = () => null // silent, so the requests stay in flight
  const proxy = await startDanted()
  t.after(() => proxy.stop())
  const opts = { peerId: peerId(1), proxy: proxy.url, _timeout: 100 }
  const pending = Array.from({ length: 5 }, () => UdpTracker.announce(tracker.url, { ...opts, infoHash: randomHash() }).then(
    () => assert.fail('should have failed'), (err) => err))
  await tracker.waitForType('connect', 1, 10000)
  // Retransmissions (every 200, 400 ms …) keep going through the proxy until it dies.
  await new Promise((resolve) => setTimeout(resolve, 300))
  await proxy.stop()
  const errors = await Promise.all(pending)
  for (const err of errors) {
    assert.equal(err.code, 'ERR_PROXY')
    assert.equal(err.message, `SOCKS5 proxy 127.0.0.1:${proxy.port}: control connection closed`)
  }
  const seen = tracker.received.length
  // A later request tries to reconnect, and fails: the proxy is gone.
  await assert.rejects(UdpTracker.announce(tracker.url, { ...opts, infoHash: randomHash() }),
    (err) => err.code === 'ERR_PROXY' && /cannot connect/.test(err.message))
  await new Promise((resolve) => setTimeout(resolve, 500))
  assert.ok(seen >= 1, `the tracker saw ${seen} datagrams through the proxy`)
  assert.equal(tracker.received.length, seen, 'nothing after the proxy died')
  assert.deepEqual([...new Set(tracker.received.map((r) => r.rinfo.address))], ['127.0.0.2'], 'all from the proxy')
})

test('socks5h://: the proxy resolves the tracker\'s name; this process never does', { skip: skip || (!canIsolate && 'needs unshare -m (root)'), timeout: 180000 }, async (t) => {
  const NAME = 'tracker.socks.test'
  const proxy = await startDanted({ names: { [NAME]: ['127.0.0.1'] } })
  t.after(() => proxy.stop())
  const tracker = await startAquatic()
  t.after(() => tracker.stop())
  const infoHash = randomHash()
  const url = `udp://${NAME}:${tracker.port}`
  // The client runs where NAME does not resolve at all (hosts: files, no DNS).
  const script = `
    const T = require('.')
    const p = { infoHash: '${infoHash}', peerId: '-PX0001-000000000009', port: 10009, left: 1, event: 'started' }
    ;(async () => {
      const viaName = await T.announce('${url}', { ...p, proxy: 'socks5h://127.0.0.1:${proxy.port}' }).catch((e) => ({ error: e.code }))
      const scraped = await T.scrape('${url}', ['${infoHash}'], { proxy: 'socks5h://127.0.0.1:${proxy.port}' }).catch((e) => ({ error: e.code }))
      const local = await T.announce('${url}', { ...p, proxy: 'socks5://127.0.0.1:${proxy.port}' }).catch((e) => ({ error: e.code }))
      console.log(JSON.stringify({ viaName, scraped, local, sockets: T.stats().sockets }))
    })()`
  const { code, out, err } = await runWithNames(script, {}, { timeoutMs: 20000 })
  assert.equal(code, 0, err)
  const result = JSON.parse(out.trim())
  assert.equal(result.viaName.interval > 0, true, out)
  assert.deepEqual(result.scraped[infoHash], { complete: 0, downloaded: 0, incomplete: 1 })
  assert.deepEqual(result.local, { error: 'ERR_DNS' }, 'socks5:// resolves locally, where the name is unknown')
  assert.equal(result.sockets, 0)
  const direct = await announceOnce(tracker.url, infoHash, 10, {})
  assert.deepEqual(direct.value.peers, ['127.0.0.2:10009'])
})
