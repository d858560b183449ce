#!/usr/bin/env node
// Reads the stamp from a raw 1280x720 8-bit gray frame (as scripts/stamp_publisher.py
// --frame-out writes it) with the page's decoder, and prints it as JSON: checks that the
// publisher and the page agree on the layout without a browser or an encoder in between.
//
//   node stamp-check.mjs FRAME.gray
import { readFileSync } from 'node:fs';
import './page/stamp.js';

const frame = readFileSync(process.argv[2]);
const { WIDTH } = globalThis.Stamp;
if (frame.length !== WIDTH * 720) {
  console.error(`expected a ${WIDTH}x720 gray frame, got ${frame.length} bytes`);
  process.exit(2);
}
const result = globalThis.Stamp.decode((x, y) => frame[y * WIDTH + x]);
console.log(JSON.stringify(result));
process.exit(result.stamp === null ? 1 : 0);
