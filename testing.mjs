// ES module entry of bittorrent-udp-tracker/testing (the tracker itself is testing.js).
import testing from './testing.js'

export const { createTracker } = testing
export default testing
