'use strict'

// Announce-interval timers for many instances at the cost of a few: one Node
// timer per distinct interval length, over a queue of the instances due (an
// instance joins at the end of its length's queue, so each queue is in due
// order, as Node's own timer lists are). An instance that hands its timer to
// user code (1.2.0's `_announce_intervals_timeout`) gets a real Node timer
// for the time left: see `materialize`. The Client's timers run here too
// (lib/backoff.js's realTimers).

const { performance } = require('perf_hooks')

// Interval length in ms -> { items: [owner, due, owner, due, ...], head, base, timer }.
// `items[i - base]` is the entry at absolute index i; cancelled owners are null.
const queues = new Map()
// Compact a queue's array once this many entries before its head are done.
const COMPACT_AFTER = 1024

// The time due times count from: read once per task (reset by a microtask),
// as Node's own timers take the event loop's time once per turn. A burst of
// thousands of answers schedules them all with one clock read, and V8 does
// not compile `performance.now` for it.
let taskNow = -1

function clock () {
  if (taskNow < 0) {
    taskNow = performance.now()
    queueMicrotask(resetClock)
  }
  return taskNow
}

function resetClock () {
  taskNow = -1
}

/**
 * Calls `owner._onIntervalEnd()` after `ms`. The owner keeps the entry's
 * place in `_intervalQueue` and `_intervalIndex` (for `cancel`).
 */
function schedule (owner, ms) {
  let queue = queues.get(ms)
  if (queue === undefined) {
    queue = { ms, items: [], head: 0, base: 0, live: 0, timer: null }
    queues.set(ms, queue)
  }
  // In whole milliseconds (`fire` already ends what is due within 1 ms): a
  // small integer to V8, where a fractional time would be a heap number of
  // its own in `items`.
  const due = Math.floor(clock() + ms)
  owner._intervalQueue = queue
  owner._intervalIndex = queue.base + queue.items.length
  queue.items.push(owner, due)
  queue.live++
  if (queue.timer === null) {
    arm(queue, due)
  } else {
    // Instances created and destroyed within one interval leave holes: drop
    // them once they are most of the queue. (Here rather than in `cancel`,
    // which runs for every instance destroyed and so stays this small.)
    const pending = (queue.items.length - (queue.head - queue.base)) / 2
    if (pending >= COMPACT_AFTER && queue.live * 2 <= pending) compact(queue)
  }
}

/** Forgets the owner's scheduled interval end, if any; returns its due time. */
function cancel (owner) {
  const queue = owner._intervalQueue
  if (queue === null) return null
  const at = owner._intervalIndex - queue.base
  const due = queue.items[at + 1]
  queue.items[at] = null
  owner._intervalQueue = null
  // An empty queue goes; holes in one that is not are dropped by `schedule`
  // and `fire`.
  if (--queue.live === 0) drop(queue)
  return due
}

/** An empty queue goes, with its timer. */
function drop (queue) {
  clearTimeout(queue.timer)
  queue.timer = null
  queues.delete(queue.ms)
}

/** Drops the done and cancelled entries of a queue. */
function compact (queue) {
  const kept = []
  const items = queue.items
  for (let at = queue.head - queue.base; at < items.length; at += 2) {
    const owner = items[at]
    if (owner === null) continue
    owner._intervalIndex = queue.head + kept.length
    kept.push(owner, items[at + 1])
  }
  queue.items = kept
  queue.base = queue.head
}

/**
 * Turns the owner's scheduled interval end into a Node timer of its own for
 * the time left, and returns that timer (null when none is scheduled).
 * `onEnd(owner)` is called when it fires.
 */
function materialize (owner, onEnd) {
  const due = cancel(owner)
  if (due === null) return null
  const timer = setTimeout(onEnd, Math.max(0, Math.ceil(due - performance.now())), owner)
  timer.unref()
  return timer
}

function arm (queue, due) {
  queue.timer = setTimeout(fire, Math.max(1, Math.ceil(due - performance.now())), queue)
  queue.timer.unref()
}

function fire (queue) {
  queue.timer = null
  const now = performance.now()
  let thrown = null
  while (queue.live > 0) {
    const at = queue.head - queue.base
    const owner = queue.items[at]
    const due = queue.items[at + 1]
    if (owner !== null && due > now + 1) {
      arm(queue, due)
      break
    }
    queue.items[at] = null
    queue.head += 2
    if (owner === null) continue
    queue.live--
    owner._intervalQueue = null
    try {
      owner._onIntervalEnd()
    } catch (err) {
      // One failing owner must not stop the others; it still surfaces.
      if (thrown === null) thrown = { err }
    }
  }
  if (queue.live === 0) {
    drop(queue)
  } else {
    const done = queue.head - queue.base
    if (done >= COMPACT_AFTER && done * 2 >= queue.items.length) compact(queue)
  }
  if (thrown !== null) throw thrown.err
}

module.exports = { schedule, cancel, materialize }
