#!/usr/bin/env node
'use strict'

// udp-tracker: announce to or scrape a UDP tracker from the command line.
// Exit codes: 0 ok, 1 the tracker failed (error reply, timeout, DNS), 2 bad usage.

const { parseArgs } = require('node:util')
const { readFileSync } = require('node:fs')
const { randomBytes } = require('node:crypto')
const path = require('node:path')
const UdpTracker = require('..')

const USAGE = `Usage:
  udp-tracker announce <url> <infohash> [--event started|completed|stopped|none]
                       [--port N] [--peer-id ID] [--left N] [--num-want N] [--timeout MS] [--json]
  udp-tracker scrape <url> <infohash>... [--file hashes.txt] [--timeout MS] [--json]
  udp-tracker --help | --version

<url> is udp://host:port[/path]; <infohash> is 40 hex characters.
--file reads one info hash per line (blank lines and # comments are skipped).
--timeout is the base retransmission timeout in milliseconds (default 15000);
the k-th wait is timeout * 2^k, up to --attempts sends (default 8).
--proxy socks5://[user:password@]host:port sends every datagram through that
SOCKS5 proxy (socks5h:// lets the proxy resolve the tracker's host name).

Exit status: 0 ok, 1 tracker error or timeout, 2 bad usage.`

const OPTIONS = {
  event: { type: 'string', default: 'started' },
  port: { type: 'string', default: '6881' },
  'peer-id': { type: 'string' },
  left: { type: 'string', default: '0' },
  'num-want': { type: 'string', default: '50' },
  timeout: { type: 'string' },
  attempts: { type: 'string' },
  proxy: { type: 'string' },
  file: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  version: { type: 'boolean', short: 'v', default: false }
}

class UsageError extends Error {}

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

function requestOptions (values) {
  return {
    _timeout: integer(values.timeout, 'timeout', 1, 2 ** 31 - 1),
    maxAttempts: integer(values.attempts, 'attempts', 1, 8),
    proxy: values.proxy
  }
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
  const peerId = values['peer-id'] === undefined
    ? `-UT2000-${randomBytes(6).toString('hex')}`
    : values['peer-id']
  const result = await UdpTracker.announce(url, {
    infoHash: infoHash(hash, '<infohash>'),
    peerId,
    event,
    port: integer(values.port, 'port', 0, 65535),
    left: integer(values.left, 'left', 0, Number.MAX_SAFE_INTEGER),
    numWant: integer(values['num-want'], 'num-want', -1, 2 ** 31 - 1),
    ...requestOptions(values)
  })
  if (values.json) {
    process.stdout.write(JSON.stringify(result) + '\n')
    return
  }
  const lines = [
    table([
      ['interval', 'seeders', 'leechers', 'peers'],
      [`${result.interval}s`, result.seeds, result.leechers, result.peers.length]
    ])
  ]
  if (result.peers.length > 0) lines.push('', 'peers:', ...result.peers.map((p) => `  ${p}`))
  process.stdout.write(lines.join('\n') + '\n')
}

function readHashFile (file) {
  let text
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read --file ${file}: ${err.message}`)
  }
  return text.split(/\r?\n/)
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line !== '')
    .map((line, i) => infoHash(line, `${file} entry ${i + 1}`))
}

async function runScrape (positionals, values) {
  if (positionals.length < 1) throw new UsageError('scrape takes <url> and at least one <infohash>')
  const [url, ...given] = positionals
  const hashes = given.map((h, i) => infoHash(h, `<infohash> ${i + 1}`))
  if (values.file !== undefined) hashes.push(...readHashFile(values.file))
  if (hashes.length === 0) throw new UsageError('scrape needs at least one <infohash> or --file')
  const unique = [...new Set(hashes)]
  const options = requestOptions(values)

  // Large scrapes go in slices so a terminal can show progress.
  const slice = 740
  const showProgress = process.stderr.isTTY && unique.length > slice
  const result = {}
  for (let at = 0; at < unique.length; at += slice) {
    Object.assign(result, await UdpTracker.scrape(url, unique.slice(at, at + slice), options))
    if (showProgress) progress(Math.min(at + slice, unique.length), unique.length)
  }
  if (showProgress) process.stderr.write('\n')

  if (values.json) {
    process.stdout.write(JSON.stringify(result) + '\n')
    return
  }
  const rows = [['infohash', 'seeders', 'completed', 'leechers']]
  for (const hash of unique) {
    const r = result[hash]
    rows.push([hash, r.complete, r.downloaded, r.incomplete])
  }
  process.stdout.write(table(rows) + '\n')
}

function progress (done, total) {
  const width = 30
  const filled = Math.round((done / total) * width)
  process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`)
}

async function main (argv) {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError(err.message)
  }
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(USAGE + '\n')
    return
  }
  if (values.version) {
    const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'))
    process.stdout.write(`${pkg.version}\n`)
    return
  }
  const [command, ...rest] = positionals
  if (command === 'announce') return runAnnounce(rest, values)
  if (command === 'scrape') return runScrape(rest, values)
  throw new UsageError(command === undefined ? 'no command given' : `unknown command '${command}'`)
}

main(process.argv.slice(2)).then(
  () => { process.exitCode = 0 },
  (err) => {
    if (err instanceof UsageError || err instanceof TypeError || err instanceof RangeError) {
      process.stderr.write(`udp-tracker: ${err.message}\n\n${USAGE}\n`)
      process.exitCode = 2
    } else {
      process.stderr.write(`udp-tracker: ${err.message}${err.code ? ` (${err.code})` : ''}\n`)
      process.exitCode = 1
    }
  }
)
