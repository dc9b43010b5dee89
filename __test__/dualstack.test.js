'use strict'
// A tracker host name with both an IPv4 and an IPv6 address, reachable on only
// one of them. The name comes from a hosts file bind-mounted over /etc/hosts
// in a private mount namespace (helpers/private-names.js), so the test changes
// nothing outside its own child process and sends no DNS query.

const test = require('node:test')
const assert = require('node:assert/strict')
const { ScriptServer } = require('./helpers/script-server')
const { canIsolateNames, runWithNames, SKIP_REASON } = require('./helpers/private-names')

const NAME = 'dualstack.test'
const skip = !canIsolateNames && SKIP_REASON

/** Runs `script` in a child that resolves NAME to 127.0.0.1 and ::1 (and nothing else). */
function runWithDualStackName (script) {
  return runWithNames(script, { [NAME]: ['127.0.0.1', '::1'] }, { timeoutMs: 10000 })
}

const announceScript = (port, extra) => `
  const UdpTracker = require('.')
  const t = new UdpTracker('-DS0001-000000000000', 'ab'.repeat(20), 'udp://${NAME}:${port}', { _timeout: 50, port: 1${extra} })
  t.on('update', (u) => { console.log(JSON.stringify({ ok: u, stats: UdpTracker.stats() })); t.destroy() })
  t.on('error', (e) => { console.log(JSON.stringify({ error: e })); t.destroy() })
  t.announce(2, {})
`

test('a host name reachable only over IPv6 is announced to after the IPv4 attempt goes unanswered',
  { skip }, async () => {
    const server = await ScriptServer.create({ host: '::1' })
    try {
      const { code, out, err } = await runWithDualStackName(announceScript(server.port, ''))
      assert.equal(code, 0, err)
      const result = JSON.parse(out.trim())
      assert.ok(result.ok, `expected an update, got ${out}`)
      assert.equal(result.stats.sockets, 2, 'one socket per family was used')
      assert.equal(server.connects.length, 1)
      assert.equal(server.connects[0].rinfo.family, 'IPv6')
    } finally {
      await server.close()
    }
  })

test('family 4 never falls back to IPv6', { skip }, async () => {
  const server = await ScriptServer.create({ host: '::1' })
  try {
    const { code, out, err } = await runWithDualStackName(announceScript(server.port, ', family: 4, maxAttempts: 1'))
    assert.equal(code, 0, err)
    assert.deepEqual(JSON.parse(out.trim()), { error: 'tracker is not responding after:100' })
    assert.equal(server.received.length, 0)
  } finally {
    await server.close()
  }
})

test('family 6 goes straight to the IPv6 address', { skip }, async () => {
  const server = await ScriptServer.create({ host: '::1' })
  try {
    const { code, out, err } = await runWithDualStackName(announceScript(server.port, ', family: 6'))
    assert.equal(code, 0, err)
    const result = JSON.parse(out.trim())
    assert.ok(result.ok, out)
    assert.equal(result.stats.sockets, 1, 'no IPv4 socket was opened')
  } finally {
    await server.close()
  }
})
