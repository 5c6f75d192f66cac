import { runDoctor } from './doctor-checks.js';

export async function runDoctorCommand(options: { json?: boolean }): Promise<number> {
  const checks = await runDoctor(process.env);
  const ok = checks.every((c) => c.ok);
  if (options.json) process.stdout.write(`${JSON.stringify({ ok, checks }, null, 2)}\n`);
  else
    process.stdout.write(
      `${checks.map((c) => `${c.warning ? 'WARN' : c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(16)} ${c.detail.replace(/\n\s*/g, ' ')}${c.fix ? `\n     fix: ${c.fix}` : ''}`).join('\n')}\n${ok ? 'everything looks healthy' : 'some checks failed: see the fixes above'}\n`,
    );
  return ok ? 0 : 1;
}
