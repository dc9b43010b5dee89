#!/usr/bin/env node
'use strict'
// Announce once to any UDP tracker and print what it says.
//   node examples/announce.js udp://tracker.example:6969/announce <40-hex infohash>
// Starts nothing itself: it talks to the tracker you name.

const { randomBytes } = require('crypto')
const UdpTracker = require('..')

const [url, infoHash] = process.argv.slice(2)
if (!url || !/^[0-9a-f]{40}$/i.test(infoHash || '')) {
  console.error('usage: node examples/announce.js <udp://host:port[/path]> <40-hex infohash>')
  process.exit(2)
}

// The 1.2.0 way: an EventEmitter per torrent.
const tracker = new UdpTracker(randomBytes(20), infoHash, url, { port: 6881 })
tracker.on('update', (update) => {
  console.log('update (EventEmitter API):', update)
  tracker.destroy()

  // The promise API: one call, no instance to destroy.
  UdpTracker.scrape(url, [infoHash], { timeout: 10000 })
    .then((counts) => console.log('scrape (promise API):', counts[infoHash.toLowerCase()]))
    .catch((err) => console.error('scrape failed:', err.code, err.message))
})
tracker.on('error', (message) => {
  console.error('announce failed:', message)
  tracker.destroy()
  process.exitCode = 1
})
tracker.announce('started', { downloaded: 0, left: 0, uploaded: 0 })
