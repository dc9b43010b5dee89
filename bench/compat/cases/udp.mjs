// What bittorrent-tracker 11.2.3's own test suite asks of its Client over
// udp:// (test/client.js, scrape.js, destroy.js, filter.js, server.js,
// client-magnet.js, client-large-torrent.js, evict.js), written for this
// package: the npm tarball of bittorrent-tracker carries no tests, so they
// cannot be installed at test time. `run.mjs --upstream DIR` runs the
// originals from a checkout. The tracker is bittorrent-tracker's own Server
// on 127.0.0.1; the Client is ours, or theirs with COMPAT_CLIENT=theirs.
import test from 'tape'
import { Server } from 'bittorrent-tracker'
import fixtures from 'webtorrent-fixtures'
import Client from '../client-under-test.mjs'

const leaves = fixtures.leaves.parsedTorrent.infoHash
const alice = fixtures.alice.parsedTorrent.infoHash
const sintel = fixtures.sintel.parsedTorrent.infoHash
const ids = ['01234567890123456789', '12345678901234567890', '23456789012345678901'].map((s) => Buffer.from(s))

/** A bittorrent-tracker UDP Server on 127.0.0.1: fn(server, announceUrl). */
function withServer (t, opts, fn) {
  const server = new Server(Object.assign({ http: false, ws: false, udp: true }, opts))
  server.on('error', (err) => t.error(err))
  server.on('warning', (err) => t.error(err))
  server.listen(0, { udp: '127.0.0.1', udp6: '::1' }, () => fn(server, `udp://127.0.0.1:${server.udp.address().port}`))
}

function client (t, announce, extra = {}) {
  const c = new Client(Object.assign({ infoHash: leaves, announce, peerId: ids[0], port: 6881 }, extra))
  c.on('error', (err) => t.error(err))
  if (!extra.allowWarnings) c.on('warning', (err) => t.error(err))
  return c
}

function checkUpdate (t, data, announceUrl) {
  t.equal(data.announce, announceUrl, 'update names the tracker')
  t.equal(typeof data.complete, 'number', 'complete is a number')
  t.equal(typeof data.incomplete, 'number', 'incomplete is a number')
}

test('udp: start, then stop answers with one more update', (t) => {
  t.plan(7)
  withServer(t, {}, (server, url) => {
    const c = client(t, url)
    c.once('update', (data) => {
      checkUpdate(t, data, url)
      c.stop()
      c.once('update', (last) => {
        checkUpdate(t, last, url)
        t.pass('stop answered')
        server.close()
        c.destroy()
      })
    })
    c.start()
  })
})

test('udp: stop() and destroy() in the same tick still deliver the stop', (t) => {
  t.plan(2)
  withServer(t, {}, (server, url) => {
    const c = client(t, url)
    c.start()
    c.once('update', () => {
      t.pass('start answered')
      c.stop()
      c.on('update', () => t.fail('no update after destroy()'))
      c.destroy()
      server.once('stop', () => {
        t.pass('the tracker got the stop')
        setTimeout(() => server.close(), 100)
      })
    })
  })
})

test('udp: setInterval() from an update listener re-announces at that interval', (t) => {
  t.plan(4)
  withServer(t, {}, (server, url) => {
    const c = client(t, url)
    c.setInterval(500)
    c.start()
    c.once('update', () => {
      c.setInterval(500)
      c.once('update', (data) => {
        checkUpdate(t, data, url)
        c.stop()
        c.once('update', () => {
          t.pass('stop answered')
          server.close()
          c.destroy()
        })
      })
    })
  })
})

test('udp: start, update, stop (a magnet link and a large torrent)', (t) => {
  t.plan(18)
  withServer(t, {}, (server, url) => {
    let left = 2
    for (const infoHash of [leaves, sintel]) {
      const c = client(t, url, { infoHash })
      c.once('update', (first) => {
        checkUpdate(t, first, url)
        c.update()
        c.once('update', (second) => {
          checkUpdate(t, second, url)
          c.stop()
          c.once('update', (third) => {
            checkUpdate(t, third, url)
            c.destroy()
            if (--left === 0) server.close()
          })
        })
      })
      c.start()
    }
  })
})

test('udp: scrape() gives { announce, infoHash, complete, incomplete, downloaded }', (t) => {
  t.plan(6)
  withServer(t, {}, (server, url) => {
    const c = client(t, url)
    c.once('scrape', (data) => {
      t.equal(data.announce, url)
      t.equal(data.infoHash, leaves)
      for (const key of ['complete', 'incomplete', 'downloaded']) t.equal(typeof data[key], 'number', key)
      c.destroy(() => t.pass('destroyed'))
      server.close()
    })
    c.scrape()
  })
})

test('udp: Client.scrape for one info hash, then for two', (t) => {
  t.plan(15)
  withServer(t, {}, (server, url) => {
    Client.scrape({ announce: url, infoHash: leaves }, (err, data) => {
      t.error(err)
      t.equal(data.announce, url)
      t.equal(data.infoHash, leaves)
      t.equal(typeof data.complete, 'number')
      Client.scrape({ announce: url, infoHash: [leaves, alice] }, (err, results) => {
        t.error(err)
        for (const hash of [leaves, alice]) {
          t.equal(results[hash].announce, url)
          t.equal(results[hash].infoHash, hash)
          for (const key of ['complete', 'incomplete', 'downloaded']) t.equal(typeof results[hash][key], 'number')
        }
        server.close()
      })
    })
  })
})

test('udp: numwant 1 brings one peer event', (t) => {
  t.plan(4)
  withServer(t, {}, (server, url) => {
    const first = client(t, [url])
    first.start()
    first.once('update', () => {
      const second = client(t, url, { peerId: ids[1], port: 6882 })
      second.start()
      second.once('update', () => {
        const third = client(t, url, { peerId: ids[2], port: 6883 })
        third.start({ numwant: 1 })
        third.on('peer', () => {
          t.pass('one peer (once)')
          let open = 3
          for (const c of [first, second, third]) {
            c.stop()
            c.once('update', () => {
              t.pass('stop answered')
              c.destroy()
              if (--open === 0) server.close()
            })
          }
        })
      })
    })
  })
})

test('udp: the swarm as the tracker sees it through start, complete, scrape and stop', (t) => {
  t.plan(17)
  const infoHash = '4cb67059ed6bd08362da625b3ae77f6f4a075705'
  withServer(t, {}, (server, url) => {
    const one = client(t, [url], { infoHash })
    one.start()
    one.once('update', (data) => {
      t.deepEqual([data.complete, data.incomplete], [0, 1], 'one leecher')
      server.getSwarm(infoHash, (err, swarm) => {
        t.error(err)
        const peer = swarm.peers.peek('127.0.0.1:6881')
        t.equal(peer.ip, '127.0.0.1')
        t.equal(peer.port, 6881)
        t.equal(peer.peerId, ids[0].toString('hex'))
        t.equal(peer.complete, false)
        one.complete()
        one.once('update', (done) => {
          t.deepEqual([done.complete, done.incomplete], [1, 0], 'one seeder')
          one.scrape()
          one.once('scrape', (counts) => {
            t.deepEqual([counts.complete, counts.incomplete], [1, 0], 'scrape agrees')
            t.equal(typeof counts.downloaded, 'number')
            const two = client(t, [url], { infoHash, peerId: ids[1], port: 6882 })
            two.start()
            two.once('update', (d2) => {
              t.deepEqual([d2.complete, d2.incomplete], [1, 1])
              const three = client(t, [url], { infoHash, peerId: ids[2], port: 6880 })
              three.start()
              three.once('update', (d3) => {
                t.deepEqual([d3.complete, d3.incomplete], [1, 2])
                two.stop()
                two.once('update', (s2) => {
                  t.deepEqual([s2.complete, s2.incomplete], [1, 1], 'a stop leaves the swarm')
                  two.destroy(() => {
                    t.pass('two destroyed')
                    three.stop()
                    three.once('update', (s3) => {
                      t.deepEqual([s3.complete, s3.incomplete], [1, 0])
                      one.destroy(() => t.pass('one destroyed'))
                      three.destroy(() => t.pass('three destroyed'))
                      server.close(() => t.pass('server closed'))
                    })
                  })
                })
              })
            })
          })
        })
      })
    })
  })
})

test('udp: a third peer evicts the first from a swarm cache of two', (t) => {
  t.plan(4)
  const infoHash = '4cb67059ed6bd08362da625b3ae77f6f4a075705'
  withServer(t, { peersCacheLength: 2 }, (server, url) => {
    const one = client(t, [url], { infoHash })
    one.start()
    one.once('update', () => {
      const two = client(t, [url], { infoHash, peerId: ids[1], port: 6882 })
      two.start()
      two.once('update', () => {
        server.getSwarm(infoHash, (err, swarm) => {
          t.error(err)
          let evicted = false
          swarm.peers.once('evict', (gone) => {
            t.equal(gone.value.peerId, ids[0].toString('hex'))
            evicted = true
          })
          const three = client(t, [url], { infoHash, peerId: ids[2], port: 6880 })
          three.start()
          three.once('update', () => {
            t.ok(evicted, 'evicted before the third got its answer')
            t.equal(swarm.complete + swarm.incomplete, 2)
            for (const c of [one, two, three]) c.destroy()
            server.close()
          })
        })
      })
    })
  })
})

test('udp: a tracker refusing the torrent is a warning with its message; another torrent works', (t) => {
  t.plan(4)
  const filter = (infoHash, params, cb) => process.nextTick(cb, infoHash === alice ? new Error('alice blocked') : null)
  withServer(t, { filter }, (server, url) => {
    server.removeAllListeners('warning')
    server.on('warning', () => {}) // the server warns about the refusal too
    const blocked = client(t, url, { infoHash: alice, allowWarnings: true })
    blocked.once('warning', (err) => {
      t.ok(/alice blocked/.test(err.message), 'warning carries the tracker message')
      blocked.destroy(() => {
        t.pass('destroyed')
        const ok = client(t, url)
        ok.once('update', () => {
          t.equal(Object.keys(server.torrents).length, 1, 'only the allowed torrent is tracked')
          ok.destroy(() => t.pass('destroyed'))
          server.close()
        })
        ok.start()
      })
    })
    blocked.start()
  })
})

test('udp: no update after destroy() called with an announce in flight', (t) => {
  t.plan(1)
  withServer(t, {}, (server, url) => {
    const c = client(t, url)
    c.once('update', () => t.fail('no update after destroy()'))
    c.update()
    c.destroy()
    setTimeout(() => {
      t.pass('nothing fired')
      server.close()
    }, 1000)
  })
})

for (const url of ['udp://127.0.0.1:69691337', 'udp:', 'udp://', 'badprotocol://127.0.0.1:8080/announce', 'http://127.0.0.1:69691337/announce']) {
  test(`udp: unusable tracker URL ${url} is a warning`, (t) => {
    t.plan(1)
    const c = client(t, url, { allowWarnings: true })
    c.on('warning', (err) => {
      t.ok(err.message.includes('tracker'), err.message)
      c.destroy()
    })
  })
}
