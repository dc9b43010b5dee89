import UdpTracker = require('../../..')
import { Client } from '../../..'

const client = new Client({
  infoHash: 'aa'.repeat(20),
  peerId: Buffer.alloc(20),
  announce: [['udp://127.0.0.1:6969', 'udp://127.0.0.1:6970'], ['udp://[::1]:6969']],
  port: 6881,
  getAnnounceOpts: () => ({ uploaded: 0, downloaded: 0, left: 10n }),
  announceToAllTrackers: false,
  minInterval: 60000,
  _timeout: 1000,
  family: 'auto',
  proxy: 'socks5h://127.0.0.1:1080'
})
client.on('update', (u) => { const n: number = u.complete + u.incomplete; const a: string = u.announce; void n; void a })
client.on('peer', (addr) => { const s: string = addr; void s })
client.on('scrape', (s) => { const h: string = s.infoHash; const n: number = s.downloaded; void h; void n })
client.on('warning', (err) => { const m: string = err.message; const url: string | undefined = err.announce; void m; void url })
client.start({ left: 0 })
client.update()
client.complete({ numwant: 10 })
client.scrape({ infoHash: ['aa'.repeat(20), Buffer.alloc(20)] })
client.setInterval(5000)
client.stop()
client.destroy(() => {})
const same: typeof Client = UdpTracker.Client
void same
const returned: UdpTracker.Client = Client.scrape({ announce: 'udp://127.0.0.1:6969', infoHash: 'aa'.repeat(20) }, (err, data) => {
  if (err === null && data !== undefined) void data
})
void returned
// @ts-expect-error a proxy is a URL string
void new Client({ infoHash: 'aa'.repeat(20), peerId: Buffer.alloc(20), announce: 'udp://127.0.0.1:1', port: 1, proxy: { host: 'x' } })
// @ts-expect-error port is required
void new Client({ infoHash: 'aa'.repeat(20), peerId: Buffer.alloc(20), announce: 'udp://127.0.0.1:1' })
