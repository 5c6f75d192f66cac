/** Prints a command's result: JSON on stdout with --json, else the human text. */
export function printResult(json: boolean | undefined, result: Record<string, unknown>, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(result)}\n` : `${human}\n`);
}
