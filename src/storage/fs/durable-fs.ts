import { type FileHandle, lchown, mkdir, open, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { Writable } from 'node:stream';

/**
 * fsyncs a directory so a rename/link/unlink inside it survives a power cut: POSIX only makes
 * a directory entry durable once the directory itself is synced.
 */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * mkdir -p that also syncs the parent of every directory it created, so a durable file
 * never ends up in a directory that itself vanishes after a crash. Run as root, the new
 * directories take the owner of the directory they were made in: a repository owned by the
 * PostgreSQL user is shared by root-run commands and the server's archive_command, and a
 * root-owned 0700 directory (the metadata tree, a timeline's WAL directory) would lock the
 * archiver out of it.
 */
export async function makeDirectoryDurably(path: string): Promise<void> {
  const first = await mkdir(path, { recursive: true, mode: 0o700 });
  if (first === undefined) return;
  // The directories mkdir created: `first`, then each component of `path` below it.
  const created = [first];
  const below = relative(first, path);
  if (below !== '' && !below.startsWith('..') && !isAbsolute(below)) {
    for (const part of below.split(sep)) created.push(join(created[created.length - 1]!, part));
  }
  if (process.getuid?.() === 0) {
    const owner = await stat(dirname(first));
    // lchown: if the directory was swapped for a symlink meanwhile, only the link changes owner.
    if (owner.uid !== 0) for (const dir of created) await lchown(dir, owner.uid, owner.gid);
  }
  for (const dir of created) await syncDirectory(dirname(dir));
}

/**
 * A Writable over an open FileHandle whose `final` fsyncs, so pipeline() resolves only once
 * the bytes are on disk. (FileHandle.createWriteStream cannot do this on Node 20: with
 * autoClose it closes the handle before we can fsync, without it the handle never closes.)
 * The handle stays open; the caller closes it.
 */
export function syncedFileSink(handle: FileHandle): Writable {
  const writeAll = async (buffers: Buffer[]): Promise<void> => {
    let pending = buffers;
    while (pending.length > 0) {
      const { bytesWritten } = await handle.writev(pending);
      pending = dropWritten(pending, bytesWritten);
    }
  };
  return new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      writeAll([chunk]).then(() => callback(), callback);
    },
    writev(chunks, callback) {
      writeAll(chunks.map(({ chunk }) => chunk as Buffer)).then(() => callback(), callback);
    },
    final(callback) {
      handle.sync().then(() => callback(), callback);
    },
  });
}

/** Short writes happen (e.g. just before ENOSPC): keep what was not written yet. */
function dropWritten(buffers: Buffer[], written: number): Buffer[] {
  let skip = written;
  const rest: Buffer[] = [];
  for (const buffer of buffers) {
    if (skip >= buffer.length) {
      skip -= buffer.length;
    } else {
      rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
      skip = 0;
    }
  }
  return rest;
}
