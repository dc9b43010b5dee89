#!/usr/bin/env node
'use strict'
// Watch the swarm sizes of a list of torrents on one tracker, scraping every
// interval, until Ctrl-C.
//   node examples/monitor.js udp://tracker.example:6969/announce hashes.txt [seconds]
// hashes.txt: one 40-hex info hash per line.

const { readFileSync } = require('fs')
const UdpTracker = require('..')

const [url, file, seconds = '60'] = process.argv.slice(2)
if (!url || !file) {
  console.error('usage: node examples/monitor.js <udp://host:port[/path]> <hashes.txt> [seconds]')
  process.exit(2)
}
const hashes = readFileSync(file, 'utf8').split(/\s+/).filter((h) => /^[0-9a-f]{40}$/i.test(h))
const previous = new Map()

async function round () {
  const started = Date.now()
  try {
    // Any number of hashes: they go out in packets of up to 74, concurrently.
    const counts = await UdpTracker.scrape(url, hashes, { timeout: 30000 })
    for (const [hash, c] of Object.entries(counts)) {
      const before = previous.get(hash)
      const change = before === undefined ? '' : ` (${c.complete - before.complete >= 0 ? '+' : ''}${c.complete - before.complete} seeders)`
      console.log(`${hash}  seeders ${c.complete}  leechers ${c.incomplete}  completed ${c.downloaded}${change}`)
      previous.set(hash, c)
    }
    console.log(`-- ${hashes.length} torrents in ${Date.now() - started} ms, ${new Date().toISOString()}`)
  } catch (err) {
    console.error(`scrape failed: ${err.code} ${err.message}`)
  }
}

round()
setInterval(round, Number(seconds) * 1000)
