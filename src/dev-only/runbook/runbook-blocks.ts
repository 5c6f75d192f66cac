import { readFileSync } from 'node:fs';

export interface RunbookSection {
  readonly title: string;
  /** The `bash runbook` blocks of this section, in order. */
  readonly blocks: string[];
}

/**
 * The executable blocks of a Markdown runbook: fenced blocks whose info string is
 * `bash runbook`, grouped by their `## ` section (docs that run, as pgBackRest's user guide).
 */
export function readRunbook(path: string): RunbookSection[] {
  const sections: RunbookSection[] = [];
  let current: RunbookSection = { title: '(preamble)', blocks: [] };
  let block: string[] | undefined;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (block) {
      if (line.startsWith('```')) {
        current.blocks.push(block.join('\n'));
        block = undefined;
      } else block.push(line);
      continue;
    }
    if (line.startsWith('## ')) {
      sections.push(current);
      current = { title: line.slice(3).trim(), blocks: [] };
    } else if (/^```bash runbook\s*$/.test(line)) {
      block = [];
    }
  }
  sections.push(current);
  return sections.filter((s) => s.blocks.length > 0);
}
