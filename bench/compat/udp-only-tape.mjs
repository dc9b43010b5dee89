// tape, running only the cases about udp:// trackers and tracker URL warnings
// (this package speaks only udp://). A case that resolves a public name
// through the system resolver is skipped: no DNS query may leave the machine.
import tape from 'tape'

const RUN = /udp|unsupported tracker protocol|invalid tracker/i
const SKIP = [/invalid\.lol|\(invalid url\)/i]

export default function test (name, fn) {
  if (!RUN.test(name) || SKIP.some((re) => re.test(name))) {
    process.stderr.write(`# SKIP ${name}\n`) // tape 5 prints nothing for a skipped case
    return tape.skip(name, fn)
  }
  return tape(name, fn)
}
