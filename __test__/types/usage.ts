import UdpTracker = require('../..')

const tracker = new UdpTracker(Buffer.alloc(20), 'aa'.repeat(20), 'udp://127.0.0.1:6969', { port: 1234, numWant: -1 })
tracker.on('update', (u) => {
  const n: number = u.leechers + u.seeds + u.interval
  const p: string[] = u.peers
  void n; void p
})
tracker.on('error', (message) => { const s: string = message; void s })
tracker.on('scrape', (r) => { const c: number = r.complete + r.downloaded + r.incomplete; void c })
tracker.announce(2, { downloaded: 0, left: 10n, uploaded: 0 })
tracker.announce('stopped')
tracker.destory()
const Same: typeof UdpTracker = UdpTracker.UdpTracker
void Same
UdpTracker.forgetConnectionIds()
const s: number = UdpTracker.stats().sockets
void s
UdpTracker.scrape('udp://127.0.0.1:6969', ['aa'.repeat(20)]).then((m) => {
  const r: UdpTracker.ScrapeResult | undefined = m['aa'.repeat(20)]
  void r
})
// @ts-expect-error: the event must be one of BEP 15's
tracker.announce(7)
// @ts-expect-error: counters are numbers or BigInt
tracker.announce(0, { left: '1' })
// opts.proxy (SOCKS5)
const viaProxy = new UdpTracker(Buffer.alloc(20), 'aa'.repeat(20), 'udp://127.0.0.1:6969', { proxy: 'socks5h://127.0.0.1:1080' })
viaProxy.destroy()
const associations: number = UdpTracker.stats().proxy.associations
void associations
UdpTracker.scrape('udp://127.0.0.1:6969', ['aa'.repeat(20)], { proxy: 'socks5://u:p@[::1]:1080' }).catch((e: UdpTracker.TrackerError) => {
  const proxyFailed: boolean = e.code === 'ERR_PROXY'
  void proxyFailed
})
// @ts-expect-error: a proxy is a URL string
void new UdpTracker(Buffer.alloc(20), 'aa'.repeat(20), 'udp://127.0.0.1:6969', { proxy: { host: 'x' } })
