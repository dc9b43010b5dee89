'use strict'
// A BEP 15 tracker with a bounded queue, the model of a real tracker's socket
// buffer for the congestion-control tests (issue 15): it accepts at most
// `queue` datagrams per service period, serves (answers) them when the period
// ends, and drops every datagram that arrives while its queue is full, as a
// tracker's kernel drops what its receive buffer cannot hold. So it can answer
// at most queue / periodMs datagrams a millisecond, and a burst beyond
// `queue` loses the excess.
//
//   const tracker = await startQueueTracker({ queue: 200, periodMs: 50 })
//   ... new UdpTracker(peerId, infoHash, tracker.url, { _timeout: 200 }) ...
//   tracker.stats() // { received, dropped, answered, connect, announce, scrape, unknownConnectionId, invalid, … }
//   await tracker.close()
//
// Otherwise it is a correct tracker: connection ids are random 64-bit values
// valid for two minutes from the address they were given to (a request with
// another id is dropped silently, as opentracker and aquatic do); one swarm
// per info hash, a peer being its (source address, announced port); `left` 0
// is a seeder; `stopped` removes the peer; `completed` counts a download; an
// announce reply holds the swarm's counts after the announce (the announcing
// peer included, as opentracker's do) and up to numWant (50 when −1,
// `maxPeers` at most) other peers of the swarm; scrapes answer each hash.
// Malformed datagrams are counted and dropped (they still take a queue slot).
//
// Its own socket asks for a large receive buffer (4 MiB; the kernel caps it at
// net.core.rmem_max), so that the drops are the model's, not the kernel's:
// stats().kernelDrops reads the socket's drops from /proc/net/udp{,6} (null
// where there is no /proc) so a test can check that.
//
// Options: queue (default 200), periodMs (50), host ('127.0.0.1' or '::1'),
// interval (announce interval in seconds, 1800), maxPeers (50).

const dgram = require('node:dgram')
const fs = require('node:fs')
const { randomBytes } = require('node:crypto')
const { performance } = require('node:perf_hooks')
const { parseRequest, connectReply, announceReply, scrapeReply } = require('./script-server.js')

const CONNECTION_ID_TTL_MS = 120000
const RECEIVE_BUFFER = 4 * 1024 * 1024

function positiveInteger (options, name, fallback, max = Number.MAX_SAFE_INTEGER) {
  const value = options[name] ?? fallback
  if (!Number.isInteger(value) || value < 1 || value > max) throw new RangeError(`options.${name} must be an integer from 1 to ${max}, got ${value}`)
  return value
}

/** Drops the kernel counted at the UDP socket(s) bound to `port`, or null without /proc. */
function kernelDropsAt (port) {
  let drops = null
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text
    try { text = fs.readFileSync(file, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length >= 13 && parseInt(f[1].split(':')[1], 16) === port) drops = (drops ?? 0) + Number(f[12])
    }
  }
  return drops
}

/** The compact peer entry of an address and port: 6 bytes (IPv4) or 18 (IPv6). */
function peerEntry (address, port) {
  const v4 = /^(?:::ffff:)?(\d+)\.(\d+)\.(\d+)\.(\d+)$/i.exec(address)
  if (v4) return Buffer.from([Number(v4[1]), Number(v4[2]), Number(v4[3]), Number(v4[4]), port >> 8, port & 0xff])
  const [head, tail] = address.split('::')
  const groups = (s) => (s ? s.split(':').map((h) => parseInt(h, 16)) : [])
  const h = groups(head)
  const t = tail === undefined ? [] : groups(tail)
  const all = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t]
  const buf = Buffer.alloc(18)
  all.forEach((g, i) => buf.writeUInt16BE(g, 2 * i))
  buf.writeUInt16BE(port, 16)
  return buf
}

async function startQueueTracker (options = {}) {
  const queueLimit = positiveInteger(options, 'queue', 200)
  const periodMs = positiveInteger(options, 'periodMs', 50, 60000)
  const interval = positiveInteger(options, 'interval', 1800, 2 ** 31 - 1)
  const maxPeers = positiveInteger(options, 'maxPeers', 50, 3000)
  const host = options.host ?? '127.0.0.1'
  if (host !== '127.0.0.1' && host !== '::1') throw new RangeError(`options.host must be '127.0.0.1' or '::1', got ${host}`)

  const socket = dgram.createSocket({ type: host === '::1' ? 'udp6' : 'udp4', ipv6Only: host === '::1', recvBufferSize: RECEIVE_BUFFER })
  await new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, host, () => { socket.off('error', reject); resolve() })
  })
  const port = socket.address().port
  const kernelDrops0 = kernelDropsAt(port)

  const counts = { received: 0, dropped: 0, answered: 0, connect: 0, announce: 0, scrape: 0, unknownConnectionId: 0, invalid: 0, periods: 0 }
  // The most datagrams served in one period.
  let busiestPeriod = 0
  const connectionIds = new Map() // BigInt id -> { address, expires }
  const swarms = new Map() // hex info hash -> { peers: Map(key -> { address, port, left }), downloaded }
  let queue = []

  const swarmOf = (hex) => {
    let swarm = swarms.get(hex)
    if (!swarm) { swarm = { peers: new Map(), downloaded: 0 }; swarms.set(hex, swarm) }
    return swarm
  }
  const countsOf = (swarm) => {
    let seeders = 0
    for (const p of swarm.peers.values()) if (p.left === 0n) seeders++
    return { seeders, leechers: swarm.peers.size - seeders, completed: swarm.downloaded }
  }
  const validId = (req, rinfo, now) => {
    const entry = connectionIds.get(req.connectionId)
    if (entry && entry.address === rinfo.address && entry.expires > now) return true
    counts.unknownConnectionId++
    return false
  }

  /** The reply to one request, or null (dropped). */
  const answer = (msg, rinfo, now) => {
    const req = parseRequest(msg)
    if (req.type === 'connect') {
      counts.connect++
      let id
      do id = randomBytes(8).readBigUInt64BE(0); while (connectionIds.has(id))
      connectionIds.set(id, { address: rinfo.address, expires: now + CONNECTION_ID_TTL_MS })
      return connectReply(req.transactionId, id)
    }
    if (req.type === 'announce') {
      if (!validId(req, rinfo, now)) return null
      counts.announce++
      const swarm = swarmOf(req.infoHash.toString('hex'))
      const key = `${rinfo.address} ${req.port}`
      const before = swarm.peers.get(key)
      if (req.event === 3) swarm.peers.delete(key)
      else swarm.peers.set(key, { address: rinfo.address, port: req.port, left: req.left })
      if (req.event === 1 && !(before && before.completed)) {
        swarm.downloaded++
        swarm.peers.get(key).completed = true
      }
      const want = req.event === 3 ? 0 : Math.min(req.numWant < 0 ? 50 : req.numWant, maxPeers)
      const peers = []
      for (const [k, p] of swarm.peers) {
        if (peers.length >= want) break
        if (k !== key) peers.push(peerEntry(p.address, p.port))
      }
      const { seeders, leechers } = countsOf(swarm)
      return announceReply(req.transactionId, { interval, seeders, leechers, peers })
    }
    if (req.type === 'scrape') {
      if (!validId(req, rinfo, now)) return null
      counts.scrape++
      return scrapeReply(req.transactionId, req.infoHashes.map((h) => {
        const swarm = swarms.get(h.toString('hex'))
        return swarm ? countsOf(swarm) : { seeders: 0, completed: 0, leechers: 0 }
      }))
    }
    counts.invalid++
    return null
  }

  socket.on('message', (msg, rinfo) => {
    counts.received++
    if (queue.length >= queueLimit) counts.dropped++
    else queue.push([msg, rinfo])
  })
  socket.on('error', () => {})

  const serve = () => {
    counts.periods++
    if (queue.length === 0) return
    const batch = queue
    queue = []
    busiestPeriod = Math.max(busiestPeriod, batch.length)
    const now = performance.now()
    for (const [msg, rinfo] of batch) {
      const reply = answer(msg, rinfo, now)
      if (reply !== null) {
        counts.answered++
        socket.send(reply, rinfo.port, rinfo.address)
      }
    }
  }
  const timer = setInterval(serve, periodMs)
  timer.unref()

  let closed = null
  return {
    url: host === '::1' ? `udp://[::1]:${port}` : `udp://127.0.0.1:${port}`,
    host,
    port,
    queue: queueLimit,
    periodMs,
    stats () {
      const drops = kernelDropsAt(port)
      return {
        ...counts,
        queued: queue.length,
        busiestPeriod,
        kernelDrops: drops === null || kernelDrops0 === null ? null : drops - kernelDrops0,
        receiveBuffer: closed ? null : socket.getRecvBufferSize()
      }
    },
    /** { seeders, leechers, completed, peers } of a swarm, or null. */
    swarm (infoHash) {
      const swarm = swarms.get(typeof infoHash === 'string' ? infoHash.toLowerCase() : Buffer.from(infoHash).toString('hex'))
      return swarm ? { ...countsOf(swarm), peers: swarm.peers.size } : null
    },
    close () {
      if (closed === null) {
        clearInterval(timer)
        queue = []
        closed = new Promise((resolve) => socket.close(resolve))
      }
      return closed
    }
  }
}

module.exports = { startQueueTracker }
