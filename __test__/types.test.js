'use strict'
// index.d.ts is checked by compiling samples that use every export, option,
// event and error code, for CommonJS (`import x = require()`) and for ES
// modules (moduleResolution nodenext), with misuses that must not compile
// (`@ts-expect-error`: tsc fails when such a line compiles).
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const tsc = require.resolve('typescript/bin/tsc')

for (const [label, project] of [['CommonJS', 'types/tsconfig.json'], ['ES module, nodenext', 'types/esm/tsconfig.json']]) {
  test(`index.d.ts types the whole API for ${label} users (tsc --noEmit -p __test__/${project})`, () => {
    const run = spawnSync(process.execPath, [tsc, '-p', path.join(__dirname, project)], { encoding: 'utf8' })
    assert.equal(run.status, 0, `tsc failed:\n${run.stdout}${run.stderr}`)
  })
}

test('every runtime export is used by the CommonJS and the ES module samples', async () => {
  const cjs = fs.readFileSync(path.join(__dirname, 'types', 'usage.ts'), 'utf8')
  const esm = fs.readFileSync(path.join(__dirname, 'types', 'esm', 'usage.mts'), 'utf8')
  for (const name of Object.keys(require('..'))) {
    assert.match(cjs, new RegExp(`UdpTracker\\.${name}\\b`), `usage.ts does not use the export ${name}`)
  }
  const mjs = await import('../index.mjs')
  for (const name of Object.keys(mjs)) {
    if (name === 'default') continue
    assert.match(esm, new RegExp(`import .*\\b${name}\\b.* from 'bittorrent-udp-tracker'`), `esm/usage.mts does not import ${name}`)
  }
})
