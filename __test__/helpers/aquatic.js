'use strict'
// Starts a real BitTorrent UDP tracker, aquatic_udp 0.9.0, on loopback for the
// integration tests.
//
//   const tracker = await startAquatic({ announceInterval: 1800 })
//   ... new UdpTracker(peerId, infoHash, tracker.url, opts) ...
//   await tracker.stop()
//
// The binary is $AQUATIC_UDP, else `aquatic_udp` on PATH, else
// ~/.cargo/bin/aquatic_udp. Its config is `aquatic_udp -p` with a few keys
// replaced, written to a fresh temp dir (also the tracker's working
// directory). The tracker counts as started once it answers a real BEP 15
// connect request on its port. Only loopback addresses are used: 127.0.0.1, or
// ::1 with { ipv6: true }.
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

const { execFileSync, spawn } = require('node:child_process')
const { randomBytes } = require('node:crypto')
const dgram = require('node:dgram')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const PROTOCOL_ID = 0x41727101980n
const INSTALL_HINT = 'run `cargo install aquatic_udp@0.9.0` (or set AQUATIC_UDP to the binary)'
const READY_RETRY_MS = 50
const STOP_GRACE_MS = 2000
const OUTPUT_KEPT = 64 * 1024

// Trackers still running: killed if the test process exits without stopping
// them, or is ended by SIGINT / SIGTERM (which then end it as they would have).
const running = new Map() // child process -> its temp dir

function killRunning () {
  for (const [child, dir] of running) {
    try { child.kill('SIGKILL') } catch {}
    try { fs.rmSync(dir, { recursive: true, force: true }) } catch {}
  }
}

process.on('exit', killRunning)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    killRunning()
    process.kill(process.pid, signal)
  })
}

function isExecutable (file) {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** The aquatic_udp binary to run; throws with the install command when there is none. */
function findAquatic () {
  const fromEnv = process.env.AQUATIC_UDP
  if (fromEnv) {
    if (!isExecutable(fromEnv)) {
      throw new Error(`AQUATIC_UDP=${fromEnv} is not an executable file; unset it or ${INSTALL_HINT}`)
    }
    return fromEnv
  }
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (dir === '') continue
    const candidate = path.join(dir, 'aquatic_udp')
    if (isExecutable(candidate)) return candidate
  }
  const cargoBin = path.join(process.env.CARGO_HOME || path.join(os.homedir(), '.cargo'), 'bin', 'aquatic_udp')
  if (isExecutable(cargoBin)) return cargoBin
  throw new Error(`aquatic_udp not found (looked at $AQUATIC_UDP, PATH and ${cargoBin}): ${INSTALL_HINT}`)
}

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

/**
 * `toml` with `key = value` set in `section` ('' for the top level): the
 * key's line replaced, or a line added at the section's start.
 */
function setTomlKey (toml, section, key, value) {
  const lines = toml.split('\n')
  let current = ''
  let sectionStart = section === '' ? 0 : -1
  const keyLine = new RegExp(`^\\s*${key}\\s*=`)
  for (let i = 0; i < lines.length; i++) {
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(lines[i])
    if (header) {
      current = header[1].trim()
      if (current === section) sectionStart = i + 1
      continue
    }
    if (current === section && keyLine.test(lines[i])) {
      lines[i] = `${key} = ${value}`
      return lines.join('\n')
    }
  }
  if (sectionStart === -1) {
    lines.push(`[${section}]`)
    sectionStart = lines.length
  }
  lines.splice(sectionStart, 0, `${key} = ${value}`)
  return lines.join('\n')
}

function tomlString (s) {
  return JSON.stringify(s)
}

function buildConfig (binary, settings) {
  let toml = execFileSync(binary, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  for (const [section, key, value] of settings) toml = setTomlKey(toml, section, key, value)
  return toml
}

/** A BEP 15 connect request with transaction id `tid`. */
function connectRequest (tid) {
  const buf = Buffer.alloc(16)
  buf.writeBigUInt64BE(PROTOCOL_ID, 0)
  buf.writeUInt32BE(0, 8)
  buf.writeUInt32BE(tid, 12)
  return buf
}

function checkCount (value, name) {
  if (value === undefined) return undefined
  if (!Number.isInteger(value) || value < 0) throw new TypeError(`${name} must be a non-negative integer`)
  return value
}

/**
 * Sends connect requests to host:port every 50 ms until one is answered, or
 * rejects after `timeoutMs` or when `exited` settles first.
 */
function waitUntilAnswering (host, port, timeoutMs, exited) {
  return new Promise((resolve, reject) => {
    const socket = udpSocket(host)
    const tid = randomBytes(4).readUInt32BE(0)
    const request = connectRequest(tid)
    let done = false
    let retry = null
    let deadline = null
    const finish = (err) => {
      if (done) return
      done = true
      clearInterval(retry)
      clearTimeout(deadline)
      socket.close()
      if (err) reject(err)
      else resolve()
    }
    const send = () => socket.send(request, port, host, () => {})
    socket.on('message', (msg) => {
      if (msg.length === 16 && msg.readUInt32BE(0) === 0 && msg.readUInt32BE(4) === tid) finish(null)
    })
    // ECONNREFUSED and the like while aquatic is still binding: keep trying.
    socket.on('error', () => {})
    socket.bind(0, host, () => {
      send()
      retry = setInterval(send, READY_RETRY_MS)
    })
    deadline = setTimeout(() => finish(new Error(`no reply to a connect request within ${timeoutMs} ms`)), timeoutMs)
    exited.then((how) => finish(new Error(`aquatic_udp exited before answering (${how})`)))
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
  const binary = findAquatic()
  const port = options.port === undefined ? await freeUdpPort(host) : options.port
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`port must be 1-65535, got ${port}`)
  const address = ipv6 ? `[::1]:${port}` : `127.0.0.1:${port}`

  const settings = [
    ['', 'socket_workers', '1'],
    ['', 'log_level', tomlString(options.logLevel ?? 'warn')],
    ['network', 'address', tomlString(address)],
    ['network', 'only_ipv6', String(ipv6)],
    // The kernel caps this at net.core.rmem_max; big enough for 1,000 announces at once.
    ['network', 'socket_recv_buffer_size', '8000000'],
    ['statistics', 'run_prometheus_endpoint', 'false'],
    ['statistics', 'prometheus_endpoint_address', tomlString(ipv6 ? '[::1]:0' : '127.0.0.1:0')],
    ['statistics', 'print_to_stdout', 'false'],
    ['statistics', 'write_html_to_file', 'false'],
    ['privileges', 'drop_privileges', 'false'],
    ['access_list', 'mode', '"off"']
  ]
  if (maxScrapeTorrents !== undefined) settings.push(['protocol', 'max_scrape_torrents', String(maxScrapeTorrents)])
  if (maxResponsePeers !== undefined) settings.push(['protocol', 'max_response_peers', String(maxResponsePeers)])
  if (announceInterval !== undefined) settings.push(['protocol', 'peer_announce_interval', String(announceInterval)])

  const config = buildConfig(binary, settings)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aquatic-udp-'))
  const configPath = path.join(dir, 'aquatic_udp.toml')
  fs.writeFileSync(configPath, config)

  const child = spawn(binary, ['-c', configPath], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  running.set(child, dir)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stdout.on('data', (s) => { if (stdout.length < OUTPUT_KEPT) stdout += s })
  child.stderr.on('data', (s) => { if (stderr.length < OUTPUT_KEPT) stderr += s })
  // 'close' rather than 'exit': its output has been read by then.
  const exited = new Promise((resolve) => {
    child.once('error', (err) => { running.delete(child); resolve(`spawn error: ${err.message}`) })
    child.once('close', (code, signal) => { running.delete(child); resolve(signal ? `signal ${signal}` : `code ${code}`) })
  })

  let stopping = null
  const stop = () => {
    if (stopping === null) {
      stopping = (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM')
          const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
          await exited
          clearTimeout(killer)
        }
        await exited
        fs.rmSync(dir, { recursive: true, force: true })
      })()
    }
    return stopping
  }

  try {
    await waitUntilAnswering(host, port, readyTimeoutMs, exited)
  } catch (err) {
    await stop()
    const output = [stderr.trim() && `stderr:\n${stderr.trim()}`, stdout.trim() && `stdout:\n${stdout.trim()}`]
      .filter(Boolean).join('\n') || '(aquatic_udp printed nothing)'
    throw new Error(`aquatic_udp (${binary}) did not start on ${address}: ${err.message}\n${output}`)
  }

  return {
    url: ipv6 ? `udp://[::1]:${port}` : `udp://127.0.0.1:${port}`,
    host,
    port,
    binary,
    configPath,
    stop,
    get stderr () { return stderr },
    get exited () { return child.exitCode !== null || child.signalCode !== null }
  }
}

module.exports = { startAquatic, findAquatic, freeUdpPort, hasIpv6Loopback, INSTALL_HINT }
