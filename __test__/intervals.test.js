'use strict'
// lib/intervals.js: the announce-interval timers of many instances on one
// Node timer per interval length.

const test = require('node:test')
const assert = require('node:assert/strict')
const intervals = require('../lib/intervals.js')

function owner (log, name) {
  return { name, _intervalQueue: null, _intervalIndex: 0, _onIntervalEnd () { log.push([name, performance.now()]) } }
}

test('owners fire once each, in order, not before their time; cancelled ones never (also after the holes are dropped)', async () => {
  const log = []
  const started = performance.now()
  const owners = []
  for (let i = 0; i < 3000; i++) {
    owners.push(owner(log, i))
    intervals.schedule(owners[i], 60)
  }
  // Cancel two in three: holes, until the next owner of that length comes.
  for (let i = 0; i < 3000; i++) if (i % 3 !== 0) assert.equal(typeof intervals.cancel(owners[i]), 'number')
  assert.equal(intervals.cancel(owners[1]), null, 'a second cancel finds nothing')
  const queue = owners[0]._intervalQueue
  assert.equal(queue.items.length, 2 * 3000, 'cancel only leaves holes')
  const late = owner(log, 'late')
  intervals.schedule(late, 60)
  assert.equal(queue.items.length, 2 * 1001, 'scheduling one more dropped the holes')
  const other = owner(log, 'other length')
  intervals.schedule(other, 20)
  await new Promise((resolve) => setTimeout(resolve, 250))
  assert.equal(log[0][0], 'other length')
  const fired = log.slice(1).map(([name]) => name)
  assert.deepEqual(fired, [...owners.filter((_, i) => i % 3 === 0).map((o) => o.name), 'late'])
  for (const [, at] of log.slice(1)) assert.ok(at - started >= 59, `fired after ${at - started} ms`)
  for (const o of owners) assert.equal(o._intervalQueue, null)
})

test('materialize turns a scheduled end into a Node timer for the time left; the queue no longer fires it', async () => {
  const log = []
  const o = owner(log, 'a')
  intervals.schedule(o, 80)
  await new Promise((resolve) => setTimeout(resolve, 30))
  const ended = []
  const timer = intervals.materialize(o, (which) => ended.push(which))
  assert.ok(timer._idleTimeout <= 51 && timer._idleTimeout >= 1, `${timer._idleTimeout} ms left`)
  assert.equal(intervals.materialize(o, () => {}), null, 'nothing left to materialize')
  await new Promise((resolve) => setTimeout(resolve, 120))
  assert.deepEqual(ended, [o])
  assert.deepEqual(log, [], 'the queue did not fire it too')
  // clearTimeout on a materialized timer stops it (1.2.0's removeTimmer).
  intervals.schedule(o, 30)
  clearTimeout(intervals.materialize(o, (which) => ended.push(which)))
  await new Promise((resolve) => setTimeout(resolve, 80))
  assert.deepEqual(ended, [o])
})

test('an owner that throws does not stop the others; the error still surfaces', async () => {
  const log = []
  const bad = owner(log, 'bad')
  bad._onIntervalEnd = () => { throw new Error('listener failed') }
  const good = owner(log, 'good')
  intervals.schedule(bad, 10)
  intervals.schedule(good, 10)
  const uncaught = []
  const listeners = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  process.on('uncaughtException', (err) => uncaught.push(err.message))
  try {
    await new Promise((resolve) => setTimeout(resolve, 80))
  } finally {
    process.removeAllListeners('uncaughtException')
    for (const l of listeners) process.on('uncaughtException', l)
  }
  assert.deepEqual(log.map(([name]) => name), ['good'])
  assert.deepEqual(uncaught, ['listener failed'])
})
