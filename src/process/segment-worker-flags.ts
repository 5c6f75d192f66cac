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

/**
 * glibc's allocator settings for the same processes. zlib hands out every 1 MiB piece of a
 * decompressed segment, and of a compressed one, in a fresh buffer; glibc served each from a new
 * mapping or from heap it had just given back, so every piece was faulted in page by page and
 * returned again: writing a 16 MiB segment from such pieces cost 9-21 ms of system time against
 * 2.5-6 ms from one reused buffer (a /tmp script on this machine, Node 24). Served from heap that
 * glibc keeps (pieces under 32 MiB, up to 64 MiB of free heap kept), the same writes cost 3-4 ms
 * once warm, and a pushed segment 64-68 ms of CPU instead of 75-77 (docs/performance.md,
 * "Session 14"). The price: up to 64 MiB of freed heap stays with the process after a burst.
 * Other C libraries ignore the variable.
 */
export const SEGMENT_WORKER_ENV: Readonly<Record<string, string>> = {
  GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864',
};
