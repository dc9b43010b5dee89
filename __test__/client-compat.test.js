'use strict'
// bittorrent-tracker 11.2.3's udp cases against our Client, with
// bittorrent-tracker's own Server as the tracker (bench/compat/run.mjs), and
// against bittorrent-tracker's Client as the control. The packages come from
// the npm registry (`npm install` in bench/compat, done here when missing;
// skipped where it cannot be installed). bittorrent-tracker's npm tarball has
// no tests, so the cases are bench/compat/cases/, written for this package;
// BITTORRENT_TRACKER_TESTS=<the test/ folder of a v11.2.3 checkout> also runs
// the original files, only their imports changed.

const { describe, it, before } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { installFolder } = require('./helpers/npm-folder.js')

const compat = path.join(__dirname, '..', 'bench', 'compat')
const runner = path.join(compat, 'run.mjs')

let skip = null
before(() => { skip = installFolder(compat, ['bittorrent-tracker', 'tape']) })

function run (client, args = []) {
  const result = spawnSync(process.execPath, [runner, ...args], {
    encoding: 'utf8',
    timeout: 300000,
    env: Object.assign({}, process.env, { COMPAT_CLIENT: client })
  })
  const out = `${result.stdout}${result.stderr}`
  const summary = /^(\d+) passed, (\d+) failed, (\d+) skipped$/m.exec(out)
  assert.ok(summary, `no summary from bench/compat/run.mjs:\n${out}`)
  assert.equal(result.status, 0, out)
  assert.equal(Number(summary[2]), 0, out)
  assert.ok(Number(summary[1]) > 50, `assertions ran:\n${out}`)
  return out
}

describe('bittorrent-tracker compatibility (udp)', () => {
  it('our Client passes the cases', (t) => {
    if (skip) return t.skip(skip)
    run('ours')
  })

  it("bittorrent-tracker's own Client passes the same cases (the control)", (t) => {
    if (skip) return t.skip(skip)
    run('theirs')
  })

  it('our Client passes the original test files of v11.2.3 (BITTORRENT_TRACKER_TESTS)', (t) => {
    const dir = process.env.BITTORRENT_TRACKER_TESTS
    if (skip) return t.skip(skip)
    if (!dir) return t.skip('set BITTORRENT_TRACKER_TESTS to the test/ folder of a bittorrent-tracker v11.2.3 checkout')
    run('ours', ['--upstream', dir])
  })
})
