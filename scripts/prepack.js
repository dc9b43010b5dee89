#!/usr/bin/env node
'use strict'

// `npm pack` (and `npm publish`) run this first: build the release addon that
// the tarball ships as udp-tracker.<target>.node (package.json `files`).
//
// On Linux x64 with glibc the binary must run on glibc 2.17 (CentOS 7, Ubuntu
// 20.04, Debian 11, RHEL 8 ...), so it is built against glibc 2.17 with zig
// (`napi build -x`, i.e. cargo-zigbuild: `pip install ziglang` and
// `cargo install cargo-zigbuild`), then checked with scripts/check-glibc.js.
// UDP_TRACKER_PACK_NATIVE=1 packs the ordinary native build instead (it then
// needs the glibc of the machine that built it). Other machines pack their
// native build.
//
// CI publishes with `--ignore-scripts`: there the binaries come in the
// per-target packages under npm/ and the main package carries none.

const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { targetName } = require('../lib/targets.js')
const { MAX_GLIBC, checkGlibc } = require('./check-glibc.js')

const ROOT = path.join(__dirname, '..')
const target = targetName()
const args = ['build', '--platform', '--release', '--no-js', '--dts', 'binding.d.ts']
const portable = target === 'linux-x64-gnu' && process.env.UDP_TRACKER_PACK_NATIVE !== '1'

if (portable) {
  if (!run('cargo', ['zigbuild', '--help'], { stdio: 'ignore' })) {
    fail('building the linux-x64-gnu binary for glibc ' + MAX_GLIBC + ' needs cargo-zigbuild and zig:\n' +
      '  pip install ziglang && cargo install cargo-zigbuild\n' +
      'or set UDP_TRACKER_PACK_NATIVE=1 to pack the native build (it then needs this machine\'s glibc).')
  }
  // Its own target dir: sharing the native build's would rebuild everything
  // on each switch between the two (other compiler, other linker).
  args.push('--target', `x86_64-unknown-linux-gnu.${MAX_GLIBC}`, '--cross-compile', '--target-dir', `target/glibc-${MAX_GLIBC}`)
}

console.error(`prepack: napi ${args.join(' ')}`)
// The CLI's bin file (its `exports` hide it from require.resolve).
const napiCli = path.join(path.dirname(require.resolve('@napi-rs/cli/package.json')), 'dist', 'cli.js')
if (!run(process.execPath, [napiCli, ...args])) {
  fail(portable ? 'napi build failed (the glibc build needs zig: pip install ziglang)' : 'napi build failed')
}

if (portable) {
  const result = checkGlibc(path.join(ROOT, `udp-tracker.${target}.node`))
  console.error(`prepack: ${result.message}`)
  if (!result.ok) process.exit(1)
}

function run (command, argv, options = {}) {
  const child = spawnSync(command, argv, { cwd: ROOT, stdio: 'inherit', ...options })
  return child.status === 0
}

function fail (message) {
  console.error(`prepack: ${message}`)
  process.exit(1)
}
