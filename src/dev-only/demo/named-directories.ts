/**
 * Every pms-demo-/pms-patroni- directory a demo run's output names (its work directory, the
 * cluster files, paths it logs under them): the directories this run made, for its tests' "nothing
 * left behind". Not a listing of tmpdir(): another run beside it (a second checkout on the same
 * machine) has directories of its own there, and they are none of ours. Any absolute path, not
 * only under the test's tmpdir(), since the demo's TMPDIR may differ from the test's.
 */
export function directoriesNamed(output: string): string[] {
  const named = output.matchAll(/(?:\/[^\s/;]+)*?\/pms-(?:demo|patroni)-[A-Za-z0-9]+/g);
  return [...new Set([...named].map((m) => m[0]))];
}
