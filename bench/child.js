'use strict'
// One measurement in a Node child process of its own, read back from the one
// line of its stdout that starts with a prefix: shared by bench/run.js,
// bench/client.js and bench/burst.js.

const { spawn } = require('node:child_process')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')

/**
 * Runs `node ...argv` in the repository's root and resolves to
 * `{ result, stderr }`, `result` the JSON after `prefix`, or to `{ failed }`
 * (with the end of the child's stderr) when no such line came. The child is
 * killed `killAfterS` seconds after it started.
 */
function runNodeChild (argv, { prefix, killAfterS }) {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    proc.stdout.on('data', (d) => { stdout += d })
    proc.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000) })
    const killer = setTimeout(() => proc.kill('SIGKILL'), killAfterS * 1000)
    proc.on('close', (code, signal) => {
      clearTimeout(killer)
      const line = stdout.split('\n').find((l) => l.startsWith(prefix))
      if (line === undefined) {
        resolve({ failed: `child exited with code ${code}, signal ${signal}: ${stderr.trim().slice(-1500)}` })
      } else {
        resolve({ result: JSON.parse(line.slice(prefix.length)), stderr: stderr.trim() })
      }
    })
  })
}

module.exports = { runNodeChild }
