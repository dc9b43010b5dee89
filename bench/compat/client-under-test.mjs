// The Client the compatibility cases run against: this package's (default)
// or, with COMPAT_CLIENT=theirs, bittorrent-tracker 11's own, as the control
// that shows the cases ask for what bittorrent-tracker does.
import { createRequire } from 'node:module'
import TheirClient from 'bittorrent-tracker'

const require = createRequire(import.meta.url)
const which = process.env.COMPAT_CLIENT || 'ours'
if (which !== 'ours' && which !== 'theirs') throw new Error(`COMPAT_CLIENT must be ours or theirs, got ${which}`)

export default which === 'ours' ? require('../../index.js').Client : TheirClient
