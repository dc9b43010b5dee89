'use strict'
// A tracker binary run as a child process, for the test helpers (aquatic.js,
// opentracker.js) and bench/burst.js: its output kept (the last 64 KiB of
// each stream), stop() with SIGTERM then SIGKILL after a grace period, its
// temp dir removed once it has exited. Trackers still running when this
// process exits, or is ended by SIGINT / SIGTERM (which then end it as they
// would have), are killed and their dirs removed.
//
//   const tracker = spawnTracker(binary, args, { cwd: dir, dir })
//   await tracker.exited      // 'code N', 'signal S' or 'spawn error: …'
//   tracker.describeOutput()  // its stderr and stdout, for an error message
//   await tracker.stop()

const { spawn } = require('node:child_process')
const fs = require('node:fs')

const OUTPUT_KEPT = 64 * 1024
const running = new Map() // child process -> its temp dir (or null)

function killRunning () {
  for (const [child, dir] of running) {
    try { child.kill('SIGKILL') } catch {}
    if (dir) try { fs.rmSync(dir, { recursive: true, force: true }) } catch {}
  }
}

process.on('exit', killRunning)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    killRunning()
    process.kill(process.pid, signal)
  })
}

function spawnTracker (binary, args, { cwd, dir = null, graceMs = 2000 } = {}) {
  const child = spawn(binary, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  running.set(child, dir)
  const output = { stdout: '', stderr: '' }
  for (const name of ['stdout', 'stderr']) {
    child[name].setEncoding('utf8')
    child[name].on('data', (s) => { if (output[name].length < OUTPUT_KEPT) output[name] += s })
  }
  // 'close' rather than 'exit': its output has been read by then.
  const exited = new Promise((resolve) => {
    child.once('error', (err) => { running.delete(child); resolve(`spawn error: ${err.message}`) })
    child.once('close', (code, signal) => { running.delete(child); resolve(signal ? `signal ${signal}` : `code ${code}`) })
  })
  const alive = () => child.exitCode === null && child.signalCode === null

  let stopping = null
  const stop = () => {
    if (stopping === null) {
      stopping = (async () => {
        if (alive()) {
          child.kill('SIGTERM')
          const killer = setTimeout(() => child.kill('SIGKILL'), graceMs)
          await exited
          clearTimeout(killer)
        }
        await exited
        if (dir) fs.rmSync(dir, { recursive: true, force: true })
      })()
    }
    return stopping
  }

  return {
    child,
    exited,
    stop,
    get alive () { return alive() },
    get stdout () { return output.stdout },
    get stderr () { return output.stderr },
    describeOutput () {
      return [output.stderr.trim() && `stderr:\n${output.stderr.trim()}`, output.stdout.trim() && `stdout:\n${output.stdout.trim()}`]
        .filter(Boolean).join('\n') || '(it printed nothing)'
    }
  }
}

module.exports = { spawnTracker }
