/// <reference types="node" />
import { EventEmitter } from 'events'

declare namespace UdpTrackerClass {
  /** 0 none, 1 completed, 2 started, 3 stopped (BEP 15); names are accepted too. */
  type AnnounceEvent = 0 | 1 | 2 | 3 | 'none' | 'completed' | 'started' | 'stopped'

  interface TrackerOptions {
    /** The port this client listens on for peers, sent in every announce. 0–65535, default 0. */
    port?: number
    /**
     * Base retransmission timeout in milliseconds (default 15000). With no reply,
     * the k-th wait is `_timeout · 2^k` (k = 1, 2, …), as 1.2.0 did.
     */
    _timeout?: number
    /** Sends per request phase before giving up, 1–8 (default 8). */
    maxAttempts?: number
    /** Peers to ask for: −1 (the tracker's default) up to 2^31−1. Default 50. */
    numWant?: number
    /** The announce key (u32). Default: random per instance, the same for all its announces. */
    key?: number
    /** The IPv4 address to announce instead of the datagram's source. Default: none (0). */
    ip?: string
    /** Which address family to use for a host name: 4, 6 or 'auto' (IPv4 when the name has one). */
    family?: 4 | 6 | 'ipv4' | 'ipv6' | 'auto'
    /** Accept replies only from the tracker's address (default true). */
    strictSource?: boolean
    /**
     * Reuse a tracker's connection id for up to 60 s across instances (default
     * true). `false` makes every request of this instance connect first, as 1.2.0 did.
     */
    connectionIdCache?: boolean
    /**
     * Send every datagram through this SOCKS5 proxy (UDP ASSOCIATE), never directly:
     * `'socks5://[user:password@]host[:port]'` resolves tracker host names here,
     * `'socks5h://…'` lets the proxy resolve them. Port 1080 when absent.
     * Failures reject with code `ERR_PROXY` (the class emits the message).
     */
    proxy?: string
  }

  interface AnnounceOptions {
    downloaded?: number | bigint
    left?: number | bigint
    uploaded?: number | bigint
  }

  interface Update {
    leechers: number
    seeds: number
    /** `'a.b.c.d:port'`, or `'[v6 address]:port'` for a tracker reached over IPv6. */
    peers: string[]
    /** Seconds until the next regular announce (the client waits this long). */
    interval: number
  }

  interface ScrapeResult {
    /** Seeders. */
    complete: number
    /** Times the torrent was completed. */
    downloaded: number
    /** Leechers. */
    incomplete: number
  }

  interface Stats {
    sent: number
    received: number
    droppedShort: number
    droppedUnknown: number
    droppedLate: number
    droppedWrongSource: number
    inFlight: number
    /** Requests waiting for a place in the window of 4096 requests out at once. */
    queued: number
    sockets: number
    cachedConnectionIds: number
    /** Requests through SOCKS5 proxies (`opts.proxy`), not counted above. */
    proxy: ProxyStats
  }

  interface ProxyStats {
    /** Associations up: one TCP control connection and one UDP relay socket each. */
    associations: number
    sent: number
    received: number
    inFlight: number
    cachedConnectionIds: number
    droppedWrongSource: number
    /** Datagrams on a relay socket from another address than the relay's. */
    droppedRelaySource: number
    /** SOCKS5 datagram fragments (FRAG ≠ 0), never reassembled. */
    droppedFragments: number
    droppedMalformed: number
  }

  interface ScrapeOptions {
    _timeout?: number
    maxAttempts?: number
    family?: TrackerOptions['family']
    strictSource?: boolean
    connectionIdCache?: boolean
    /** As `TrackerOptions.proxy`. */
    proxy?: string
  }

  /** An error from the module-level `scrape`: the 1.2.0 text and a stable code. */
  interface TrackerError extends Error {
    code: 'ERR_TRACKER_ERROR' | 'ERR_BAD_RESPONSE' | 'ERR_TRACKER_TIMEOUT' | 'ERR_DNS' | 'ERR_SEND' | 'ERR_PROXY'
  }

  /** Scrapes many info hashes (Buffers or hex strings) of one tracker; keys are lower-case hex. */
  function scrape (
    announceUrl: string,
    infoHashes: Array<Buffer | Uint8Array | string>,
    opts?: ScrapeOptions
  ): Promise<Record<string, ScrapeResult>>

  /** Forgets every cached connection id: the next request to each tracker connects first. */
  function forgetConnectionIds (): void

  /** Counters of the shared engine. */
  function stats (): Stats

  /** The class itself, for `const { UdpTracker } = require('bittorrent-udp-tracker')`. */
  const UdpTracker: typeof UdpTrackerClass
}

declare class UdpTrackerClass extends EventEmitter {
  /**
   * @param peerId 20 bytes: a Buffer or a string.
   * @param infoHash 20 bytes: a Buffer or a 40-character hex string.
   * @param announceUrl `udp://host:port[/path?query]`; port 80 when absent.
   */
  constructor (
    peerId: Buffer | Uint8Array | string,
    infoHash: Buffer | Uint8Array | string,
    announceUrl: string,
    opts?: UdpTrackerClass.TrackerOptions
  )

  readonly peerId: Buffer
  readonly infoHash: Buffer
  readonly announceUrl: string
  readonly port: number
  destroyed: boolean
  /** 1.2.0's spelling. */
  destoryed: boolean
  _in_interval: boolean
  _last_opts: (UdpTrackerClass.AnnounceOptions & { event: number }) | null
  _announce_intervals_timeout: NodeJS.Timeout[]
  _udpTimmers: NodeJS.Timeout[]
  _socket: object | null

  announce (event: UdpTrackerClass.AnnounceEvent, opts?: UdpTrackerClass.AnnounceOptions): void
  /** Emits `scrape` with this torrent's counts. */
  scrape (): void
  destroy (): void
  /** 1.2.0's spelling of `destroy`. */
  destory (): void

  on (event: 'update', listener: (update: UdpTrackerClass.Update) => void): this
  on (event: 'scrape', listener: (result: UdpTrackerClass.ScrapeResult) => void): this
  /** The 1.2.0 error strings: see the README. */
  on (event: 'error', listener: (message: string) => void): this
  on (event: string | symbol, listener: (...args: any[]) => void): this
  once (event: 'update', listener: (update: UdpTrackerClass.Update) => void): this
  once (event: 'scrape', listener: (result: UdpTrackerClass.ScrapeResult) => void): this
  once (event: 'error', listener: (message: string) => void): this
  once (event: string | symbol, listener: (...args: any[]) => void): this
}

export = UdpTrackerClass
