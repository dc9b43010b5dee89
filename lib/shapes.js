'use strict'

// Instances kept for V8's sake. V8 counts a field that nobody has written
// since it was added as constant, and compiles code that relies on it: the
// first instance to write one (at its first announce, answer or destroy)
// made V8 throw that code away and compile it again. And with no instance
// left, a full collection frees the hidden classes and the code compiled for
// them, so a program that destroyed every instance and collected before its
// next batch paid all of V8's compiling again with each batch. Each module
// whose class makes many instances (lib/tracker.js, lib/client.js) hands one
// of its own here as it loads: its fields are written once more, and it stays.

const kept = []

/** Writes every own field of each of `objects` once more (the same value) and keeps them. */
function keepShapes (...objects) {
  for (const object of objects) {
    for (const name of Object.keys(object)) object[name] = object[name]
    kept.push(object)
  }
}

module.exports = { keepShapes }
