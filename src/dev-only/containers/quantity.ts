const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
const DECIMAL: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** A Kubernetes memory quantity (`512Mi`, `1Gi`, `128M`, `1000`) in bytes. */
export function memoryBytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMGT]i|[kMGT]?)$/.exec(quantity.trim());
  const unit = match?.[2] ?? '';
  const factor = BINARY[unit] ?? DECIMAL[unit];
  if (!match || factor === undefined) throw new Error(`not a memory quantity: ${quantity}`);
  return Math.round(Number(match[1]) * factor);
}
