/// <reference types="node" />
import { EventEmitter } from 'events'

// One declaration per option: the class's options (TrackerOptions) are the
// request options (RequestOptions) plus the announce fields; the promise
// API's params and the module-level scrape's options are built from them.

declare namespace UdpTrackerClass {
  /** 0 none, 1 completed, 2 started, 3 stopped (BEP 15); names are accepted too. */
  export type AnnounceEvent = 0 | 1 | 2 | 3 | 'none' | 'completed' | 'started' | 'stopped'

  /** Where and how requests go: every option that applies to announces and scrapes alike. */
  export interface RequestOptions {
    /**
     * Base retransmission timeout in milliseconds (default 15000). With no reply,
     * the k-th wait is `_timeout · 2^k` (k = 1, 2, …), as 1.2.0 did.
     */
    _timeout?: number
    /** Sends per request phase before giving up, 1–8 (default 8). */
    maxAttempts?: number
    /** Which address family to use for a host name: 4, 6 or 'auto' (IPv4 when the name has one). */
    family?: 4 | 6 | 'ipv4' | 'ipv6' | 'IPv4' | 'IPv6' | 'auto'
    /** Accept replies only from the tracker's address (default true). */
    strictSource?: boolean
    /**
     * Reuse connection ids (default true): an instance reuses the ids its own
     * requests obtained, the promise API the ids of any earlier call. `false`
     * connects before every request, as 1.2.0 did.
     */
    connectionIdCache?: boolean
    /** libtorrent's authentication extension (off by default). */
    auth?: { user: string | Uint8Array, password: string | Uint8Array }
    /** libtorrent's request-string extension, at most 255 bytes (off by default). */
    requestString?: string | Uint8Array
    /**
     * Send every datagram through this SOCKS5 proxy (UDP ASSOCIATE), never directly:
     * `'socks5://[user:password@]host[:port]'` resolves tracker host names here,
     * `'socks5h://…'` lets the proxy resolve them. Port 1080 when absent. Default none.
     * Failures reject with code `ERR_PROXY` (the class emits the message).
     */
    proxy?: string
  }

  export interface TrackerOptions extends RequestOptions {
    /** The port this client listens on for peers, sent in every announce. 0–65535, default 0. */
    port?: number
    /** Peers to ask for: −1 (the tracker's default) up to 2^31−1. Default 50. */
    numWant?: number
    /** The announce key (u32). Default: random per instance, the same for all its announces. */
    key?: number
    /** The IPv4 address to announce instead of the datagram's source. Default: none. */
    ip?: string
  }

  export interface AnnounceOptions {
    downloaded?: number | bigint
    left?: number | bigint
    uploaded?: number | bigint
  }

  /** The promise `announce`'s params: what the class takes in its constructor and `announce`. */
  export interface AnnounceParams extends TrackerOptions, AnnounceOptions {
    /** 20 bytes: a Buffer or a 40-character hex string. */
    infoHash: Buffer | Uint8Array | string
    /** 20 bytes: a Buffer or a string. */
    peerId: Buffer | Uint8Array | string
    /** Default 'none'. */
    event?: AnnounceEvent
  }

  /** The module-level `scrape`'s options. */
  export type ScrapeOptions = Omit<RequestOptions, 'auth' | 'requestString'> & CallOptions

  /** How long a promise-API call may take. */
  export interface CallOptions {
    /** Aborts the call: it rejects with `ERR_ABORTED`. */
    signal?: AbortSignal
    /** A limit in ms on the whole call: it rejects with `ERR_TRACKER_TIMEOUT`. */
    timeout?: number
  }

  export interface Update {
    leechers: number
    seeds: number
    /** `'a.b.c.d:port'`, or `'[v6 address]:port'` for a tracker reached over IPv6. */
    peers: string[]
    /** Seconds until the next regular announce (the client waits this long; 1800 when the tracker said 0). */
    interval: number
  }

  export interface ScrapeResult {
    /** Seeders. */
    complete: number
    /** Times the torrent was completed. */
    downloaded: number
    /** Leechers. */
    incomplete: number
  }

  export interface Stats {
    sent: number
    received: number
    droppedShort: number
    droppedUnknown: number
    droppedLate: number
    droppedWrongSource: number
    /** Cached connection ids forgotten after silence or an error (a tracker restart). */
    renewedConnectionIds: number
    /** Datagrams sent again: after a wait, or at once when a loss was detected. */
    retransmits: number
    /** Losses detected early (later datagrams to the same tracker were answered). */
    losses: number
    inFlight: number
    /** Requests waiting for a place in the window of 4096 requests out at once. */
    queued: number
    sockets: number
    cachedConnectionIds: number
    /** Per tracker address: its congestion window, RTT estimate, retransmits and detected drops (refreshed every 100 ms). */
    trackers: Array<{
      address: string
      window: number
      outstanding: number
      waiting: number
      srttMs?: number
      rttvarMs?: number
      retransmits: number
      losses: number
    }>
    /** Requests through SOCKS5 proxies (`opts.proxy`), not counted above. */
    proxy: ProxyStats
  }

  export interface ProxyStats {
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

  export type ErrorCode = 'ERR_TRACKER_ERROR' | 'ERR_BAD_RESPONSE' | 'ERR_TRACKER_TIMEOUT' | 'ERR_DNS' | 'ERR_SEND' | 'ERR_PROXY' | 'ERR_ABORTED'

  /** A rejection of the promise API: the 1.2.0 text and a stable code. */
  export interface TrackerError extends Error {
    code: ErrorCode
  }

  /** Announces once; rejects with a `TrackerError`, or a TypeError/RangeError for bad arguments. */
  export function announce (announceUrl: string, params: AnnounceParams, options?: CallOptions): Promise<Update>

  /** Scrapes many info hashes (Buffers or hex strings) of one tracker; keys are lower-case hex. */
  export function scrape (
    announceUrl: string,
    infoHashes: Array<Buffer | Uint8Array | string>,
    opts?: ScrapeOptions
  ): Promise<Record<string, ScrapeResult>>

  /** Forgets every cached connection id: the next request to each tracker connects first. */
  export function forgetConnectionIds (): void

  /** Counters of the shared engine. */
  export function stats (): Stats

  /** The class itself, for `const { UdpTracker } = require('bittorrent-udp-tracker')`. */
  export const UdpTracker: typeof UdpTrackerClass
  /** The class itself, for `import UdpTracker from 'bittorrent-udp-tracker'` from CommonJS-compiled code. */
  export { UdpTrackerClass as default }
}

interface UdpTrackerEvents {
  update: [update: UdpTrackerClass.Update]
  scrape: [result: UdpTrackerClass.ScrapeResult]
  /** The 1.2.0 error strings: see the README. */
  error: [message: string]
  /** EventEmitter's own events. */
  newListener: [event: string | symbol, listener: (...args: any[]) => void]
  removeListener: [event: string | symbol, listener: (...args: any[]) => void]
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
  readonly opts: UdpTrackerClass.TrackerOptions
  readonly port: number
  readonly _timeout: number
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

  on<E extends keyof UdpTrackerEvents> (event: E, listener: (...args: UdpTrackerEvents[E]) => void): this
  once<E extends keyof UdpTrackerEvents> (event: E, listener: (...args: UdpTrackerEvents[E]) => void): this
  off<E extends keyof UdpTrackerEvents> (event: E, listener: (...args: UdpTrackerEvents[E]) => void): this
  addListener<E extends keyof UdpTrackerEvents> (event: E, listener: (...args: UdpTrackerEvents[E]) => void): this
  removeListener<E extends keyof UdpTrackerEvents> (event: E, listener: (...args: UdpTrackerEvents[E]) => void): this
  prependListener<E extends keyof UdpTrackerEvents> (event: E, listener: (...args: UdpTrackerEvents[E]) => void): this
  prependOnceListener<E extends keyof UdpTrackerEvents> (event: E, listener: (...args: UdpTrackerEvents[E]) => void): this
  emit<E extends keyof UdpTrackerEvents> (event: E, ...args: UdpTrackerEvents[E]): boolean
}

export = UdpTrackerClass

// ---------------------------------------------------------------------------
// Client: bittorrent-tracker 11's Client API for udp:// trackers, with BEP 12
// tiers (lib/client.js). Appended as one section; it merges into the namespace above.
declare namespace UdpTrackerClass {
  interface ClientOptions {
    /** 20 bytes: a Buffer, a 40-character hex string, or a 20-character string (its bytes). */
    infoHash: Buffer | Uint8Array | string
    /** 20 bytes: a Buffer, a 40-character hex string, or a 20-character string (its bytes). */
    peerId: Buffer | Uint8Array | string
    /** A URL, a flat list (one tracker per tier: all announced to), or a list of tiers. */
    announce: string | Array<string | string[]>
    /** The port this client listens on for peers, 1–65535 (required, as bittorrent-tracker). */
    port: number
    /** Called before every announce; its fields override the counters given. */
    getAnnounceOpts?: () => ClientAnnounceOptions
    /** Announce to every tracker of every tier, not only the first that answers in each. */
    announceToAllTrackers?: boolean
    /** The shortest re-announce period a tracker's interval may ask for, in ms (default 60000). */
    minInterval?: number
    /** Base retransmission timeout in ms (default 15000); the next tracker of a tier is tried after 2 · _timeout. */
    _timeout?: number
    /** Sends per request phase, 1–8 (default 2 for a Client). */
    maxAttempts?: number
    /** Peers to ask for by default (default 50); `numwant` in an announce's options overrides it. */
    numWant?: number
    /** The announce key (u32). Default: random per Client, the same for all its trackers and announces. */
    key?: number
    ip?: string
    family?: TrackerOptions['family']
    strictSource?: boolean
    connectionIdCache?: boolean
    auth?: { user: string | Buffer, password: string | Buffer }
    requestString?: string | Buffer
    proxy?: RequestOptions['proxy']
  }

  interface ClientAnnounceOptions {
    uploaded?: number | bigint | string
    downloaded?: number | bigint | string
    /** Bytes left; not given is "unknown" (2^64−1); 0 means a seeder. */
    left?: number | bigint | string
    numwant?: number
    [other: string]: unknown
  }

  interface ClientUpdate {
    /** The tracker that answered. */
    announce: string
    /** Seeders. */
    complete: number
    /** Leechers. */
    incomplete: number
  }

  interface ClientScrape {
    announce: string
    /** Lower-case hex. */
    infoHash: string
    complete: number
    downloaded: number
    incomplete: number
  }

  /** A failed announce or scrape: the message ends with ` (<tracker URL>)`. */
  interface ClientWarning extends Error {
    /** The tracker, when the warning is about one. */
    announce?: string
    /** Set for every failed request (`ERR_TRACKER_ERROR`: the tracker's own error message); not for a bad URL. */
    code?: 'ERR_TRACKER_TIMEOUT' | 'ERR_BAD_RESPONSE' | 'ERR_TRACKER_ERROR' | 'ERR_DNS' | 'ERR_SEND' | 'ERR_PROXY'
  }

  class Client extends EventEmitter {
    constructor (opts: ClientOptions)
    /** Lower-case hex. */
    readonly infoHash: string
    /** Hex. */
    readonly peerId: string
    destroyed: boolean
    start (opts?: ClientAnnounceOptions): void
    stop (opts?: ClientAnnounceOptions): void
    complete (opts?: ClientAnnounceOptions): void
    update (opts?: ClientAnnounceOptions): void
    /** One `scrape` event per tracker and info hash. */
    scrape (opts?: { infoHash?: string | Buffer | Uint8Array | Array<string | Buffer | Uint8Array> }): void
    /** Re-announce every `intervalMs` (0: never; not given: 30 min) until a tracker's next answer. */
    setInterval (intervalMs?: number): void
    /** A `stopped` already sent may finish (≤ 1 s); then `cb`. No event follows. */
    destroy (cb?: (err: null) => void): void

    /** Scrapes one tracker without a Client of one's own; `data` is keyed by hex info hash for many. */
    static scrape (
      opts: { announce: string, infoHash: string | Buffer | Uint8Array | Array<string | Buffer | Uint8Array> } & Partial<ClientOptions>,
      cb: (err: Error | null, data?: ClientScrape | Record<string, ClientScrape>) => void
    ): Client

    on (event: 'update', listener: (data: ClientUpdate) => void): this
    on (event: 'peer', listener: (addr: string) => void): this
    on (event: 'scrape', listener: (data: ClientScrape) => void): this
    on (event: 'warning', listener: (err: ClientWarning) => void): this
    on (event: 'error', listener: (err: Error) => void): this
    on (event: string | symbol, listener: (...args: any[]) => void): this
    once (event: 'update', listener: (data: ClientUpdate) => void): this
    once (event: 'peer', listener: (addr: string) => void): this
    once (event: 'scrape', listener: (data: ClientScrape) => void): this
    once (event: 'warning', listener: (err: ClientWarning) => void): this
    once (event: 'error', listener: (err: Error) => void): this
    once (event: string | symbol, listener: (...args: any[]) => void): this
  }
}
// ------------------------------------------------------------- end of Client
