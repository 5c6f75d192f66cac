import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { PmsError } from '../errors/catalogue.js';
import { WAL_SEGMENT_BYTES } from './wal-file-name.js';

/**
 * The first page of every WAL segment starts with XLogLongPageHeaderData (PostgreSQL 15,
 * src/include/access/xlog_internal.h), little-endian on the platforms we run on:
 *   0  uint16 xlp_magic      4 uint32 xlp_tli   8 uint64 xlp_pageaddr   16 uint32 xlp_rem_len
 *   24 uint64 xlp_sysid     32 uint32 xlp_seg_size   36 uint32 xlp_xlog_blcksz
 * (xlp_pageaddr, at offset 8, is the segment's own position, not the system identifier.)
 */
export const LONG_HEADER_BYTES = 40;
const XLP_LONG_HEADER = 0x0002;
/** XLOG_PAGE_MAGIC of PostgreSQL 15; other majors write a different magic and are refused. */
export const PG15_XLOG_PAGE_MAGIC = 0xd110;

export interface SegmentHeader {
  readonly systemIdentifier: string;
  readonly timeline: number;
  readonly segmentBytes: number;
}

/** Reads the long page header, or explains why these bytes are not a PostgreSQL 15 segment. */
export function parseSegmentHeader(bytes: Uint8Array, name: string): SegmentHeader {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < LONG_HEADER_BYTES) {
    throw new PmsError('PMS_ERR_INTEGRITY', `${name} is ${buffer.length} bytes: too short to be a WAL segment`);
  }
  const magic = buffer.readUInt16LE(0);
  const info = buffer.readUInt16LE(2);
  if (magic !== PG15_XLOG_PAGE_MAGIC || (info & XLP_LONG_HEADER) === 0) {
    throw new PmsError(
      'PMS_ERR_INTEGRITY',
      `${name} does not start with a PostgreSQL 15 WAL page header (magic 0x${magic.toString(16)}): it is not a WAL segment of this server version`,
    );
  }
  const segmentBytes = buffer.readUInt32LE(32);
  if (segmentBytes !== WAL_SEGMENT_BYTES) {
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `${name} comes from a server with wal_segment_size ${segmentBytes}; only the default 16 MiB is supported`,
    );
  }
  return { systemIdentifier: buffer.readBigUInt64LE(24).toString(), timeline: buffer.readUInt32LE(4), segmentBytes };
}

export async function readSegmentHeader(path: string, name: string): Promise<SegmentHeader> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(LONG_HEADER_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, LONG_HEADER_BYTES, 0);
    return parseSegmentHeader(buffer.subarray(0, bytesRead), name);
  } finally {
    await handle.close();
  }
}

/**
 * The system identifier of a data directory: the first field of ControlFileData in
 * global/pg_control (uint64). restore_command runs with the data directory as its working
 * directory, so wal-fetch learns which system it is recovering without any configuration.
 */
export async function readControlSystemIdentifier(dataDir: string): Promise<string> {
  const path = join(dataDir, 'global', 'pg_control');
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'}): wal-fetch must run as restore_command, inside the data directory being recovered`,
      { cause: error },
    );
  }
  try {
    const buffer = Buffer.alloc(8);
    const { bytesRead } = await handle.read(buffer, 0, 8, 0);
    if (bytesRead !== 8) throw new PmsError('PMS_ERR_INTEGRITY', `${path} is truncated`);
    return buffer.readBigUInt64LE(0).toString();
  } finally {
    await handle.close();
  }
}
