'use strict'

// When a Client announces again: after a failure (Transmission's retry
// schedule, with jitter), and after a success (the tracker's interval, never
// below a floor, with a few percent of jitter so that thousands of torrents do
// not re-announce in lockstep). Pure functions of a `random()` in [0, 1), plus
// the timers the Client runs on, so tests can drive time themselves.

const intervals = require('./intervals.js')

// Transmission's schedule (announcer.cc): the n-th consecutive failure waits
// RETRY_SCHEDULE_MS[n - 1] (the last one for every failure after), plus up to
// RETRY_JITTER_MS at random.
const RETRY_SCHEDULE_MS = Object.freeze([20e3, 5 * 60e3, 15 * 60e3, 30 * 60e3, 60 * 60e3, 120 * 60e3])
const RETRY_JITTER_MS = 60e3
// libtorrent's floor for UDP trackers: a tracker asking for a shorter interval
// is announced to every MIN_INTERVAL_MS.
const MIN_INTERVAL_MS = 60e3
// bittorrent-tracker's UDP default, used when a tracker sends interval 0.
const DEFAULT_INTERVAL_MS = 30 * 60e3
// Re-announces come up to this fraction of the interval late, never early.
const REANNOUNCE_JITTER = 0.05
// setTimeout fires at once for delays above 2^31 - 1 ms (about 24.8 days).
const LONGEST_TIMER_MS = 2 ** 31 - 1

// Delays of at least this long are whole seconds: Node keeps one timer list
// per distinct duration, and ms-jittered delays would each make their own.
const WHOLE_SECONDS_FROM_MS = 10e3

function coarse (ms) {
  return ms >= WHOLE_SECONDS_FROM_MS ? Math.round(ms / 1000) * 1000 : Math.round(ms)
}

/** How long to wait after the `failures`-th consecutive failure (1, 2, ...). */
function retryDelay (failures, random) {
  const step = RETRY_SCHEDULE_MS[Math.min(Math.max(failures, 1), RETRY_SCHEDULE_MS.length) - 1]
  return coarse(step + random() * RETRY_JITTER_MS)
}

/**
 * The delay until the next periodic announce after a tracker asked for
 * `intervalSeconds` (0: none given): that interval, floored at
 * `minIntervalMs`, plus up to 5 % of it.
 */
function reannounceDelay (intervalSeconds, minIntervalMs, random) {
  const asked = intervalSeconds > 0 ? intervalSeconds * 1000 : DEFAULT_INTERVAL_MS
  const period = Math.min(Math.max(asked, minIntervalMs), LONGEST_TIMER_MS)
  return Math.min(coarse(period * (1 + REANNOUNCE_JITTER * random())), LONGEST_TIMER_MS)
}

/**
 * The Clients' timers on real time. An owner has one timer at most:
 * `start(owner, ms)` calls `owner._onIntervalEnd()` after `ms`, and
 * `owner._intervalQueue` is not null until then; `stop(owner)` cancels it.
 * Every Client's timers share one unref'd Node timer per delay
 * (lib/intervals.js, as UdpTracker's intervals; delays are whole seconds from
 * 10 s, so thousands of Clients use a few hundred Node timers at most). A
 * Client alone does not keep Node alive.
 */
const realTimers = Object.freeze({
  now: Date.now,
  start (owner, ms) {
    // Whole seconds from 10 s, rounded up (a retry is never early).
    const delay = ms >= WHOLE_SECONDS_FROM_MS ? Math.ceil(ms / 1000) * 1000 : Math.max(0, ms)
    intervals.schedule(owner, Math.min(delay, LONGEST_TIMER_MS))
  },
  stop (owner) {
    intervals.cancel(owner)
  }
})

/**
 * The same timers on a clock of a test's own: { now(), setTimeout(fn, ms,
 * arg) returning a handle, clearTimeout(handle) }.
 */
function timersOn (clock) {
  return Object.freeze({
    now: () => clock.now(),
    start (owner, ms) {
      owner._intervalQueue = clock.setTimeout(onClockTimer, ms, owner)
    },
    stop (owner) {
      if (owner._intervalQueue !== null) clock.clearTimeout(owner._intervalQueue)
      owner._intervalQueue = null
    }
  })
}

function onClockTimer (owner) {
  owner._intervalQueue = null
  owner._onIntervalEnd()
}

module.exports = {
  RETRY_SCHEDULE_MS,
  RETRY_JITTER_MS,
  MIN_INTERVAL_MS,
  DEFAULT_INTERVAL_MS,
  REANNOUNCE_JITTER,
  retryDelay,
  reannounceDelay,
  realTimers,
  timersOn
}
