// ES module users (moduleResolution nodenext): the same exports by name.
import UdpTracker, { UdpTracker as Named, announce, scrape, forgetConnectionIds, stats, Client } from 'bittorrent-udp-tracker'
import type { Update, ScrapeResult, TrackerOptions, ErrorCode, TrackerError, ProxyStats } from 'bittorrent-udp-tracker'

const options: TrackerOptions = { port: 1234, numWant: 10, connectionIdCache: false, auth: { user: 'u', password: 'p' }, proxy: 'socks5://127.0.0.1:1080' }
const tracker: UdpTracker = new Named(Buffer.alloc(20), 'aa'.repeat(20), 'udp://127.0.0.1:6969', options)
tracker.on('update', (u: Update) => { void u })
tracker.on('scrape', (r: ScrapeResult) => { void r })
tracker.on('error', (message: string) => { void message })
tracker.announce('started', { left: 1 })
tracker.destroy()
forgetConnectionIds()
const sockets: number = stats().sockets
const proxied: ProxyStats = stats().proxy
void sockets; void proxied

const update: Update = await announce('udp://127.0.0.1:6969', { infoHash: Buffer.alloc(20), peerId: Buffer.alloc(20) }, { timeout: 100 })
const counts: Record<string, ScrapeResult> = await scrape('udp://127.0.0.1:6969', ['aa'.repeat(20)], { signal: AbortSignal.timeout(100), proxy: 'socks5h://[::1]:1080' })
void update; void counts
const code: ErrorCode = 'ERR_ABORTED'
const proxyCode: ErrorCode = 'ERR_PROXY'
void proxyCode
const err = new Error('x') as TrackerError
void code; void err
void UdpTracker
const client: Client = new Client({ infoHash: 'aa'.repeat(20), peerId: Buffer.alloc(20), announce: 'udp://127.0.0.1:6969', port: 6881, proxy: 'socks5h://127.0.0.1:1080' })
void client

// @ts-expect-error: there is no such event
tracker.on('done', () => {})
// @ts-expect-error: an event name is a string
tracker.once(5, () => {})
// @ts-expect-error: seeds is a number
tracker.on('update', (u: { seeds: string }) => { void u })
// @ts-expect-error: a proxy is a URL string
void announce('udp://127.0.0.1:6969', { infoHash: Buffer.alloc(20), peerId: Buffer.alloc(20), proxy: { host: '127.0.0.1' } })
// @ts-expect-error: the port is a number
void new UdpTracker(Buffer.alloc(20), Buffer.alloc(20), 'udp://127.0.0.1:6969', { port: '6881' })

// The Client (typed in full by __test__/types/client/usage.ts).
client.destroy(() => {})
