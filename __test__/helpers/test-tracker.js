'use strict'
// The package's own test tracker (testing.js) as the tests here use it: one
// per test, closed when the test ends, and a count of what it received.
//
//   const tracker = await trackerServer(t, { interval: 1 })   // any createTracker option
//   ... new UdpTracker(peerId, infoHash, tracker.url, opts) ...
//   await until(() => received(tracker) >= 2)
//
// `loss: 1` makes a tracker that reads nothing (every datagram is counted in
// stats().dropped.loss); `silentFor: [hash]` one that answers connects but
// never those announces. Tests that need exact bytes on the wire or a reply
// no correct tracker sends use helpers/script-server.js instead.

const { createTracker } = require('../../testing.js')

/** A test tracker for one node:test test, closed when the test ends. */
async function trackerServer (t, options) {
  const tracker = await createTracker(options)
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

function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls `check` every `step` ms until it returns a truthy value or `ms` pass; returns its last value. */
async function until (check, ms = 5000, step = 10) {
  const end = Date.now() + ms
  let ok = check()
  while (!ok && Date.now() < end) {
    await sleep(step)
    ok = check()
  }
  return ok
}

/** Like `until`, but rejects with `what` when `check` never holds. */
async function waitUntil (check, what, ms = 5000) {
  if (!(await until(check, ms))) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

module.exports = { trackerServer, received, until, waitUntil }
