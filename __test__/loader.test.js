'use strict'
// The native loader (lib/native.js): which binary it picks for a machine, and
// what it says when there is none. Each case runs the loader in a child
// process with process.platform / process.arch and the libc probes
// (/usr/bin/ldd, process.report) faked. Also: the four lists of targets agree,
// the packed package runs no install script, the glibc checker.

const test = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { TARGETS, targetName } = require('../lib/targets.js')
const { checkGlibc, requiredGlibcVersions, compareVersions } = require('../scripts/check-glibc.js')
const pkg = require('../package.json')

const ROOT = path.join(__dirname, '..')
const LOADER = path.join(ROOT, 'lib', 'native.js')
const HOST_TARGET = targetName()
const HOST_BINARY = path.join(ROOT, `udp-tracker.${HOST_TARGET}.node`)

// Runs in the child: applies the fakes in FAKE, requires the loader, prints
// what happened as JSON.
const CHILD = `
const fs = require('node:fs')
const fake = JSON.parse(process.env.FAKE)
if (fake.platform) Object.defineProperty(process, 'platform', { value: fake.platform })
if (fake.arch) Object.defineProperty(process, 'arch', { value: fake.arch })
if ('ldd' in fake) {
  const readFileSync = fs.readFileSync
  fs.readFileSync = function (file, ...rest) {
    if (file !== '/usr/bin/ldd') return readFileSync.call(this, file, ...rest)
    if (fake.ldd === null) throw Object.assign(new Error('ENOENT: /usr/bin/ldd'), { code: 'ENOENT' })
    return fake.ldd
  }
}
if ('report' in fake) process.report.getReport = () => fake.report
let out
try {
  const binding = require(${JSON.stringify(LOADER)})
  out = { ok: true, engine: typeof binding.Engine, nodeFiles: Object.keys(require.cache).filter((f) => f.endsWith('.node')) }
} catch (err) {
  const { message, code, platform, arch, libc, target } = err
  out = { ok: false, message, code, platform, arch, libc, target, cause: err.cause && err.cause.message }
}
process.stdout.write(JSON.stringify(out))
`

const GLIBC_LDD = '#! /bin/bash\n# ldd: print shared object dependencies (GNU libc)\n'
const MUSL_LDD = '#!/bin/sh\nexec /lib/ld-musl-x86_64.so.1 --list "$@"\n'

function load (fake, env = {}) {
  const childEnv = { ...process.env, FAKE: JSON.stringify(fake), ...env }
  if (!('NAPI_RS_NATIVE_LIBRARY_PATH' in env)) delete childEnv.NAPI_RS_NATIVE_LIBRARY_PATH
  return JSON.parse(execFileSync(process.execPath, ['-e', CHILD], { env: childEnv, encoding: 'utf8' }))
}

/** A directory for NODE_PATH holding the package `name` whose main is `binary` (bytes). */
function fakePackageDir (t, target, bytes) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'udp-tracker-loader-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const pkgDir = path.join(dir, `bittorrent-udp-tracker-${target}`)
  fs.mkdirSync(pkgDir)
  const main = `udp-tracker.${target}.node`
  fs.writeFileSync(path.join(pkgDir, 'package.json'), JSON.stringify({ name: `bittorrent-udp-tracker-${target}`, main }))
  fs.writeFileSync(path.join(pkgDir, main), bytes)
  return { dir, binary: path.join(pkgDir, main) }
}

function assertBuildFromSourceAdvice (result) {
  assert.equal(result.ok, false)
  assert.equal(result.code, 'ERR_NO_NATIVE_BINDING')
  assert.ok(result.message.includes(`Prebuilt targets: ${TARGETS.join(', ')}.`), result.message)
  assert.match(result.message, /To build from source .*npm install && npm pack/)
  assert.ok(result.message.includes(`udp-tracker.${result.target}.node`), result.message)
  assert.doesNotMatch(result.message, /npm has a bug/)
}

test('on this machine the loader loads the development build next to package.json', { skip: !fs.existsSync(HOST_BINARY) && `no ${HOST_BINARY}: run npm run build` }, () => {
  const result = load({})
  assert.equal(result.ok, true, result.message)
  assert.equal(result.engine, 'function')
  assert.deepEqual(result.nodeFiles, [HOST_BINARY])
})

test('a platform with no prebuilt binary (freebsd x64): the error names it, lists the targets, says how to build', () => {
  const result = load({ platform: 'freebsd', arch: 'x64' })
  assertBuildFromSourceAdvice(result)
  assert.deepEqual([result.platform, result.arch, result.libc, result.target], ['freebsd', 'x64', null, 'freebsd-x64'])
  assert.match(result.message, /^bittorrent-udp-tracker: no prebuilt native binary for freebsd x64 \(target freebsd-x64\)\./)
  // The tests run in the source checkout (Cargo.toml next to package.json).
  assert.match(result.message, /This is a source checkout: `npm run build` \(or `npm test`\) builds udp-tracker\.freebsd-x64\.node here\./)
})

test('an architecture with no prebuilt binary (linux riscv64, glibc): the libc is named too', () => {
  const result = load({ platform: 'linux', arch: 'riscv64', ldd: GLIBC_LDD })
  assertBuildFromSourceAdvice(result)
  assert.equal(result.target, 'linux-riscv64-gnu')
  assert.match(result.message, /no prebuilt native binary for linux riscv64 \(glibc\)/)
})

test('a prebuilt target whose optional package is not installed (linux arm64 musl): says which package and why', () => {
  const result = load({ platform: 'linux', arch: 'arm64', ldd: MUSL_LDD })
  assertBuildFromSourceAdvice(result)
  assert.deepEqual([result.libc, result.target], ['musl', 'linux-arm64-musl'])
  assert.match(result.message, /native binary for linux arm64 \(musl\) is in the optional package bittorrent-udp-tracker-linux-arm64-musl, which is not installed/)
  assert.match(result.message, /--omit=optional/)
  assert.ok(result.message.includes(`npm install bittorrent-udp-tracker-linux-arm64-musl@${pkg.version}`))
})

test('without /usr/bin/ldd the libc comes from the process report (musl shared objects, or glibc version)', () => {
  const musl = load({ platform: 'linux', arch: 'arm64', ldd: null, report: { header: {}, sharedObjects: ['/lib/ld-musl-aarch64.so.1'] } })
  assert.deepEqual([musl.libc, musl.target], ['musl', 'linux-arm64-musl'])
  const glibc = load({ platform: 'linux', arch: 'arm64', ldd: null, report: { header: { glibcVersionRuntime: '2.31' }, sharedObjects: [] } })
  assert.deepEqual([glibc.libc, glibc.target], ['glibc', 'linux-arm64-gnu'])
})

test('darwin and win32 targets are named as napi-rs names them, with no libc', () => {
  const mac = load({ platform: 'darwin', arch: 'arm64' })
  assert.deepEqual([mac.libc, mac.target], [null, 'darwin-arm64'])
  assert.match(mac.message, /darwin arm64 is in the optional package bittorrent-udp-tracker-darwin-arm64,/)
  const win = load({ platform: 'win32', arch: 'arm64' })
  assert.equal(win.target, 'win32-arm64-msvc')
})

test('the platform package is loaded when it is installed (linux arm64 musl, found through NODE_PATH)', { skip: !fs.existsSync(HOST_BINARY) && 'no development build to stand in for it' }, (t) => {
  // The host's own binary under the arm64-musl name: dlopen does not mind.
  const { dir, binary } = fakePackageDir(t, 'linux-arm64-musl', fs.readFileSync(HOST_BINARY))
  const result = load({ platform: 'linux', arch: 'arm64', ldd: MUSL_LDD }, { NODE_PATH: dir })
  assert.equal(result.ok, true, result.message)
  assert.equal(result.engine, 'function')
  assert.deepEqual(result.nodeFiles, [fs.realpathSync(binary)])
})

test('a binary that is there but fails to load is reported with the loader\'s own error, not as missing', (t) => {
  const { dir, binary } = fakePackageDir(t, 'linux-x64-musl', 'not a shared object')
  const result = load({ platform: 'linux', arch: 'x64', ldd: MUSL_LDD }, { NODE_PATH: dir })
  assertBuildFromSourceAdvice(result)
  assert.match(result.message, /^bittorrent-udp-tracker: the native binary for linux x64 \(musl\) failed to load:\n {2}bittorrent-udp-tracker-linux-x64-musl: /)
  assert.ok(result.cause.includes(fs.realpathSync(binary)) || result.cause.includes(binary), result.cause)
  assert.doesNotMatch(result.message, /not installed/)
})

test('NAPI_RS_NATIVE_LIBRARY_PATH names the binary to load, and a wrong one is an error naming it', { skip: !fs.existsSync(HOST_BINARY) && 'no development build' }, (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'udp-tracker-override-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const copy = path.join(dir, 'udp-tracker.freebsd-x64.node')
  fs.copyFileSync(HOST_BINARY, copy)
  const ok = load({ platform: 'freebsd', arch: 'x64' }, { NAPI_RS_NATIVE_LIBRARY_PATH: copy })
  assert.equal(ok.ok, true, ok.message)
  assert.deepEqual(ok.nodeFiles, [fs.realpathSync(copy)])
  const missing = path.join(dir, 'nothing.node')
  const bad = load({}, { NAPI_RS_NATIVE_LIBRARY_PATH: missing })
  assert.equal(bad.ok, false)
  assert.ok(bad.message.startsWith(`bittorrent-udp-tracker: cannot load NAPI_RS_NATIVE_LIBRARY_PATH=${missing}: `), bad.message)
})

// napi-rs's name for a Rust target triple (the ones we list).
function napiName (triple) {
  const [cpu, , sys, abi] = triple.split('-')
  const arch = { x86_64: 'x64', aarch64: 'arm64' }[cpu]
  if (sys === 'darwin') return `darwin-${arch}`
  if (sys === 'windows') return `win32-${arch}-${abi}`
  return `${sys}-${arch}-${abi}`
}

test('the prebuilt targets agree: loader, napi.targets, npm/<target>/package.json, optionalDependencies', () => {
  assert.deepEqual(pkg.napi.targets.map(napiName), TARGETS)
  const dirs = fs.readdirSync(path.join(ROOT, 'npm')).sort()
  assert.deepEqual(dirs, [...TARGETS].sort())
  assert.deepEqual(pkg.optionalDependencies, Object.fromEntries(TARGETS.map((t) => [`bittorrent-udp-tracker-${t}`, pkg.version])))
  for (const target of TARGETS) {
    const sub = JSON.parse(fs.readFileSync(path.join(ROOT, 'npm', target, 'package.json'), 'utf8'))
    const [platform, arch, abi] = target.split('-')
    const main = `udp-tracker.${target}.node`
    assert.equal(sub.name, `bittorrent-udp-tracker-${target}`)
    assert.equal(sub.version, pkg.version, `${target} version`)
    assert.deepEqual([sub.os, sub.cpu, sub.main, sub.files], [[platform], [arch], main, [main]], target)
    assert.deepEqual(sub.libc, platform === 'linux' ? [abi === 'musl' ? 'musl' : 'glibc'] : undefined, `${target} libc`)
  }
})

test('the packed package has no install-time script and ships the loader, the CLI and the examples', () => {
  for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) {
    assert.equal(pkg.scripts[hook], undefined, `package.json must not have a "${hook}" script`)
  }
  // npm is npm.cmd on Windows, which only a shell runs.
  const windows = process.platform === 'win32'
  const npmPack = execFileSync(windows ? 'npm.cmd' : 'npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', shell: windows })
  const [packed] = JSON.parse(npmPack)
  const files = packed.files.map((f) => f.path)
  for (const want of ['package.json', 'index.js', 'index.mjs', 'index.d.ts', 'lib/native.js', 'lib/targets.js', 'bin/udp-tracker.js', 'examples/announce.js', 'examples/monitor.js']) {
    assert.ok(files.includes(want), `${want} is not packed: ${files.join(' ')}`)
  }
  for (const file of files) assert.doesNotMatch(file, /^(src|__test__|scripts|npm|target|bench|fuzz)\/|\.rs$|^binding\./, `${file} should not be packed`)
})

test('check-glibc: versions compare numerically and the newest needed one is found in objdump -T output', () => {
  assert.ok(compareVersions('2.2.5', '2.17') < 0)
  assert.ok(compareVersions('2.17', '2.17') === 0)
  assert.ok(compareVersions('2.34', '2.17') > 0)
  const dump = [
    '0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.2.5) memmove',
    '0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.17) clock_gettime',
    '0000000000000000      DF *UND*\t0000000000000000  GLIBC_2.3.2 pthread_cond_wait',
    '0000000000012340 g    DF .text\t0000000000000010 (GLIBC_2.99) defined_here_not_needed',
    '0000000000000000  w   D  *UND*\t0000000000000000  GLIBC_PRIVATE __private'
  ].join('\n')
  assert.deepEqual(requiredGlibcVersions(dump), ['2.17', '2.3.2', '2.2.5'])
})

test('check-glibc passes a Linux gnu binary at its own glibc level and fails it one step below', { skip: (HOST_TARGET !== 'linux-x64-gnu' || !fs.existsSync(HOST_BINARY)) && 'needs a linux-x64-gnu build' }, (t) => {
  const result = checkGlibc(HOST_BINARY)
  if (result.skipped) return t.skip(result.message)
  assert.ok(result.needed, 'a glibc binary needs some GLIBC_ version')
  assert.equal(checkGlibc(HOST_BINARY, result.needed).ok, true)
  const [major, minor] = result.needed.split('.').map(Number)
  const below = checkGlibc(HOST_BINARY, `${major}.${minor - 1}`)
  assert.equal(below.ok, false)
  assert.match(below.message, new RegExp(`needs GLIBC_${result.needed.replace(/\./g, '\\.')} .*too new`))
})
