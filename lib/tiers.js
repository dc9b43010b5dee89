'use strict'

// A torrent's announce list (BEP 12) as the Client takes it: a URL, a flat
// list of URLs (one tracker per tier, so every one is announced to, as
// bittorrent-tracker does), or a list of tiers ([[a, b], [c]]); entries may
// mix the two (a string among arrays is a tier of its own).

const { TextDecoder } = require('util')

const utf8 = new TextDecoder()

/** bittorrent-tracker's clean-up: bytes as text, one trailing slash dropped. */
function cleanUrl (entry) {
  let url = entry instanceof Uint8Array ? utf8.decode(entry) : entry
  if (typeof url !== 'string') return null
  if (url.endsWith('/')) url = url.slice(0, -1)
  return url
}

// Thousands of torrents share a few trackers: check each URL once.
const checked = new Map()
const CHECKED_KEPT = 1024

/**
 * Why `url` cannot be announced to (bittorrent-tracker's warning texts), or
 * null when it is a udp:// URL with a host and a port from 1 to 65535.
 */
function urlProblem (url) {
  if (url === null) return 'Invalid tracker URL: (not a string)'
  let problem = checked.get(url)
  if (problem === undefined) {
    problem = urlProblemUncached(url)
    if (checked.size >= CHECKED_KEPT) checked.clear()
    checked.set(url, problem)
  }
  return problem
}

function urlProblemUncached (url) {
  let parsed
  try {
    // WHATWG URL leaves host and port of unknown schemes unparsed in some
    // engines; parse as http:, as bittorrent-tracker does.
    parsed = new URL(url.replace(/^udp:/i, 'http:'))
  } catch {
    return /^udp:/i.test(url) && /:\d{6,}/.test(url) ? `Invalid tracker port: ${url}` : `Invalid tracker URL: ${url}`
  }
  if (!/^udp:/i.test(url)) return `Unsupported tracker protocol: ${url}`
  if (parsed.hostname === '') return `Invalid tracker URL: ${url}`
  if (parsed.port === '0') return `Invalid tracker port: ${url}`
  return null
}

/** Fisher-Yates, in place. */
function shuffle (list, random) {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const swap = list[i]
    list[i] = list[j]
    list[j] = swap
  }
  return list
}

/** Adds `item` to `tier` when it is a usable URL not `seen` before; else its problem to `problems`. */
function addUrl (item, tier, seen, problems) {
  const url = cleanUrl(item)
  if (url !== null && seen.has(url)) return
  if (url !== null) seen.add(url)
  const problem = urlProblem(url)
  if (problem !== null) problems.push(problem)
  else tier.push(url)
}

/**
 * Splits `announce` into tiers of usable URLs, each tier shuffled once (BEP
 * 12), duplicates dropped (first place wins). Returns { tiers, problems }:
 * `problems` are warning texts for entries that cannot be used.
 * With `allTrackers`, every tracker is a tier of its own.
 */
function parseAnnounceList (announce, { random, allTrackers }) {
  const raw = announce === undefined || announce === null
    ? []
    : typeof announce === 'string' || announce instanceof Uint8Array ? [announce] : announce
  if (!Array.isArray(raw)) throw new TypeError('opts.announce must be a URL, a list of URLs or a list of tiers')
  const seen = new Set()
  const problems = []
  let tiers = []
  for (const entry of raw) {
    const tier = []
    if (Array.isArray(entry)) {
      for (const item of entry) addUrl(item, tier, seen, problems)
    } else {
      addUrl(entry, tier, seen, problems)
    }
    if (tier.length > 0) tiers.push(shuffle(tier, random))
  }
  if (allTrackers) tiers = tiers.flat().map((url) => [url])
  return { tiers, problems }
}

module.exports = { parseAnnounceList, urlProblem, shuffle }
