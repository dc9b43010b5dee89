'use strict'

// Test dependencies kept out of the package's own: folders of the repository
// with a package.json of their own (bench/peers, bench/compat), installed
// from the npm registry by the first test that needs them, as
// scripts/aquatic.js builds aquatic_udp on first use.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

/**
 * Runs `npm install` in `folder` unless every package of `packages` is
 * there already. Returns null when they are, or why they could not be
 * installed (a test's skip reason).
 */
function installFolder (folder, packages) {
  const present = () => packages.every((name) => fs.existsSync(path.join(folder, 'node_modules', name, 'package.json')))
  if (present()) return null
  const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: folder, encoding: 'utf8', timeout: 300000 })
  if (npm.status === 0 && present()) return null
  const why = (npm.error ? npm.error.message : npm.stderr || '').toString().trim().split('\n').pop()
  return `${path.relative(path.join(__dirname, '..', '..'), folder)} could not be installed from the npm registry: ${why}`
}

module.exports = { installFolder }
