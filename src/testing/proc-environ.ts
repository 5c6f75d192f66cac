/**
 * The entries of /proc/<pid>/environ as the process sees them. glibc's loader parses
 * GLIBC_TUNABLES in place at start and ends each tunable with a NUL, so /proc shows the first
 * tunable as the variable and each further one as an entry of its own: they are joined back.
 */
export function procEnviron(text: string): string[] {
  const entries: string[] = [];
  for (const entry of text.split('\0').filter(Boolean)) {
    const last = entries.at(-1);
    if (last?.startsWith('GLIBC_TUNABLES=') && /^glibc\.[a-z_.]+=/.test(entry)) entries[entries.length - 1] = `${last}:${entry}`;
    else entries.push(entry);
  }
  return entries;
}
