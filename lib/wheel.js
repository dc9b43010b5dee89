'use strict'

// The Client's timers, for every Client of the process on one unref'd Node
// timer: the re-announce of each tier and the first wait of each request to
// a tier of several trackers. Thousands of Clients would otherwise hold a
// Node Timeout (and a closure) each. Entries are kept in slots by due time:
// delays of 10 s or more are due on a whole second (the jitter added to them
// is seconds long, so a rounding of under a second keeps it), shorter ones
// on their millisecond. Cancelling removes an entry from its slot.

const LONGEST_TIMER_MS = 2 ** 31 - 1
const WHOLE_SECONDS_FROM_MS = 10e3

const slots = new Map() // due time (ms) -> Set of entries
const heap = [] // due times of the slots, a binary min-heap
let timer = null
let timerAt = Infinity

function heapPush (at) {
  let i = heap.push(at) - 1
  while (i > 0) {
    const parent = (i - 1) >> 1
    if (heap[parent] <= at) break
    heap[i] = heap[parent]
    i = parent
  }
  heap[i] = at
}

function heapPop () {
  const top = heap[0]
  const last = heap.pop()
  if (heap.length > 0) {
    let i = 0
    for (;;) {
      let child = 2 * i + 1
      if (child >= heap.length) break
      if (child + 1 < heap.length && heap[child + 1] < heap[child]) child++
      if (heap[child] >= last) break
      heap[i] = heap[child]
      i = child
    }
    heap[i] = last
  }
  return top
}

function arm (at, now) {
  if (timer !== null) clearTimeout(timer)
  timerAt = at
  timer = setTimeout(fire, Math.min(Math.max(0, at - now), LONGEST_TIMER_MS))
  timer.unref()
}

function fire () {
  timer = null
  timerAt = Infinity
  let thrown = null
  while (heap.length > 0 && heap[0] <= Date.now()) {
    const at = heapPop()
    const entries = slots.get(at)
    if (entries === undefined) continue
    slots.delete(at)
    for (const entry of entries) {
      if (entry.at < 0) continue // cancelled by an entry that ran before it
      entry.at = -1
      try {
        entry.fn(entry.arg)
      } catch (err) {
        // As a Node timer's: an uncaught exception, after the other entries ran.
        if (thrown === null) thrown = { err }
      }
    }
  }
  if (heap.length > 0) arm(heap[0], Date.now())
  if (thrown !== null) process.nextTick(() => { throw thrown.err })
}

/** Calls `fn(arg)` after `ms` milliseconds; returns the entry that `cancel` takes. */
function schedule (fn, ms, arg) {
  const now = Date.now()
  const delay = Math.min(Math.max(0, ms), LONGEST_TIMER_MS)
  const at = delay >= WHOLE_SECONDS_FROM_MS ? Math.ceil((now + delay) / 1000) * 1000 : now + delay
  const entry = { fn, arg, at }
  let entries = slots.get(at)
  if (entries === undefined) {
    entries = new Set()
    slots.set(at, entries)
    heapPush(at)
  }
  entries.add(entry)
  if (at < timerAt) arm(at, now)
  return entry
}

/** Stops an entry from firing; one that fired or was cancelled is left alone. */
function cancel (entry) {
  const at = entry.at
  if (at < 0) return
  entry.at = -1
  const entries = slots.get(at)
  if (entries === undefined) return
  entries.delete(entry)
  // An emptied slot stays in the heap and is skipped when due.
  if (entries.size === 0) slots.delete(at)
}

/** How many entries are waiting (for tests). */
function size () {
  let n = 0
  for (const entries of slots.values()) n += entries.size
  return n
}

module.exports = { schedule, cancel, size }
