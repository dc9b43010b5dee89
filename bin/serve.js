'use strict'

// `udp-tracker serve`: the test tracker (testing.js) in the foreground, for
// trying the client on a machine with no tracker of one's own. Prints its URL,
// a line per --every requests and a summary on exit; SIGINT/SIGTERM exit 0.

const { parseArgs } = require('node:util')
const { createTracker } = require('../testing.js')

const USAGE = `Usage: udp-tracker serve [--host H] [--port P] [--interval S] [--max-scrape N]
                        [--max-peers N] [--loss P] [--duplicate P] [--delay MS|MIN-MAX]
                        [--error-for HASH[=TEXT]]... [--silent-for HASH]... [--reply-from PORT]
                        [--seed N] [--allow-non-loopback] [--every N] [--json]

A small BEP 15 tracker on loopback (default 127.0.0.1:6969; --port 0 picks a
free port, --host ::1 serves IPv6). Its first line on stdout is its URL:
  udp-tracker: serving udp://127.0.0.1:6969
Faults for testing clients: --loss P drops each request and each reply with
probability P, --duplicate P sends replies twice, --delay waits before each
reply, --error-for answers a hash with an error, --silent-for never answers it,
--reply-from answers from another port. --every N prints a line per N requests
(default 1000, 0: never); the summary on exit is JSON with --json.
Stops on Ctrl-C (SIGINT) or SIGTERM, exit status 0; bad usage exits 2.`

const OPTIONS = {
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '6969' },
  interval: { type: 'string' },
  'max-scrape': { type: 'string' },
  'max-peers': { type: 'string' },
  loss: { type: 'string' },
  duplicate: { type: 'string' },
  delay: { type: 'string' },
  'error-for': { type: 'string', multiple: true, default: [] },
  'silent-for': { type: 'string', multiple: true, default: [] },
  'reply-from': { type: 'string' },
  seed: { type: 'string' },
  'allow-non-loopback': { type: 'boolean', default: false },
  every: { type: 'string', default: '1000' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false }
}

class UsageError extends Error {}

// A decimal number, or undefined when the flag is absent; the tracker's own
// checks then name the option if the value is out of range.
function number (values, flag) {
  const value = values[flag]
  if (value === undefined) return undefined
  if (!/^-?\d+(\.\d+)?$/.test(value)) throw new UsageError(`--${flag} must be a number, got '${value}'`)
  return Number(value)
}

function delay (value) {
  if (value === undefined) return undefined
  const m = /^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?$/.exec(value)
  if (m === null) throw new UsageError(`--delay must be MS or MIN-MAX, got '${value}'`)
  return m[2] === undefined ? Number(m[1]) : [Number(m[1]), Number(m[2])]
}

function errorFor (list) {
  const out = {}
  for (const entry of list) {
    const at = entry.indexOf('=')
    const hash = at < 0 ? entry : entry.slice(0, at)
    out[hash.toLowerCase()] = at < 0 ? 'unregistered torrent' : entry.slice(at + 1)
  }
  return out
}

function trackerOptions (values) {
  const options = {
    host: values.host,
    port: number(values, 'port'),
    interval: number(values, 'interval'),
    maxScrape: number(values, 'max-scrape'),
    maxPeers: number(values, 'max-peers'),
    loss: number(values, 'loss'),
    duplicate: number(values, 'duplicate'),
    delay: delay(values.delay),
    errorFor: errorFor(values['error-for']),
    silentFor: values['silent-for'],
    replyFrom: number(values, 'reply-from'),
    seed: number(values, 'seed'),
    allowNonLoopback: values['allow-non-loopback']
  }
  for (const key of Object.keys(options)) if (options[key] === undefined) delete options[key]
  return options
}

function total (stats) {
  const r = stats.requests
  return r.connect + r.announce + r.scrape + r.invalid
}

function line (stats) {
  const r = stats.requests
  const d = stats.dropped
  return `${total(stats)} requests (${r.connect} connect, ${r.announce} announce, ${r.scrape} scrape, ${r.invalid} invalid), ` +
    `${stats.replies} replies (${stats.errors} errors), dropped ${d.loss} lost, ${d.silent} silent, ` +
    `${d.connectionId} bad connection id, ${d.malformed} malformed; ${stats.swarms} torrents, ${stats.peers} peers`
}

async function serve (values) {
  const every = number(values, 'every')
  if (!Number.isSafeInteger(every) || every < 0) throw new UsageError(`--every must be an integer >= 0, got '${values.every}'`)
  const tracker = await createTracker(trackerOptions(values))
  // Listen for the signals before the URL is out: whoever reads it may stop us at once.
  const stopped = new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve()
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
  process.stdout.write(`udp-tracker: serving ${tracker.url}` +
    (tracker.replyPort !== tracker.port ? ` (replies from port ${tracker.replyPort})` : '') +
    ' — Ctrl-C to stop\n')

  let printed = 0
  const poll = setInterval(() => {
    if (every === 0) return
    const stats = tracker.stats()
    const step = Math.floor(total(stats) / every)
    if (step > printed) {
      printed = step
      process.stdout.write(line(stats) + '\n')
    }
  }, 250)
  await stopped
  clearInterval(poll)
  await tracker.close()
  const stats = tracker.stats()
  process.stdout.write(values.json ? JSON.stringify(stats) + '\n' : `udp-tracker: stopped after ${line(stats)}\n`)
}

// Runs `udp-tracker serve ...` (argv without 'serve'). Resolves when the
// tracker stopped on a signal; bad usage prints the usage and exits 2 here,
// so that the caller's exit-status handling is not involved.
async function main (argv) {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
    if (values.help) {
      process.stdout.write(USAGE + '\n')
      return
    }
    if (positionals.length > 0) throw new UsageError(`serve takes no arguments, got '${positionals[0]}'`)
    await serve(values)
  } catch (err) {
    const usage = err instanceof UsageError || err instanceof TypeError || err instanceof RangeError ||
      (err && typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS'))
    // The tracker names its options (options.maxPeers): here they are flags (--max-peers).
    const message = err.message.replace(/options\.(\w+)/g, (_, name) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`)
    process.stderr.write(`udp-tracker serve: ${message}\n${usage ? `\n${USAGE}\n` : ''}`)
    process.exit(usage ? 2 : 1)
  }
}

module.exports = { main, USAGE }
