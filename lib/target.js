'use strict'

// Targets: a tracker URL and the request options, as one native
// TrackerTarget. Instances and promise calls with the same URL and options
// share one; the native object is freed when the last holder is collected.

const { TrackerTarget } = require('./native.js')
const { parseAnnounceUrl } = require('./url.js')
const { checkRequestOptions, DEFAULT_REQUEST_OPTIONS } = require('./validate.js')

// Recently used targets by URL and options. Bounded: when full it starts
// again, and holders keep their own reference.
const TARGETS_KEPT = 1024
const targets = new Map()
// The last target handed out, with the URL and checked options it was for.
let last = null
// The last one for a URL given no request options (the common case), checked
// first: { url, target }.
let lastDefault = null

/**
 * The target for `announceUrl` and the options in `opts` (their names are
 * prefixed with `prefix` in errors): { native, timeoutMs }.
 */
function targetFor (announceUrl, opts, prefix) {
  // The same URL as the last default target: valid, and no option to check.
  if (lastDefault !== null && announceUrl === lastDefault.url && checkRequestOptions(opts, prefix) === DEFAULT_REQUEST_OPTIONS) {
    return lastDefault.target
  }
  return findTarget(announceUrl, opts, prefix)
}

/** `targetFor` but for its quick answer (kept apart, so that the JIT need not compile it with that). */
function findTarget (announceUrl, opts, prefix) {
  const { host, port, path } = parseAnnounceUrl(announceUrl)
  const o = checkRequestOptions(opts, prefix)
  const withExtensions = o.authUser !== undefined || o.requestString !== undefined
  // A proxy is named by its URL's SHA-256 (lib/validate.js), never its password.
  const proxyKey = o.proxy === undefined ? '-' : o.proxy.key
  // Instances are mostly created in runs with the same URL and options.
  if (!withExtensions && last !== null && last.url === announceUrl && last.family === o.family &&
      last.timeoutMs === o.timeoutMs && last.maxAttempts === o.maxAttempts &&
      last.strictSource === o.strictSource && last.reuseConnectionId === o.reuseConnectionId &&
      last.proxyKey === proxyKey) {
    return last.target
  }
  // Targets with libtorrent's extensions are not shared: the key would have
  // to hold the password. Every field but the last has no spaces.
  const key = withExtensions
    ? null
    : `${host} ${port} ${o.family} ${o.timeoutMs} ${o.maxAttempts} ${o.strictSource} ${o.reuseConnectionId} ${proxyKey} ${path}`
  let target = key === null ? undefined : targets.get(key)
  if (target === undefined) {
    target = Object.freeze({
      native: new TrackerTarget({
        host,
        port,
        family: o.family,
        timeoutMs: o.timeoutMs,
        maxAttempts: o.maxAttempts,
        strictSource: o.strictSource,
        reuseConnectionId: o.reuseConnectionId,
        urlData: Buffer.from(path),
        authUser: o.authUser,
        authPassword: o.authPassword,
        requestString: o.requestString,
        proxy: o.proxy === undefined ? undefined : o.proxy.args
      }),
      timeoutMs: o.timeoutMs
    })
    if (key !== null) {
      if (targets.size >= TARGETS_KEPT) targets.clear()
      targets.set(key, target)
    }
  }
  if (o === DEFAULT_REQUEST_OPTIONS) lastDefault = { url: announceUrl, target }
  if (!withExtensions) {
    last = {
      url: announceUrl,
      family: o.family,
      timeoutMs: o.timeoutMs,
      maxAttempts: o.maxAttempts,
      strictSource: o.strictSource,
      reuseConnectionId: o.reuseConnectionId,
      proxyKey,
      target
    }
  }
  return target
}

module.exports = { targetFor }
