'use strict'
// scripts/aquatic.js, which finds aquatic_udp or builds it: run from a copy in
// a temp dir (its cache is that dir's .aquatic/) with a fake `cargo` on PATH
// that "builds" a script printing a version. No real build, no tracker.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const MODULE = path.join(__dirname, '..', 'scripts', 'aquatic.js')

// `cargo install aquatic_udp@V --root DIR`: notes the call, waits, writes DIR/bin/aquatic_udp.
const FAKE_CARGO = `#!/bin/sh
echo "$$ $*" >> "$(dirname "$0")/calls"
sleep 1
mkdir -p "$4/bin"
printf '#!/bin/sh\\necho %s\\n' "$FAKE_VERSION" > "$4/bin/aquatic_udp"
chmod +x "$4/bin/aquatic_udp"
exit "$FAKE_EXIT"
`

/** A project copy with scripts/aquatic.js, and a bin dir holding the fake cargo. */
function sandbox (t) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aquatic-provision-'))
  t.after(() => fs.rmSync(root, { recursive: true, force: true }))
  fs.mkdirSync(path.join(root, 'project', 'scripts'), { recursive: true })
  fs.copyFileSync(MODULE, path.join(root, 'project', 'scripts', 'aquatic.js'))
  const bin = path.join(root, 'bin')
  fs.mkdirSync(bin)
  fs.writeFileSync(path.join(bin, 'cargo'), FAKE_CARGO, { mode: 0o755 })
  return {
    project: path.join(root, 'project'),
    bin,
    cached: path.join(root, 'project', '.aquatic', 'bin', 'aquatic_udp'),
    calls: () => fs.readFileSync(path.join(bin, 'calls'), 'utf8').trim().split('\n').filter(Boolean)
  }
}

/** Runs `node scripts/aquatic.js [args]` in the sandbox with only its bin dir and node's on PATH. */
function run (box, args = [], env = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(box.project, 'scripts', 'aquatic.js'), ...args], {
      encoding: 'utf8',
      timeout: 30000,
      env: { PATH: [box.bin, path.dirname(process.execPath), '/usr/bin', '/bin'].join(path.delimiter), FAKE_VERSION: '0.9.0', FAKE_EXIT: '0', ...env }
    }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }))
  })
}

describe('scripts/aquatic.js', { skip: process.platform === 'win32' && 'the fake cargo is a shell script' }, () => {
  it('builds aquatic_udp into .aquatic once, saying so on one line, and reuses it', async (t) => {
    const box = sandbox(t)
    assert.equal((await run(box, ['--find'])).code, 1)
    // Three at once, as test files running in parallel: one builds, two wait.
    const runs = await Promise.all([run(box), run(box), run(box)])
    for (const r of runs) {
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, `${box.cached}\n`)
    }
    assert.equal(box.calls().length, 1)
    assert.match(box.calls()[0], / install aquatic_udp@0\.9\.0 --root .*\.aquatic$/)
    const builders = runs.filter((r) => r.stderr.includes('building it once with `cargo install aquatic_udp@0.9.0 --root'))
    assert.equal(builders.length, 1)
    assert.equal(builders[0].stderr.split('\n').filter((l) => l.includes('not found')).length, 1)
    // Afterwards: found in the cache, silently, no build.
    const again = await run(box)
    assert.deepEqual([again.code, again.stdout, again.stderr], [0, `${box.cached}\n`, ''])
    assert.equal(box.calls().length, 1)
    assert.ok(!fs.existsSync(path.join(box.project, '.aquatic', 'build.lock')))
  })

  it('takes over the lock of a build that was killed', async (t) => {
    const box = sandbox(t)
    fs.mkdirSync(path.join(box.project, '.aquatic'))
    // A pid that is not running: above Linux's pid_max.
    fs.writeFileSync(path.join(box.project, '.aquatic', 'build.lock'), '99999999')
    const r = await run(box)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(box.calls().length, 1)
  })

  it('a failed build exits 1 with the end of its log', async (t) => {
    const box = sandbox(t)
    const r = await run(box, [], { FAKE_EXIT: '101' })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /cargo install aquatic_udp@0\.9\.0 --root \S+ failed \(exit code 101\); the end of \S+build\.log:/)
  })

  it('skips an aquatic_udp of another version on PATH; AQUATIC_UDP overrides', async (t) => {
    const box = sandbox(t)
    const other = path.join(box.bin, 'aquatic_udp')
    fs.writeFileSync(other, '#!/bin/sh\necho 0.8.0\n', { mode: 0o755 })
    assert.equal((await run(box, ['--find'])).code, 1)
    assert.equal((await run(box, ['--find'], { AQUATIC_UDP: other })).stdout, `${other}\n`)
    fs.writeFileSync(other, '#!/bin/sh\necho 0.9.0\n', { mode: 0o755 })
    assert.equal((await run(box, ['--find'])).stdout, `${other}\n`)
    const missing = await run(box, ['--find'], { AQUATIC_UDP: path.join(box.bin, 'nope') })
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /AQUATIC_UDP=\S+nope is not an executable file/)
  })
})
