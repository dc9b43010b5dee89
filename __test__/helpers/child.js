'use strict'
// Runs a Node child process for a test and collects what it printed.

const { spawn } = require('node:child_process')
const path = require('node:path')

const PACKAGE = path.join(__dirname, '..', '..')

/**
 * Runs node with `args` in the package's directory; resolves with { code,
 * signal, stdout, stderr, killed, ms }. Kills the child after `limitMs` (then
 * `killed` is true), and when the test `t` ends. The child does not inherit
 * NODE_TEST_CONTEXT: a test file it runs reports on its own, not to us.
 */
function runNode (t, args, { limitMs = 30000, env = {} } = {}) {
  const started = Date.now()
  const { NODE_TEST_CONTEXT, ...parentEnv } = process.env
  const child = spawn(process.execPath, args, {
    cwd: PACKAGE,
    env: { ...parentEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += d })
  child.stderr.on('data', (d) => { stderr += d })
  let killed = false
  const timer = setTimeout(() => { killed = true; child.kill('SIGKILL') }, limitMs)
  if (t) {
    t.after(() => {
      clearTimeout(timer)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
  }
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, killed, ms: Date.now() - started })
    })
  })
}

module.exports = { runNode, PACKAGE }
