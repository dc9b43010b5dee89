#!/usr/bin/env node
'use strict'

// udp-tracker: announce to or scrape a UDP tracker from the command line.
// Exit codes: 0 ok, 1 the tracker failed (error reply, timeout, DNS), 2 bad usage.
//
// Each subcommand is one entry of COMMANDS: its usage lines, its flags (for
// util.parseArgs) and run(positionals, values) → the exit code. A new
// subcommand is one more entry, e.g. from a module of its own.

const { parseArgs } = require('node:util')
const { readFileSync } = require('node:fs')
const { randomInt } = require('node:crypto')
const path = require('node:path')
const UdpTracker = require('..')

// This package's BEP 20 client prefix ("BU", version 2.0.0.0): the CLI's peer
// id is it plus 12 random characters, so trackers do not count it as another
// client.
const PEER_ID_PREFIX = '-BU2000-'
const PEER_ID_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const DEFAULT_TIMEOUT_MS = 15000
// The retransmission schedule's base: waits of 2, 4, 8 s… (BEP 15's 15 s base
// would leave no retransmission within the default deadline).
const DEFAULT_RETRANSMIT_MS = 1000
// The stopped announce after the answer (or after an unanswered announce) gets
// what is left of --timeout, and at least this.
const MIN_STOP_MS = 1000
const PROBE_PORTS = [49152, 65535] // the port announced without --port: IANA's dynamic range
const SCRAPE_SLICE = 740 // hashes per library call: a progress step
const LONGEST_TIMER_MS = 2 ** 31 - 1

const COMMON_OPTIONS = {
  timeout: { type: 'string' },
  'retransmit-timeout': { type: 'string' },
  attempts: { type: 'string' },
  proxy: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false }
}

const COMMANDS = {
  announce: {
    usage: `udp-tracker announce <url> <infohash> [--event started|completed|stopped|none]
                       [--port N] [--left N] [--peer-id ID] [--num-want N] [--stay] [common flags]`,
    options: {
      event: { type: 'string', default: 'started' },
      port: { type: 'string' },
      left: { type: 'string', default: '0' },
      'peer-id': { type: 'string' },
      'num-want': { type: 'string', default: '50' },
      stay: { type: 'boolean', default: false },
      ...COMMON_OPTIONS
    },
    run: runAnnounce
  },
  scrape: {
    usage: 'udp-tracker scrape <url> <infohash>... [--file hashes.txt] [common flags]',
    options: {
      file: { type: 'string' },
      ...COMMON_OPTIONS
    },
    run: runScrape
  }
}

/** The usage lines: what a usage error prints. */
function synopsis () {
  return `Usage:
${Object.values(COMMANDS).map((c) => `  ${c.usage}`).join('\n')}
  udp-tracker serve [--host H] [--port P] [--loss P] ...   (a test tracker; serve --help)
  udp-tracker --help | --version`
}

/** --help: the synopsis and every flag. */
function usage () {
  return `${synopsis()}

<url> is udp://host:port[/path]; <infohash> is 40 hex characters.

announce sends one announce and prints the tracker's answer (interval, seeders,
leechers, peers). Then, unless --event is stopped or --stay is given, it
announces 'stopped' with the same peer, so the probe leaves no peer behind:
also when the announce got no answer from a tracker that answered the connect
(the reply may have been lost), before it exits 1.
  --event E         started (default), completed, stopped or none
  --port N          the port announced; default a random one from 49152-65535
                    (trackers know a peer by address and port: this does not
                    replace a client of yours in the swarm). --stay needs it.
  --left N          bytes left to download; default 0 (a seeder)
  --peer-id ID      20 bytes, or a shorter prefix completed with random
                    characters; default ${PEER_ID_PREFIX} (this package, BEP 20) + 12 random
  --num-want N      peers wanted, -1 for the tracker's default; default 50
  --stay            stay in the swarm: no 'stopped' after the answer

scrape asks for the counts of every hash given, in packets of up to 74.
  --file F          more hashes, one per line (blank lines and # comments skipped)

Common flags:
  --timeout MS      limit on the whole command; default ${DEFAULT_TIMEOUT_MS}
  --retransmit-timeout MS
                    base of the retransmission schedule: the k-th wait is
                    MS * 2^k; default ${DEFAULT_RETRANSMIT_MS} (waits of 2, 4, 8 s...)
  --attempts N      sends per request phase, 1-8; default 8
  --proxy URL       send every datagram through this SOCKS5 proxy, never directly:
                    socks5://[user:password@]host[:port] (the tracker's name
                    resolved here) or socks5h://... (resolved by the proxy)
  --json            one JSON document on stdout, failures included:
                    { "error": { "code", "message" } }

Exit status: 0 ok, 1 tracker error or timeout, 2 bad usage.`
}

class UsageError extends Error {
  constructor (message) {
    super(message)
    this.code = 'ERR_USAGE'
  }
}

// The library's names for what the CLI calls by its flags, for the messages
// of the TypeErrors and RangeErrors it throws on arguments.
const LIBRARY_NAMES = [
  [/\bannounceUrl\b/g, '<url>'],
  [/\bparams\.infoHash\b/g, '<infohash>'],
  [/\binfoHashes\[(\d+)\]/g, 'info hash $1'],
  [/\bparams\.peerId\b/g, '--peer-id'],
  [/\bparams\.port\b/g, '--port'],
  [/\bparams\.left\b/g, '--left'],
  [/\bparams\.numWant\b/g, '--num-want'],
  [/\b(?:params|opts)\._timeout\b/g, '--retransmit-timeout'],
  [/\b(?:params|opts)\.maxAttempts\b/g, '--attempts'],
  [/\b(?:params|opts)\.proxy\b/g, '--proxy'],
  [/\boptions\.timeout\b/g, '--timeout']
]

function inFlagTerms (message) {
  return LIBRARY_NAMES.reduce((text, [pattern, flag]) => text.replace(pattern, flag), message)
}

function integer (value, name, min, max) {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got '${value}'`)
  }
  return n
}

function infoHash (value, where) {
  if (!/^[0-9a-fA-F]{40}$/.test(value)) {
    throw new UsageError(`${where} is not a 40-character hex info hash: '${value}'`)
  }
  return value.toLowerCase()
}

/** The peer id: --peer-id, completed to 20 bytes with random characters when shorter. */
function peerId (given) {
  const prefix = given === undefined ? PEER_ID_PREFIX : given
  const bytes = Buffer.byteLength(prefix)
  if (bytes === 0 || bytes > 20) throw new UsageError(`--peer-id must be 1 to 20 bytes, got ${bytes}: '${prefix}'`)
  let id = prefix
  for (let i = bytes; i < 20; i++) id += PEER_ID_ALPHABET[randomInt(PEER_ID_ALPHABET.length)]
  return id
}

/** The request options shared by both commands, and the deadline of the whole command. */
function requestOptions (values) {
  const timeout = integer(values.timeout, 'timeout', 1, LONGEST_TIMER_MS) ?? DEFAULT_TIMEOUT_MS
  return {
    deadline: Date.now() + timeout,
    timeout,
    library: {
      _timeout: integer(values['retransmit-timeout'], 'retransmit-timeout', 1, LONGEST_TIMER_MS) ?? DEFAULT_RETRANSMIT_MS,
      maxAttempts: integer(values.attempts, 'attempts', 1, 8),
      proxy: values.proxy
    }
  }
}

/**
 * Whether the tracker has answered this process at all (a connect, at
 * least): the engine has measured its round-trip time. The CLI talks to one
 * tracker only.
 */
function trackerAnswered () {
  return UdpTracker.stats().trackers.some((tracker) => tracker.srttMs != null)
}

/** `promise`, whose failure carries the request it belongs to (for describe()). */
async function within (request, promise) {
  try {
    return await promise
  } catch (err) {
    if (err instanceof Error) err.request = request
    throw err
  }
}

/** The time left before the deadline, in ms (at least `floor`). */
function left (request, floor = 1) {
  return Math.max(floor, request.deadline - Date.now())
}

function table (rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)))
  return rows.map((r) => r.map((cell, c) => String(cell).padEnd(widths[c])).join('  ').trimEnd()).join('\n')
}

async function runAnnounce (positionals, values) {
  if (positionals.length !== 2) throw new UsageError('announce takes <url> <infohash>')
  const [url, hash] = positionals
  const event = values.event
  if (!['started', 'completed', 'stopped', 'none'].includes(event)) {
    throw new UsageError(`--event must be started, completed, stopped or none, got '${event}'`)
  }
  if (values.stay && values.port === undefined) {
    throw new UsageError('--stay needs --port: the port you accept peers on')
  }
  const request = requestOptions(values)
  const params = {
    infoHash: infoHash(hash, '<infohash>'),
    peerId: peerId(values['peer-id']),
    port: integer(values.port, 'port', 0, 65535) ?? randomInt(PROBE_PORTS[0], PROBE_PORTS[1] + 1),
    left: integer(values.left, 'left', 0, Number.MAX_SAFE_INTEGER),
    numWant: integer(values['num-want'], 'num-want', -1, 2 ** 31 - 1),
    // Both announces are the same peer: the same key (BEP 15) too.
    key: randomInt(2 ** 32),
    ...request.library
  }
  // Leave the swarm as it was: the same peer (address, port, id, key) stops.
  const leave = event !== 'stopped' && !values.stay
  const stop = () => UdpTracker.announce(url, { ...params, event: 'stopped' }, { timeout: left(request, MIN_STOP_MS) })
  let result
  try {
    result = await within(request, UdpTracker.announce(url, { ...params, event }, { timeout: left(request) }))
  } catch (err) {
    // No answer to the announce, from a tracker that answered the connect:
    // the announce may have reached it and only the reply been lost, so it
    // may list the peer. Stop it too (best effort: the timeout is the error).
    if (leave && err.code === 'ERR_TRACKER_TIMEOUT' && trackerAnswered()) await stop().catch(() => {})
    throw err
  }

  let stopFailure = null
  if (leave) {
    try {
      await stop()
    } catch (err) {
      stopFailure = err
    }
  }

  if (values.json) {
    process.stdout.write(JSON.stringify(result) + '\n')
  } else {
    const lines = [
      table([
        ['interval', 'seeders', 'leechers', 'peers'],
        [`${result.interval}s`, result.seeds, result.leechers, result.peers.length]
      ])
    ]
    if (result.peers.length > 0) lines.push('', 'peers:', ...result.peers.map((p) => `  ${p}`))
    process.stdout.write(lines.join('\n') + '\n')
  }
  if (stopFailure !== null) {
    process.stderr.write(`udp-tracker: warning: the 'stopped' announce after the answer failed, the tracker may list this peer until it expires: ${describe(stopFailure, request)}\n`)
  }
  return 0
}

/** The info hashes of a --file: one per line; blank lines and # comments skipped. */
function readHashFile (file) {
  let text
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read --file ${file}: ${err.message}`)
  }
  const hashes = []
  text.split(/\r?\n/).forEach((line, i) => {
    const entry = line.replace(/#.*/, '').trim()
    if (entry !== '') hashes.push(infoHash(entry, `--file ${file}:${i + 1}:`))
  })
  return hashes
}

async function runScrape (positionals, values) {
  if (positionals.length < 1) throw new UsageError('scrape takes <url> and at least one <infohash>')
  const [url, ...given] = positionals
  const hashes = given.map((h, i) => infoHash(h, `<infohash> ${i + 1}`))
  if (values.file !== undefined) hashes.push(...readHashFile(values.file))
  if (hashes.length === 0) throw new UsageError('scrape needs at least one <infohash> or --file')
  const unique = [...new Set(hashes)]
  const request = requestOptions(values)

  // Large scrapes go in slices so a terminal can show progress.
  const showProgress = process.stderr.isTTY && !values.json && unique.length > SCRAPE_SLICE
  const result = {}
  for (let at = 0; at < unique.length; at += SCRAPE_SLICE) {
    const slice = unique.slice(at, at + SCRAPE_SLICE)
    Object.assign(result, await within(request, UdpTracker.scrape(url, slice, { ...request.library, timeout: left(request) })))
    if (showProgress) progress(Math.min(at + SCRAPE_SLICE, unique.length), unique.length)
  }
  if (showProgress) process.stderr.write('\n')

  if (values.json) {
    process.stdout.write(JSON.stringify(result) + '\n')
    return 0
  }
  const rows = [['infohash', 'seeders', 'completed', 'leechers']]
  for (const hash of unique) {
    const r = result[hash]
    rows.push([hash, r.complete, r.downloaded, r.incomplete])
  }
  process.stdout.write(table(rows) + '\n')
  return 0
}

function progress (done, total) {
  const width = 30
  const filled = Math.round((done / total) * width)
  process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`)
}

/**
 * util.parseArgs rejects `--peer-id -qB4500-…` and `--num-want -1` as
 * ambiguous (the value looks like a flag): give such values as `--flag=value`.
 * A value starting with `--`, or a known short flag, is left alone.
 */
function joinDashValues (argv, options) {
  const shorts = new Set(Object.values(options).filter((o) => o.short).map((o) => `-${o.short}`))
  const out = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const name = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : null
    const next = argv[i + 1]
    if (name !== null && options[name]?.type === 'string' && next !== undefined &&
        next.startsWith('-') && !next.startsWith('--') && !shorts.has(next)) {
      out.push(`${arg}=${next}`)
      i++
    } else {
      out.push(arg)
    }
  }
  return out
}

function parse (argv, options) {
  try {
    return parseArgs({ args: joinDashValues(argv, options), options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError(err.message)
  }
}

async function main (argv) {
  // The test tracker has flags of its own (bin/serve.js).
  if (argv[0] === 'serve') return require('./serve.js').main(argv.slice(1))
  const command = COMMANDS[argv[0]]
  if (command === undefined) {
    const { values, positionals } = parse(argv, { ...COMMON_OPTIONS, version: { type: 'boolean', short: 'v', default: false } })
    if (values.version) {
      const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'))
      process.stdout.write(`${pkg.version}\n`)
      return 0
    }
    if (values.help) {
      process.stdout.write(usage() + '\n')
      return 0
    }
    throw new UsageError(positionals.length === 0 ? 'no command given' : `unknown command '${positionals[0]}'`)
  }
  const { values, positionals } = parse(argv.slice(1), command.options)
  if (values.help) {
    process.stdout.write(usage() + '\n')
    return 0
  }
  return command.run(positionals, values)
}

/** A failure in the CLI's words: its flags, and what a timeout means here. */
function describe (err, request) {
  if (err.code === 'ERR_TRACKER_TIMEOUT' && request !== undefined && Date.now() >= request.deadline) {
    return `no answer from the tracker within --timeout ${request.timeout} ms`
  }
  if (err.code === 'ERR_TRACKER_TIMEOUT') {
    return `no answer from the tracker after every retransmission (--attempts, --retransmit-timeout): ${err.message}`
  }
  return inFlagTerms(err.message)
}

function fail (err, json) {
  const usageError = err instanceof UsageError || err instanceof TypeError || err instanceof RangeError
  const code = usageError ? 'ERR_USAGE' : (err.code || 'ERR_UNKNOWN')
  const message = describe(err, err.request)
  if (json) {
    process.stdout.write(JSON.stringify({ error: { code, message } }) + '\n')
  } else if (usageError) {
    process.stderr.write(`udp-tracker: ${message}\n\n${synopsis()}\n(udp-tracker --help lists every flag)\n`)
  } else {
    process.stderr.write(`udp-tracker: ${message} (${code})\n`)
  }
  return usageError ? 2 : 1
}

const argv = process.argv.slice(2)
main(argv).then(
  (code) => { process.exitCode = code },
  (err) => { process.exitCode = fail(err, argv.includes('--json')) }
)
