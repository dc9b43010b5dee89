// Compiled by tracker.test.js against testing.d.ts: every option and result.
import testing = require('../../testing')
import { createTracker, Tracker, TrackerStats, Swarm } from '../../testing'

async function main (): Promise<void> {
  const tracker: Tracker = await createTracker({
    host: '127.0.0.1',
    port: 0,
    allowNonLoopback: false,
    interval: 60,
    maxScrape: 74,
    maxPeers: 50,
    loss: 0.1,
    duplicate: 0.1,
    delay: [1, 5],
    errorFor: { ['aa'.repeat(20)]: 'banned' },
    silentFor: [Buffer.alloc(20), 'bb'.repeat(20)],
    replyFrom: 0,
    seed: 1
  })
  await testing.createTracker({ delay: 5, errorFor: [Buffer.alloc(20)] })
  const url: string = tracker.url
  const ports: number = tracker.port + tracker.replyPort
  const stats: TrackerStats = tracker.stats()
  const counts: number = stats.requests.connect + stats.requests.announce + stats.requests.scrape +
    stats.requests.invalid + stats.replies + stats.errors + stats.duplicates + stats.swarms + stats.peers +
    stats.dropped.loss + stats.dropped.silent + stats.dropped.connectionId + stats.dropped.malformed
  const swarm: Swarm | null = tracker.swarm('aa'.repeat(20))
  if (swarm !== null) {
    const n: number = swarm.complete + swarm.incomplete + swarm.downloaded
    for (const p of swarm.peers) {
      const big: bigint = p.left + p.uploaded + p.downloaded
      const s: string = p.address + p.event + p.urlData + p.peerId.toString('hex') + (p.ip ?? '') + p.key
      void big; void s
    }
    void n
  }
  tracker.restart()
  await tracker.close()
  // @ts-expect-error delay is a number or a pair
  await createTracker({ delay: [1, 2, 3] })
  // @ts-expect-error no such option
  await createTracker({ los: 1 })
  void url; void ports; void counts
}
void main
