'use strict'
// Starts a real SOCKS5 proxy, Debian's danted (Dante 1.4.2), on loopback for
// the proxy tests and the proxy benchmark, with the config in danted.conf.
//
//   const proxy = await startDanted()        // or startDanted({ names })
//   ... { proxy: proxy.url } ...             // socks5://127.0.0.1:PORT
//   await proxy.stop()
//
// danted forks a monitor, negotiate, request and io children; the io child
// keeps relaying if only the main process goes. So it runs in a process group
// of its own, and stop() sends SIGTERM to the whole group (then SIGKILL).
//
// `names` ({ 'tracker.socks.test': ['127.0.0.1'] }): danted runs in a private
// mount namespace (unshare -m, root only) with a hosts file of those names
// over /etc/hosts and `hosts: files` over /etc/nsswitch.conf, so the names it
// resolves for socks5h:// never become a DNS query (see private-names.js).

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const DANTED = process.env.DANTED || '/usr/sbin/danted'
const CONFIG = path.join(__dirname, 'danted.conf')
const READY_TIMEOUT_MS = 10000
const STOP_GRACE_MS = 2000

const available = fs.existsSync(DANTED)
const SKIP_REASON = `needs ${DANTED} (apt-get install dante-server)`
const canIsolate = spawnSync('unshare', ['-m', 'true']).status === 0

const running = new Set()
process.on('exit', () => {
  for (const child of running) {
    try { process.kill(-child.pid, 'SIGKILL') } catch {}
  }
})

function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

function canConnect (port) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

async function startDanted ({ names = null, port = null } = {}) {
  if (!available) throw new Error(SKIP_REASON)
  port = port || await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'udp-tracker-danted-'))
  const conf = path.join(dir, 'danted.conf')
  fs.writeFileSync(conf, fs.readFileSync(CONFIG, 'utf8').replaceAll('@PORT@', String(port)))
  let command = DANTED
  let args = ['-f', conf, '-N', '1']
  if (names !== null) {
    if (!canIsolate) throw new Error('private names need unshare -m (root)')
    const hosts = path.join(dir, 'hosts')
    const lines = ['127.0.0.1 localhost']
    for (const [name, addrs] of Object.entries(names)) for (const a of addrs) lines.push(`${a} ${name}`)
    fs.writeFileSync(hosts, lines.join('\n') + '\n')
    fs.writeFileSync(path.join(dir, 'nsswitch.conf'), 'hosts: files\n')
    command = 'unshare'
    args = ['-m', 'sh', '-c',
      'mount --bind "$1/hosts" /etc/hosts && mount --bind "$1/nsswitch.conf" /etc/nsswitch.conf && exec "$2" -f "$1/danted.conf" -N 1',
      'sh', dir, DANTED]
  }
  const child = spawn(command, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] })
  running.add(child)
  let log = ''
  child.stderr.on('data', (d) => { log = (log + d).slice(-16384) })
  let exited = false
  const exit = new Promise((resolve) => child.once('exit', () => { exited = true; running.delete(child); resolve() }))
  const stop = async () => {
    if (!exited) {
      try { process.kill(-child.pid, 'SIGTERM') } catch {}
      const killer = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL') } catch {} }, STOP_GRACE_MS)
      await exit
      clearTimeout(killer)
    }
    // The children may outlive the main process by a moment.
    for (let i = 0; i < 50 && await canConnect(port); i++) await new Promise((resolve) => setTimeout(resolve, 20))
    try { process.kill(-child.pid, 'SIGKILL') } catch {}
    fs.rmSync(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (!(await canConnect(port))) {
    if (exited || Date.now() > deadline) {
      await stop()
      throw new Error(`danted did not start on port ${port}: ${log}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 30))
  }
  return {
    port,
    pid: child.pid,
    url: `socks5://127.0.0.1:${port}`,
    url6: `socks5://[::1]:${port}`,
    log: () => log,
    stop
  }
}

module.exports = { startDanted, available, canIsolate, SKIP_REASON }
