'use strict'
// A scripted SOCKS5 server (RFC 1928 UDP ASSOCIATE, RFC 1929 username and
// password) for the cases a real proxy cannot be made to show on demand:
// rejected passwords, refused associations, BND.ADDR 0.0.0.0, fragments,
// datagrams from a spoofed relay address, a control connection closed at a
// chosen moment. Written from the RFCs, not from the library's codec.
//
//   const proxy = await SocksServer.create({ users: { alice: 'secret' } })
//   ... { proxy: proxy.url('alice', 'secret') } ...
//   proxy.connections, proxy.auths, proxy.associates, proxy.relayed
//   await proxy.close()
//
// Options: `users` (null: no authentication), `refuse` (a reply code for
// UDP ASSOCIATE, 0 = accept), `bindUnspecified` (answer BND.ADDR 0.0.0.0),
// `host` ('127.0.0.1' or '::1'). `onReply(payload, source, send)` may be
// replaced to tamper with what goes back to the client;
// `send(header, payload, frag = 0)` sends one datagram from the relay.

const dgram = require('node:dgram')
const net = require('node:net')

function encodeAddress (address, port) {
  const v6 = net.isIPv6(address)
  const buf = Buffer.alloc(v6 ? 19 : 7)
  buf[0] = v6 ? 4 : 1
  if (v6) {
    const full = expandV6(address)
    for (let i = 0; i < 8; i++) buf.writeUInt16BE(parseInt(full[i], 16), 1 + 2 * i)
    buf.writeUInt16BE(port, 17)
  } else {
    address.split('.').forEach((o, i) => { buf[1 + i] = Number(o) })
    buf.writeUInt16BE(port, 5)
  }
  return buf
}

function expandV6 (address) {
  const [head, tail = ''] = address.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === '' ? [] : tail.split(':')
  return address.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h
}

/** { address, port, length } of the address at `at` (ATYP first), or null. */
function decodeAddress (buf, at) {
  const atyp = buf[at]
  if (atyp === 1 && buf.length >= at + 7) {
    return { address: [...buf.subarray(at + 1, at + 5)].join('.'), port: buf.readUInt16BE(at + 5), length: 7 }
  }
  if (atyp === 4 && buf.length >= at + 19) {
    const parts = []
    for (let i = 0; i < 8; i++) parts.push(buf.readUInt16BE(at + 1 + 2 * i).toString(16))
    return { address: parts.join(':'), port: buf.readUInt16BE(at + 17), length: 19 }
  }
  if (atyp === 3 && buf.length >= at + 2 && buf.length >= at + 2 + buf[at + 1] + 2) {
    const len = buf[at + 1]
    return { name: buf.toString('latin1', at + 2, at + 2 + len), port: buf.readUInt16BE(at + 2 + len), length: 4 + len }
  }
  return null
}

function closeQuietly (socket) {
  try { socket.close() } catch {} // already closed
}

/** Reads exactly n bytes from a TCP socket in paused mode. */
function reader (socket) {
  let buffered = Buffer.alloc(0)
  let waiting = null
  socket.on('data', (d) => {
    buffered = Buffer.concat([buffered, d])
    if (waiting) waiting()
  })
  const ended = new Promise((resolve) => socket.once('close', resolve))
  return async function read (n) {
    while (buffered.length < n) {
      const more = new Promise((resolve) => { waiting = resolve })
      const closed = await Promise.race([more.then(() => false), ended.then(() => true)])
      waiting = null
      if (closed && buffered.length < n) throw new Error('closed')
    }
    const out = buffered.subarray(0, n)
    buffered = buffered.subarray(n)
    return out
  }
}

class SocksServer {
  static async create (options = {}) {
    const server = new SocksServer(options)
    server.port = await listenOnFreshPort(server.tcp, server.host)
    return server
  }

  constructor ({ host = '127.0.0.1', users = null, refuse = 0, bindUnspecified = false } = {}) {
    this.host = host
    this.users = users
    this.refuse = refuse
    this.bindUnspecified = bindUnspecified
    this.connections = 0
    this.greetings = [] // the methods each client offered
    this.auths = [] // { user, password, ok }
    this.associates = [] // { address, port }: where the client said it would send from
    this.relayed = [] // { to, bytes }: datagrams passed on to a destination
    this.relays = [] // the UDP relay sockets, one per association
    this.controls = new Set()
    this.onReply = (payload, source, send) => send(encodeAddress(source.address, source.port), payload)
    this.tcp = net.createServer((socket) => this._serve(socket))
  }

  url (user, password) {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host
    const auth = user === undefined ? '' : `${encodeURIComponent(user)}:${encodeURIComponent(password)}@`
    return `socks5://${auth}${host}:${this.port}`
  }

  async _serve (socket) {
    this.connections++
    this.controls.add(socket)
    socket.on('close', () => this.controls.delete(socket))
    socket.on('error', () => {})
    const read = reader(socket)
    try {
      const [version, count] = await read(2)
      if (version !== 5) return socket.destroy()
      const methods = [...await read(count)]
      this.greetings.push(methods)
      const wanted = this.users === null ? 0 : 2
      if (!methods.includes(wanted)) return socket.end(Buffer.from([5, 0xff]))
      socket.write(Buffer.from([5, wanted]))
      if (wanted === 2) {
        const [, ulen] = await read(2)
        const user = (await read(ulen)).toString()
        const [plen] = await read(1)
        const password = (await read(plen)).toString()
        const ok = Object.hasOwn(this.users, user) && this.users[user] === password
        this.auths.push({ user, password, ok })
        socket.write(Buffer.from([1, ok ? 0 : 1]))
        if (!ok) return socket.end()
      }
      const [, command, , atyp] = await read(4)
      const rest = await read(atyp === 4 ? 18 : 6)
      const dst = decodeAddress(Buffer.concat([Buffer.from([atyp]), rest]), 0)
      this.associates.push(dst)
      if (command !== 3 || this.refuse !== 0) {
        return socket.end(Buffer.concat([Buffer.from([5, command !== 3 ? 7 : this.refuse, 0]), encodeAddress('0.0.0.0', 0)]))
      }
      const relay = await this._relay(dst)
      const bound = this.bindUnspecified ? (this.host.includes(':') ? '::' : '0.0.0.0') : this.host
      socket.write(Buffer.concat([Buffer.from([5, 0, 0]), encodeAddress(bound, relay.address().port)]))
      socket.once('close', () => closeQuietly(relay))
    } catch {
      socket.destroy()
    }
  }

  async _relay (client) {
    const relay = dgram.createSocket(this.host.includes(':') ? 'udp6' : 'udp4')
    const outbound = dgram.createSocket(this.host.includes(':') ? 'udp6' : 'udp4')
    await new Promise((resolve) => relay.bind(0, this.host, resolve))
    await new Promise((resolve) => outbound.bind(0, this.host, resolve))
    this.relays.push(relay)
    let clientAddr = null
    relay.on('message', (msg, rinfo) => {
      if (rinfo.port !== client.port) return // RFC 1928 §7: only from the associating client
      clientAddr = rinfo
      if (msg[2] !== 0) return
      const dst = decodeAddress(msg, 3)
      if (dst === null || dst.name !== undefined) return
      const payload = msg.subarray(3 + dst.length)
      this.relayed.push({ to: dst, bytes: Buffer.from(payload) })
      outbound.send(payload, dst.port, dst.address)
    })
    outbound.on('message', (payload, source) => {
      if (clientAddr === null) return
      this.onReply(payload, source, (header, body, frag = 0) => {
        relay.send(Buffer.concat([Buffer.from([0, 0, frag]), header, body]), clientAddr.port, clientAddr.address)
      })
    })
    relay.on('close', () => closeQuietly(outbound))
    return relay
  }

  /** Closes every control connection (the proxy ending its associations). */
  closeControls () {
    for (const socket of this.controls) socket.destroy()
  }

  async close () {
    this.closeControls()
    for (const relay of this.relays) closeQuietly(relay)
    await new Promise((resolve) => this.tcp.close(resolve))
  }
}

// The engine keeps one association per proxy address for the whole process,
// with its backoff after a failure: a proxy on a port an earlier proxy of
// this process had would inherit that state. So each gets a port no earlier
// one had (as ScriptServer does for trackers).
const usedPorts = new Set()

/** Listens `server` (a net.Server) on `host`, on a port this process has not listened on; returns it. */
async function listenOnFreshPort (server, host) {
  const held = []
  try {
    for (let attempt = 0; attempt < 50; attempt++) {
      const probe = attempt === 0 ? server : net.createServer()
      await new Promise((resolve, reject) => {
        probe.once('error', reject)
        probe.listen(0, host, () => { probe.off('error', reject); resolve() })
      })
      const { port } = probe.address()
      if (!usedPorts.has(`${host}:${port}`)) {
        usedPorts.add(`${host}:${port}`)
        if (probe === server) return port
        // Free port found on a probe: hold it, move the server there.
        await new Promise((resolve) => server.close(resolve))
        await new Promise((resolve) => probe.close(resolve))
        await new Promise((resolve, reject) => {
          server.once('error', reject)
          server.listen(port, host, () => { server.off('error', reject); resolve() })
        })
        return port
      }
      if (probe !== server) held.push(probe) // held open so the next listen cannot pick it again
    }
    throw new Error(`could not listen on a port of ${host} that this process has not used before`)
  } finally {
    for (const probe of held) probe.close()
  }
}

module.exports = { SocksServer, listenOnFreshPort, encodeAddress, decodeAddress }
