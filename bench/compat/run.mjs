#!/usr/bin/env node
// Runs bittorrent-tracker compatibility cases against this package's Client
// (COMPAT_CLIENT=theirs: against bittorrent-tracker's own, the control).
//
//   node bench/compat/run.mjs                 the cases in cases/ (written for this package)
//   node bench/compat/run.mjs --upstream DIR  bittorrent-tracker's own test files from DIR, the
//                                             test/ folder of a v11.2.3 checkout (not on npm)
//
// Upstream files are copied to a temporary folder with only their imports
// changed: the Client (to client-under-test.mjs), the Server and lib/common.js
// (to the npm package's), and tape (to udp-only-tape.mjs, which runs the udp
// cases). Needs `npm install` in bench/compat (bittorrent-tracker, tape and
// the fixtures, from the npm registry). Exits 1 when a case fails.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const UPSTREAM_FILES = ['client.js', 'scrape.js', 'destroy.js', 'filter.js', 'server.js', 'client-magnet.js',
  'client-large-torrent.js', 'evict.js']

function prepareUpstream (dir) {
  const out = fs.mkdtempSync(path.join(here, '.upstream-'))
  const btCommon = path.join(here, 'node_modules', 'bittorrent-tracker', 'lib', 'common.js')
  const rewrite = (text) => text
    .replace(/import Client from '\.\.\/index\.js'/g, `import Client from '${path.join(here, 'client-under-test.mjs')}'`)
    .replace(/import \{ Server \} from '\.\.\/index\.js'/g, "import { Server } from 'bittorrent-tracker'")
    .replace(/from '\.\.\/lib\/common\.js'/g, `from '${btCommon}'`)
    .replace(/import test from 'tape'/g, `import test from '${path.join(here, 'udp-only-tape.mjs')}'`)
  fs.writeFileSync(path.join(out, 'package.json'), '{ "type": "module" }\n')
  for (const name of ['common.js', ...UPSTREAM_FILES]) {
    fs.writeFileSync(path.join(out, name), rewrite(fs.readFileSync(path.join(dir, name), 'utf8')))
  }
  return { dir: out, files: UPSTREAM_FILES.map((f) => path.join(out, f)) }
}

const args = process.argv.slice(2)
const at = args.indexOf('--upstream')
let files
let cleanup = () => {}
if (at !== -1) {
  if (!args[at + 1]) throw new Error('--upstream needs the test/ folder of a bittorrent-tracker v11.2.3 checkout')
  const prepared = prepareUpstream(path.resolve(args[at + 1]))
  files = prepared.files
  cleanup = () => fs.rmSync(prepared.dir, { recursive: true, force: true })
} else {
  const cases = path.join(here, 'cases')
  files = fs.readdirSync(cases).filter((f) => f.endsWith('.mjs')).sort().map((f) => path.join(cases, f))
}

let passed = 0
let failed = 0
let skipped = 0
try {
  for (const file of files) {
    const run = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 120000, env: process.env })
    const out = run.stdout + run.stderr
    const count = (re) => Number((re.exec(out) || [])[1] || 0)
    const pass = count(/^# pass\s+(\d+)/m)
    const fail = count(/^# fail\s+(\d+)/m)
    const skip = (out.match(/# SKIP/g) || []).length
    const ok = run.status === 0 && fail === 0
    passed += pass
    skipped += skip
    failed += ok ? fail : Math.max(fail, 1)
    console.log(`${ok ? 'ok    ' : 'FAILED'} ${path.basename(file)}: ${pass} assertions passed, ${fail} failed, ${skip} cases skipped`)
    if (!ok) console.log(out.split('\n').filter((l) => /not ok|^\s+(operator|expected|actual|at):|Error/.test(l)).slice(0, 30).join('\n'))
  }
} finally {
  cleanup()
}
console.log(`client: ${process.env.COMPAT_CLIENT || 'ours'}`)
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
process.exitCode = failed === 0 ? 0 : 1
