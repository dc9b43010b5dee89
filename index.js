'use strict'

// The package's exports: the 1.2.0 class (lib/tracker.js) as the module
// itself, the promise API (lib/promise.js) and the engine's module-level
// functions (lib/engine.js). See the README's Layout section.

const UdpTracker = require('./lib/tracker.js')
const { announce, scrape } = require('./lib/promise.js')
const { forgetConnectionIds, stats } = require('./lib/engine.js')

module.exports = UdpTracker
module.exports.UdpTracker = UdpTracker
module.exports.default = UdpTracker
module.exports.announce = announce
module.exports.scrape = scrape
module.exports.forgetConnectionIds = forgetConnectionIds
module.exports.stats = stats
module.exports.Client = require('./lib/client.js').Client
