'use strict'
// Runs a node script in a child process whose name lookups never leave the
// machine: in a private mount namespace (`unshare -m`, root only) a hosts
// file of the test's making is bind-mounted over /etc/hosts, and an
// nsswitch.conf saying `hosts: files` over /etc/nsswitch.conf, so a name is
// either in that file or fails to resolve at once, with no DNS query.
//
//   const { canIsolateNames, runWithNames } = require('./helpers/private-names')
//   const { code, out, err } = await runWithNames(script, { 'dualstack.test': ['127.0.0.1', '::1'] })

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const canIsolateNames = spawnSync('unshare', ['-m', 'true']).status === 0
const SKIP_REASON = 'needs unshare -m (root) for a private /etc/hosts and /etc/nsswitch.conf'

function runWithNames (script, names = {}, { timeoutMs = 15000 } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'udp-tracker-names-'))
  const hosts = path.join(dir, 'hosts')
  const nsswitch = path.join(dir, 'nsswitch.conf')
  const lines = ['127.0.0.1 localhost']
  for (const [name, addrs] of Object.entries(names)) for (const a of addrs) lines.push(`${a} ${name}`)
  fs.writeFileSync(hosts, lines.join('\n') + '\n')
  fs.writeFileSync(nsswitch, 'hosts: files\n')
  const child = spawn('unshare', ['-m', 'sh', '-c',
    'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/nsswitch.conf && exec "$3" -e "$4"', 'sh',
    hosts, nsswitch, process.execPath, script], { cwd: path.join(__dirname, '..', '..'), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => { out += d })
  child.stderr.on('data', (d) => { err += d })
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  return new Promise((resolve) => child.on('close', (code) => {
    clearTimeout(killer)
    fs.rmSync(dir, { recursive: true, force: true })
    resolve({ code, out, err })
  }))
}

module.exports = { canIsolateNames, runWithNames, SKIP_REASON }
