/**
 * An AbortController of our own that also fires when the caller's signal does (including one
 * that was aborted before we started), so an operation can abort itself on a failure and still
 * honour the caller's cancellation. Call `unlink()` when done so the caller's signal does not
 * keep a reference to finished work.
 */
export interface LinkedAbort {
  readonly controller: AbortController;
  unlink(): void;
}

export function linkAbort(outer: AbortSignal | undefined): LinkedAbort {
  const controller = new AbortController();
  if (outer === undefined) return { controller, unlink: () => undefined };
  const onAbort = () => controller.abort(outer.reason);
  if (outer.aborted) onAbort();
  else outer.addEventListener('abort', onAbort, { once: true });
  return { controller, unlink: () => outer.removeEventListener('abort', onAbort) };
}
