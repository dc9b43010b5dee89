'use strict'
// Stand-in for the unpublished to-unsigned-int64 1.x. bittorrent-udp-tracker
// 1.2.0 calls require('to-unsigned-int64')(n): n as an 8-byte big-endian Buffer.
function toUInt64 (n) {
  const buf = Buffer.alloc(8)
  buf.writeBigUInt64BE(BigInt(n), 0)
  return buf
}
module.exports = toUInt64
module.exports.toUInt64 = toUInt64
