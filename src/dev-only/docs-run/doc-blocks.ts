import { readFileSync } from 'node:fs';

/**
 * The marking convention of the docs that run: a fenced block whose info string is `bash runbook`
 * is executed by a docs test, in document order; any other shell block (`bash`, `sh`, `shell`,
 * `console`, or none) is one that cannot run here (kubectl against a cluster, a real bucket) and each docs
 * test lists those by name, so a new block cannot escape execution silently.
 */
export interface DocBlock {
  /** The `## ` section it is in ('(preamble)' before the first). */
  readonly section: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly code: string;
  readonly runs: boolean;
}

export interface DocSection {
  readonly title: string;
  /** The `bash runbook` blocks of this section, in order. */
  readonly blocks: string[];
}

/** Shell blocks, and blocks with no info string (which may hold commands too). */
const SHELL = /^(bash|sh|shell|console)?(\s|$)/;

/** Every shell block of a Markdown file, fences indented under list items included. */
export function readDocBlocks(path: string): DocBlock[] {
  const blocks: DocBlock[] = [];
  let section = '(preamble)';
  let open: { indent: string; info: string; line: number; lines: string[] } | undefined;
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, index) => {
      if (open) {
        if (line.trim().startsWith('```')) {
          if (SHELL.test(open.info)) {
            blocks.push({ section, line: open.line, code: open.lines.join('\n'), runs: /^bash runbook\s*$/.test(open.info) });
          }
          open = undefined;
        } else open.lines.push(line.startsWith(open.indent) ? line.slice(open.indent.length) : line.trimStart());
        return;
      }
      const fence = /^(\s*)```(.*)$/.exec(line);
      if (fence) open = { indent: fence[1] ?? '', info: (fence[2] ?? '').trim(), line: index + 1, lines: [] };
      else if (line.startsWith('## ')) section = line.slice(3).trim();
    });
  return blocks;
}

/** The executed blocks grouped by section, sections in document order. */
export function runnableSections(path: string): DocSection[] {
  const sections: DocSection[] = [];
  for (const block of readDocBlocks(path).filter((b) => b.runs)) {
    const last = sections[sections.length - 1];
    if (last?.title === block.section) last.blocks.push(block.code);
    else sections.push({ title: block.section, blocks: [block.code] });
  }
  return sections;
}

/** The shell blocks that are not executed, as `section: first line`, for the docs tests to pin. */
export function skippedBlocks(path: string): string[] {
  return readDocBlocks(path)
    .filter((b) => !b.runs)
    .map((b) => `${b.section}: ${b.code.split('\n')[0]}`);
}

export interface DocFence {
  readonly section: string;
  readonly line: number;
  /** The info string after the opening fence (`bash runbook`, `json`, ''). */
  readonly info: string;
  readonly code: string;
}

/**
 * Every fenced block of a section, whatever its language, in order: a docs test that checks a
 * command's output against the block that follows it (a `json` block after a `bash runbook` one).
 */
export function readSectionFences(path: string, section: string): DocFence[] {
  const fences: DocFence[] = [];
  let current = '(preamble)';
  let open: { info: string; line: number; lines: string[] } | undefined;
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, index) => {
      if (open) {
        if (line.trim().startsWith('```')) {
          if (current === section) fences.push({ section: current, line: open.line, info: open.info, code: open.lines.join('\n') });
          open = undefined;
        } else open.lines.push(line);
        return;
      }
      const fence = /^\s*```(.*)$/.exec(line);
      if (fence) open = { info: (fence[1] ?? '').trim(), line: index + 1, lines: [] };
      else if (/^#{2,3} /.test(line)) current = line.replace(/^#+ /, '').trim();
    });
  return fences;
}
