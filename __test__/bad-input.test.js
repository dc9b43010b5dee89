'use strict'
// Every argument of every public function, wrong: wrong types, wrong lengths,
// NaN, negative, huge, BigInt out of range, missing, extra. Expected: a
// TypeError or RangeError whose message names the argument (a rejected
// promise for the promise API), nothing sent, nothing left pending, no
// half-constructed instance that throws later inside a timer. The riskiest
// inputs (throwing getters, Proxies, Symbols, huge strings) run in a child
// process, which must survive them.

const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawn } = require('node:child_process')

const UdpTracker = require('..')
const { ScriptServer, recordEvents, nextEvent, sleep } = require('./helpers/script-server.js')

const PACKAGE = path.join(__dirname, '..')
const P = Buffer.from('-JS0001-badinput0000')
const I = Buffer.from('badbadbadbadbadbadbadbadbadbadbadbadbad0', 'hex')
// A valid URL for checks that never send.
const NOWHERE = 'udp://127.0.0.1:9/announce'

async function serverFor (t) {
  const server = await ScriptServer.create()
  t.after(() => server.close())
  return server
}

function describe (value) {
  if (typeof value === 'symbol') return value.toString()
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'string') return value.length > 40 ? `a ${value.length}-character string` : JSON.stringify(value)
  if (Buffer.isBuffer(value)) return `a ${value.length}-byte Buffer`
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}(${value.length})`
  if (value instanceof UdpTracker) return 'a UdpTracker instance'
  if (Number.isNaN(value)) return 'NaN'
  if (value === Infinity || value === -Infinity) return String(value)
  if (Object.is(value, -0)) return '-0'
  try { return JSON.stringify(value) ?? String(value) } catch { return String(value) }
}

/**
 * A RegExp matching a message that names `name` as a word ('a|b': either).
 */
function names (name) {
  const alternatives = name.split('|').map((n) => n.replace(/[.[\]]/g, (c) => `\\${c}`))
  return new RegExp(`(^|[^\\w.\\[])(${alternatives.join('|')})([^\\w]|$)`)
}

/** No request, no keep-alive timer: what a failed call must leave behind. */
function pendingState () {
  return {
    inFlight: UdpTracker.stats().inFlight,
    timers: process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  }
}

/**
 * Asserts that `fn()` throws a TypeError or RangeError (or the given `type`)
 * whose message names `name`, and leaves nothing pending.
 */
function expectThrows (fn, name, label, type = null) {
  const before = pendingState()
  let thrown = null
  let result
  try {
    result = fn()
  } catch (err) {
    thrown = err
  }
  assert.ok(thrown !== null, `${label}: accepted (returned ${describe(result)}); expected a ${type ? type.name : 'TypeError or RangeError'} naming ${name}`)
  if (result && typeof result.destroy === 'function') result.destroy()
  const ok = type ? thrown instanceof type : (thrown instanceof TypeError || thrown instanceof RangeError)
  assert.ok(ok, `${label}: threw ${thrown && thrown.constructor && thrown.constructor.name} (${thrown && thrown.message}); expected a ${type ? type.name : 'TypeError or RangeError'}`)
  assert.match(thrown.message, names(name), `${label}: the message ${JSON.stringify(thrown.message.slice(0, 200))} does not name ${name}`)
  assert.deepEqual(pendingState(), before, `${label}: a failed call left something pending`)
  return thrown
}

/** Asserts that `fn()` returns a promise rejected with a TypeError/RangeError naming `name`. */
async function expectRejects (fn, name, label) {
  const before = pendingState()
  let promise
  try {
    promise = fn()
  } catch (err) {
    assert.fail(`${label}: threw synchronously (${err.constructor.name}: ${err.message}); expected a rejected promise`)
  }
  assert.ok(promise instanceof Promise, `${label}: did not return a promise`)
  let rejected = null
  let guard
  const pendingTooLong = new Promise((resolve) => { guard = setTimeout(resolve, 3000, 'pending') })
  const first = await Promise.race([promise.then(() => 'settled', () => 'settled'), pendingTooLong])
  clearTimeout(guard)
  assert.notEqual(first, 'pending', `${label}: accepted (the promise was still pending after 3 s); expected a rejection naming ${name}`)
  await promise.then(
    (value) => assert.fail(`${label}: resolved with ${describe(value)}; expected a rejection naming ${name}`),
    (err) => { rejected = err })
  assert.ok(rejected instanceof TypeError || rejected instanceof RangeError,
    `${label}: rejected with ${rejected && rejected.constructor && rejected.constructor.name} (${rejected && rejected.message}); expected a TypeError or RangeError`)
  assert.match(rejected.message, names(name), `${label}: the message ${JSON.stringify(rejected.message.slice(0, 200))} does not name ${name}`)
  assert.deepEqual(pendingState(), before, `${label}: a rejected call left something pending`)
}

// Values that are wrong for every kind of argument.
const NOT_A_BUFFER = [undefined, null, 0, 20, 1.5, NaN, -1, true, {}, [], () => {}, Symbol('s'), 20n, new Uint16Array(10), new ArrayBuffer(20), new DataView(new ArrayBuffer(20))]
// Strings of decimal digits are numbers (as 1.2.0 took them); these are not.
const NOT_A_NUMBER = [' 80', '8e1', '0x50', '80.0', '+80', '1_000', '', true, {}, [], () => {}, Symbol('s'), 80n, new Number(80)]
const BAD_INTEGERS = [-1, 1.5, NaN, Infinity, -Infinity, 1e308, Number.MAX_SAFE_INTEGER + 2]

// ---------------------------------------------------------------------------
// new UdpTracker(peerId, infoHash, announceUrl, opts)

test('peerId: wrong types and wrong lengths are a TypeError or RangeError naming peerId', () => {
  const bad = [...NOT_A_BUFFER, Buffer.alloc(0), Buffer.alloc(19), Buffer.alloc(21), Buffer.alloc(1 << 20),
    new Uint8Array(19), '', 'a'.repeat(19), 'a'.repeat(21), '\u20ac'.repeat(7) /* 21 UTF-8 bytes */, 'x'.repeat(1 << 20),
    '\u00e9BCDEFGHIJKLMNOPQRST' /* 20 characters, 21 UTF-8 bytes */, 12345678901234567890]
  for (const value of bad) expectThrows(() => new UdpTracker(value, I, NOWHERE), 'peerId', `peerId ${describe(value)}`, TypeError)
})

test('infoHash: wrong types, lengths and non-hex strings are a TypeError or RangeError naming infoHash', () => {
  const bad = [...NOT_A_BUFFER, Buffer.alloc(19), Buffer.alloc(21), 'a'.repeat(20), 'a'.repeat(39), 'a'.repeat(41),
    'zz'.repeat(20), ' ' + 'a'.repeat(39), 'a'.repeat(39) + '\n', '0x' + 'a'.repeat(38), '\u00e9'.repeat(40),
    'abcdefghijabcdefghij', '0123456789abcdef0123456789abcdef0123456z', 42]
  for (const value of bad) expectThrows(() => new UdpTracker(P, value, NOWHERE), 'infoHash', `infoHash ${describe(value)}`, TypeError)
})

test('announceUrl: wrong types and malformed URLs are a TypeError or RangeError naming announceUrl', () => {
  const bad = [undefined, null, 6969, true, {}, [], Symbol('s'), 1n, () => {}, new URL('udp://127.0.0.1:6969'),
    '', 'udp://', 'udp:127.0.0.1:6969', 'http://127.0.0.1:6969/announce', 'https://127.0.0.1/announce',
    'udp://[::1:6969', 'udp://127.0.0.1:65536', 'udp://127.0.0.1:-1', 'udp://127.0.0.1:port',
    'udp:///announce', 'udp:// spaces :80', 'x'.repeat(1 << 20),
    'https://tracker.example/announce', 'not a url', '127.0.0.1:6969', 'udp:/nohost']
  for (const value of bad) expectThrows(() => new UdpTracker(P, I, value), 'announceUrl', `announceUrl ${describe(value)}`, TypeError)
})

test('announceUrl: port 0 is a RangeError naming announceUrl (nothing can be sent to port 0)', async (t) => {
  let accepted = null
  try {
    accepted = new UdpTracker(P, I, 'udp://127.0.0.1:0/announce')
  } catch (err) {
    assert.ok(err instanceof TypeError || err instanceof RangeError)
    assert.match(err.message, names('announceUrl'))
    return
  }
  // Accepted: see what an announce makes of it, for the report.
  t.after(() => accepted.destroy())
  const got = await (accepted.announce(2, {}), nextEvent(accepted, ['update', 'error'], 3000))
  assert.fail(`new UdpTracker(peerId, infoHash, 'udp://127.0.0.1:0/announce') was accepted; announce() then emits ${got.name} ${JSON.stringify(got.value)}`)
})

test('announceUrl: a path and query too long for any UDP datagram is a RangeError naming announceUrl', async (t) => {
  // 98 bytes of announce + 257 per 255 bytes of URL data: 70,000 bytes of path
  // cannot fit in 65,507.
  const server = await serverFor(t)
  const url = `${server.url}/${'a'.repeat(70000)}`
  let accepted = null
  try {
    accepted = new UdpTracker(P, I, url, { _timeout: 50, maxAttempts: 1 })
  } catch (err) {
    assert.ok(err instanceof TypeError || err instanceof RangeError)
    assert.match(err.message, names('announceUrl'))
    return
  }
  t.after(() => accepted.destroy())
  const got = await (accepted.announce(2, {}), nextEvent(accepted, ['update', 'error'], 3000))
  assert.fail(`an announceUrl with a 70,000-byte path was accepted by the constructor; announce() then sends ${server.received.map((r) => r.type).join(', ')} and emits ${got.name} ${JSON.stringify(got.value)}`)
})

test('opts: not an object is a TypeError naming opts; null and undefined mean defaults; extra arguments are ignored', () => {
  for (const value of ['x', 5, true, Symbol('s'), 1n, () => {}]) expectThrows(() => new UdpTracker(P, I, NOWHERE, value), 'opts', `opts ${describe(value)}`)
  for (const value of [undefined, null, {}, Object.create(null)]) new UdpTracker(P, I, NOWHERE, value).destroy()
  new UdpTracker(P, I, NOWHERE, {}, 'extra', 42, {}).destroy()
})

test('opts.port, _timeout, maxAttempts, numWant, key: NaN, negative, fractional, huge, BigInt and non-numbers name the option', () => {
  const cases = {
    port: [...BAD_INTEGERS, 65536, 2 ** 32],
    _timeout: [0, -0, -1, -1000, NaN, Infinity, -Infinity, 1e308, 2 ** 31],
    maxAttempts: [...BAD_INTEGERS, 0, 9, 2 ** 32],
    numWant: [...BAD_INTEGERS.filter((v) => v !== -1), -2, 2 ** 31, -(2 ** 31)],
    key: [...BAD_INTEGERS, 2 ** 32]
  }
  for (const [option, values] of Object.entries(cases)) {
    for (const value of values) {
      expectThrows(() => new UdpTracker(P, I, NOWHERE, { [option]: value }), `opts.${option}`, `opts.${option} ${describe(value)}`, RangeError)
    }
    for (const value of NOT_A_NUMBER) {
      expectThrows(() => new UdpTracker(P, I, NOWHERE, { [option]: value }), `opts.${option}`, `opts.${option} ${describe(value)}`, TypeError)
    }
  }
})

test('opts.port accepts 0 to 65535 (default 0); opts._timeout accepts 1 ms', () => {
  for (const port of [0, 65535]) {
    const tracker = new UdpTracker(P, I, NOWHERE, { port })
    assert.equal(tracker.port, port)
    tracker.destroy()
  }
  const plain = new UdpTracker(P, I, NOWHERE, {})
  assert.equal(plain.port, 0)
  plain.destroy()
  const quick = new UdpTracker(P, I, NOWHERE, { _timeout: 1 })
  assert.equal(quick._timeout, 1)
  quick.destroy()
})

test('opts._timeout below 1 ms (0.5, 1e-9, 5e-324) is a RangeError, as its own message ("from 1 to 2147483647") says', async (t) => {
  const accepted = []
  for (const value of [0.5, 1e-9, Number.MIN_VALUE]) {
    let tracker
    try {
      tracker = new UdpTracker(P, I, NOWHERE, { _timeout: value })
    } catch (err) {
      assert.ok(err instanceof RangeError, `opts._timeout ${value}: ${err}`)
      assert.match(err.message, names('opts._timeout'))
      continue
    }
    tracker.destroy()
    // Accepted: what does an announce to a silent tracker do with it?
    const server = await serverFor(t)
    server.onConnect = () => null
    const silent = new UdpTracker(P, I, server.url, { _timeout: value })
    t.after(() => silent.destroy())
    const started = performance.now()
    const got = await (silent.announce(2, {}), nextEvent(silent, ['update', 'error'], 3000))
    accepted.push(`${value} (an announce to a silent tracker sends ${server.received.length} connects in ${(performance.now() - started).toFixed(1)} ms, then ${JSON.stringify(got.value)})`)
  }
  assert.deepEqual(accepted, [], `opts._timeout values below 1 ms are accepted: ${accepted.join('; ')}`)
})

test('opts.ip, family, strictSource, connectionIdCache: wrong values name the option', () => {
  const cases = {
    ip: ['1.2.3', '1.2.3.4.5', '256.1.1.1', '::1', 'localhost', '10.0.0', '', 12345, 167837955, 1.5, true, {}, [], Symbol('s'), 1n],
    family: [5, 0.5, -4, '4', '6', 'ipv7', '', NaN, true, {}, [], Symbol('s'), 4n],
    strictSource: ['yes', 'true', 1, 0, {}, [], Symbol('s'), 1n],
    connectionIdCache: ['no', 'false', 1, 0, {}, Symbol('s'), 0n]
  }
  for (const [option, values] of Object.entries(cases)) {
    for (const value of values) {
      // Not an IPv4 address string: a TypeError, as for every other type.
      const type = option === 'ip' ? TypeError : null
      expectThrows(() => new UdpTracker(P, I, NOWHERE, { [option]: value }), `opts.${option}`, `opts.${option} ${describe(value)}`, type)
    }
  }
})

test('opts.auth and opts.requestString: wrong types and more than 255 bytes name the option', () => {
  const auth = [
    ['x', 'opts.auth'], [5, 'opts.auth'], [true, 'opts.auth'], [() => {}, 'opts.auth'], [Symbol('s'), 'opts.auth'],
    [{}, 'opts.auth.user'], [[], 'opts.auth.user'], [{ password: 'p' }, 'opts.auth.user'],
    [{ user: 'u' }, 'opts.auth.password'], [{ user: 5, password: 'p' }, 'opts.auth.user'],
    [{ user: 'u', password: 5 }, 'opts.auth.password'], [{ user: 'u', password: {} }, 'opts.auth.password'],
    [{ user: 'u'.repeat(300), password: 'p' }, 'opts.auth.user'], [{ user: Buffer.alloc(256), password: 'p' }, 'opts.auth.user'],
    [{ user: '\u20ac'.repeat(86), password: 'p' }, 'opts.auth.user'] // 258 UTF-8 bytes
  ]
  for (const [value, name] of auth) expectThrows(() => new UdpTracker(P, I, NOWHERE, { auth: value }), name, `opts.auth ${describe(value)}`)
  for (const value of [5, true, {}, [], Symbol('s'), 'r'.repeat(256), Buffer.alloc(256)]) {
    expectThrows(() => new UdpTracker(P, I, NOWHERE, { requestString: value }), 'opts.requestString', `opts.requestString ${describe(value)}`)
  }
  // At the limit: accepted.
  new UdpTracker(P, I, NOWHERE, { auth: { user: 'u'.repeat(255), password: 'p'.repeat(100000) }, requestString: 'r'.repeat(255) }).destroy()
})

test('missing arguments name the first one missing; calling without new is a TypeError', () => {
  expectThrows(() => new UdpTracker(), 'peerId', 'no arguments')
  expectThrows(() => new UdpTracker(P), 'infoHash', 'only peerId')
  expectThrows(() => new UdpTracker(P, I), 'announceUrl', 'no announceUrl')
  assert.throws(() => UdpTracker(P, I, NOWHERE), TypeError)
})

test('a failed constructor leaves nothing pending and nothing throws later inside a timer', async () => {
  const before = pendingState()
  const thrownLater = []
  const onUncaught = (err) => thrownLater.push(err)
  process.on('uncaughtException', onUncaught)
  try {
    for (let i = 0; i < 2000; i++) {
      const opts = [{ port: -1 }, { _timeout: 0 }, { maxAttempts: 9 }, { numWant: -5 }, { key: -1 }, { ip: 'x' }, { family: 9 }, { auth: {} }][i % 8]
      try { new UdpTracker(P, I, `udp://127.0.0.1:${1000 + (i % 50)}`, opts) } catch {}
      try { new UdpTracker(i % 2 ? Buffer.alloc(3) : P, i % 2 ? I : 'nothex', NOWHERE) } catch {}
    }
    await sleep(300)
  } finally {
    process.off('uncaughtException', onUncaught)
  }
  assert.deepEqual(thrownLater, [], 'something threw asynchronously after failed constructors')
  assert.deepEqual(pendingState(), before)
})

// ---------------------------------------------------------------------------
// tracker.announce(event, opts), scrape(), destroy()

test('announce: bad counters are a TypeError or RangeError naming them; nothing is sent; the instance still works afterwards', async (t) => {
  const server = await serverFor(t)
  const tracker = new UdpTracker(P, I, server.url, { _timeout: 1000 })
  t.after(() => tracker.destroy())
  const events = recordEvents(tracker)
  for (const value of ['x', 5, true, Symbol('s'), 1n]) expectThrows(() => tracker.announce(2, value), 'opts', `announce opts ${describe(value)}`)
  const badCounters = [-1, -1.5, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 64, 1e308, -1n, 2n ** 64n, 2n ** 100n, -(2n ** 64n)]
  const notCounters = ['5', '', true, {}, [], [1], () => {}, Symbol('s'), new Number(5)]
  for (const counter of ['downloaded', 'left', 'uploaded']) {
    for (const value of badCounters) {
      expectThrows(() => tracker.announce(2, { [counter]: value }), `opts.${counter}`, `announce opts.${counter} ${describe(value)}`, RangeError)
    }
    for (const value of notCounters) {
      expectThrows(() => tracker.announce(2, { [counter]: value }), `opts.${counter}`, `announce opts.${counter} ${describe(value)}`, TypeError)
    }
  }
  await sleep(50)
  assert.equal(server.received.length, 0, 'a rejected announce must send nothing')
  assert.deepEqual(events, [], 'a rejected announce must emit nothing')
  assert.equal(tracker._in_interval, false)
  // Edge values that are valid.
  tracker.announce(2, { downloaded: 2n ** 64n - 1n, left: Number.MAX_SAFE_INTEGER, uploaded: -0 }, 'extra', 1)
  const got = await nextEvent(tracker, ['update', 'error'], 3000)
  assert.equal(got.name, 'update', `after the rejected calls a valid announce must work: ${JSON.stringify(got)}`)
  assert.equal(server.announces[0].downloaded, 2n ** 64n - 1n)
  assert.equal(server.announces[0].uploaded, 0n)
})

test('announce: an event outside 0-3 emits "unknown event" asynchronously and sends nothing (as the README says)', async (t) => {
  const server = await serverFor(t)
  const tracker = new UdpTracker(P, I, server.url, { _timeout: 1000 })
  t.after(() => tracker.destroy())
  const bad = [4, -1, 1.5, NaN, Infinity, 2 ** 32, '4', ' 2', 'start', 'Started', '__proto__', 'toString', '', null, undefined, {}, [], [2], true, Symbol('s'), 2n, () => 2]
  for (const event of bad) {
    const seen = []
    tracker.on('error', function onError (e) { seen.push(e) })
    let threw = null
    try { tracker.announce(event, {}) } catch (err) { threw = err }
    assert.equal(threw, null, `announce(${describe(event)}, {}) threw ${threw && threw.message}`)
    assert.deepEqual(seen, [], `announce(${describe(event)}): the error must not be emitted synchronously`)
    await sleep(0)
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(seen, ['unknown event'], `announce(${describe(event)}, {})`)
    tracker.removeAllListeners('error')
  }
  // No argument at all: the same.
  const got = await (tracker.announce(), nextEvent(tracker, ['error', 'update'], 1000))
  assert.deepEqual(got, { name: 'error', value: 'unknown event' })
  await sleep(50)
  assert.equal(server.received.length, 0, 'an unknown event must send nothing')
})

test('scrape() ignores extra arguments; destroy()/destory() take any arguments; every call after destroy is harmless', async (t) => {
  const server = await serverFor(t)
  const tracker = new UdpTracker(P, I, server.url, { _timeout: 1000 })
  const events = recordEvents(tracker, ['update', 'error', 'scrape'])
  tracker.scrape('extra', 1, {})
  const got = await nextEvent(tracker, ['scrape', 'error'], 3000)
  assert.equal(got.name, 'scrape')
  const before = pendingState()
  tracker.destroy(1, 2, 3)
  tracker.destory('x')
  tracker.destroy()
  const sent = server.received.length
  assert.equal(tracker.announce(2, {}), undefined)
  assert.equal(tracker.announce(99, 'not an object'), undefined, 'after destroy even bad arguments are ignored')
  assert.equal(tracker.announce(2, { left: -1 }), undefined)
  assert.equal(tracker.scrape(), undefined)
  tracker.destroy()
  await sleep(100)
  assert.equal(server.received.length, sent, 'nothing may be sent after destroy')
  assert.deepEqual(events.map((e) => e.name), ['scrape'], 'nothing may be emitted after destroy')
  assert.deepEqual(pendingState(), before)
  assert.equal(tracker.destroyed, true)
  assert.equal(tracker.destoryed, true)
})

// ---------------------------------------------------------------------------
// Module functions.

test('UdpTracker.announce(url, params, options): bad input returns a rejected promise naming the argument', async () => {
  // Quick timeouts, in case a case is wrongly accepted and sent.
  const params = { infoHash: I, peerId: P, _timeout: 5, maxAttempts: 1 }
  const cases = [
    // With every argument missing, any of the first checks may speak.
    [() => UdpTracker.announce(), 'announceUrl|params|params.infoHash'],
    [() => UdpTracker.announce(5, params), 'announceUrl'],
    [() => UdpTracker.announce('http://127.0.0.1:1/', params), 'announceUrl'],
    [() => UdpTracker.announce(NOWHERE), 'params.infoHash'],
    [() => UdpTracker.announce(NOWHERE, {}), 'params.infoHash'],
    [() => UdpTracker.announce(NOWHERE, { infoHash: 'zz', peerId: P }), 'params.infoHash'],
    [() => UdpTracker.announce(NOWHERE, { infoHash: I }), 'params.peerId'],
    [() => UdpTracker.announce(NOWHERE, { infoHash: I, peerId: Buffer.alloc(21) }), 'params.peerId'],
    [() => UdpTracker.announce(NOWHERE, { ...params, event: 7 }), 'params.event'],
    [() => UdpTracker.announce(NOWHERE, { ...params, event: 'begin' }), 'params.event'],
    [() => UdpTracker.announce(NOWHERE, { ...params, event: Symbol('s') }), 'params.event'],
    [() => UdpTracker.announce(NOWHERE, { ...params, downloaded: -1 }), 'params.downloaded'],
    [() => UdpTracker.announce(NOWHERE, { ...params, left: 2n ** 64n }), 'params.left'],
    [() => UdpTracker.announce(NOWHERE, { ...params, uploaded: 'x' }), 'params.uploaded'],
    [() => UdpTracker.announce(NOWHERE, { ...params, port: 70000 }), 'params.port'],
    [() => UdpTracker.announce(NOWHERE, { ...params, _timeout: NaN }), 'params._timeout'],
    [() => UdpTracker.announce(NOWHERE, { ...params, maxAttempts: 0 }), 'params.maxAttempts'],
    [() => UdpTracker.announce(NOWHERE, { ...params, numWant: 1.5 }), 'params.numWant'],
    [() => UdpTracker.announce(NOWHERE, { ...params, key: -1 }), 'params.key'],
    [() => UdpTracker.announce(NOWHERE, { ...params, ip: '::1' }), 'params.ip'],
    [() => UdpTracker.announce(NOWHERE, { ...params, family: 5 }), 'params.family'],
    [() => UdpTracker.announce(NOWHERE, { ...params, strictSource: 'no' }), 'params.strictSource'],
    [() => UdpTracker.announce(NOWHERE, { ...params, connectionIdCache: 1 }), 'params.connectionIdCache'],
    [() => UdpTracker.announce(NOWHERE, { ...params, auth: { user: 'u'.repeat(300), password: 'p' } }), 'params.auth.user'],
    [() => UdpTracker.announce(NOWHERE, { ...params, requestString: 5 }), 'params.requestString'],
    [() => UdpTracker.announce(NOWHERE, params, { signal: {} }), 'options.signal'],
    [() => UdpTracker.announce(NOWHERE, params, { signal: 'abort' }), 'options.signal'],
    [() => UdpTracker.announce(NOWHERE, params, { timeout: 0 }), 'options.timeout'],
    [() => UdpTracker.announce(NOWHERE, params, { timeout: -1 }), 'options.timeout'],
    [() => UdpTracker.announce(NOWHERE, params, { timeout: NaN }), 'options.timeout'],
    [() => UdpTracker.announce(NOWHERE, params, { timeout: '1e2' }), 'options.timeout'],
    [() => UdpTracker.announce(NOWHERE, params, { timeout: '0' }), 'options.timeout'],
    [() => UdpTracker.announce(NOWHERE, params, { timeout: 2 ** 31 }), 'options.timeout']
  ]
  for (const [fn, name] of cases) await expectRejects(fn, name, `${fn.toString().slice(6)}`)
})

test('UdpTracker.announce: params or options that are not objects are rejected naming "params" / "options", not "opts"', async () => {
  const params = { infoHash: I, peerId: P }
  for (const value of ['x', 5, true, Symbol('s')]) {
    await expectRejects(() => UdpTracker.announce(NOWHERE, value), 'params', `UdpTracker.announce(url, ${describe(value)})`)
    await expectRejects(() => UdpTracker.announce(NOWHERE, params, value), 'options', `UdpTracker.announce(url, params, ${describe(value)})`)
  }
})

test('UdpTracker.scrape(url, infoHashes, opts): bad input returns a rejected promise naming the argument', async () => {
  const cases = [
    [() => UdpTracker.scrape(), 'announceUrl|infoHashes'],
    [() => UdpTracker.scrape(Symbol('s'), [I]), 'announceUrl'],
    [() => UdpTracker.scrape('udp://', [I]), 'announceUrl'],
    [() => UdpTracker.scrape(NOWHERE), 'infoHashes'],
    [() => UdpTracker.scrape(NOWHERE, []), 'infoHashes'],
    [() => UdpTracker.scrape(NOWHERE, I), 'infoHashes'],
    [() => UdpTracker.scrape(NOWHERE, I.toString('hex')), 'infoHashes'],
    [() => UdpTracker.scrape(NOWHERE, { 0: I, length: 1 }), 'infoHashes'],
    [() => UdpTracker.scrape(NOWHERE, [Buffer.alloc(19)]), 'infoHashes[0]'],
    [() => UdpTracker.scrape(NOWHERE, [I, I, 'zz']), 'infoHashes[2]'],
    [() => UdpTracker.scrape(NOWHERE, [I, null]), 'infoHashes[1]'],
    [() => UdpTracker.scrape(NOWHERE, [I], 'x'), 'opts'],
    [() => UdpTracker.scrape(NOWHERE, [I], { _timeout: 0 }), 'opts._timeout'],
    [() => UdpTracker.scrape(NOWHERE, [I], { maxAttempts: 99 }), 'opts.maxAttempts'],
    [() => UdpTracker.scrape(NOWHERE, [I], { family: 'x' }), 'opts.family'],
    [() => UdpTracker.scrape(NOWHERE, [I], { strictSource: 1 }), 'opts.strictSource'],
    [() => UdpTracker.scrape(NOWHERE, [I], { connectionIdCache: 'no' }), 'opts.connectionIdCache']
  ]
  for (const [fn, name] of cases) await expectRejects(fn, name, `${fn.toString().slice(6)}`)
  // timeout and signal are read from the same object; accept either spelling of its name.
  for (const [fn, label] of [[() => UdpTracker.scrape(NOWHERE, [I], { timeout: -1 }), 'timeout -1'], [() => UdpTracker.scrape(NOWHERE, [I], { signal: 5 }), 'signal 5']]) {
    let err = null
    await fn().catch((e) => { err = e })
    assert.ok(err instanceof TypeError || err instanceof RangeError, `scrape opts.${label}: ${err}`)
    assert.match(err.message, /(opts|options)\.(timeout|signal)/, `scrape opts.${label}: ${err.message}`)
  }
  // A long list with one bad hash at the end: rejected before anything is sent.
  const many = Array.from({ length: 10000 }, () => I)
  many.push('not a hash')
  await expectRejects(() => UdpTracker.scrape(NOWHERE, many), 'infoHashes[10000]', '10,001 hashes, the last one bad')
})

test('UdpTracker.scrape: a sparse infoHashes array ([, hash]) is rejected naming the hole (infoHashes[0])', async () => {
  // eslint-disable-next-line no-sparse-arrays
  await expectRejects(() => UdpTracker.scrape(NOWHERE, [, I]), 'infoHashes[0]', 'UdpTracker.scrape(url, [, hash])')
  // eslint-disable-next-line no-sparse-arrays
  await expectRejects(() => UdpTracker.scrape(NOWHERE, [I, , I]), 'infoHashes[1]', 'UdpTracker.scrape(url, [hash, , hash])')
})

test('UdpTracker.forgetConnectionIds() and UdpTracker.stats() ignore extra arguments', () => {
  assert.equal(UdpTracker.forgetConnectionIds('x', 1, {}), undefined)
  const s = UdpTracker.stats(1, 'x')
  for (const key of ['sent', 'received', 'droppedShort', 'droppedUnknown', 'droppedLate', 'droppedWrongSource', 'inFlight', 'sockets', 'cachedConnectionIds']) {
    assert.equal(typeof s[key], 'number', `stats().${key}`)
    assert.ok(Number.isInteger(s[key]) && s[key] >= 0, `stats().${key} = ${s[key]}`)
  }
})

// ---------------------------------------------------------------------------
// The riskiest inputs, in a child process that must survive them.

const RISKY = String.raw`
const UdpTracker = require(process.env.PACKAGE)
const P = Buffer.from('-JS0001-badinput0000')
const I = Buffer.alloc(20, 0xbd)
const URL_OK = 'udp://127.0.0.1:9/announce'
const results = []
const late = []
process.on('uncaughtException', (err) => late.push(String(err && err.stack || err)))
const userError = new Error('user code threw')
const thrower = () => { throw userError }
const revoked = (target) => { const r = Proxy.revocable(target, {}); r.revoke(); return r.proxy }
const detached = () => { const u = new Uint8Array(20); structuredClone(u.buffer, { transfer: [u.buffer] }); return u }
const lyingByteLength = () => { const u = new Uint8Array(3); Object.defineProperty(u, 'byteLength', { get () { return 20 } }); return u }
function run (label, name, expect, fn) {
  const inFlight = UdpTracker.stats().inFlight
  let r
  try {
    const value = fn()
    if (value && typeof value.then === 'function') {
      return value.then(() => record({ accepted: true }), (err) => record({ err, async: true }))
    }
    if (value && typeof value.destroy === 'function') value.destroy()
    r = { accepted: true }
  } catch (err) {
    r = { err }
  }
  return record(r)
  function record ({ accepted, err, async }) {
    results.push({
      label, name, expect, accepted: !!accepted, async: !!async,
      type: err ? (err.constructor && err.constructor.name) : null,
      message: err ? String(err.message).slice(0, 300) : null,
      messageLength: err ? String(err.message).length : 0,
      isUserError: err === userError,
      inFlightChanged: UdpTracker.stats().inFlight !== inFlight
    })
  }
}
const getterOpts = (key) => Object.defineProperty({}, key, { get: thrower, enumerable: true })
const trapAll = new Proxy({}, { get: thrower, has: thrower, ownKeys: thrower, getOwnPropertyDescriptor: thrower, getPrototypeOf: thrower })
;(async () => {
  // User code that throws: its own exception may propagate (or a TypeError naming the argument).
  for (const key of ['port', '_timeout', 'maxAttempts', 'numWant', 'key', 'ip', 'family', 'strictSource', 'connectionIdCache', 'auth', 'requestString']) {
    await run('opts with a throwing getter for ' + key, 'opts.' + key, 'user', () => new UdpTracker(P, I, URL_OK, getterOpts(key)))
  }
  await run('opts.auth.user getter throws', 'opts.auth.user', 'user', () => new UdpTracker(P, I, URL_OK, { auth: Object.defineProperty({ password: 'p' }, 'user', { get: thrower }) }))
  await run('opts is a Proxy whose traps throw', 'opts', 'user', () => new UdpTracker(P, I, URL_OK, trapAll))
  await run('peerId is a Proxy whose traps throw', 'peerId', 'user', () => new UdpTracker(trapAll, I, URL_OK))
  await run('infoHash is a Proxy whose traps throw', 'infoHash', 'user', () => new UdpTracker(P, trapAll, URL_OK))
  await run('opts is a revoked Proxy', 'opts', 'user', () => new UdpTracker(P, I, URL_OK, revoked({})))
  await run('peerId is a revoked Proxy', 'peerId', 'user', () => new UdpTracker(revoked(Buffer.alloc(20)), I, URL_OK))
  await run('announce counters object with a throwing getter', 'opts.left', 'user', () => { const t = new UdpTracker(P, I, URL_OK); try { t.announce(2, getterOpts('left')) } finally { t.destroy() } })
  await run('announce counters Proxy whose traps throw', 'opts', 'user', () => { const t = new UdpTracker(P, I, URL_OK); try { t.announce(2, trapAll) } finally { t.destroy() } })
  await run('UdpTracker.announce params Proxy whose traps throw', 'params', 'user', () => UdpTracker.announce(URL_OK, trapAll))
  await run('UdpTracker.announce options.signal getter throws', 'options.signal', 'user', () => UdpTracker.announce(URL_OK, { infoHash: I, peerId: P }, getterOpts('signal')))
  await run('UdpTracker.scrape infoHashes with a throwing element getter', 'infoHashes[0]', 'user', () => UdpTracker.scrape(URL_OK, Object.defineProperty([I], 0, { get: thrower })))
  await run('UdpTracker.scrape infoHashes Proxy whose traps throw', 'infoHashes', 'user', () => UdpTracker.scrape(URL_OK, new Proxy([I], { get: thrower })))
  // Plain wrong values dressed up: a TypeError or RangeError naming the argument.
  await run('peerId is a Proxy of a 20-byte Buffer', 'peerId', 'named', () => new UdpTracker(new Proxy(Buffer.alloc(20), {}), I, URL_OK))
  await run('infoHash is a Proxy of a 20-byte Buffer', 'infoHash', 'named', () => new UdpTracker(P, new Proxy(Buffer.alloc(20), {}), URL_OK))
  await run('peerId is a Uint8Array over a detached ArrayBuffer', 'peerId', 'named', () => new UdpTracker(detached(), I, URL_OK))
  // An object lying about its own size: any TypeError or RangeError will do.
  await run('peerId is a 3-byte Uint8Array whose byteLength getter says 20', 'peerId', 'any-error', () => new UdpTracker(lyingByteLength(), I, URL_OK))
  for (const [i, name] of [[0, 'peerId'], [1, 'infoHash'], [2, 'announceUrl'], [3, 'opts']]) {
    const args = [P, I, URL_OK, {}]
    args[i] = Symbol('bad')
    await run(name + ' is a Symbol', name, 'named', () => new UdpTracker(...args))
  }
  for (const key of ['port', '_timeout', 'maxAttempts', 'numWant', 'key', 'ip', 'family', 'strictSource', 'connectionIdCache', 'auth', 'requestString']) {
    await run('opts.' + key + ' is a Symbol', 'opts.' + key, 'named', () => new UdpTracker(P, I, URL_OK, { [key]: Symbol('bad') }))
    await run('opts.' + key + ' is an object whose valueOf/toString throw', 'opts.' + key, 'user', () => new UdpTracker(P, I, URL_OK, { [key]: { valueOf: thrower, toString: thrower, [Symbol.toPrimitive]: thrower } }))
  }
  await run('announce event is a Symbol and counters are Symbols', 'opts.downloaded', 'named', () => { const t = new UdpTracker(P, I, URL_OK); try { t.announce(Symbol('e'), { downloaded: Symbol('d') }) } finally { t.destroy() } })
  await run('UdpTracker.announce with Symbols', 'announceUrl|params|options', 'named', () => UdpTracker.announce(Symbol('u'), Symbol('p'), Symbol('o')))
  await run('UdpTracker.scrape with Symbols', 'announceUrl|infoHashes|opts', 'named', () => UdpTracker.scrape(Symbol('u'), [Symbol('h')], Symbol('o')))
  await run('opts.auth with a 300-byte user', 'opts.auth.user', 'named', () => new UdpTracker(P, I, URL_OK, { auth: { user: 'u'.repeat(300), password: 'p' } }))
  await run('opts.auth with a 300-byte Buffer user and a 10 MB password', 'opts.auth.user', 'named', () => new UdpTracker(P, I, URL_OK, { auth: { user: Buffer.alloc(300, 0x41), password: 'p'.repeat(10 << 20) } }))
  await run('counters 2^64 as BigInt', 'opts.uploaded', 'named', () => { const t = new UdpTracker(P, I, URL_OK); try { t.announce(2, { uploaded: 2n ** 64n }) } finally { t.destroy() } })
  await run('counters -(2^63) as BigInt', 'opts.downloaded', 'named', () => { const t = new UdpTracker(P, I, URL_OK); try { t.announce(2, { downloaded: -(2n ** 63n) }) } finally { t.destroy() } })
  await run('counters 2^1000 as BigInt', 'opts.left', 'named', () => { const t = new UdpTracker(P, I, URL_OK); try { t.announce(2, { left: 2n ** 1000n }) } finally { t.destroy() } })
  // Huge strings (16 MB) for announceUrl.
  const huge = 16 << 20
  await run('announceUrl: 16 MB of junk', 'announceUrl', 'named', () => new UdpTracker(P, I, 'x'.repeat(huge)))
  await run('announceUrl: udp:// and a 16 MB host name', 'announceUrl', 'named-or-accepted', () => new UdpTracker(P, I, 'udp://' + 'a'.repeat(huge) + ':80'))
  await run('announceUrl: a 16 MB path', 'announceUrl', 'named-or-accepted', () => new UdpTracker(P, I, 'udp://127.0.0.1:9/' + 'a'.repeat(huge)))
  await run('announceUrl: a 16 MB query', 'announceUrl', 'named-or-accepted', () => new UdpTracker(P, I, 'udp://127.0.0.1:9/announce?' + 'q'.repeat(huge)))
  await run('UdpTracker.scrape: a 16 MB hex string as a hash', 'infoHashes[0]', 'named', () => UdpTracker.scrape(URL_OK, ['a'.repeat(huge)]))
  await run('infoHash: a 16 MB string', 'infoHash', 'named', () => new UdpTracker(P, 'a'.repeat(huge), URL_OK))
  await run('peerId: a 16 MB string', 'peerId', 'named', () => new UdpTracker('a'.repeat(huge), I, URL_OK))
  await new Promise((resolve) => setTimeout(resolve, 300))
  console.log(JSON.stringify({ results, late, inFlight: UdpTracker.stats().inFlight }))
})()
`

test('the riskiest inputs (throwing getters, Proxies, Symbols, 16 MB strings) in a child: it survives, and every case ends as it should', async (t) => {
  const child = spawn(process.execPath, ['-e', RISKY], {
    env: { ...process.env, PACKAGE },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += d })
  child.stderr.on('data', (d) => { stderr += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), 25000)
  const [code, signal] = await new Promise((resolve) => child.on('close', (c, s) => resolve([c, s])))
  clearTimeout(timer)
  assert.equal(signal, null, `the child died of ${signal} (an abort?)\n${stderr.slice(-3000)}`)
  assert.equal(code, 0, `the child exited with ${code}\n${stderr.slice(-3000)}`)
  const line = stdout.trim().split('\n').pop()
  const { results, late, inFlight } = JSON.parse(line)
  assert.deepEqual(late, [], 'nothing may throw asynchronously (inside a timer) after these calls')
  assert.equal(inFlight, 0)
  const problems = []
  for (const r of results) {
    const named = (r.type === 'TypeError' || r.type === 'RangeError') && names(r.name).test(r.message || '')
    let ok
    if (r.expect === 'user') ok = r.isUserError || named || (r.type === 'TypeError' && /proxy that has been revoked/.test(r.message))
    else if (r.expect === 'named-or-accepted') ok = r.accepted || named
    else if (r.expect === 'any-error') ok = r.type === 'TypeError' || r.type === 'RangeError'
    else ok = named
    if (r.inFlightChanged) problems.push(`${r.label}: left a request in flight`)
    if (!ok) problems.push(`${r.label}: ${r.accepted ? 'accepted' : `${r.type}: ${JSON.stringify(r.message)}`} (expected a TypeError or RangeError naming ${r.name})`)
  }
  const notes = results.filter((r) => r.accepted || r.messageLength > 100000 || r.expect === 'any-error')
    .map((r) => `${r.label}: ${r.accepted ? 'accepted' : `${r.type} ${r.messageLength > 1000 ? `with a ${r.messageLength}-character message` : JSON.stringify(r.message)}`}`)
  if (notes.length) t.diagnostic(`notes: ${notes.join('; ')}`)
  t.diagnostic(`${results.length} risky cases run; the child survived`)
  assert.deepEqual(problems, [], `cases that did not end with an error naming the argument:\n  ${problems.join('\n  ')}`)
})
