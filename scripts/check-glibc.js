#!/usr/bin/env node
'use strict'

// The newest glibc symbol version a Linux binary needs, read from the
// undefined symbols of `objdump -T` (binutils), compared with a limit:
//
//   node scripts/check-glibc.js [file.node] [--max 2.17]
//
// Exit 0 when the binary needs at most the limit (or when objdump is missing:
// then it says the check was skipped), 1 when it needs more, 2 on bad usage
// or an unreadable file. Default file: udp-tracker.linux-x64-gnu.node.

const { spawnSync } = require('node:child_process')
const path = require('node:path')

// The oldest glibc our linux-gnu binaries support: CentOS 7's, and the floor
// of Rust's own linux-gnu targets.
const MAX_GLIBC = '2.17'

function compareVersions (a, b) {
  const x = a.split('.').map(Number)
  const y = b.split('.').map(Number)
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

/** The GLIBC_x.y versions that undefined symbols in `objdump -T` output ask for, newest first. */
function requiredGlibcVersions (objdumpOutput) {
  const versions = new Set()
  for (const line of objdumpOutput.split('\n')) {
    const m = /\*UND\*.*\bGLIBC_(\d+(?:\.\d+)+)\b/.exec(line)
    if (m) versions.add(m[1])
  }
  return [...versions].sort(compareVersions).reverse()
}

/**
 * { ok, skipped, needed, message }: `needed` is the newest GLIBC version the
 * file requires (null when none); `skipped` when objdump is not installed.
 * Throws when the file cannot be read as an ELF object.
 */
function checkGlibc (file, max = MAX_GLIBC) {
  const name = path.basename(file)
  const dump = spawnSync('objdump', ['-T', file], { encoding: 'utf8' })
  if (dump.error?.code === 'ENOENT') {
    return { ok: true, skipped: true, needed: null, message: `objdump not found (install binutils): glibc check of ${name} skipped` }
  }
  if (dump.status !== 0) throw new Error(`objdump -T ${file} failed: ${dump.stderr.trim()}`)
  const needed = requiredGlibcVersions(dump.stdout)[0] ?? null
  const ok = needed === null || compareVersions(needed, max) <= 0
  const message = needed === null
    ? `${name} needs no versioned glibc symbol`
    : `${name} needs GLIBC_${needed} (limit GLIBC_${max})${ok ? ': ok' : `: too new, it will not load where glibc is older than ${needed}`}`
  return { ok, skipped: false, needed, message }
}

module.exports = { MAX_GLIBC, checkGlibc, requiredGlibcVersions, compareVersions }

if (require.main === module) {
  const { values, positionals } = require('node:util').parseArgs({
    options: { max: { type: 'string', default: MAX_GLIBC } },
    allowPositionals: true
  })
  if (positionals.length > 1 || !/^\d+(\.\d+)+$/.test(values.max)) {
    console.error('usage: node scripts/check-glibc.js [file.node] [--max 2.17]')
    process.exit(2)
  }
  const file = positionals[0] ?? path.join(__dirname, '..', 'udp-tracker.linux-x64-gnu.node')
  let result
  try {
    result = checkGlibc(file, values.max)
  } catch (err) {
    console.error(err.message)
    process.exit(2)
  }
  console.log(result.message)
  process.exit(result.ok ? 0 : 1)
}
