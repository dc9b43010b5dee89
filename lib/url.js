'use strict'

// announceUrl → { host, port, path }, parsed once per distinct URL.

// Crawlers create many instances for few tracker URLs: keep this many parses.
const PARSED_URLS_KEPT = 1024
// Error messages quote at most this much of a bad URL.
const QUOTED_URL_CHARS = 200
// The longest host name DNS allows.
const LONGEST_HOST = 253
// BEP 41 URL data must fit one datagram with the 98-byte announce: 65,507
// bytes of UDP payload, less 2 bytes of option header per 255 bytes and one
// EndOfOptions byte.
const LONGEST_URL_DATA = 65000

const parsedUrls = new Map()

function quote (text) {
  return text.length > QUOTED_URL_CHARS ? `${text.slice(0, QUOTED_URL_CHARS)}… (${text.length} characters)` : text
}

/** The tracker's host, port (80 when absent, as 1.2.0) and BEP 41 path and query. */
function parseAnnounceUrl (announceUrl) {
  if (typeof announceUrl !== 'string') throw new TypeError('announceUrl must be a string')
  let parsed = parsedUrls.get(announceUrl)
  if (parsed === undefined) {
    parsed = parseUncached(announceUrl)
    if (parsedUrls.size >= PARSED_URLS_KEPT) parsedUrls.clear()
    parsedUrls.set(announceUrl, parsed)
  }
  return parsed
}

function parseUncached (announceUrl) {
  let url
  try {
    url = new URL(announceUrl)
  } catch {
    throw new TypeError(`announceUrl is not a valid URL: ${quote(announceUrl)}`)
  }
  if (url.protocol !== 'udp:') throw new TypeError(`announceUrl must be a udp:// URL: ${quote(announceUrl)}`)
  if (url.hostname === '') throw new TypeError(`announceUrl has no host: ${quote(announceUrl)}`)
  const bareHost = url.hostname.replace(/^\[|\]$/g, '')
  if (bareHost.length > LONGEST_HOST) {
    throw new RangeError(`announceUrl host must be at most ${LONGEST_HOST} characters, got ${bareHost.length}`)
  }
  const port = url.port === '' ? 80 : Number(url.port)
  if (port === 0) throw new RangeError(`announceUrl port must be from 1 to 65535: ${quote(announceUrl)}`)
  let path = url.pathname + url.search
  if (path === '/') path = ''
  if (Buffer.byteLength(path) > LONGEST_URL_DATA) {
    throw new RangeError(`announceUrl path and query must be at most ${LONGEST_URL_DATA} bytes to fit a datagram`)
  }
  return Object.freeze({ host: url.hostname, bareHost, port, path })
}

module.exports = { parseAnnounceUrl }
