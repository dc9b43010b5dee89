'use strict'
// Stand-in for webrtc-polyfill (see package.json). @thaunknown/simple-peer
// imports these three names, so they must exist; a udp:// announce never
// constructs them, and doing so throws.
function unavailable (name) {
  return class {
    constructor () {
      throw new Error(`${name} is not available: webrtc-polyfill is a stand-in in the benchmark`)
    }
  }
}
exports.RTCPeerConnection = unavailable('RTCPeerConnection')
exports.RTCSessionDescription = unavailable('RTCSessionDescription')
exports.RTCIceCandidate = unavailable('RTCIceCandidate')
