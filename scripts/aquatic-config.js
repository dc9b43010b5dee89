'use strict'

// aquatic_udp's configuration: its defaults (`aquatic_udp -p`) with some keys
// changed. The one place that edits it, for the tests and the benchmark.
//
//   const toml = aquaticConfig(binary, {
//     '': { log_level: 'warn' },                 // top-level keys
//     network: { address: '127.0.0.1:3000' },    // [network]
//     protocol: { max_scrape_torrents: 74 }
//   })
//
// Strings are written as TOML strings, numbers and booleans as they are. Only
// keys that the defaults already have can be changed: a misspelt key, or one
// that another aquatic version calls differently, is an error rather than a
// setting aquatic would ignore.

const { execFileSync } = require('node:child_process')

function tomlValue (value, where) {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) return String(value)
  throw new TypeError(`${where} must be a string, a finite number or a boolean, got ${typeof value}`)
}

/** `toml` with `key = value` in `section` ('' for the top level) replaced; throws when it has no such key. */
function setTomlKey (toml, section, key, value) {
  const lines = toml.split('\n')
  let current = ''
  for (let i = 0; i < lines.length; i++) {
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(lines[i])
    if (header) {
      current = header[1].trim()
    } else if (current === section && new RegExp(`^\\s*${key}\\s*=`).test(lines[i])) {
      lines[i] = `${key} = ${value}`
      return lines.join('\n')
    }
  }
  throw new Error(`aquatic_udp's default config has no ${section === '' ? '' : `[${section}] `}${key}`)
}

/** `binary -p` (the defaults) with the keys of `changes` ({ section: { key: value } }) replaced. */
function aquaticConfig (binary, changes = {}) {
  let toml = execFileSync(binary, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  for (const [section, keys] of Object.entries(changes)) {
    for (const [key, value] of Object.entries(keys)) {
      toml = setTomlKey(toml, section, key, tomlValue(value, `${section}.${key}`))
    }
  }
  return toml
}

module.exports = { aquaticConfig }
