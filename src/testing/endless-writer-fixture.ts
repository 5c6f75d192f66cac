/**
 * Test fixture (run as a child process by fs-storage.test.ts): starts a put into the file
 * repository at argv[2] whose body never ends, and messages the parent once 2 MiB are on disk,
 * so the parent can SIGKILL a writer that is really mid-put.
 */
import { Readable } from 'node:stream';
import { FsStorage } from '../storage/fs/fs-storage.js';

const MiB = 1024 * 1024;
const root = process.argv[2];
if (root === undefined) {
  process.stderr.write('usage: endless-writer-fixture <repository root>\n');
  process.exit(64);
}
let sent = 0;
const body = new Readable({
  read() {
    if (sent >= 2 * MiB) {
      if (sent === 2 * MiB) {
        sent += 1;
        // Let the bytes reach the file before telling the parent to kill us.
        setTimeout(() => process.send?.('written'), 200);
      }
      return; // never ends: the put is still in progress when the kill arrives
    }
    sent += 256 * 1024;
    this.push(Buffer.alloc(256 * 1024, 1));
  },
});
void new FsStorage(root).put('killed/object.bin', body);
