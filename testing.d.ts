/// <reference types="node" />

/** A 20-byte info hash: a Buffer/Uint8Array or 40 hex characters. */
export type InfoHashLike = Uint8Array | string

export interface TrackerOptions {
  /** An IP address literal; default `'127.0.0.1'`. `'::1'` serves IPv6. */
  host?: string
  /** 0–65535; default 0 (a free port, see `tracker.port`). */
  port?: number
  /** Required to bind an address that is not loopback; default `false`. */
  allowNonLoopback?: boolean
  /** Announce interval sent to clients, in seconds; default 1800. */
  interval?: number
  /** Hashes answered per scrape (the rest of a longer one is ignored); 1–3274, default 74. */
  maxScrape?: number
  /** Peers per announce reply at most, and the number for `numWant` −1; 0–3638, default 50. */
  maxPeers?: number
  /** Probability that a request is dropped, and (independently) that its reply is; default 0. */
  loss?: number
  /** Probability that a reply is sent twice; default 0. */
  duplicate?: number
  /** Each reply waits this many ms, or a uniform draw from `[min, max]`; default 0. */
  delay?: number | [number, number]
  /** Info hashes answered with an error reply: an array (text `'unregistered torrent'`) or `{ [hex]: text }`. */
  errorFor?: InfoHashLike[] | { [hexInfoHash: string]: string }
  /** Info hashes never answered (announce or any scrape naming them). */
  silentFor?: InfoHashLike[]
  /** Send replies from a second socket on this port (0: any free port), for `strictSource` tests. */
  replyFrom?: number
  /** Seeds peer selection and the faults (0 to 2^53−1); default random. Connection ids stay random. */
  seed?: number
}

export interface TrackerStats {
  /** Requests received by action; `invalid`: datagrams that are no request. */
  requests: { connect: number, announce: number, scrape: number, invalid: number }
  /** Datagrams sent, duplicates included. */
  replies: number
  /** Error replies among them. */
  errors: number
  /** Second copies sent by `duplicate`. */
  duplicates: number
  /** Requests or replies not answered, by reason. */
  dropped: {
    /** dropped by `loss` (requests and replies) */
    loss: number
    /** requests for `silentFor` hashes */
    silent: number
    /** unknown, expired or another address's connection id */
    connectionId: number
    /** too short or malformed, with no valid connection id */
    malformed: number
  }
  /** Torrents known, and peers in all of them. */
  swarms: number
  peers: number
}

export interface SwarmPeer {
  peerId: Buffer
  /** The datagram's source address with the announced port: `'a.b.c.d:port'` or `'[v6]:port'`. */
  address: string
  downloaded: bigint
  left: bigint
  uploaded: bigint
  /** The last event announced. */
  event: 'none' | 'completed' | 'started' | 'stopped'
  key: number
  /** The request's `ip` field, or null when it was 0 (recorded, not used). */
  ip: string | null
  /** BEP 41 URL data of the last announce (e.g. `'/announce?x=1'`), `''` when none. */
  urlData: string
}

export interface Swarm {
  /** Seeders (left 0). */
  complete: number
  incomplete: number
  /** `completed` events, one per peer at most. */
  downloaded: number
  peers: SwarmPeer[]
}

export interface Tracker {
  /** `udp://127.0.0.1:PORT` or `udp://[::1]:PORT`. */
  readonly url: string
  readonly host: string
  readonly port: number
  /** The port replies come from (`replyFrom`'s, else `port`). */
  readonly replyPort: number
  /** Stops serving and closes the sockets. Counters and swarms stay readable. */
  close(): Promise<void>
  /** Forgets every connection id and swarm; keeps the port and the counters. */
  restart(): void
  stats(): TrackerStats
  /** The torrent's swarm, or null when nobody announced it. */
  swarm(infoHash: InfoHashLike): Swarm | null
}

/** Starts a BEP 15 tracker on loopback. Rejects with a TypeError/RangeError naming a bad option. */
export function createTracker(options?: TrackerOptions): Promise<Tracker>

declare const testing: { createTracker: typeof createTracker }
export default testing
