import { readFile } from 'node:fs/promises';

/**
 * Progress only (never a manifest): how many bytes a child process has written so far, sampled
 * once a second from /proc/<pid>/io (Linux; elsewhere nothing is reported). For programs whose
 * output goes straight into another program and so never passes through a ByteMeter.
 * Returns a stop function.
 */
export function sampleBytesWritten(pid: number | undefined, update: (bytes: number) => void): () => void {
  const timer = setInterval(() => {
    if (pid === undefined) return;
    readFile(`/proc/${pid}/io`, 'utf8').then(
      (text) => {
        const written = /^wchar: (\d+)$/m.exec(text)?.[1];
        if (written !== undefined) update(Number(written));
      },
      () => undefined,
    );
  }, 1000);
  timer.unref();
  return () => clearInterval(timer);
}
