'use strict'

// The benchmarks' command lines: util.parseArgs, the usage text taken from
// the script's own header comment, and checked values. A bad argument
// prints what is wrong and the usage, and exits 2; --help prints the usage
// and exits 0.

const fs = require('node:fs')
const path = require('node:path')
const util = require('node:util')

/** The first block of `//` comment lines of `file`, without the slashes. */
function headerText (file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n')
  const first = lines.findIndex((l) => l.startsWith('//'))
  const end = lines.findIndex((l, i) => i > first && !l.startsWith('//'))
  return lines.slice(first, end === -1 ? undefined : end).map((l) => l.replace(/^\/\/ ?/, '')).join('\n').trim()
}

class CommandLine {
  /**
   * `argv` parsed by util.parseArgs with `options` (and `--help`, `-h`);
   * `file` is the script, whose header comment is its usage.
   */
  constructor (file, argv, options, { allowPositionals = false } = {}) {
    this.file = file
    let parsed
    try {
      parsed = util.parseArgs({
        args: argv,
        allowPositionals,
        options: { ...options, help: { type: 'boolean', short: 'h' } }
      })
    } catch (err) {
      this.fail(err.message)
    }
    if (parsed.values.help) this.usage()
    this.values = parsed.values
    this.positionals = parsed.positionals
  }

  /** Prints the usage and exits 0. */
  usage () {
    console.log(headerText(this.file))
    process.exit(0)
  }

  /** Prints `message` and the usage, and exits 2. */
  fail (message) {
    console.error(`${path.basename(this.file)}: ${message}\n\n${headerText(this.file)}`)
    process.exit(2)
  }

  /** `s` (digits, `_` allowed between them) as an integer ≥ 1; `fallback` when `s` is undefined. */
  positiveInt (s, flag, fallback) {
    return this.integer(s, flag, fallback, 1, 'a positive integer')
  }

  /** `s` as an integer ≥ 0 (a count that may be none); `fallback` when `s` is undefined. */
  count (s, flag, fallback) {
    return this.integer(s, flag, fallback, 0, 'an integer ≥ 0')
  }

  integer (s, flag, fallback, min, what) {
    if (s === undefined) return fallback
    const n = /^[0-9][0-9_]*$/.test(s) ? Number(s.replace(/_/g, '')) : NaN
    if (!Number.isSafeInteger(n) || n < min) this.fail(`${flag} must be ${what}, got ${s}`)
    return n
  }

  /** A comma-separated list of `positiveInt`s; `fallback` when `s` is undefined. */
  positiveInts (s, flag, fallback) {
    if (s === undefined) return fallback
    return s.split(',').map((part) => this.positiveInt(part.trim(), flag))
  }

  /** Where results go: `s` (--out), else $BENCH_OUT, else `fallback`; an absolute path. */
  outFile (s, fallback) {
    return path.resolve(s ?? (process.env.BENCH_OUT || fallback))
  }

  /**
   * A comma-separated list of names from `known` (through `aliases`),
   * without repeats; `fallback` when `s` is undefined.
   */
  names (s, flag, known, aliases = {}, fallback = known) {
    if (s === undefined) return fallback
    return [...new Set(s.split(',').map((name) => {
      const key = aliases[name.trim()] ?? name.trim()
      if (!known.includes(key)) this.fail(`unknown ${flag} value ${name}: ${known.join(', ')}`)
      return key
    }))]
  }
}

module.exports = { CommandLine }
