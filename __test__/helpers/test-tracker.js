'use strict'
// The package's own test tracker (testing.js) as the tests here use it: one
// per test, closed when the test ends, and a count of what it received.
//
//   const tracker = await trackerServer(t, { interval: 1 })   // any createTracker option
//   ... new UdpTracker(peerId, infoHash, tracker.url, opts) ...
//   await waitUntil(() => received(tracker) >= 2, 'two datagrams')
//
// `loss: 1` makes a tracker that reads nothing (every datagram is counted in
// stats().dropped.loss); `silentFor: [hash]` one that answers connects but
// never those announces. Tests that need exact bytes on the wire or a reply
// no correct tracker sends use helpers/script-server.js instead.

const { createTracker } = require('../../testing.js')
const { until, freshPort } = require('./script-server.js')

/**
 * createTracker(options) on a port no earlier tracker of this process had
 * (helpers/script-server.js, claimAddress), unless options.port names one.
 */
function createFresh (options = {}) {
  if (options.port) return createTracker(options)
  return freshPort(options.host ?? '127.0.0.1', () => createTracker(options), (tracker) => tracker.port, (tracker) => tracker.close())
}

/** A test tracker for one node:test test, closed when the test ends. */
async function trackerServer (t, options) {
  const tracker = await createFresh(options)
  t.after(() => tracker.close())
  return tracker
}

/**
 * Every datagram the tracker received, read or dropped unread. Exact with
 * `loss` 0 or 1; in between, dropped.loss also counts replies it dropped.
 */
function received (tracker) {
  const { requests, dropped } = tracker.stats()
  return requests.connect + requests.announce + requests.scrape + requests.invalid + dropped.loss
}

/** Runs `fn(tracker)` with a test tracker made with `options`, then closes it. */
async function withTracker (options, fn) {
  const tracker = await createFresh(options)
  try {
    return await fn(tracker)
  } finally {
    await tracker.close()
  }
}

/** Polls `check` like script-server's `until`, but rejects naming `what` when it never holds. */
async function waitUntil (check, what, ms = 5000) {
  if (!(await until(check, ms))) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

module.exports = { trackerServer, withTracker, received, waitUntil }
