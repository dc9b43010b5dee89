'use strict'

// The one place where the Client reaches this package's public API (required
// on first use: index.js requires the Client). One announce is one UdpTracker
// instance, created for it and destroyed when it completes or is cancelled:
// that is the cheapest cancellable request the public API offers (the promise
// API needs an AbortSignal per request to be cancelled, which costs more than
// the request itself). An engine hook taking (target, fields, callback) and
// returning a cancel id would save the instance, its checks and its events.

let api = null
function packageApi () {
  if (api === null) api = require('../index.js')
  return api
}

// The class reports failures as 1.2.0's strings: give them the promise API's codes.
const TIMEOUT = /^tracker is not responding after:/
const BAD_RESPONSE = /^(connect response is not 16 bytes long|announce response should be 20 bytes|error action response is not 9 bytes long|unsupported event:|announce response has a truncated peer entry)/

// The engine's ERR_PROXY text (src/proxy.rs), for requests through a proxy only.
const PROXY = /^SOCKS5 proxy /

function failure (message, proxied) {
  const err = new Error(message)
  if (TIMEOUT.test(message)) err.code = 'ERR_TRACKER_TIMEOUT'
  else if (BAD_RESPONSE.test(message)) err.code = 'ERR_BAD_RESPONSE'
  else if (proxied && PROXY.test(message)) err.code = 'ERR_PROXY'
  return err
}

// Listeners shared by every request (no closure per announce): `this` is the
// UdpTracker, `_sink` the object told of the outcome.
function onUpdate (reply) {
  const sink = this._sink
  this.destroy()
  sink.onAnswer(reply)
}

function onError (message) {
  const sink = this._sink
  this.destroy()
  sink.onFailure(failure(String(message), this._proxied))
}

/**
 * Announces `event` (a name) with `counters` to `url`; `opts` are
 * UdpTracker's options. Calls `sink.onAnswer({ interval, leechers, seeds,
 * peers })` or `sink.onFailure(err)`, never both, never inside this call.
 * Returns a handle whose destroy() cancels the request (then neither is called).
 */
function announce (url, peerId, infoHash, opts, event, counters, sink) {
  let tracker
  try {
    tracker = new (packageApi().UdpTracker)(peerId, infoHash, url, opts)
  } catch (err) {
    // The engine refused the URL or an option: reported like any failure.
    const handle = { destroyed: false, destroy () { this.destroyed = true } }
    process.nextTick(() => { if (!handle.destroyed) sink.onFailure(err) })
    return handle
  }
  tracker._sink = sink
  tracker._proxied = opts.proxy !== undefined && opts.proxy !== null
  tracker.on('update', onUpdate)
  tracker.on('error', onError)
  tracker.announce(event, counters)
  return tracker
}

/** Scrapes `hashes` (Buffers) of one tracker: the promise API's scrape, cancellable with `signal`. */
function scrape (url, hashes, opts, signal) {
  return packageApi().scrape(url, hashes, Object.assign({}, opts, { signal }))
}

/** Throws the TypeError or RangeError UdpTracker throws for a bad option in `opts`. */
function checkOptions (peerId, infoHash, opts) {
  new (packageApi().UdpTracker)(peerId, infoHash, 'udp://127.0.0.1:1', opts).destroy() // eslint-disable-line no-new
}

module.exports = { announce, scrape, checkOptions }
