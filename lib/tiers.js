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

// Parsed announce lists by content: thousands of torrents carry the same few
// lists, so each is checked once (bounded: when full it starts again, and a
// list longer than LIST_KEY_MAX characters as JSON is parsed every time).
const lists = new Map()
const LISTS_KEPT = 256
const LIST_KEY_MAX = 16384

/** Whether `announce` is a URL or a list of URLs and lists of URLs, all strings. */
function stringsOnly (announce) {
  if (typeof announce === 'string') return true
  if (!Array.isArray(announce)) return false
  for (let i = 0; i < announce.length; i++) {
    const entry = announce[i]
    if (typeof entry === 'string') continue
    if (!Array.isArray(entry)) return false
    for (let j = 0; j < entry.length; j++) if (typeof entry[j] !== 'string') return false
  }
  return true
}

/**
 * `announce` as { tiers, problems, urls }: its tiers of usable URLs in the
 * order given (not shuffled), duplicates dropped (first place wins),
 * `problems` the warning texts of entries that cannot be used, `urls` how
 * many URLs the tiers hold. Shared by every caller with the same list: read only.
 */
function announceList (announce) {
  // Clients are mostly created in runs with the same list: that list again,
  // its entries unchanged, is the list made last time.
  if (last !== null && announce === last.announce && sameEntries(announce, last.entries)) return last.list
  // JSON tells a URL, a list and a list of tiers apart; only lists of
  // strings are kept, as anything else may be read differently next time.
  let key = stringsOnly(announce) ? JSON.stringify(announce) : null
  if (key !== null && key.length > LIST_KEY_MAX) key = null
  let list = key === null ? undefined : lists.get(key)
  if (list === undefined) {
    list = parseList(announce)
    if (key !== null) {
      if (lists.size >= LISTS_KEPT) lists.clear()
      lists.set(key, list)
    }
  }
  if (key !== null) last = { announce, entries: copyEntries(announce), list }
  return list
}

// The list `announceList` last took (a string or a list of strings and lists of
// strings), a copy of its entries, and the list made of it.
let last = null

function copyEntries (announce) {
  if (typeof announce === 'string') return announce
  const copy = new Array(announce.length)
  for (let i = 0; i < announce.length; i++) {
    const entry = announce[i]
    copy[i] = typeof entry === 'string' ? entry : entry.slice()
  }
  return copy
}

/** Whether `announce` still holds `entries` (a `copyEntries` of it). */
function sameEntries (announce, entries) {
  if (typeof announce === 'string') return true // the same string
  if (announce.length !== entries.length) return false
  for (let i = 0; i < entries.length; i++) {
    const entry = announce[i]
    const copy = entries[i]
    if (entry === copy) continue
    if (typeof copy === 'string' || !Array.isArray(entry) || entry.length !== copy.length) return false
    for (let j = 0; j < copy.length; j++) if (entry[j] !== copy[j]) return false
  }
  return true
}

function parseList (announce) {
  const raw = announce === undefined || announce === null
    ? []
    : typeof announce === 'string' || announce instanceof Uint8Array ? [announce] : announce
  if (!Array.isArray(raw)) throw new TypeError('opts.announce must be a URL, a list of URLs or a list of tiers')
  const seen = new Set()
  const problems = []
  const tiers = []
  let urls = 0
  for (const entry of raw) {
    const tier = []
    if (Array.isArray(entry)) {
      for (const item of entry) addUrl(item, tier, seen, problems)
    } else {
      addUrl(entry, tier, seen, problems)
    }
    if (tier.length > 0) tiers.push(Object.freeze(tier))
    urls += tier.length
  }
  return Object.freeze({ tiers: Object.freeze(tiers), problems: Object.freeze(problems), urls })
}

module.exports = { announceList, urlProblem, shuffle }
