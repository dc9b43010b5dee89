'use strict'
// Starts a real BitTorrent UDP tracker, aquatic_udp 0.9.0, on loopback for the
// integration tests.
//
//   const tracker = await startAquatic({ announceInterval: 1800 })
//   ... new UdpTracker(peerId, infoHash, tracker.url, opts) ...
//   await tracker.stop()
//
// The binary comes from scripts/aquatic.js ($AQUATIC_UDP, else aquatic_udp
// 0.9.0 on PATH, else <repo>/.aquatic, built there on first use). Its config
// is aquatic's defaults with a few keys replaced (scripts/aquatic-config.js),
// written to a fresh temp dir (also the tracker's working directory). The
// tracker counts as started once it answers a real BEP 15 connect request on
// its port. Only loopback addresses are used: 127.0.0.1, or ::1 with
// { ipv6: true }.
//
// Options:
//   ipv6               bind [::1] with only_ipv6 = true (default 127.0.0.1)
//   port               a port to bind (default: a free one), e.g. to restart
//                      a tracker on the port of one that was stopped
//   maxScrapeTorrents  [protocol] max_scrape_torrents (aquatic's default: 70)
//   maxResponsePeers   [protocol] max_response_peers (aquatic's default: 30)
//   announceInterval   [protocol] peer_announce_interval (aquatic's default: 900)
//   logLevel           log_level (default 'warn'; its output is in errors)
//   readyTimeoutMs     how long to wait for the first connect reply (10000)

const { randomBytes } = require('node:crypto')
const dgram = require('node:dgram')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { provisionAquatic } = require('../../scripts/aquatic.js')
const { aquaticConfig } = require('../../scripts/aquatic-config.js')
const { spawnTracker } = require('./tracker-process.js')

const PROTOCOL_ID = 0x41727101980n
const READY_RETRY_MS = 50

/** A dgram socket of `host`'s family (IPv6 only for ::1). */
function udpSocket (host) {
  return host.includes(':') ? dgram.createSocket({ type: 'udp6', ipv6Only: true }) : dgram.createSocket('udp4')
}

/** A UDP port free on `host` right now: bind port 0, read the port, close. */
function freeUdpPort (host) {
  return new Promise((resolve, reject) => {
    const socket = udpSocket(host)
    socket.once('error', reject)
    socket.bind(0, host, () => {
      const { port } = socket.address()
      socket.close(() => resolve(port))
    })
  })
}

/** Whether this machine can bind a UDP socket to ::1. */
function hasIpv6Loopback () {
  return new Promise((resolve) => {
    const socket = udpSocket('::1')
    socket.once('error', () => {
      try { socket.close() } catch {}
      resolve(false)
    })
    socket.bind(0, '::1', () => socket.close(() => resolve(true)))
  })
}

/** A BEP 15 connect request with transaction id `tid`. */
function connectRequest (tid) {
  const buf = Buffer.alloc(16)
  buf.writeBigUInt64BE(PROTOCOL_ID, 0)
  buf.writeUInt32BE(0, 8)
  buf.writeUInt32BE(tid, 12)
  return buf
}

// BEP 15, "Announce": connection_id, action 1, transaction_id, info_hash,
// peer_id, downloaded, left, uploaded (64-bit), event, IP address, key,
// num_want (32-bit), port (16-bit): 98 bytes.
function announceRequest (connectionId, tid, { infoHash, peerId, left = 0n, event = 2, numWant = -1, port }) {
  const b = Buffer.alloc(98)
  connectionId.copy(b, 0)
  b.writeUInt32BE(1, 8)
  b.writeUInt32BE(tid, 12)
  infoHash.copy(b, 16)
  peerId.copy(b, 36)
  b.writeBigUInt64BE(0n, 56)
  b.writeBigUInt64BE(left, 64)
  b.writeBigUInt64BE(0n, 72)
  b.writeUInt32BE(event, 80)
  b.writeUInt32BE(0, 84)
  b.writeUInt32BE(0, 88)
  b.writeInt32BE(numWant, 92)
  b.writeUInt16BE(port, 96)
  return b
}

function checkCount (value, name) {
  if (value === undefined) return undefined
  if (!Number.isInteger(value) || value < 0) throw new TypeError(`${name} must be a non-negative integer`)
  return value
}

/**
 * A UDP exchange with a tracker on `host` that repeats until it succeeds:
 * `step(socket)` runs once the socket is bound and then every
 * READY_RETRY_MS; `onMessage(msg, socket, done)` calls `done()` once the
 * reply it waits for has come. Rejects with `timeoutMessage` after
 * `timeoutMs`, or when `exited` (the tracker process's end) settles first.
 */
function probeUntil (host, { timeoutMs, timeoutMessage, exited, step, onMessage }) {
  return new Promise((resolve, reject) => {
    const socket = udpSocket(host)
    let done = false
    let retry = null
    const finish = (err) => {
      if (done) return
      done = true
      clearInterval(retry)
      clearTimeout(deadline)
      socket.close()
      if (err) reject(err)
      else resolve()
    }
    socket.on('message', (msg) => onMessage(msg, socket, () => finish(null)))
    // ECONNREFUSED and the like while the tracker is still binding: keep trying.
    socket.on('error', () => {})
    const deadline = setTimeout(() => finish(new Error(timeoutMessage)), timeoutMs)
    if (exited) exited.then((how) => finish(new Error(`the tracker exited before answering (${how})`)))
    socket.bind(0, host, () => {
      if (done) return
      step(socket)
      retry = setInterval(step, READY_RETRY_MS, socket)
    })
  })
}

/**
 * Sends connect requests to host:port every 50 ms until one is answered, or
 * rejects after `timeoutMs` or when `exited` settles first.
 */
function waitUntilAnswering (host, port, timeoutMs, exited) {
  const tid = randomBytes(4).readUInt32BE(0)
  const request = connectRequest(tid)
  return probeUntil(host, {
    timeoutMs,
    timeoutMessage: `no reply to a connect request within ${timeoutMs} ms`,
    exited,
    step: (socket) => socket.send(request, port, host, () => {}),
    onMessage: (msg, socket, done) => {
      if (msg.length === 16 && msg.readUInt32BE(0) === 0 && msg.readUInt32BE(4) === tid) done()
    }
  })
}

/**
 * Starts aquatic_udp on loopback. Resolves to `{ url, host, port, stop() }`
 * once it answers a connect request on its port.
 */
async function startAquatic (options = {}) {
  const ipv6 = options.ipv6 === true
  const host = ipv6 ? '::1' : '127.0.0.1'
  const maxScrapeTorrents = checkCount(options.maxScrapeTorrents, 'maxScrapeTorrents')
  const maxResponsePeers = checkCount(options.maxResponsePeers, 'maxResponsePeers')
  const announceInterval = checkCount(options.announceInterval, 'announceInterval')
  const readyTimeoutMs = options.readyTimeoutMs ?? 10000
  const binary = await provisionAquatic()
  const port = options.port === undefined ? await freeUdpPort(host) : options.port
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`port must be 1-65535, got ${port}`)
  const address = ipv6 ? `[::1]:${port}` : `127.0.0.1:${port}`

  const protocol = {}
  if (maxScrapeTorrents !== undefined) protocol.max_scrape_torrents = maxScrapeTorrents
  if (maxResponsePeers !== undefined) protocol.max_response_peers = maxResponsePeers
  if (announceInterval !== undefined) protocol.peer_announce_interval = announceInterval
  // Everything else stays aquatic's default (one socket worker, no statistics,
  // no access list, an 8 MB receive buffer).
  const config = aquaticConfig(binary, {
    '': { log_level: options.logLevel ?? 'warn' },
    network: { address, only_ipv6: ipv6 },
    protocol
  })
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aquatic-udp-'))
  const configPath = path.join(dir, 'aquatic_udp.toml')
  fs.writeFileSync(configPath, config)

  // Killed and its dir removed if the test process exits without stopping it.
  const tracker = spawnTracker(binary, ['-c', configPath], { cwd: dir, dir })
  const stop = tracker.stop

  try {
    await waitUntilAnswering(host, port, readyTimeoutMs, tracker.exited)
  } catch (err) {
    await stop()
    throw new Error(`aquatic_udp (${binary}) did not start on ${address}: ${err.message}\n${tracker.describeOutput()}`)
  }

  return {
    url: ipv6 ? `udp://[::1]:${port}` : `udp://127.0.0.1:${port}`,
    host,
    port,
    binary,
    configPath,
    stop,
    get stderr () { return tracker.stderr },
    get exited () { return !tracker.alive }
  }
}

module.exports = { startAquatic, freeUdpPort, hasIpv6Loopback, waitUntilAnswering, probeUntil, udpSocket, connectRequest, announceRequest }
