'use strict'
// Stand-in for the unpublished to-unsigned-int32 2.x. bittorrent-udp-tracker
// 1.2.0 calls require('to-unsigned-int32').toUInt32Sync(n): n as a 4-byte
// big-endian Buffer.
function toUInt32Sync (n) {
  const buf = Buffer.alloc(4)
  buf.writeUInt32BE(n >>> 0, 0)
  return buf
}
module.exports = toUInt32Sync
module.exports.toUInt32Sync = toUInt32Sync
