'use strict'
// Stand-in for the unpublished from-unsigned-int32 2.x. bittorrent-udp-tracker
// 1.2.0 calls require('from-unsigned-int32').fromUInt32Sync(buf, offset): the
// big-endian u32 at offset.
function fromUInt32Sync (buf, offset) {
  return buf.readUInt32BE(offset || 0)
}
module.exports = fromUInt32Sync
module.exports.fromUInt32Sync = fromUInt32Sync
