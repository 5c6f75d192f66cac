/**
 * V8 flags for the long-running processes that handle one 16 MiB WAL segment after another (the
 * background pusher and the prefetcher). Each segment passes ~20-40 MB of short-lived buffers
 * through the heap's external memory while the JavaScript heap itself stays at ~14 MB, and V8
 * sized its old generation for those 14 MB: it ran a full mark-compact every ~10-20 MB, about
 * two per segment, 30-45 ms of the prefetcher's ~140 ms of CPU per segment. A 64 MB initial old
 * generation leaves the garbage for fewer, larger collections: 33 → 9 full collections per 16
 * fetches, and 111-119 → 76-88 ms of CPU per pushed segment (Node 24, bench/segment-profile.mjs;
 * docs/performance.md, "Session 11"). It is where collection starts, not a cap: memory stays
 * bounded by what the process keeps alive.
 */
export const SEGMENT_WORKER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];
