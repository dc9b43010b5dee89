// ES module entry: the CommonJS module's exports as named exports.
import UdpTracker from './index.js'

export default UdpTracker
export { UdpTracker }
export const { announce, scrape, forgetConnectionIds, stats, Client } = UdpTracker
