import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * The nice value of work that runs beside PostgreSQL's startup process during recovery (the WAL
 * prefetcher). Recovery is single-threaded and is the critical path: on 2 cores, a prefetcher at
 * the same priority took CPU from it whenever both of its fetches and their zstd work ran at
 * once, while at nice 10 it gets what the startup process leaves, which is enough to stay ahead
 * (it needs ~100 ms of CPU per segment; replay takes ~140 ms per segment on this machine).
 */
export const BACKGROUND_NICE = 10;

/**
 * Lowers this process's priority to `nice` (never raises it). Linux keeps a nice value per
 * thread and a new thread inherits its creator's, so every thread that exists now is lowered
 * (V8's and libuv's helpers) and those made later follow the main thread. Returns how many
 * threads were lowered; 0 where there is no /proc (the process then runs as before).
 */
export function lowerPriority(nice = BACKGROUND_NICE): number {
  let tasks: number[];
  try {
    tasks = readdirSync('/proc/self/task').map(Number);
  } catch {
    return 0;
  }
  let lowered = 0;
  for (const task of tasks) {
    try {
      setPriority(task, Math.max(getPriority(task), nice));
      lowered += 1;
    } catch {
      // The thread ended meanwhile.
    }
  }
  return lowered;
}
