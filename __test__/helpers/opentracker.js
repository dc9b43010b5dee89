'use strict'
// Starts opentracker (Debian's package: /usr/bin/opentracker) on loopback for
// the integration tests and the burst benchmark, in its default configuration.
//
//   const tracker = await startOpentracker({ whitelist: [hash1, hash2] })
//   ... new UdpTracker(peerId, hash1, tracker.url, opts) ...
//   await tracker.stop()
//
// Debian builds opentracker whitelist-only (WANT_ACCESSLIST_WHITE): it serves
// only the info hashes listed in its whitelist, one 40-digit hex hash a line.
// The helper writes the hashes it is given (Buffers or hex strings) to a fresh
// temp dir and runs
//
//   opentracker -i 127.0.0.1 -P PORT -d DIR -w whitelist.txt
//
// -i and -P bind that one UDP socket and nothing else: opentracker opens its
// default TCP and UDP listeners on *:6969 only when no -p/-P is given. -d is
// the directory it chroots to when started as root (it then runs as
// "nobody"), so the whitelist is named relative to it. Nothing else is set:
// the socket keeps the kernel's default receive buffer (net.core.rmem_default).
// The tracker counts as started once it answers a BEP 15 connect. stop() sends
// SIGTERM (SIGKILL after 2 s) and removes the dir; trackers still running when
// the process exits are killed (helpers/tracker-process.js).
//
// Debian's build is IPv4 only: with { ipv6: true } it exits saying "Tracker is
// V4 only!", and startOpentracker rejects with that text (ipv6Unsupported()
// tells beforehand).
//
// The binary is $OPENTRACKER, else `opentracker` on PATH, else
// /usr/bin/opentracker; opentrackerUnavailable() says why there is none
// (.ci/run installs the Debian package).

const { spawnSync } = require('node:child_process')
const { randomBytes } = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { freeUdpPort, waitUntilAnswering, probeUntil, connectRequest, announceRequest } = require('./aquatic.js')
const { spawnTracker } = require('./tracker-process.js')

const HEX_HASH = /^[0-9a-fA-F]{40}$/

/** The opentracker binary, or null. */
function findOpentracker () {
  if (process.env.OPENTRACKER) return fs.existsSync(process.env.OPENTRACKER) ? process.env.OPENTRACKER : null
  for (const dir of (process.env.PATH || '').split(path.delimiter).concat(['/usr/bin', '/usr/sbin'])) {
    if (!dir) continue
    const candidate = path.join(dir, 'opentracker')
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      return candidate
    } catch {}
  }
  return null
}

/** Why opentracker cannot be started here (a sentence), or null when it can. */
function opentrackerUnavailable () {
  if (process.platform !== 'linux') return `opentracker tests run on Linux only (this is ${process.platform})`
  if (findOpentracker() === null) {
    return 'opentracker is not installed (Debian/Ubuntu: apt-get install opentracker; or set OPENTRACKER=/path/to/opentracker)'
  }
  return null
}

/** Whether this opentracker build refuses IPv6 ("Tracker is V4 only!"): null when it serves ::1. */
function ipv6Unsupported () {
  const binary = findOpentracker()
  if (binary === null) return opentrackerUnavailable()
  // A V4-only build exits at once on an IPv6 -i; one that is not keeps running (killed after 1 s).
  const out = spawnSync(binary, ['-i', '::1', '-P', '0', '-d', os.tmpdir()], { encoding: 'utf8', timeout: 1000 })
  const text = `${out.stdout || ''}${out.stderr || ''}`.trim()
  if (out.error && out.error.code === 'ETIMEDOUT') return null
  return `opentracker does not serve IPv6 here: ${text || `exit ${out.status}`}`
}

/** A 40-digit lower-case hex hash from a 20-byte Buffer/Uint8Array or a hex string. */
function hexHash (value, where) {
  if (typeof value === 'string' && HEX_HASH.test(value)) return value.toLowerCase()
  if (value instanceof Uint8Array && value.length === 20) return Buffer.from(value).toString('hex')
  throw new TypeError(`${where} must be a 20-byte Buffer or a 40-character hex string`)
}

/**
 * Starts opentracker on 127.0.0.1 (or ::1 with { ipv6: true }), serving the
 * info hashes of `options.whitelist`. Resolves to
 * `{ url, host, port, pid, binary, args, whitelistPath, stop(), output, exited }`.
 */
async function startOpentracker (options = {}) {
  const binary = findOpentracker()
  if (binary === null) throw new Error(opentrackerUnavailable())
  const whitelist = options.whitelist ?? []
  if (!Array.isArray(whitelist)) throw new TypeError('options.whitelist must be an array of info hashes')
  const lines = whitelist.map((h, i) => hexHash(h, `options.whitelist[${i}]`))
  const ipv6 = options.ipv6 === true
  const host = ipv6 ? '::1' : '127.0.0.1'
  const readyTimeoutMs = options.readyTimeoutMs ?? 10000
  const port = options.port === undefined ? await freeUdpPort(host) : options.port
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`options.port must be 1-65535, got ${port}`)

  // Readable by "nobody", which opentracker becomes after its chroot when run as root.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opentracker-'))
  fs.chmodSync(dir, 0o755)
  const whitelistPath = path.join(dir, 'whitelist.txt')
  fs.writeFileSync(whitelistPath, lines.join('\n') + (lines.length ? '\n' : ''), { mode: 0o644 })

  const args = ['-i', host, '-P', String(port), '-d', dir, '-w', 'whitelist.txt']
  const tracker = spawnTracker(binary, args, { cwd: dir, dir })
  const stop = tracker.stop

  try {
    await waitUntilAnswering(host, port, readyTimeoutMs, tracker.exited)
    if (lines.length > 0) await waitForWhitelist(host, port, Buffer.from(lines[0], 'hex'), readyTimeoutMs)
  } catch (err) {
    await stop()
    throw new Error(`opentracker (${binary} ${args.join(' ')}) did not start: ${err.message}\n${tracker.describeOutput()}`)
  }

  return {
    url: ipv6 ? `udp://[::1]:${port}` : `udp://127.0.0.1:${port}`,
    host,
    port,
    pid: tracker.child.pid,
    binary,
    args,
    whitelistPath,
    stop,
    get output () { return tracker.stdout + tracker.stderr },
    get exited () { return !tracker.alive }
  }
}

/**
 * opentracker reads its whitelist in a thread of its own after it starts
 * answering; until then it answers an announce of a listed hash as of any
 * other: 8 bytes, no counts. Announces `started` for `hash` (a peer of our
 * own, port 1) until the answer has the counts, then `stopped` until that is
 * answered, so that the swarm is empty again. Raw BEP 15, so that no connection id of the client
 * under test is involved.
 */
function waitForWhitelist (host, port, hash, timeoutMs) {
  const peerId = randomBytes(20)
  const tid = randomBytes(4).readUInt32BE(0)
  let connectionId = null
  let stopping = false
  const announce = (socket, event) => {
    const request = announceRequest(connectionId, tid, { infoHash: hash, peerId, event, port: 1 })
    socket.send(request, port, host, () => {})
  }
  return probeUntil(host, {
    timeoutMs,
    timeoutMessage: `the whitelist was not loaded within ${timeoutMs} ms`,
    step: (socket) => {
      if (stopping) {
        announce(socket, 3)
      } else if (connectionId === null) {
        socket.send(connectRequest(tid), port, host, () => {})
      } else {
        announce(socket, 2)
      }
    },
    onMessage: (msg, socket, done) => {
      if (msg.length < 8 || msg.readUInt32BE(4) !== tid) return
      const action = msg.readUInt32BE(0)
      if (action === 0 && msg.length === 16 && connectionId === null) {
        connectionId = msg.subarray(8, 16)
        announce(socket, 2)
      } else if (action === 1 && msg.length >= 20 && !stopping) {
        stopping = true
        announce(socket, 3)
      } else if (action === 1 && msg.length >= 20 && stopping) {
        done()
      }
    }
  })
}

module.exports = { startOpentracker, findOpentracker, opentrackerUnavailable, ipv6Unsupported, hexHash }
