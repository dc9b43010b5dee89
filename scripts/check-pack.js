#!/usr/bin/env node
'use strict'

// What a user of the packed package gets (`npm run check:pack`):
//   1. `npm pack` (its prepack builds the addon: for Linux x64 glibc 2.17);
//   2. the tarball's package.json has no install-time script, and the tarball
//      holds this machine's .node, the loader, the CLI and the examples;
//   3. on Linux x64 glibc: that .node needs glibc 2.17 at most;
//   4. installing the tarball into an empty project, offline, prints no
//      install-script warning, then in that project `require` works, the
//      promise API and the CLI announce to a scripted tracker on loopback, and
//      examples/announce.js announces to aquatic_udp when one is found.
// Exit 0 when all hold; otherwise 1 with what failed.

const { execFile, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { targetName } = require('../lib/targets.js')
const { MAX_GLIBC, checkGlibc } = require('./check-glibc.js')
const { ScriptServer, announceReply } = require('../__test__/helpers/script-server.js')

const ROOT = path.join(__dirname, '..')
const INSTALL_HOOKS = ['preinstall', 'install', 'postinstall', 'prepare']
const INFO_HASH = '0123456789abcdef0123456789abcdef01234567'

function step (message) {
  console.log(`check-pack: ${message}`)
}

function check (condition, message) {
  if (!condition) throw new Error(message)
}

function run (command, args, options) {
  const child = spawnSync(command, args, { encoding: 'utf8', ...options })
  if (child.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${child.status}\n${child.stdout}${child.stderr}`)
  }
  return child
}

async function main () {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'udp-tracker-pack-'))
  try {
    await checkIn(work)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

async function checkIn (work) {
  const target = targetName()
  step(`npm pack (target ${target})`)
  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] }).stdout)
  const tarball = path.join(work, packed.filename)
  const files = packed.files.map((f) => f.path)
  const binary = `udp-tracker.${target}.node`
  for (const want of ['package.json', 'index.js', 'lib/native.js', 'bin/udp-tracker.js', 'examples/announce.js', binary]) {
    check(files.includes(want), `the tarball lacks ${want}: ${files.join(' ')}`)
  }
  step(`${packed.filename}: ${files.length} files, ${packed.size} bytes`)

  const unpacked = path.join(work, 'unpacked')
  fs.mkdirSync(unpacked)
  run('tar', ['-xzf', tarball, '-C', unpacked])
  const manifest = JSON.parse(fs.readFileSync(path.join(unpacked, 'package', 'package.json'), 'utf8'))
  const hooks = INSTALL_HOOKS.filter((hook) => manifest.scripts?.[hook])
  check(hooks.length === 0, `the packed package.json has install-time scripts: ${hooks.join(', ')}`)
  step('packed package.json: no install-time script')

  if (target === 'linux-x64-gnu') {
    const result = checkGlibc(path.join(unpacked, 'package', binary), MAX_GLIBC)
    step(result.message)
    check(result.ok, result.message)
  }

  const project = path.join(work, 'project')
  fs.mkdirSync(project)
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'pack-check', version: '1.0.0', private: true }))
  step('npm install <tarball> --offline into an empty project')
  const install = run('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], { cwd: project })
  const warnings = (install.stdout + install.stderr).split('\n').filter((line) => /install-?scripts|allowScripts|npm has a bug/i.test(line))
  check(warnings.length === 0, `installing the tarball warned:\n${warnings.join('\n')}`)

  const node = (code) => run(process.execPath, ['-e', code], { cwd: project }).stdout.trim()
  check(node("console.log(typeof require('bittorrent-udp-tracker').announce)") === 'function', 'require() did not give the API')
  step('require(\'bittorrent-udp-tracker\') works')

  const server = await ScriptServer.create()
  server.onAnnounce = (req) => announceReply(req.transactionId, { interval: 900, leechers: 2, seeders: 3, peers: ['10.1.2.3:6881'] })
  try {
    const reply = JSON.parse(await nodeAsync(project, `
      const { announce } = require('bittorrent-udp-tracker')
      announce(${JSON.stringify(server.url)}, { infoHash: '${INFO_HASH}', peerId: '-JS0001-abcdefghijkl', port: 6881 }, { timeout: 10000 })
        .then((r) => console.log(JSON.stringify(r)))`))
    check(reply.interval === 900 && reply.seeds === 3 && reply.leechers === 2 && reply.peers[0] === '10.1.2.3:6881',
      `unexpected announce result ${JSON.stringify(reply)}`)
    step(`promise API announce to a scripted tracker: ${JSON.stringify(reply)}`)

    const cli = await nodeAsync(project, null, [path.join(project, 'node_modules', '.bin', 'udp-tracker'), 'announce', server.url, INFO_HASH, '--json'])
    check(JSON.parse(cli).interval === 900, `unexpected CLI output ${cli}`)
    step('the CLI (node_modules/.bin/udp-tracker) announces too')
  } finally {
    await server.close()
  }

  await exampleAgainstAquatic(project)
  step('ok')
}

// Runs node with `-e code` (or `args`) in `project` without blocking this
// process's event loop (the scripted tracker answers from it).
function nodeAsync (project, code, args = ['-e', code]) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd: project, timeout: 30000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`))
      else resolve(stdout.trim())
    })
  })
}

async function exampleAgainstAquatic (project) {
  let aquatic
  try {
    aquatic = await require('../__test__/helpers/aquatic.js').startAquatic()
  } catch (err) {
    step(`aquatic_udp not started (${err.message.split('\n')[0]}): the example run is skipped`)
    return
  }
  try {
    const example = path.join(project, 'node_modules', 'bittorrent-udp-tracker', 'examples', 'announce.js')
    const out = await nodeAsync(project, null, [example, aquatic.url, INFO_HASH])
    check(/update \(EventEmitter API\)/.test(out) && /scrape \(promise API\)/.test(out), `examples/announce.js printed:\n${out}`)
    step('the shipped examples/announce.js announces and scrapes against aquatic_udp')
  } finally {
    await aquatic.stop()
  }
}

main().catch((err) => {
  console.error(`check-pack: FAILED: ${err.message}`)
  process.exit(1)
})
