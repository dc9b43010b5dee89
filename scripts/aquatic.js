#!/usr/bin/env node
'use strict'

// Finds aquatic_udp 0.9.0, the real tracker the tests and the benchmark start
// on loopback, and builds it once when it is missing. The one place that knows
// where it lives: the tests (__test__/helpers/aquatic.js), bench/run.js and
// .ci/run all ask this module.
//
// Where it looks, in order:
//   1. $AQUATIC_UDP: used as given (any version); an error when it is not an
//      executable file.
//   2. `aquatic_udp` on PATH, if `aquatic_udp -v` says 0.9.0.
//   3. the cache, <repo>/.aquatic/bin/aquatic_udp (git-ignored).
// When none is there, provisionAquatic() runs
//   cargo install aquatic_udp@0.9.0 --root <repo>/.aquatic
// (a few minutes, once; its output goes to .aquatic/build.log) and says so on
// one line of stderr. A lock file (.aquatic/build.lock, holding the builder's
// pid) keeps test files that run at the same time from building it twice: the
// others wait for the build and then use it. A lock whose process is gone is
// taken over.
//
//   node scripts/aquatic.js           prints the binary's path, building it if needed
//   node scripts/aquatic.js --find    prints the path, or exits 1 saying where it looked

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const AQUATIC_VERSION = '0.9.0'
const EXE = process.platform === 'win32' ? '.exe' : ''
const CACHE_ROOT = path.join(__dirname, '..', '.aquatic')
const CACHE_BIN = path.join(CACHE_ROOT, 'bin', `aquatic_udp${EXE}`)
const LOCK = path.join(CACHE_ROOT, 'build.lock')
const LOG = path.join(CACHE_ROOT, 'build.log')
const BUILD_ARGS = ['install', `aquatic_udp@${AQUATIC_VERSION}`, '--root', CACHE_ROOT]
const BUILD_COMMAND = `cargo ${BUILD_ARGS.join(' ')}`
const LOCK_POLL_MS = 1000
const LOCK_FRESH_MS = 5000
const LOG_TAIL_LINES = 30

function isExecutable (file) {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** Whether `file` is an aquatic_udp of the wanted version (`aquatic_udp -v` prints it). */
function isWantedVersion (file) {
  if (!isExecutable(file)) return false
  const run = spawnSync(file, ['-v'], { encoding: 'utf8', timeout: 10000, stdio: ['ignore', 'pipe', 'ignore'] })
  return run.status === 0 && run.stdout.trim().split(/\s+/).includes(AQUATIC_VERSION)
}

/**
 * The aquatic_udp binary to use, or null when there is none yet. Throws when
 * $AQUATIC_UDP is set but is not an executable file.
 */
function findAquatic () {
  const fromEnv = process.env.AQUATIC_UDP
  if (fromEnv) {
    if (!isExecutable(fromEnv)) {
      throw new Error(`AQUATIC_UDP=${fromEnv} is not an executable file: fix or unset it (then ${BUILD_COMMAND} is run for you)`)
    }
    return fromEnv
  }
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (dir === '') continue
    const candidate = path.join(dir, `aquatic_udp${EXE}`)
    if (isWantedVersion(candidate)) return candidate
  }
  return isWantedVersion(CACHE_BIN) ? CACHE_BIN : null
}

/** Where findAquatic() looked, for messages. */
function whereLooked () {
  return `$AQUATIC_UDP unset, no aquatic_udp ${AQUATIC_VERSION} on PATH or in ${CACHE_BIN}`
}

/** Takes the build lock: true when taken, false when a live process holds it. */
function takeLock () {
  fs.mkdirSync(CACHE_ROOT, { recursive: true })
  for (;;) {
    try {
      fs.writeFileSync(LOCK, String(process.pid), { flag: 'wx' })
      return true
    } catch (err) {
      if (err.code !== 'EEXIST') throw err
    }
    const holder = Number.parseInt(readOrEmpty(LOCK), 10)
    if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) return false
    // Created an instant ago, its pid not written yet: held.
    if (Number.isNaN(holder) && Date.now() - mtimeMs(LOCK) < LOCK_FRESH_MS) return false
    // Left behind by a build that was killed (or being written right now:
    // then the unlink fails or the next wx fails, and we look again).
    try { fs.unlinkSync(LOCK) } catch {}
  }
}

function readOrEmpty (file) {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

function mtimeMs (file) {
  try {
    return fs.statSync(file).mtimeMs
  } catch {
    return 0
  }
}

function isAlive (pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

function logTail () {
  const lines = readOrEmpty(LOG).trimEnd().split('\n')
  return lines.slice(-LOG_TAIL_LINES).join('\n')
}

/** Runs `cargo install` into the cache; resolves when it has succeeded. */
function build () {
  return new Promise((resolve, reject) => {
    const log = fs.openSync(LOG, 'w')
    const started = Date.now()
    const child = spawn('cargo', BUILD_ARGS, { stdio: ['ignore', log, log] })
    // A child that cannot start emits 'error' and then 'close': the first one counts.
    let settled = false
    const settle = (err) => {
      if (settled) return
      settled = true
      fs.closeSync(log)
      if (err === null && isWantedVersion(CACHE_BIN)) {
        process.stderr.write(`aquatic_udp ${AQUATIC_VERSION} built in ${Math.round((Date.now() - started) / 1000)} s: ${CACHE_BIN}\n`)
        resolve(CACHE_BIN)
      } else {
        reject(err ?? new Error(`${BUILD_COMMAND} succeeded but ${CACHE_BIN} is not aquatic_udp ${AQUATIC_VERSION}`))
      }
    }
    child.once('error', (err) => settle(new Error(err.code === 'ENOENT'
      ? `cargo is not on PATH: install Rust (https://rustup.rs) to build aquatic_udp, or set AQUATIC_UDP to an aquatic_udp ${AQUATIC_VERSION} binary`
      : `${BUILD_COMMAND} could not start: ${err.message}`)))
    child.once('close', (code, signal) => settle(code === 0
      ? null
      : new Error(`${BUILD_COMMAND} failed (${signal ? `signal ${signal}` : `exit code ${code}`}); the end of ${LOG}:\n${logTail()}`)))
  })
}

async function provision () {
  let waiting = false
  for (;;) {
    const found = findAquatic()
    if (found !== null) return found
    if (takeLock()) {
      try {
        // Another process may have finished between the look and the lock.
        const now = findAquatic()
        if (now !== null) return now
        process.stderr.write(`aquatic_udp ${AQUATIC_VERSION} not found (${whereLooked()}): building it once with \`${BUILD_COMMAND}\`, a few minutes (log: ${LOG})\n`)
        return await build()
      } finally {
        try { fs.unlinkSync(LOCK) } catch {}
      }
    }
    if (!waiting) {
      waiting = true
      process.stderr.write(`aquatic_udp ${AQUATIC_VERSION} is being built by process ${readOrEmpty(LOCK).trim()}: waiting for it (log: ${LOG})\n`)
    }
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS))
  }
}

let provisioning = null

/**
 * Resolves to the aquatic_udp binary, building it into the cache first when
 * findAquatic() finds none. One build per process, and across processes.
 */
function provisionAquatic () {
  if (provisioning === null) {
    provisioning = provision()
    // A failed build is not cached: the next caller tries again.
    provisioning.catch(() => { provisioning = null })
  }
  return provisioning
}

module.exports = { AQUATIC_VERSION, BUILD_COMMAND, CACHE_BIN, findAquatic, provisionAquatic }

if (require.main === module) {
  const findOnly = process.argv.includes('--find')
  const run = findOnly
    ? Promise.resolve().then(() => {
      const found = findAquatic()
      if (found === null) throw new Error(`${whereLooked()}; \`node scripts/aquatic.js\` or the first \`npm test\` builds it`)
      return found
    })
    : provisionAquatic()
  run.then((file) => {
    process.stdout.write(`${file}\n`)
  }, (err) => {
    process.stderr.write(`${err.message}\n`)
    process.exitCode = 1
  })
}
