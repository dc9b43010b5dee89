'use strict'

// Which napi-rs target this machine is, and which targets we ship prebuilt.
// Used by the loader (lib/native.js) and by scripts/prepack.js.

// package.json's `napi.targets` by napi-rs's names: also the `npm/` folders
// and, prefixed with the package name, the optionalDependencies
// (`__test__/loader.test.js` keeps the four lists in step).
const TARGETS = [
  'linux-x64-gnu',
  'linux-x64-musl',
  'linux-arm64-gnu',
  'linux-arm64-musl',
  'darwin-x64',
  'darwin-arm64',
  'win32-x64-msvc',
  'win32-arm64-msvc'
]

// 'musl' or 'glibc' on Linux, null elsewhere. Cheapest check first: ldd is a
// script naming its libc; then the process report, which gives glibc's
// version or lists the shared objects loaded (ld-musl-*).
function detectLibc (platform = process.platform) {
  if (platform !== 'linux') return null
  const fs = require('node:fs')
  try {
    return fs.readFileSync('/usr/bin/ldd', 'latin1').includes('musl') ? 'musl' : 'glibc'
  } catch {}
  let report = null
  if (typeof process.report?.getReport === 'function') {
    process.report.excludeNetwork = true
    report = process.report.getReport()
  }
  if (report?.header?.glibcVersionRuntime) return 'glibc'
  const musl = (f) => f.includes('libc.musl-') || f.includes('ld-musl-')
  if (Array.isArray(report?.sharedObjects) && report.sharedObjects.some(musl)) return 'musl'
  return 'glibc'
}

// napi-rs's name for a machine: `linux-x64-gnu`, `darwin-arm64`,
// `win32-x64-msvc`, `linux-arm-gnueabihf`, `freebsd-x64`. Defined for
// machines we ship nothing for too, because `napi build --platform` names a
// binary built there from source the same way.
function targetName (platform = process.platform, arch = process.arch, libc = detectLibc(platform)) {
  if (platform === 'linux') {
    const abi = libc === 'musl' ? 'musl' : 'gnu'
    return `linux-${arch}-${arch === 'arm' ? abi + 'eabihf' : abi}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

module.exports = { TARGETS, detectLibc, targetName }
