// CommonJS users (`import x = require(...)`): every export, option, event
// and error code of index.d.ts, and misuses that must not compile.
import UdpTracker = require('../..')

const options: UdpTracker.TrackerOptions = {
  port: 1234,
  _timeout: 1000,
  maxAttempts: 3,
  numWant: -1,
  key: 42,
  ip: '10.0.0.1',
  family: 'auto',
  strictSource: false,
  connectionIdCache: false,
  auth: { user: 'user', password: Buffer.from('secret') },
  requestString: '/announce?passkey=x',
  proxy: 'socks5h://user:password@127.0.0.1:1080'
}
const tracker = new UdpTracker(Buffer.alloc(20), 'aa'.repeat(20), 'udp://127.0.0.1:6969', options)
new UdpTracker('-JS0001-abcdefghijkl', new Uint8Array(20), 'udp://[::1]:6969', { family: 6 }).destroy()
tracker.on('update', (u) => {
  const n: number = u.leechers + u.seeds + u.interval
  const p: string[] = u.peers
  void n; void p
})
tracker.once('error', (message) => { const s: string = message; void s })
tracker.on('scrape', (r) => { const c: number = r.complete + r.downloaded + r.incomplete; void c })
tracker.on('newListener', (name) => { void name })
tracker.announce(2, { downloaded: 0, left: 10n, uploaded: 0 })
tracker.announce('stopped')
tracker.scrape()
const fields: [boolean, boolean, boolean, Buffer, Buffer, string, number, number] = [
  tracker.destroyed, tracker.destoryed, tracker._in_interval, tracker.peerId, tracker.infoHash,
  tracker.announceUrl, tracker.port, tracker._timeout
]
void fields
tracker.destory()
tracker.destroy()

class Subclass extends UdpTracker {
  announce (event: UdpTracker.AnnounceEvent, opts?: UdpTracker.AnnounceOptions): void {
    super.announce(event, opts)
  }
}
void Subclass

const Same: typeof UdpTracker = UdpTracker.UdpTracker
const Default: typeof UdpTracker = UdpTracker.default
void Same; void Default
UdpTracker.forgetConnectionIds()
const stats: UdpTracker.Stats = UdpTracker.stats()
const counters: number = stats.sent + stats.received + stats.droppedShort + stats.droppedUnknown + stats.droppedLate +
  stats.droppedWrongSource + stats.inFlight + stats.queued + stats.sockets + stats.cachedConnectionIds
void counters
const proxyStats: UdpTracker.ProxyStats = stats.proxy
const proxyCounters: number = proxyStats.associations + proxyStats.sent + proxyStats.received + proxyStats.inFlight +
  proxyStats.cachedConnectionIds + proxyStats.droppedWrongSource + proxyStats.droppedRelaySource +
  proxyStats.droppedFragments + proxyStats.droppedMalformed
void proxyCounters

async function promiseApi (): Promise<void> {
  const controller = new AbortController()
  const update: UdpTracker.Update = await UdpTracker.announce('udp://127.0.0.1:6969', {
    infoHash: 'aa'.repeat(20), peerId: Buffer.alloc(20), event: 'started', downloaded: 0, left: 1n, uploaded: 0, ...options
  }, { signal: controller.signal, timeout: 5000 })
  void update
  const counts = await UdpTracker.scrape('udp://127.0.0.1:6969', ['aa'.repeat(20), Buffer.alloc(20)], {
    _timeout: 100, maxAttempts: 1, family: 4, strictSource: true, connectionIdCache: true, proxy: 'socks5://[::1]:1080', signal: AbortSignal.timeout(100), timeout: 200
  })
  const r: UdpTracker.ScrapeResult | undefined = counts['aa'.repeat(20)]
  void r
  try {
    await UdpTracker.announce('udp://127.0.0.1:6969', { infoHash: 'aa'.repeat(20), peerId: 'bb'.repeat(10) })
  } catch (err) {
    const code: UdpTracker.ErrorCode = (err as UdpTracker.TrackerError).code
    const every: UdpTracker.ErrorCode[] = ['ERR_TRACKER_ERROR', 'ERR_BAD_RESPONSE', 'ERR_TRACKER_TIMEOUT', 'ERR_DNS', 'ERR_SEND', 'ERR_PROXY', 'ERR_ABORTED']
    void code; void every
  }
}
void promiseApi

// @ts-expect-error: the event must be one of BEP 15's
tracker.announce(7)
// @ts-expect-error: counters are numbers or BigInt
tracker.announce(0, { left: '1' })
// @ts-expect-error: there is no such event
tracker.on('updated', () => {})
// @ts-expect-error: an event name is a string
tracker.on(5, () => {})
// @ts-expect-error: seeds is a number
tracker.on('update', (u: { seeds: string }) => { void u })
// @ts-expect-error: the port is a number
void new UdpTracker(Buffer.alloc(20), Buffer.alloc(20), 'udp://127.0.0.1:6969', { port: '6881' })
// @ts-expect-error: not an error code
const notACode: UdpTracker.ErrorCode = 'ERR_OTHER'
void notACode
// @ts-expect-error: a proxy is a URL string
void new UdpTracker(Buffer.alloc(20), 'aa'.repeat(20), 'udp://127.0.0.1:6969', { proxy: { host: '127.0.0.1', port: 1080 } })
// @ts-expect-error: so is the module-level scrape's
void UdpTracker.scrape('udp://127.0.0.1:6969', ['aa'.repeat(20)], { proxy: 1080 })
// @ts-expect-error: the promise announce needs an info hash
void UdpTracker.announce('udp://127.0.0.1:6969', { peerId: 'x'.repeat(20) })

// The Client (typed in full by __test__/types/client/usage.ts).
const client: UdpTracker.Client = new UdpTracker.Client({ infoHash: Buffer.alloc(20), peerId: Buffer.alloc(20), announce: ['udp://127.0.0.1:6969'], port: 6881, proxy: 'socks5://127.0.0.1:1080' })
client.on('warning', (err) => { void err.code })
client.destroy()
