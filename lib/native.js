'use strict'

// Loads the native engine (the napi-rs addon) built for this machine, the way
// napi-rs packages ship: one optional npm package per target
// (`npm/<target>/`, e.g. bittorrent-udp-tracker-linux-x64-gnu) holding
// `udp-tracker.<target>.node`; npm installs only the one whose `os`, `cpu`
// and `libc` match. In order, the first that exists wins:
//   1. NAPI_RS_NATIVE_LIBRARY_PATH, a .node file named by the user;
//   2. `udp-tracker.<target>.node` next to package.json: a development build
//      (`npm run build`) or a package packed on this machine (`npm pack`);
//   3. the platform package.
// When none loads, the error says which machine this is, what we ship, and
// how to build from source, with every load error seen on the way.

const fs = require('node:fs')
const path = require('node:path')
const { TARGETS, detectLibc, targetName } = require('./targets.js')

const PACKAGE_NAME = 'bittorrent-udp-tracker'
const BINARY_NAME = 'udp-tracker'
const ROOT = path.join(__dirname, '..')

function describe (platform, arch, libc) {
  return libc ? `${platform} ${arch} (${libc})` : `${platform} ${arch}`
}

function loadBinding () {
  const platform = process.platform
  const arch = process.arch
  const libc = detectLibc(platform)
  const target = targetName(platform, arch, libc)
  const tried = [] // [where, error]

  const override = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (override) {
    // Named explicitly: its failure is the answer, no fallback.
    try {
      return require(path.resolve(override))
    } catch (err) {
      throw new Error(`${PACKAGE_NAME}: cannot load NAPI_RS_NATIVE_LIBRARY_PATH=${override}: ${err.message}`, { cause: err })
    }
  }

  const local = path.join(ROOT, `${BINARY_NAME}.${target}.node`)
  try {
    return require(local)
  } catch (err) {
    if (!isMissing(err, local)) tried.push([local, err])
  }

  const platformPackage = `${PACKAGE_NAME}-${target}`
  if (TARGETS.includes(target)) {
    try {
      return require(platformPackage)
    } catch (err) {
      if (!isMissing(err, platformPackage)) tried.push([platformPackage, err])
    }
  }

  throw noBindingError({ platform, arch, libc, target, platformPackage, tried })
}

// Whether `err` says that `request` itself does not exist (as opposed to a
// file that exists and fails to load, e.g. a glibc too old for it).
function isMissing (err, request) {
  return err.code === 'MODULE_NOT_FOUND' && err.message.includes(`'${request}'`)
}

function noBindingError ({ platform, arch, libc, target, platformPackage, tried }) {
  const version = require('../package.json').version
  const lines = []
  if (tried.length > 0) {
    lines.push(`${PACKAGE_NAME}: the native binary for ${describe(platform, arch, libc)} failed to load:`)
    for (const [where, err] of tried) lines.push(`  ${where}: ${err.message.split('\n')[0]}`)
  } else if (TARGETS.includes(target)) {
    lines.push(
      `${PACKAGE_NAME}: the native binary for ${describe(platform, arch, libc)} is in the optional package ` +
      `${platformPackage}, which is not installed. npm skips it with --omit=optional (or --no-optional), ` +
      'and a node_modules or package-lock.json made on another machine may lack it: ' +
      `install it (npm install ${platformPackage}@${version}) or reinstall without those.`
    )
  } else {
    lines.push(`${PACKAGE_NAME}: no prebuilt native binary for ${describe(platform, arch, libc)} (target ${target}).`)
  }
  if (fs.existsSync(path.join(ROOT, 'Cargo.toml'))) {
    lines.push(`This is a source checkout: \`npm run build\` (or \`npm test\`) builds ${BINARY_NAME}.${target}.node here.`)
  }
  lines.push(`Prebuilt targets: ${TARGETS.join(', ')}.`)
  lines.push(
    'To build from source (Rust stable, Node >= 18, npm): in a clone of the source repository run ' +
    '`npm install && npm pack`, then install the .tgz it writes into your project; ' +
    `or set NAPI_RS_NATIVE_LIBRARY_PATH to a ${BINARY_NAME}.${target}.node built by \`npm run build\`.`
  )
  const err = new Error(lines.join('\n'), tried.length > 0 ? { cause: tried[0][1] } : undefined)
  err.code = 'ERR_NO_NATIVE_BINDING'
  Object.assign(err, { platform, arch, libc, target })
  return err
}

module.exports = loadBinding()
